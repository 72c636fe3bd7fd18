//! Shutdown requests: warm (take no new job, let running ones finish) and forced (cancel
//! running jobs now). `rq worker` semantics: the first SIGINT/SIGTERM asks for a warm
//! shutdown, a second one (more than a second later) forces it.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// RQ ignores a second signal that arrives within this long of the first (duplicate delivery).
pub const DUPLICATE_SIGNAL_WINDOW: Duration = Duration::from_secs(1);

/// The two stages of stopping, shared by everything that must react to them.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    warm: CancellationToken,
    force: CancellationToken,
}

impl Shutdown {
    /// No shutdown requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for a warm shutdown.
    pub fn request_warm(&self) {
        self.warm.cancel();
    }

    /// Asks for a forced shutdown (implies warm).
    pub fn request_force(&self) {
        self.warm.cancel();
        self.force.cancel();
    }

    /// Cancelled once any shutdown was requested: stop taking jobs.
    pub fn warm(&self) -> &CancellationToken {
        &self.warm
    }

    /// Cancelled once a forced shutdown was requested: stop running jobs.
    pub fn force(&self) -> &CancellationToken {
        &self.force
    }

    /// Listens for SIGINT/SIGTERM until a forced shutdown (or `stop`), escalating as
    /// `rq worker` does. The caller owns the task this runs in.
    pub async fn listen_for_signals(self, stop: CancellationToken) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut first: Option<Instant> = None;
        loop {
            let name = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            match first {
                None => {
                    tracing::info!(
                        signal = name,
                        "warm shut down requested: taking no new job, waiting for running jobs"
                    );
                    first = Some(Instant::now());
                    self.request_warm();
                }
                Some(at) if at.elapsed() < DUPLICATE_SIGNAL_WINDOW => {
                    tracing::debug!(
                        signal = name,
                        "shutdown signal ignored, received twice in less than 1 second"
                    );
                }
                Some(_) => {
                    tracing::warn!(signal = name, "cold shut down: cancelling running jobs");
                    self.request_force();
                    return Ok(());
                }
            }
        }
    }
}
