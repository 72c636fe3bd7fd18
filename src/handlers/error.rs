//! The error a handler returns: data, never a crash of the worker.

use std::fmt;

/// Whether RQ's retry policy may run the job again after this error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerErrorKind {
    /// The job fails; if it has `retries_left`, RQ's retry policy applies.
    Retryable,
    /// The job fails for good: no retry is attempted whatever `retries_left` says.
    Permanent,
}

/// A failed job, as the handler describes it. `exc_type` is the Python-style exception class
/// name shown to Python readers (`ValueError`, `rqw.errors.DownloadError`), `message` its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// Retryable or permanent.
    pub kind: HandlerErrorKind,
    /// Exception class name written into the traceback's last line.
    pub exc_type: String,
    /// Human-readable message. Must not contain secrets.
    pub message: String,
}

impl HandlerError {
    /// A retryable failure with the given exception type and message.
    pub fn retryable(exc_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: HandlerErrorKind::Retryable,
            exc_type: exc_type.into(),
            message: message.into(),
        }
    }

    /// A permanent failure: never retried.
    pub fn permanent(exc_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: HandlerErrorKind::Permanent,
            exc_type: exc_type.into(),
            message: message.into(),
        }
    }

    /// A bad argument: permanent, reported as Python's `TypeError`/`ValueError` would be.
    pub fn bad_argument(message: impl Into<String>) -> Self {
        Self::permanent("ValueError", message)
    }

    /// True when the retry policy may run the job again.
    pub fn is_retryable(&self) -> bool {
        self.kind == HandlerErrorKind::Retryable
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.exc_type, self.message)
    }
}

impl std::error::Error for HandlerError {}
