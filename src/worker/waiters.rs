//! Waiting on several queues at once so that a push wakes one worker of a fleet, not every
//! one of them (issue 15): one blocking `BLMOVE <queue> <queue>:intermediate LEFT RIGHT` per
//! queue, each on a connection of its own. Redis hands a pushed id to the one client blocked
//! longest on that queue, so N idle replicas cost one wake-up per job, where client tracking
//! (`BCAST`) tells every replica of every push and of every other replica's pop (about 2N
//! start calls per job: docs/BENCHMARKS.md). The id lands in the intermediate list, never only
//! in memory, and is started as a claimed job by `start.lua`, as a single-queue worker's is.
//!
//! The pops stay armed only while the worker has a free slot: [`QueueWaiters::wait`] arms
//! the queues not armed yet and returns at the first id (with any other pop that answered by
//! then), leaving the other pops armed, so a worker with slots to spare costs one `BLMOVE`
//! per job it takes (the one re-armed at its next wait). The caller ends them all with
//! [`QueueWaiters::disarm`] (`CLIENT UNBLOCK`, one pipeline, and their replies collected) as
//! soon as it has no free slot left, before it waits for anything else (a suspension, an
//! error's back-off) and when it stops; an id a pop moved meanwhile is returned, and the
//! caller starts what it has free slots for and puts the rest back at the head of their
//! queues. So a worker never holds more jobs than its slots, and no id stays in an
//! intermediate list while the worker could not start it. A pop that runs its 30 s out on the
//! server is armed again by the next wait: an idle worker sends one `BLMOVE` per queue per
//! [`WAIT_BLOCK`].
//!
//! Each pop runs in a task that owns its connection and hands it back with the reply: a
//! pending pop is never dropped (that would not cancel it on the server, and the id it moved
//! would be in no one's hands). The tasks are this value's, in a [`JoinSet`], and its owner
//! disarms them before it goes.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::keys::Keys;
use crate::store::connection::{blocking_connection, BlockingConnection, Endpoint};
use crate::store::queue_wait::{is_wrong_type, unblock_all, wait_for_job};

/// How long one pop blocks on the server: an idle worker sends one `BLMOVE` per queue this
/// often (six queues: 0.2 commands a second); a half-open connection is given up after it
/// and the command timeout.
pub const WAIT_BLOCK: Duration = Duration::from_secs(30);

/// A job id a blocking pop moved into its queue's intermediate list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The queue it came from.
    pub queue: String,
    /// The job id.
    pub id: String,
}

/// What one [`QueueWaiters::wait`] or [`QueueWaiters::disarm`] found.
#[derive(Debug, Default)]
pub struct Waited {
    /// The ids the pops moved, in the order they answered (empty: the time ran out, or the
    /// stop came first).
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
    /// Per queue: not armed again before this instant (its key was of the wrong type).
    wrong_type_until: Vec<Option<tokio::time::Instant>>,
}

impl QueueWaiters {
    /// Waiters for `queues` (opened at the first wait).
    pub fn new(endpoint: Endpoint, keys: Keys, queues: Vec<String>) -> Self {
        let conns = queues.iter().map(|_| None).collect();
        let wrong_type_until = queues.iter().map(|_| None).collect();
        Self {
            endpoint,
            keys,
            queues,
            conns,
            pops: JoinSet::new(),
            blocked: HashMap::new(),
            wrong_type_until,
        }
    }

    /// Whether any pop is armed (every push since the last wait has gone to one of them, or
    /// is still in its queue for the next wait's pop to take at once).
    pub fn armed(&self) -> bool {
        !self.pops.is_empty()
    }

