//! Taking the next jobs: a non-blocking, priority-ordered pop-and-start (`start.lua`), then,
//! when every queue is empty, a bounded wait.
//!
//! One call starts as many jobs as the worker has free slots (`--concurrency` minus the jobs
//! running), in one round trip, with the default dequeue strategy. The round-robin and random
//! strategies start one job per call, so that the queue order changes between jobs as RQ's
//! does.
//!
//! With one queue the wait is RQ's `BLMOVE` into the intermediate list (pickup is immediate).
//! With several queues Redis has no blocking multi-list move, and a plain `BLPOP` (what RQ
//! uses there) would leave a popped id only in our memory. By default
//! (`--queue-wait blocking`, Redis 6.2+) rqw blocks on every queue at once, one `BLMOVE` per
//! queue on a connection of its own ([`QueueWaiters`]): a push wakes one worker of a fleet,
//! the id is in the intermediate list, and the worker starts it as a claimed job (and puts
//! back at the head of its queue any id it has no free slot for). The pops stay armed between
//! calls while the worker has a free slot, and are ended as soon as it has none, before a
//! suspension or an error's back-off, and when the work loop ends ([`Dequeuer::disarm`]). Where Redis cannot
//! (`BLMOVE` unknown or refused by an ACL: logged, then as with `--queue-wait tracking`), rqw
//! calls the atomic pop instead, and between calls waits on a [`QueueWatch`] (Redis client
//! tracking), which wakes it as soon as a watched queue changes, but wakes every worker of a
//! fleet on every push and pop. While the watch is open an idle worker polls only every
//! [`SAFETY_POLL_INTERVAL`] (a safety net for a notification that never came, e.g. a
//! half-open tracking connection), and that poll is one `EXISTS` over the queue keys (the pop
//! follows only if it finds a job): with the suspension check, two commands per 5 s on any
//! number of queues. A job that poll finds was not announced: the watch is then asked to
//! answer a `PING` and, if it does not, dropped and reopened (a half-open connection sends
//! no disconnection push). The watch is
//! armed before the poll that finds the queues empty, so a push between that poll and the
//! wait still ends the wait (the wake is remembered).
//!
//! Without tracking (Redis before 6, an ACL without `HELLO`/`CLIENT`, or while a lost watch
//! cannot be reopened) the polls alone remain, backing off from 1 ms to [`MAX_POLL_INTERVAL`]
//! while idle: ten pops a second (each one script call touching every queue). A lost watch is
//! logged (`warn`), `rqw_queue_watch_open` drops to 0, and the watch is reopened before the
//! next poll (then at most once per minute while that fails); a master change under Sentinel
//! reopens it on the new master.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::context::WorkerContext;
use super::waiters::{Claim, QueueWaiters};
use crate::config::{DequeueStrategy, QueueWait};
use crate::error::StoreError;
use crate::protocol::job_record::DEFAULT_JOB_TIMEOUT_SECS;
use crate::protocol::timestamp::parse_rq_timestamp;
use crate::protocol::timestamp::RqTimestamp;
use crate::store::connection::{blocking_connection, BlockingConnection, Endpoint, MAX_BLOCK};
use crate::store::queue_wait::{is_blocking_move_refused, put_back, wait_for_job, PutBack};
use crate::store::queue_watch::{any_queued, QueueWatch};
use crate::store::reconcile::{adopt_started, claimed_id_still_parked, reply_may_be_lost};
use crate::store::scripts::{execution_ids, start_batch, StartRequest, StartedJob};

/// Longest a wait on the blocking pops of several queues lasts before the work loop runs its
/// checks (`rq suspend`, `--max-idle-time`); the pops stay armed across it (their own block
/// is [`super::waiters::WAIT_BLOCK`]), so it costs one `rq:suspended` check per interval.
pub const BLOCKED_WAIT: Duration = Duration::from_secs(10);
/// Longest pause between polls of several idle queues without a [`QueueWatch`].
pub const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Pause between polls of several idle queues while a [`QueueWatch`] is open: the watch
/// ends it at the first enqueue; the poll only covers a notification that never came.
pub const SAFETY_POLL_INTERVAL: Duration = Duration::from_secs(5);
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long to poll without a [`QueueWatch`] before trying to open one again.
const WATCH_RETRY: Duration = Duration::from_secs(60);

