//! Waiting on several queues at once so that a push wakes one worker of a fleet, not every
//! one of them (issue 15): one blocking `BLMOVE <queue> <queue>:intermediate LEFT RIGHT` per
//! queue, each on a connection of its own. Redis hands a pushed id to the one client blocked
//! longest on that queue, so N idle replicas cost one wake-up per job, where client tracking
//! (`BCAST`) tells every replica of every push and of every other replica's pop (about 2N
//! start calls per job: docs/BENCHMARKS.md). The id lands in the intermediate list, never only
//! in memory, and is started as a claimed job by `start.lua`, as a single-queue worker's is.
//!
//! The pops are armed only inside one [`QueueWaiters::wait`] and have all ended when it
//! returns: it arms every queue, waits for the first answer (or the shutdown), ends the other
//! pops with `CLIENT UNBLOCK` (one pipeline) and collects their replies. An id one of them
//! moved meanwhile is returned too; the caller starts what it has free slots for and puts the
//! rest back at the head of their queues. So a worker never holds more jobs than its free
//! slots, and no id stays in an intermediate list past the call that claimed it. A wait whose
//! time runs out ends by itself on the server (no `UNBLOCK`): an idle worker sends one
//! `BLMOVE` per queue per [`WAIT_BLOCK`].
//!
//! Each pop runs in a task that owns its connection and hands it back with the reply: a
//! pending pop is never dropped (that would not cancel it on the server, and the id it moved
//! would be in no one's hands). The tasks are this value's, in a [`JoinSet`], and none
//! outlives the `wait` that spawned it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::keys::Keys;
use crate::store::connection::{blocking_connection, BlockingConnection, Endpoint};
use crate::store::queue_wait::{is_wrong_type, unblock_all, wait_for_job};

/// How long one wait of a multi-queue worker blocks: an idle worker sends one `BLMOVE` per
/// queue this often (six queues: 0.2 commands a second), and notices `rq suspend` at the
/// latest after it.
pub const WAIT_BLOCK: Duration = Duration::from_secs(30);

/// A job id a blocking pop moved into its queue's intermediate list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The queue it came from.
    pub queue: String,
    /// The job id.
    pub id: String,
}

/// What one [`QueueWaiters::wait`] found.
#[derive(Debug, Default)]
pub struct Waited {
    /// The ids the pops moved, in the order they answered (empty: the time ran out, or the
    /// shutdown came first).
    pub claims: Vec<Claim>,
    /// The first error a pop met (its connection is reopened at the next wait).
    pub error: Option<StoreError>,
}

/// A pop's end, with the connection it ran on.
struct PopDone {
    index: usize,
    conn: BlockingConnection,
    reply: Result<Option<String>, StoreError>,
}

/// How a pop ended.
enum PopEnd {
    Claimed(Claim),
    TimedOut,
    /// Its queue key is not a list (a producer's doing): not waited on in this wait; the
    /// start call names the queue in its log.
    WrongType,
    Failed(StoreError),
}

/// One blocking pop per queue of a multi-queue worker, and their connections.
pub struct QueueWaiters {
    endpoint: Endpoint,
    keys: Keys,
    queues: Vec<String>,
    /// Per queue: its connection while no pop runs on it (`None`: to be opened).
    conns: Vec<Option<BlockingConnection>>,
    pops: JoinSet<PopDone>,
    /// `CLIENT ID`s of the pops in flight, by queue index, for `CLIENT UNBLOCK`.
    blocked: HashMap<usize, i64>,
}

impl QueueWaiters {
    /// Waiters for `queues` (opened at the first wait).
    pub fn new(endpoint: Endpoint, keys: Keys, queues: Vec<String>) -> Self {
        let conns = queues.iter().map(|_| None).collect();
        Self {
            endpoint,
            keys,
            queues,
            conns,
            pops: JoinSet::new(),
            blocked: HashMap::new(),
        }
    }

