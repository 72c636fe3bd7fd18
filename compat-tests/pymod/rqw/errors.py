"""Exception types rqw names in the tracebacks it stores (see src/protocol/exception.rs)."""


class HandlerPanic(Exception):
    """Stands in for a Rust handler that panicked."""