/// A started job with its execution.
#[derive(Debug)]
pub struct Dequeued {
    /// The job as the start script returned it (with its execution id).
    pub job: StartedJob,
    /// When it started.
    pub started_at: RqTimestamp,
}

/// The worker's source of jobs.
pub struct Dequeuer {
    endpoint: Endpoint,
    blocking: Option<BlockingConnection>,
    /// `CLIENT ID` of the blocking connection (0 = none), for `CLIENT UNBLOCK` at shutdown.
    blocking_id: Arc<AtomicI64>,
    poll_interval: Duration,
    /// Queues in the order the next pop tries them (`--dequeue-strategy`).
    order: Vec<String>,
    strategy: DequeueStrategy,
    /// Wakes the multi-queue poll when a queue changes (`None`: not open, or unavailable).
    watch: Option<QueueWatch>,
    /// The last pause ran its full length with the watch open: nothing was notified, so the
    /// next poll is one `EXISTS` over the queues, and the pop only if that finds a job.
    quiet: bool,
    /// When opening a watch last failed.
    watch_failed_at: Option<tokio::time::Instant>,
    /// A start call whose reply was lost, to look up before anything else.
    pending: Option<PendingStart>,
    /// The blocking waits of a multi-queue worker (`None`: one queue, `--queue-wait
    /// tracking`, or Redis cannot block on a move).
    waiters: Option<QueueWaiters>,
    /// Ids the waits moved into intermediate lists and not started yet: started first by
    /// the next call, put back at the head of their queues when there is no slot for them.
    claims: VecDeque<Claim>,
}

/// A start call whose reply was lost: what it asked for.
#[derive(Debug, Clone)]
struct PendingStart {
    /// The execution ids it carried.
    execution_ids: Vec<String>,
    /// The job a blocking pop had moved into the intermediate list, if any.
    claimed: Option<(String, String)>,
}

impl Dequeuer {
    /// A dequeuer that opens its blocking connections to `endpoint`'s master when first
    /// needed; `wait` says how a multi-queue worker waits (`keys` name the queues for it).
    pub fn new(
        endpoint: Endpoint,
        keys: crate::keys::Keys,
        queues: Vec<String>,
        strategy: DequeueStrategy,
        wait: QueueWait,
    ) -> Self {
        let waiters = (queues.len() > 1 && wait == QueueWait::Blocking)
            .then(|| QueueWaiters::new(endpoint.clone(), keys, queues.clone()));
        Self {
            endpoint,
            blocking: None,
            blocking_id: Arc::new(AtomicI64::new(0)),
            poll_interval: MIN_POLL_INTERVAL,
            order: queues,
            strategy,
            watch: None,
            quiet: false,
            watch_failed_at: None,
            pending: None,
            waiters,
            claims: VecDeque::new(),
        }
    }

    /// Whether a start call's reply was lost and is not looked up yet.
    pub fn has_pending_start(&self) -> bool {
        self.pending.is_some()
    }

