//! [`WorkerProbe`]: the Redis reads behind a scrape and a health check, each bounded by
//! [`PROBE_TIMEOUT`] so a slow Redis makes `/healthz` say so instead of hanging.

use std::time::Duration;

use super::health::{judge, HealthReport, HeartbeatFields};
use super::registry::Metrics;
use crate::keys::Keys;
use crate::store::connection::CommandConnection;
use crate::worker::context::WorkerContext;
use crate::worker::heartbeat;

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
    /// The probe of a running worker.
    pub fn for_worker(ctx: &WorkerContext) -> Self {
        let period = heartbeat::period(ctx.config.job_monitoring_interval, ctx.config.worker_ttl);
        Self {
            conn: ctx.conn.clone(),
            keys: ctx.keys.clone(),
            worker: ctx.identity.name.clone(),
            queues: ctx.config.queues.clone(),
            stale_after: period * STALE_PERIODS,
        }
    }

    /// Reads the worker's heartbeat and judges it.
    pub async fn health(&self) -> HealthReport {
        let key = self.keys.worker(&self.worker);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.hget(&key, "last_heartbeat").hexists(&key, "death");
        let read = pipe.query_async::<(Option<String>, bool)>(&mut conn);
        let fields = match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok((last_heartbeat, dead))) => Ok(HeartbeatFields {
                last_heartbeat,
                dead,
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        };
        judge(&self.worker, fields, chrono::Utc::now(), self.stale_after)
    }

    /// Reads the depth of every queue into `metrics` (and whether Redis answered, and how
    /// often the master changed).
    pub async fn refresh_queue_depths(&self, metrics: &Metrics) {
        metrics.set_master_changes(self.conn.endpoint().generation());
        let mut pipe = redis::pipe();
        for q in &self.queues {
            pipe.llen(self.keys.queue(q));
        }
        let mut conn = self.conn.clone();
        let read = pipe.query_async::<Vec<i64>>(&mut conn);
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