    /// Arms the queues not armed yet and waits up to `timeout` for ids; returns at the first
    /// one, with those of any other pop that answered by then. The other pops stay armed (see
    /// [`QueueWaiters::disarm`]); a pop that ran its time out is armed again. `stop` ends the
    /// wait early.
    pub async fn wait(&mut self, timeout: Duration, stop: &CancellationToken) -> Waited {
        let mut waited = Waited::default();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Err(e) = self.arm_missing().await {
                waited.error = Some(e);
                return waited;
            }
            if self.pops.is_empty() {
                // Every queue key is of the wrong type: wait out the time all the same.
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = stop.cancelled() => {}
                }
                return waited;
            }
            tokio::select! {
                done = self.pops.join_next() => {
                    if let Some(done) = done {
                        self.record(done, &mut waited);
                    }
                    if !waited.claims.is_empty() || waited.error.is_some() {
                        // Any other pop that answered meanwhile.
                        while let Some(done) = self.pops.try_join_next() {
                            self.record(done, &mut waited);
                        }
                        return waited;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return waited,
                _ = stop.cancelled() => return waited,
            }
        }
    }

    /// Ends every armed pop and returns the ids they moved before they ended.
    pub async fn disarm<C: redis::aio::ConnectionLike>(&mut self, conn: &mut C) -> Waited {
        let mut waited = Waited::default();
        if !self.blocked.is_empty() {
            let ids: Vec<i64> = self.blocked.values().copied().collect();
            if let Err(e) = unblock_all(conn, &ids).await {
                tracing::debug!(error = %e, "CLIENT UNBLOCK failed; the pops end by their timeout");
            }
        }
        while let Some(done) = self.pops.join_next().await {
            self.record(done, &mut waited);
        }
        self.blocked.clear();
        waited
    }

    /// Opens the connections of the queues to arm (again if opened before the master moved),
    /// then arms them.
    async fn arm_missing(&mut self) -> Result<(), StoreError> {
        let generation = self.endpoint.generation();
        let now = tokio::time::Instant::now();
        for index in 0..self.queues.len() {
            if self.blocked.contains_key(&index)
                || self.wrong_type_until[index].is_some_and(|until| now < until)
            {
                continue;
            }
            let slot = &mut self.conns[index];
            if slot.as_ref().is_some_and(|c| c.generation != generation) {
                *slot = None;
            }
            if slot.is_none() {
                *slot = Some(blocking_connection(&self.endpoint, WAIT_BLOCK).await?);
            }
            self.arm(index);
        }
        Ok(())
    }

    fn arm(&mut self, index: usize) {
        let Some(mut conn) = self.conns[index].take() else {
            return;
        };
        self.blocked.insert(index, conn.client_id);
        let keys = self.keys.clone();
        let queue = self.queues[index].clone();
        self.pops.spawn(async move {
            let reply = wait_for_job(&mut conn, &keys, &queue, WAIT_BLOCK).await;
            PopDone { index, conn, reply }
        });
    }

    /// Takes a finished pop's connection back (or drops it after an error) and adds what it
    /// brought to `waited`.
    fn record(&mut self, done: Result<PopDone, tokio::task::JoinError>, waited: &mut Waited) {
        let done = match done {
            Ok(done) => done,
            // No pop task panics; should one, its connection is gone and reopened next time.
            Err(e) => {
                waited.error.get_or_insert(StoreError::UnexpectedReply {
                    what: "BLMOVE",
                    detail: format!("the pop task ended abnormally: {e}"),
                });
                return;
            }
        };
        self.blocked.remove(&done.index);
        match done.reply {
            Ok(reply) => {
                self.conns[done.index] = Some(done.conn);
                if let Some(id) = reply {
                    waited.claims.push(Claim {
                        queue: self.queues[done.index].clone(),
                        id,
                    });
                }
            }
            Err(e) if is_wrong_type(&e) => {
                // The start call names the queue in its log; not waited on for a while.
                self.conns[done.index] = Some(done.conn);
                self.wrong_type_until[done.index] = Some(tokio::time::Instant::now() + WAIT_BLOCK);
            }
            // The connection may be broken: it is opened again at the next wait.
            Err(e) => {
                waited.error.get_or_insert(e);
            }
        }
    }
}
