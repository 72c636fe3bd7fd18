//! Observability: Prometheus metrics and a health endpoint on `--metrics-addr`.
//!
//! ## Layout
//! - [`registry`]: the metric families ([`Metrics`]) and the calls that record into them.
//! - [`job`]: [`JobProbe`], one job's contribution (in flight, start, outcome, duration).
//! - [`health`]: the `/healthz` verdict, pure.
//! - [`probe`]: what a scrape (queue depths) and a health check read, through the store; fed
//!   by whoever starts the server.
//! - [`server`]: the HTTP endpoint, owned by the worker's background tasks.
//!
//! Recording needs no plumbing: every part of the process records into [`global()`], whether
//! or not a server is running (recording is a few atomic operations).

pub mod health;
pub mod job;
pub mod probe;
pub mod registry;
pub mod server;

use std::sync::OnceLock;

pub use job::JobProbe;
pub use probe::WorkerProbe;
pub use registry::Metrics;

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static GLOBAL: OnceLock<Metrics> = OnceLock::new();
    GLOBAL.get_or_init(Metrics::new)
}

/// A probe for a job that starts now, recording into [`global()`].
pub fn job_started(queue: &str) -> JobProbe {
    JobProbe::start(global(), queue)
}
