//! Taking the next job: a non-blocking, priority-ordered pop-and-start (`start.lua`), then,
//! when every queue is empty, a bounded wait.
//!
//! With one queue the wait is RQ's `BLMOVE` into the intermediate list (pickup is immediate).
//! With several queues Redis has no blocking multi-list move, and a plain `BLPOP` (what RQ
//! uses there) would leave a popped id only in our memory; rqw polls the atomic pop instead,
//! backing off from 1 ms to [`MAX_POLL_INTERVAL`] while idle.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Client;

use super::context::WorkerContext;
use crate::config::DequeueStrategy;
use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;
use crate::protocol::timestamp::Instant;
use crate::store::connection::{blocking_connection, BlockingConnection};
use crate::store::queue_wait::wait_for_job;
use crate::store::scripts::{start_job, StartRequest, StartedJob};

/// Longest pause between polls of several idle queues.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// A started job with its execution.
#[derive(Debug)]
pub struct Dequeued {
    /// The job as the start script returned it.
    pub job: StartedJob,
    /// The execution id.
    pub execution_id: String,
    /// When it started.
    pub started_at: Instant,
}

/// The worker's source of jobs.
pub struct Dequeuer {
    client: Client,
    blocking: Option<BlockingConnection>,
    /// `CLIENT ID` of the blocking connection (0 = none), for `CLIENT UNBLOCK` at shutdown.
    blocking_id: Arc<AtomicI64>,
    poll_interval: Duration,
    /// Queues in the order the next pop tries them (`--dequeue-strategy`).
    order: Vec<String>,
    strategy: DequeueStrategy,
}

impl Dequeuer {
    /// A dequeuer that opens its blocking connection from `client` when first needed.
    pub fn new(client: Client, queues: Vec<String>, strategy: DequeueStrategy) -> Self {
        Self {
            client,
            blocking: None,
            blocking_id: Arc::new(AtomicI64::new(0)),
            poll_interval: MIN_POLL_INTERVAL,
            order: queues,
            strategy,
        }
    }

    /// The order the next pop tries the queues in.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// Reorders the queues after a job came from `queue`, as `BaseWorker.reorder_queues` does.
    fn reorder(&mut self, queue: &str) {
        match self.strategy {
            DequeueStrategy::Default => {}
            DequeueStrategy::RoundRobin => {
                if let Some(pos) = self.order.iter().position(|q| q == queue) {
                    self.order.rotate_left(pos + 1);
                }
            }
            DequeueStrategy::Random => fastrand::shuffle(&mut self.order),
        }
    }

    /// The id of the connection currently blocked (or about to block), for unblocking.
    pub fn blocking_id(&self) -> Arc<AtomicI64> {
        self.blocking_id.clone()
    }

    /// Starts the next job, waiting up to `wait` when all queues are empty (zero in burst
    /// mode). `None` when none came.
    pub async fn next(
        &mut self,
        ctx: &WorkerContext,
        wait: Duration,
    ) -> Result<Option<Dequeued>, StoreError> {
        if let Some(found) = self.start(ctx, None).await? {
            self.poll_interval = MIN_POLL_INTERVAL;
            self.reorder(&found.job.queue);
            return Ok(Some(found));
        }
        if wait.is_zero() || ctx.shutdown.warm().is_cancelled() {
            return Ok(None);
        }
        if let [queue] = ctx.config.queues.as_slice() {
            let claimed = self.block_on(ctx, queue, wait).await?;
            return match claimed {
                Some(id) => self.start(ctx, Some((queue, &id))).await,
                None => Ok(None),
            };
        }
        let pause = self.poll_interval.min(wait);
        self.poll_interval = (self.poll_interval * 2).min(MAX_POLL_INTERVAL);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = ctx.shutdown.warm().cancelled() => {}
        }
        Ok(None)
    }

    async fn block_on(
        &mut self,
        ctx: &WorkerContext,
        queue: &str,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        let blocking = match self.blocking.as_mut() {
            Some(b) => b,
            None => {
                let b = blocking_connection(&self.client).await?;
                self.blocking_id.store(b.client_id, Ordering::SeqCst);
                self.blocking.insert(b)
            }
        };
        match wait_for_job(blocking, &ctx.keys, queue, wait).await {
            Ok(id) => Ok(id),
            Err(e) => {
                // The connection may be broken: open a new one next time.
                self.blocking = None;
                self.blocking_id.store(0, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    async fn start(
        &self,
        ctx: &WorkerContext,
        claimed: Option<(&str, &str)>,
    ) -> Result<Option<Dequeued>, StoreError> {
        let execution_id = uuid::Uuid::new_v4().simple().to_string();
        let started_at = Instant::now();
        let request = StartRequest {
            prefix: ctx.keys.prefix(),
            worker_name: &ctx.identity.name,
            execution_id: &execution_id,
            now: started_at,
            monitoring_interval: ctx.config.job_monitoring_interval,
            default_timeout: DEFAULT_JOB_TIMEOUT_SECS,
            worker_key_ttl: ctx.worker_key_ttl(),
            claimed,
            queues: &self.order,
        };
        let mut conn = ctx.conn.clone();
        Ok(start_job(&mut conn, &request).await?.map(|job| Dequeued {
            job,
            execution_id,
            started_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dequeuer(strategy: DequeueStrategy) -> Dequeuer {
        let client = Client::open("redis://127.0.0.1:1/0").expect("a valid url");
        Dequeuer::new(client, vec!["a".into(), "b".into(), "c".into()], strategy)
    }

    #[test]
    fn round_robin_rotates_past_the_queue_used() {
        let mut d = dequeuer(DequeueStrategy::RoundRobin);
        d.reorder("a");
        assert_eq!(d.order(), ["b", "c", "a"]);
        d.reorder("c");
        assert_eq!(d.order(), ["a", "b", "c"]);
    }

    #[test]
    fn default_keeps_priority_and_random_keeps_the_set() {
        let mut d = dequeuer(DequeueStrategy::Default);
        d.reorder("b");
        assert_eq!(d.order(), ["a", "b", "c"]);
        let mut r = dequeuer(DequeueStrategy::Random);
        r.reorder("a");
        let mut sorted = r.order().to_vec();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c"]);
    }
}