    /// Looks up the start call whose reply was lost, if any: the jobs it started are returned
    /// (to be run; the worker owns them), and a claimed job it did not start is started now.
    /// `Err` while Redis still cannot answer (the call stays pending).
    pub async fn reconcile(&mut self, ctx: &WorkerContext) -> Result<Vec<Dequeued>, StoreError> {
        let Some(pending) = self.pending.clone() else {
            return Ok(Vec::new());
        };
        let mut conn = ctx.conn.clone();
        let adopted = adopt_started(
            &mut conn,
            ctx.keys.prefix(),
            &ctx.identity.name,
            ctx.config.job_monitoring_interval,
            &ctx.config.queues,
            &pending.execution_ids,
        )
        .await?;
        self.pending = None;
        let ids: Vec<&str> = adopted.iter().map(|j| j.id.as_str()).collect();
        if adopted.is_empty() {
            tracing::warn!(execution_ids = %pending.execution_ids.join(","), "start reply lost: looked up, nothing had started (the jobs are still queued)");
        } else {
            tracing::warn!(job_ids = %ids.join(","), "start reply lost: looked up, these jobs had started; running them");
        }
        let claimed_started = pending
            .claimed
            .as_ref()
            .is_none_or(|(_, id)| ids.contains(&id.as_str()));
        let mut found: Vec<Dequeued> = adopted
            .into_iter()
            .map(|job| {
                let started_at = job
                    .fields
                    .get("started_at")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(parse_rq_timestamp)
                    .map(RqTimestamp::at)
                    .unwrap_or_else(RqTimestamp::now);
                Dequeued { job, started_at }
            })
            .collect();
        if !claimed_started {
            if let Some((queue, id)) = &pending.claimed {
                // The lost call did not run: the id should still be in the intermediate list,
                // unless maintenance recovered it meanwhile (stuck for over a minute).
                let parked = match claimed_id_still_parked(&mut conn, &ctx.keys, queue, id).await {
                    Ok(parked) => parked,
                    Err(e) if !found.is_empty() => {
                        // Run what was adopted; look at the claimed job again next time.
                        tracing::warn!(job_id = %id, error = %e, "could not look at the claimed job yet");
                        self.pending = Some(PendingStart {
                            execution_ids: Vec::new(),
                            claimed: pending.claimed.clone(),
                        });
                        return Ok(found);
                    }
                    Err(e) => {
                        self.pending = Some(pending.clone());
                        return Err(e);
                    }
                };
                if !parked {
                    tracing::warn!(job_id = %id, "start reply lost: the claimed job had not started and has left the intermediate list (recovered meanwhile); not started here");
                    return Ok(found);
                }
                tracing::warn!(job_id = %id, "start reply lost: the claimed job had not started; starting it again");
                match self.start(ctx, Some((queue, id)), 1).await {
                    Ok(more) => found.extend(more),
                    // The adopted jobs run anyway; a lost reply of this start is pending now.
                    Err(e) if !found.is_empty() => {
                        tracing::warn!(job_id = %id, error = %e, "could not start the claimed job yet")
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(found)
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

    /// Starts up to `max` jobs (at least one), waiting up to `wait` when all queues are empty
    /// (zero in burst mode). Empty when none came. A multi-queue worker's blocking pops stay
    /// armed after it only while slots remain free (`max` not reached, no error, no shutdown).
    pub async fn next(
        &mut self,
        ctx: &WorkerContext,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<Dequeued>, StoreError> {
        let max = match self.strategy {
            DequeueStrategy::Default => max.max(1),
            DequeueStrategy::RoundRobin | DequeueStrategy::Random => 1,
        };
        let found = self.next_batch(ctx, wait, max).await;
        let full = found.as_ref().map_or(true, |jobs| jobs.len() >= max);
        let stopping = ctx.shutdown.warm().is_cancelled();
        if full || stopping {
            self.disarm(ctx).await;
        }
        if stopping {
            // No job starts after a shutdown request: what the pops took goes back.
            self.put_back_claims(ctx).await;
        }
        found
    }

    async fn next_batch(
        &mut self,
        ctx: &WorkerContext,
        wait: Duration,
        max: usize,
    ) -> Result<Vec<Dequeued>, StoreError> {
        if self.pending.is_some() {
            let adopted = self.reconcile(ctx).await?;
            if !adopted.is_empty() {
                return Ok(adopted);
            }
        }
        if !self.claims.is_empty() {
            if ctx.shutdown.warm().is_cancelled() {
                return Ok(Vec::new());
            }
            return self.start_claims(ctx, max).await;
        }
        if !wait.is_zero() && self.waiters.is_none() {
            self.ensure_watch(ctx).await;
        }
        let quiet = std::mem::take(&mut self.quiet) && self.watch.is_some() && !wait.is_zero();
        // While the blocking pops are armed every push went to one of them or is still in its
        // queue, where the next wait's pop takes it at once (a BLMOVE on a non-empty list does
        // not block): no pop is needed first.
        let armed = self.waiters.as_ref().is_some_and(QueueWaiters::armed);
        let unannounced =
            quiet && any_queued(&mut ctx.conn.clone(), &ctx.keys, &self.order).await?;
        let found = if armed || (quiet && !unannounced) {
            Vec::new()
        } else {
            self.start(ctx, None, max).await?
        };
        if unannounced {
            self.check_watch().await;
        }
        if let Some(last) = found.last() {
            self.poll_interval = MIN_POLL_INTERVAL;
            self.reorder(&last.job.queue);
            return Ok(found);
        }
        if wait.is_zero() || ctx.shutdown.warm().is_cancelled() {
            return Ok(Vec::new());
        }
        if let [queue] = ctx.config.queues.as_slice() {
            let claimed = self.block_on(ctx, queue, wait).await?;
            return match claimed {
                Some(id) => self.start(ctx, Some((queue, &id)), max).await,
                None => Ok(Vec::new()),
            };
        }
        if let Some(waiters) = self.waiters.as_mut() {
            crate::metrics::global().set_queue_watch_open(true);
            let waited = waiters
                .wait(wait.min(BLOCKED_WAIT), ctx.shutdown.warm())
                .await;
            self.claims.extend(waited.claims);
            match waited.error {
                Some(e) if is_blocking_move_refused(&e) => {
                    tracing::info!(error = %e, "cannot block on several queues (BLMOVE, Redis 6.2+); watching them with client tracking instead");
                    crate::metrics::global().set_queue_watch_open(false);
                    self.waiters = None;
                }
                Some(e) if self.claims.is_empty() => return Err(e),
                Some(e) => {
                    tracing::warn!(error = %e, "a blocking wait failed; starting what the others took")
                }
                None => {}
            }
            if ctx.shutdown.warm().is_cancelled() {
                return Ok(Vec::new());
            }
            return self.start_claims(ctx, max).await;
        }
        let pause = if self.watch.is_some() {
            SAFETY_POLL_INTERVAL.min(wait)
        } else {
            let pause = self.poll_interval.min(wait);
            self.poll_interval = (self.poll_interval * 2).min(MAX_POLL_INTERVAL);
            pause
        };
        let changed = async {
            match &self.watch {
                Some(watch) => watch.changed().await,
                None => std::future::pending().await,
            }
        };
        let timed_out = tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = changed => false,
            _ = ctx.shutdown.warm().cancelled() => false,
        };
        self.quiet = timed_out && self.watch.is_some();
        Ok(Vec::new())
    }

    /// After the safety poll found a job no push announced (the queues were empty at the last
    /// pop and a whole pause passed in silence): the push may just be in flight, but a watch
    /// that does not answer is dead (a half-open connection sends no disconnection push) and
    /// is dropped, to be reopened before the next poll.
    async fn check_watch(&mut self) {
        if let Some(watch) = &self.watch {
            if !watch.answers().await {
                tracing::warn!("the queue watch (client tracking) was lost (it does not answer); polling until it is open again");
                crate::metrics::global().set_queue_watch_open(false);
                self.watch = None;
                self.watch_failed_at = None;
            }
        }
    }

    /// Opens the [`QueueWatch`] of a multi-queue worker, or opens it again after it was lost
    /// or the master moved, at most once per [`WATCH_RETRY`] after a failure. Called before
    /// the poll, so that a job enqueued between the poll and the pause still wakes it.
    async fn ensure_watch(&mut self, ctx: &WorkerContext) {
        let generation = self.endpoint.generation();
        if ctx.config.queues.len() < 2
            || self
                .watch
                .as_ref()
                .is_some_and(|w| !w.is_lost() && w.generation() == generation)
        {
            return;
        }
        if let Some(old) = self.watch.take() {
            if old.is_lost() {
                tracing::warn!(
                    "the queue watch (client tracking) was lost; polling until it is open again"
                );
            } else {
                tracing::info!("the Redis master changed; watching the queues on the new one");
            }
            crate::metrics::global().set_queue_watch_open(false);
            self.watch_failed_at = None;
        }
        if self
            .watch_failed_at
            .is_some_and(|at| at.elapsed() < WATCH_RETRY)
        {
            return;
        }
        // Opening may wait for the connect timeout while Redis is unreachable: a shutdown
        // does not wait for it.
        let opened = tokio::select! {
            opened = QueueWatch::open(&self.endpoint, &ctx.keys, &ctx.config.queues) => opened,
            _ = ctx.shutdown.warm().cancelled() => return,
        };
        match opened {
            Ok(watch) => {
                tracing::debug!("watching the queues with client tracking");
                crate::metrics::global().set_queue_watch_open(true);
                self.watch = Some(watch);
                self.watch_failed_at = None;
            }
            Err(e) => {
                tracing::info!(error = %e, poll_interval = ?MAX_POLL_INTERVAL, "cannot watch the queues with client tracking (Redis 6+); polling them");
                crate::metrics::global().set_queue_watch_open(false);
                self.watch = None;
                self.watch_failed_at = Some(tokio::time::Instant::now());
            }
        }
    }

    /// Starts the claimed ids, first-claimed first, as long as there are free slots (each
    /// start call also pops what more it may, as after a single queue's wait); the ids left
    /// go back to the head of their queues.
    async fn start_claims(
        &mut self,
        ctx: &WorkerContext,
        max: usize,
    ) -> Result<Vec<Dequeued>, StoreError> {
        let mut found: Vec<Dequeued> = Vec::new();
        while let Some(claim) = self.claims.front().cloned() {
            let room = max.saturating_sub(found.len());
            if room == 0 {
                break;
            }
            match self.start(ctx, Some((&claim.queue, &claim.id)), room).await {
                Ok(jobs) => {
                    self.claims.pop_front();
                    found.extend(jobs);
                }
                Err(e) => {
                    if self.pending.is_some() {
                        // The lost reply's look-up (reconcile) owns this claim now.
                        self.claims.pop_front();
                    }
                    if found.is_empty() {
                        return Err(e);
                    }
                    tracing::warn!(job_id = %claim.id, error = %e, "could not start a claimed job yet");
                    return Ok(found);
                }
            }
        }
        self.put_back_claims(ctx).await;
        if let Some(last) = found.last() {
            self.poll_interval = MIN_POLL_INTERVAL;
            let queue = last.job.queue.clone();
            self.reorder(&queue);
        }
        Ok(found)
    }

    /// Puts the claimed ids not started back at the head of their queues. One that cannot be
    /// put back now stays claimed (started or put back by the next call, or by [`close`]).
    ///
    /// [`close`]: Dequeuer::close
    async fn put_back_claims(&mut self, ctx: &WorkerContext) {
        let mut conn = ctx.conn.clone();
        while let Some(claim) = self.claims.front() {
            match put_back(&mut conn, &ctx.keys, &claim.queue, &claim.id).await {
                Ok(PutBack::Queued) => {
                    tracing::debug!(job_id = %claim.id, queue = %claim.queue, "no free slot: put back at the head of its queue")
                }
                Ok(PutBack::Gone) => {
                    tracing::debug!(job_id = %claim.id, "a claimed id left the intermediate list before it was put back")
                }
                Ok(PutBack::QueueUnusable) => {
                    tracing::warn!(job_id = %claim.id, queue = %claim.queue, "cannot put a claimed job back: its queue key is not a list; it stays in the intermediate list (maintenance recovers it)")
                }
                Err(e) => {
                    tracing::warn!(job_id = %claim.id, error = %e, "could not put a claimed job back yet");
                    return;
                }
            }
            self.claims.pop_front();
        }
    }

    /// Ends a multi-queue worker's blocking pops (before the worker waits for anything but a
    /// job: no free slot, a suspension, an error's back-off); an id they moved meanwhile goes
    /// back to the head of its queue.
    pub async fn disarm(&mut self, ctx: &WorkerContext) {
        let Some(waiters) = self.waiters.as_mut() else {
            return;
        };
        if !waiters.armed() {
            return;
        }
        let waited = waiters.disarm(&mut ctx.conn.clone()).await;
        self.claims.extend(waited.claims);
        if let Some(e) = waited.error {
            tracing::debug!(error = %e, "a blocking pop ended with an error");
        }
        self.put_back_claims(ctx).await;
    }

    /// At the end of the work loop: the blocking pops end, and the claimed ids not started go
    /// back to their queues.
    pub async fn close(&mut self, ctx: &WorkerContext) {
        self.disarm(ctx).await;
        self.put_back_claims(ctx).await;
        if !self.claims.is_empty() {
            let ids: Vec<&str> = self.claims.iter().map(|c| c.id.as_str()).collect();
            tracing::warn!(job_ids = %ids.join(","), "claimed jobs left in their intermediate lists (maintenance recovers them)");
        }
    }

    async fn block_on(
        &mut self,
        ctx: &WorkerContext,
        queue: &str,
        wait: Duration,
    ) -> Result<Option<String>, StoreError> {
        // A connection opened before the master moved may be on the old one.
        if self
            .blocking
            .as_ref()
            .is_some_and(|b| b.generation != self.endpoint.generation())
        {
            self.blocking = None;
            self.blocking_id.store(0, Ordering::SeqCst);
        }
        let blocking = match self.blocking.as_mut() {
            Some(b) => b,
            None => {
                let b = blocking_connection(&self.endpoint, MAX_BLOCK).await?;
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
        &mut self,
        ctx: &WorkerContext,
        claimed: Option<(&str, &str)>,
        max: usize,
    ) -> Result<Vec<Dequeued>, StoreError> {
        let execution_ids = execution_ids(&uuid::Uuid::new_v4().simple().to_string(), max);
        let request = StartRequest {
            prefix: ctx.keys.prefix(),
            worker_name: &ctx.identity.name,
            execution_id: &execution_ids[0],
            // start.lua takes the time itself, where the pop happens; this is its fallback.
            now: RqTimestamp::now(),
            monitoring_interval: ctx.config.job_monitoring_interval,
            default_timeout: DEFAULT_JOB_TIMEOUT_SECS,
            worker_key_ttl: ctx.worker_key_ttl(),
            claimed,
            queues: &self.order,
            max_field_bytes: ctx.config.decode_limits.max_field_bytes,
            // A Python horse builds the job from the whole hash (no second read).
            whole_hash: ctx.horses.is_some(),
        };
        let mut conn = ctx.conn.clone();
        let jobs = match start_batch(&mut conn, &request, &execution_ids).await {
            Ok(jobs) => jobs,
            Err(e) => {
                if reply_may_be_lost(&e) {
                    // The script may have run: look the ids up before anything else.
                    self.pending = Some(PendingStart {
                        execution_ids,
                        claimed: claimed.map(|(q, id)| (q.to_string(), id.to_string())),
                    });
                }
                return Err(e);
            }
        };
        // After the pop, on the worker's clock: the execution's span (result entry,
        // working time) starts no earlier than the job did.
        let started_at = RqTimestamp::now();
        Ok(jobs
            .into_iter()
            .map(|job| Dequeued { job, started_at })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dequeuer(strategy: DequeueStrategy) -> Dequeuer {
        let endpoint = Endpoint::fixed("redis://127.0.0.1:1/0", None).expect("a valid url");
        Dequeuer::new(
            endpoint,
            crate::keys::Keys::default(),
            vec!["a".into(), "b".into(), "c".into()],
            strategy,
            QueueWait::Blocking,
        )
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
