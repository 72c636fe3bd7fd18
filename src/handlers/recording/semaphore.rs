//! The per-business download semaphore shared with the Python API: Lua scripts (one atomic
//! step each) over the keys of [`keys`](super::keys).
//!
//! `cleanup`, `acquire`, `release` and `mark_failed` keep Python's semantics exactly;
//! `poll` and `leave` are rqw's additions, which let a job wait for a slot instead of failing
//! and take the slot that `release` hands to its call.
//!
//! The one place outside `crate::store` that sends Redis commands, by design: these keys are
//! the recording contract's, shared with its Python API, not RQ's. The store is RQ's keys and
//! scripts and knows no handler's business; this handler keeps its own keys and scripts, over
//! the connection its registry is given (`tests/layers.rs`, `OWN_IO`).

use std::sync::LazyLock;

use crate::store::connection::CommandConnection;
use redis::{RedisResult, Script};

use super::keys::{self, FAILED_TTL, INFLIGHT_TTL, MAX_SLOTS_PER_BUSINESS, QUEUED_TTL, WAITER_TTL};
use super::params::{BusinessId, Sid};

const CLEANUP_HEAD: &str = include_str!("scripts/cleanup.lua");
static CLEANUP: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{CLEANUP_HEAD}\nreturn removed\n")));
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{CLEANUP_HEAD}\n{}",
        include_str!("scripts/acquire.lua")
    ))
});
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/release.lua")));
static POLL: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/poll.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/leave.lua")));

/// What `acquire` found (Python's four answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// The job holds a slot now.
    Acquired,
    /// All slots are taken; the call was appended to the wait list at this 1-based position.
    Queued {
        /// Position in `rec_queue:{b}`.
        position: i64,
    },
    /// The call is already in the wait list (another job enqueued it).
    AlreadyQueued,
    /// The call is already being downloaded (or its slot was handed over).
    Inflight,
}

/// What `poll` found, for a job that holds no slot for its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// This job is the call's waiter, at this 1-based position.
    Queued {
        /// Position in `rec_queue:{b}`.
        position: i64,
    },
    /// The slot handed to the call is now this job's.
    Claimed,
    /// Another live job waits for or downloads this call.
    Other,
    /// Nothing holds or waits for this call: acquire again.
    Free,
}

/// What `leave` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The call was taken out of the wait list.
    Left,
    /// A slot had been handed over meanwhile; the caller holds it and must release it.
    Handed,
    /// This job was not the call's waiter; nothing changed.
    NotWaiting,
}

/// The semaphore, over a reconnecting connection (cheap to clone).
#[derive(Clone)]
pub struct Semaphore {
    conn: CommandConnection,
}

impl std::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Semaphore")
    }
}

impl Semaphore {
    /// Wraps a connection.
    pub fn new(conn: CommandConnection) -> Self {
        Self { conn }
    }

    /// Frees the slots whose in-flight marker expired; returns how many.
    pub async fn cleanup(&self, b: &BusinessId) -> RedisResult<i64> {
        CLEANUP
            .key(keys::slots(b))
            .arg(b.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Python's acquire (cleanup first). On `Queued`, `token` becomes the call's waiter.
    pub async fn acquire(&self, b: &BusinessId, sid: &Sid, token: &str) -> RedisResult<Acquire> {
        let (status, position): (String, i64) = ACQUIRE
            .key(keys::slots(b))
            .key(keys::inflight(b, sid))
            .key(keys::queued(b))
            .key(keys::queue(b))
            .key(keys::waiter(b, sid))
            .arg(b.as_str())
            .arg(sid.as_str())
            .arg(MAX_SLOTS_PER_BUSINESS)
            .arg(INFLIGHT_TTL)
            .arg(QUEUED_TTL)
            .arg(token)
            .arg(WAITER_TTL)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match status.as_str() {
            "acquired" => Acquire::Acquired,
            "queued" => Acquire::Queued { position },
            "already_queued" => Acquire::AlreadyQueued,
            _ => Acquire::Inflight,
        })
    }

    /// Python's release; returns the call the slot was handed to, if any.
    pub async fn release(&self, b: &BusinessId, sid: &Sid) -> RedisResult<Option<String>> {
        RELEASE
            .key(keys::slots(b))
            .key(keys::inflight(b, sid))
            .key(keys::queue(b))
            .key(keys::queued(b))
            .arg(b.as_str())
            .arg(sid.as_str())
            .arg(INFLIGHT_TTL)
            .arg(MAX_SLOTS_PER_BUSINESS)
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// Looks at the call's state for a job holding `token` (see [`Poll`]); refreshes the
    /// waiter's liveness and the wait set's TTL while it waits.
    pub async fn poll(&self, b: &BusinessId, sid: &Sid, token: &str) -> RedisResult<Poll> {
        let (status, position): (String, i64) = POLL
            .key(keys::slots(b))
            .key(keys::inflight(b, sid))
            .key(keys::queued(b))
            .key(keys::queue(b))
            .key(keys::waiter(b, sid))
            .key(keys::handover(b, sid))
            .arg(sid.as_str())
            .arg(token)
            .arg(WAITER_TTL)
            .arg(QUEUED_TTL)
            .arg(INFLIGHT_TTL)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match status.as_str() {
            "queued" => Poll::Queued { position },
            "claimed" => Poll::Claimed,
            "free" => Poll::Free,
            _ => Poll::Other,
        })
    }

    /// Takes the waiting call out of the wait list (a cancelled waiter).
    pub async fn leave(&self, b: &BusinessId, sid: &Sid, token: &str) -> RedisResult<Leave> {
        let status: String = LEAVE
            .key(keys::slots(b))
            .key(keys::inflight(b, sid))
            .key(keys::queued(b))
            .key(keys::queue(b))
            .key(keys::waiter(b, sid))
            .key(keys::handover(b, sid))
            .arg(sid.as_str())
            .arg(token)
            .arg(WAITER_TTL)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match status.as_str() {
            "left" => Leave::Left,
            "handed" => Leave::Handed,
            _ => Leave::NotWaiting,
        })
    }

    /// Python's mark-failed: `rec_failed` for an hour, and the API's dedup key cleared so the
    /// call can be enqueued again.
    pub async fn mark_failed(&self, b: &BusinessId, sid: &Sid, message: &str) -> RedisResult<()> {
        redis::pipe()
            .atomic()
            .set_ex(keys::failed(b, sid), message, FAILED_TTL)
            .ignore()
            .del(keys::dedup(b, sid))
            .ignore()
            .query_async(&mut self.conn.clone())
            .await
    }
}