    /// Blocks on every queue for up to `timeout` (at most [`WAIT_BLOCK`]) and returns what
    /// the pops moved. `conn` sends the `CLIENT UNBLOCK`s; `stop` ends the wait early.
    pub async fn wait<C: redis::aio::ConnectionLike>(
        &mut self,
        conn: &mut C,
        timeout: Duration,
        stop: &CancellationToken,
    ) -> Waited {
        let timeout = timeout.min(WAIT_BLOCK);
        let mut waited = Waited::default();
        if let Err(e) = self.open_connections().await {
            waited.error = Some(e);
            return waited;
        }
        for index in 0..self.queues.len() {
            self.arm(index, timeout);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        // Until the first answer that ends the wait.
        let unblock_others = loop {
            if self.pops.is_empty() {
                // Every queue key is of the wrong type: wait out the time all the same.
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = stop.cancelled() => {}
                }
                break false;
            }
            tokio::select! {
                done = self.pops.join_next() => match done.map(|d| self.take(d)) {
                    Some(PopEnd::Claimed(claim)) => {
                        waited.claims.push(claim);
                        break true;
                    }
                    // The others run out at about the same moment, on the server.
                    Some(PopEnd::TimedOut) | None => break false,
                    Some(PopEnd::WrongType) => {}
                    Some(PopEnd::Failed(e)) => {
                        waited.error = Some(e);
                        break true;
                    }
                },
                _ = stop.cancelled() => break true,
            }
        };
        if unblock_others && !self.blocked.is_empty() {
            let ids: Vec<i64> = self.blocked.values().copied().collect();
            if let Err(e) = unblock_all(conn, &ids).await {
                tracing::debug!(error = %e, "CLIENT UNBLOCK failed; the other pops end by their timeout");
            }
        }
        while let Some(done) = self.pops.join_next().await {
            match self.take(done) {
                PopEnd::Claimed(claim) => waited.claims.push(claim),
                PopEnd::Failed(e) => {
                    if waited.error.is_none() {
                        waited.error = Some(e);
                    }
                }
                PopEnd::TimedOut | PopEnd::WrongType => {}
            }
        }
        self.blocked.clear();
        waited
    }

    /// Opens the connections not open yet, and again those opened before the master moved.
    async fn open_connections(&mut self) -> Result<(), StoreError> {
        let generation = self.endpoint.generation();
        for slot in &mut self.conns {
            if slot.as_ref().is_some_and(|c| c.generation != generation) {
                *slot = None;
            }
            if slot.is_none() {
                *slot = Some(blocking_connection(&self.endpoint, WAIT_BLOCK).await?);
            }
        }
        Ok(())
    }

    fn arm(&mut self, index: usize, timeout: Duration) {
        let Some(mut conn) = self.conns[index].take() else {
            return;
        };
        self.blocked.insert(index, conn.client_id);
        let keys = self.keys.clone();
        let queue = self.queues[index].clone();
        self.pops.spawn(async move {
            let reply = wait_for_job(&mut conn, &keys, &queue, timeout).await;
            PopDone { index, conn, reply }
        });
    }

    /// Takes a finished pop's connection back (or drops it after an error) and says how the
    /// pop ended.
    fn take(&mut self, done: Result<PopDone, tokio::task::JoinError>) -> PopEnd {
        let done = match done {
            Ok(done) => done,
            // No pop task panics; should one, its connection is gone and reopened next time.
            Err(e) => {
                return PopEnd::Failed(StoreError::UnexpectedReply {
                    what: "BLMOVE",
                    detail: format!("the pop task ended abnormally: {e}"),
                })
            }
        };
        self.blocked.remove(&done.index);
        match done.reply {
            Ok(reply) => {
                self.conns[done.index] = Some(done.conn);
                match reply {
                    Some(id) => PopEnd::Claimed(Claim {
                        queue: self.queues[done.index].clone(),
                        id,
                    }),
                    None => PopEnd::TimedOut,
                }
            }
            Err(e) if is_wrong_type(&e) => {
                self.conns[done.index] = Some(done.conn);
                PopEnd::WrongType
            }
            // The connection may be broken: it is opened again at the next wait.
            Err(e) => PopEnd::Failed(e),
        }
    }
}
