//! [`WorkerProbe`]: what a scrape and a health check read, through the store
//! (`crate::store::observe`), each bounded by [`PROBE_TIMEOUT`] so a slow Redis makes
//! `/healthz` say so instead of hanging. The probe is fed: whoever starts the metrics server
//! fills it in (the worker's name, queues and heartbeat staleness); it knows nothing of the
//! worker.

use std::time::Duration;

use super::health::{judge, HealthReport, HeartbeatFields};
use super::registry::Metrics;
use crate::error::StoreError;
use crate::keys::Keys;
use crate::store::connection::CommandConnection;
use crate::store::observe::{queue_depths, worker_heartbeat, HeartbeatRead};

/// Longest a probe waits for Redis.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A heartbeat older than this many heartbeat periods is stale (two beats missed, and some).
pub const STALE_PERIODS: u32 = 3;

/// What the metrics server needs to know about the worker it reports on.
#[derive(Clone)]
pub struct WorkerProbe {
    /// Command connection (shared with the worker; cheap to clone).
    pub conn: CommandConnection,
    /// Key names.
    pub keys: Keys,
    /// The worker's name.
    pub worker: String,
    /// The queues whose depth is reported.
    pub queues: Vec<String>,
    /// Age beyond which the worker's heartbeat is stale.
    pub stale_after: Duration,
}

impl WorkerProbe {
    /// Reads the worker's heartbeat and judges it.
    pub async fn health(&self) -> HealthReport {
        let mut conn = self.conn.clone();
        let read = worker_heartbeat(&mut conn, &self.keys, &self.worker);
        let fields = match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok(HeartbeatRead {
                last_heartbeat,
                dead,
            })) => Ok(HeartbeatFields {
                last_heartbeat,
                dead,
            }),
            Ok(Err(e)) => Err(redis_detail(e)),
            Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        };
        judge(&self.worker, fields, chrono::Utc::now(), self.stale_after)
    }

    /// Reads the depth of every queue into `metrics` (and whether Redis answered, and how
    /// often the master changed).
    pub async fn refresh_queue_depths(&self, metrics: &Metrics) {
        metrics.set_master_changes(self.conn.endpoint().generation());
        let mut conn = self.conn.clone();
        let read = queue_depths(&mut conn, &self.keys, &self.queues);
        match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok(depths)) => {
                for (q, depth) in self.queues.iter().zip(depths) {
                    metrics.set_queue_depth(q, depth);
                }
                metrics.set_redis_up(true);
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics: could not read queue depths");
                metrics.set_redis_up(false);
            }
            Err(_) => metrics.set_redis_up(false),
        }
    }
}

/// The client's own text of a Redis error (what `/healthz` has always shown), other errors
/// as they read.
fn redis_detail(e: StoreError) -> String {
    match e {
        StoreError::Redis(e) => e.to_string(),
        other => other.to_string(),
    }
}
