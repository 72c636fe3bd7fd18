//! Connecting at start: Redis may not be up yet (containers start together). rqw says so
//! clearly and retries with backoff, until `--startup-timeout` or a shutdown request.

use std::time::Duration;

use super::shutdown::Shutdown;
use crate::config::WorkerConfig;
use crate::error::StoreError;
use crate::store::connection::{command_connection, CommandConnection, Endpoint};

/// Longest pause between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Opens the command connection, retrying while Redis is unreachable. `Ok(None)` when a
/// shutdown was requested meanwhile; `Err` once `startup_timeout` has passed (or at once for
/// an error that retrying cannot fix, such as a refused password or an untrusted certificate).
pub async fn connect(
    endpoint: &Endpoint,
    config: &WorkerConfig,
    shutdown: &Shutdown,
) -> Result<Option<CommandConnection>, StoreError> {
    let started = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(250);
    loop {
        let error = match command_connection(endpoint).await {
            Ok(conn) => return Ok(Some(conn)),
            Err(e) if !e.is_connection_error() || e.is_tls_certificate_error() => return Err(e),
            Err(e) => e,
        };
        if config
            .startup_timeout
            .is_some_and(|limit| started.elapsed() + backoff > limit)
        {
            tracing::error!(url = %endpoint.describe(), "Redis is unreachable; giving up (--startup-timeout)");
            return Err(error);
        }
        tracing::warn!(
            url = %endpoint.describe(),
            error = %error,
            retry_in = ?backoff,
            "Redis is unreachable; retrying"
        );
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.warm().cancelled() => return Ok(None),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
