//! Typed errors of the library. Each carries enough context to be understood in a log line,
//! and never a secret (Redis URLs are masked before they reach an error).

/// A failure talking to Redis or reading what it holds.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The Redis client reported an error (connection, protocol, script).
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis answered with something the protocol does not allow here.
    #[error("unexpected reply from redis for {what}: {detail}")]
    UnexpectedReply {
        /// The operation.
        what: &'static str,
        /// What came back.
        detail: String,
    },
    /// TLS material could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// `rq:worker:<name>` exists and has no `death` field: another worker uses this name.
    #[error("there exists an active worker named {0:?} already")]
    DuplicateWorker(String),
}

impl StoreError {
    /// True when a TLS handshake failed on the certificate (untrusted, expired, wrong host):
    /// retrying cannot fix it. rustls reports these as I/O errors, told apart by their text.
    pub fn is_tls_certificate_error(&self) -> bool {
        match self {
            StoreError::Tls(_) => true,
            StoreError::Redis(e) => e.to_string().to_ascii_lowercase().contains("certificate"),
            _ => false,
        }
    }

    /// True when the error means the connection is gone or timed out, so retrying after a
    /// reconnect may succeed.
    pub fn is_connection_error(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.is_io_error()
            }
            _ => false,
        }
    }
}

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Redis failed in a way the worker cannot ride out.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `rq:suspended` is set: like `rq worker`, rqw refuses to start.
    #[error("workers are suspended (rq:suspended is set); run `rq resume` first")]
    Suspended,
    /// `--metrics-addr` cannot be listened on.
    #[error(transparent)]
    Metrics(#[from] BindError),
}

/// The metrics address (`--metrics-addr`) could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: std::net::SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// An error and its causes on one line, `outer: cause: root`, each said once: a cause whose
/// text the line already holds is left out (`redis::RedisError` repeats its I/O source in its
/// own text, and so does every error that wraps it with `{0}`).
pub fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Wrapper(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("while starting")]
    struct Outer(#[source] Wrapper);

    #[test]
    fn a_cause_already_in_the_text_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Outer(Wrapper(io));
        assert_eq!(chain_text(&e), "while starting: cannot connect: refused");
    }
}
