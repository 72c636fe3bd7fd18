//! The Redis side of the worker's duties (`crate::duties`): their Lua scripts
//! (`scripts/{scheduler_lock,scheduler_release,move_scheduled,enqueue_ready,recover,
//! clean_workers}.lua`), the maintenance lease, and the registry reads and prunes of a
//! maintenance pass, with typed wrappers. Each call is one atomic round trip. The libraries in
//! `scripts/lib/` (RQ's `Queue._enqueue_job`, rate-limit promotion, dependents) are prepended
//! at compile time to the scripts that use them, shared with the job lifecycle's `finish.lua`.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::error::StoreError;
use crate::protocol::result::encode_exc_string;
use crate::protocol::timestamp::RqTimestamp;

static SCHEDULER_LOCK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/scheduler_lock.lua")));
static SCHEDULER_RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/scheduler_release.lua")));
static MOVE_SCHEDULED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/lib/enqueue.lua"),
        include_str!("scripts/move_scheduled.lua")
    ))
});
static ENQUEUE_READY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/lib/enqueue.lua"),
        include_str!("scripts/enqueue_ready.lua")
    ))
});
static RECOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/lib/enqueue.lua"),
        include_str!("scripts/lib/dependents.lua"),
        include_str!("scripts/lib/failure.lua"),
        include_str!("scripts/recover.lua")
    ))
});
static CLEAN_WORKERS: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/clean_workers.lua")));

/// What acquire-or-refresh did to one scheduler lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock was free and is now ours.
    Acquired,
    /// The lock was already ours; its TTL was renewed.
    Refreshed,
    /// Another scheduler (Python or rqw) holds it.
    Taken,
}

impl LockOutcome {
    /// Whether we hold the lock after the call.
    pub fn is_held(self) -> bool {
        self != LockOutcome::Taken
    }
}

/// Acquires or refreshes `lock_keys` for `owner` and writes (or, holding none, deletes) the
/// scheduler hash `hash_key`. One outcome per key, in order.
pub async fn acquire_or_refresh<C: ConnectionLike>(
    conn: &mut C,
    owner: &str,
    ttl: u64,
    hash_key: &str,
    hash_fields: &[(&str, String)],
    lock_keys: &[String],
) -> Result<Vec<LockOutcome>, StoreError> {
    let mut inv = SCHEDULER_LOCK.prepare_invoke();
    inv.arg(owner).arg(ttl).arg(hash_key).arg(hash_fields.len());
    for (field, value) in hash_fields {
        inv.arg(*field).arg(value);
    }
    for key in lock_keys {
        inv.arg(key);
    }
    let codes: Vec<i64> = inv.invoke_async(conn).await?;
    if codes.len() != lock_keys.len() {
        return Err(StoreError::UnexpectedReply {
            what: "scheduler_lock.lua",
            detail: format!("{} outcomes for {} locks", codes.len(), lock_keys.len()),
        });
    }
    Ok(codes
        .into_iter()
        .map(|c| match c {
            1 => LockOutcome::Acquired,
            2 => LockOutcome::Refreshed,
            _ => LockOutcome::Taken,
        })
        .collect())
}

/// Releases the locks still held by `owner` and deletes its scheduler hash; returns how many
/// locks were released.
pub async fn release_locks<C: ConnectionLike>(
    conn: &mut C,
    owner: &str,
    hash_key: &str,
    lock_keys: &[String],
) -> Result<u64, StoreError> {
    let mut inv = SCHEDULER_RELEASE.prepare_invoke();
    inv.arg(owner).arg(hash_key);
    for key in lock_keys {
        inv.arg(key);
    }
    Ok(inv.invoke_async(conn).await?)
}

static LEASE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
           return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
});
static LEASE_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then \
           return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// Takes a lease on `key` for `owner` (`SET NX EX ttl`): a lock that RQ's workers, which take
/// it with `SET NX` too, honour while it lives. `false` when someone holds it.
pub async fn lease_acquire<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    owner: &str,
    ttl: u64,
) -> Result<bool, StoreError> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(owner)
        .arg("NX")
        .arg("EX")
        .arg(ttl)
        .query_async(conn)
        .await?;
    Ok(set.is_some())
}

/// Renews a lease still held by `owner`; `false` when it is not ours any more (it expired,
/// and maybe another worker took it).
pub async fn lease_refresh<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    owner: &str,
    ttl: u64,
) -> Result<bool, StoreError> {
    let renewed: i64 = LEASE_REFRESH
        .key(key)
        .arg(owner)
        .arg(ttl)
        .invoke_async(conn)
        .await?;
    Ok(renewed == 1)
}

/// Releases a lease still held by `owner` (another holder's is left alone); `false` when it
/// was not ours any more. Safe to repeat after a lost reply.
pub async fn lease_release<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    owner: &str,
) -> Result<bool, StoreError> {
    let deleted: i64 = LEASE_RELEASE.key(key).arg(owner).invoke_async(conn).await?;
    Ok(deleted == 1)
}

/// Whether rqw's maintenance marker `key` (`Keys::cleaned_marker`: a queue cleaned less than
/// an interval ago by some rqw) is set.
pub async fn marker_exists<C: ConnectionLike>(conn: &mut C, key: &str) -> Result<bool, StoreError> {
    Ok(redis::cmd("EXISTS").arg(key).query_async(conn).await?)
}

/// Sets rqw's maintenance marker `key` to `token` for `ttl` seconds (a completed pass; it
/// overwrites, and [`lease_release`] removes it only while it still holds `token`).
pub async fn marker_set<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    token: &str,
    ttl: u64,
) -> Result<(), StoreError> {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(token)
        .arg("EX")
        .arg(ttl.max(1))
        .query_async(conn)
        .await?;
    Ok(())
}

/// Removes the entries of the registry `key` (a sorted set scored by expiry) that expired at
/// or before `now` (`BaseRegistry.cleanup` of FinishedJobRegistry and FailedJobRegistry).
pub async fn prune_expired<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    now: RqTimestamp,
) -> Result<(), StoreError> {
    redis::cmd("ZREMRANGEBYSCORE")
        .arg(key)
        .arg(0)
        .arg(now.unix_seconds())
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// The members of the StartedJobRegistry `key` whose heartbeat score expired at or before
/// `now` (candidates for abandoned jobs).
pub async fn expired_members<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    now: RqTimestamp,
) -> Result<Vec<String>, StoreError> {
    Ok(redis::cmd("ZRANGEBYSCORE")
        .arg(key)
        .arg(0)
        .arg(now.unix_seconds())
        .query_async(conn)
        .await?)
}

/// Where and when a batch of queue work happens.
#[derive(Debug, Clone, Copy)]
pub struct QueueCall<'a> {
    /// Key prefix (`rq:`).
    pub prefix: &'a str,
    /// The queue.
    pub queue: &'a str,
    /// The time of the call.
    pub now: RqTimestamp,
    /// Timeout written on jobs that have none (the queue default, 180).
    pub default_timeout: u64,
    /// Most jobs handled in one call.
    pub limit: u64,
}

/// Two counts returned by the enqueue scripts: jobs put on the queue, and entries dropped
/// because their job was gone or no longer waiting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Jobs enqueued (or handed to a 3.0 rate limiter).
    pub enqueued: u64,
    /// Registry entries dropped without enqueueing.
    pub dropped: u64,
}

/// Moves the due jobs of `rq:scheduled:<q>` to their queue, while `lock_key` holds `owner`.
/// `None` when the lock is no longer ours (nothing moved).
pub async fn move_scheduled<C: ConnectionLike>(
    conn: &mut C,
    call: &QueueCall<'_>,
    lock_key: &str,
    owner: &str,
) -> Result<Option<Moved>, StoreError> {
    let mut inv = MOVE_SCHEDULED.prepare_invoke();
    push_call(&mut inv, call);
    inv.arg(lock_key).arg(owner);
    match inv.invoke_async::<Value>(conn).await? {
        Value::Int(-1) => Ok(None),
        other => pair("move_scheduled.lua", other)
            .map(|(enqueued, dropped)| Some(Moved { enqueued, dropped })),
    }
}

/// Enqueues the leftovers of rq 3.0's `rq:ready:<q>`.
pub async fn enqueue_ready<C: ConnectionLike>(
    conn: &mut C,
    call: &QueueCall<'_>,
) -> Result<Moved, StoreError> {
    let mut inv = ENQUEUE_READY.prepare_invoke();
    push_call(&mut inv, call);
    let (enqueued, dropped) = pair("enqueue_ready.lua", inv.invoke_async(conn).await?)?;
    Ok(Moved { enqueued, dropped })
}

fn push_call(inv: &mut redis::ScriptInvocation<'_>, call: &QueueCall<'_>) {
    inv.arg(call.prefix)
        .arg(call.queue)
        .arg(call.now.rq_format())
        .arg(call.now.unix_seconds())
        .arg(call.default_timeout)
        .arg(call.limit);
}

/// Which jobs `recover.lua` looks at.
#[derive(Debug, Clone, Copy)]
pub enum Recovery<'a> {
    /// These expired StartedJobRegistry members (`<id>:<execution id>`).
    Abandoned {
        /// The members, as read.
        members: &'a [String],
    },
    /// The ids in the queue's intermediate list.
    Stuck {
        /// Seconds after its first sighting an id counts as stuck (RQ: 60).
        after_secs: u64,
    },
}

/// A recovery batch.
#[derive(Debug, Clone, Copy)]
pub struct RecoverRequest<'a> {
    /// Queue, time, default timeout.
    pub call: QueueCall<'a>,
    /// What to look at.
    pub recovery: Recovery<'a>,
    /// `worker_name` of the failure result (`''` for abandoned jobs, as RQ writes).
    pub result_worker: &'a str,
    /// The worker whose `failed_job_count` counts each failure or retry (`''` = none).
    pub count_worker: &'a str,
    /// The failure text (plain; stored as base64 of zlib).
    pub exc_string: &'a str,
}

/// What a recovery batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Jobs failed.
    pub failed: u64,
    /// Jobs retried (requeued or scheduled).
    pub retried: u64,
    /// Registry members or intermediate entries removed.
    pub removed: u64,
}

/// Fails or retries the jobs of dead workers (see `recover.lua`).
pub async fn recover<C: ConnectionLike>(
    conn: &mut C,
    req: &RecoverRequest<'_>,
) -> Result<Recovered, StoreError> {
    let (mode, stuck_after, members): (&str, u64, &[String]) = match req.recovery {
        Recovery::Abandoned { members } => ("abandoned", 0, members),
        Recovery::Stuck { after_secs } => ("stuck", after_secs, &[]),
    };
    let mut inv = RECOVER.prepare_invoke();
    inv.arg(req.call.prefix)
        .arg(req.call.queue)
        .arg(req.call.now.rq_format())
        .arg(req.call.now.unix_seconds())
        .arg(req.call.now.unix_float().to_string())
        .arg(mode)
        .arg(req.result_worker)
        .arg(req.count_worker)
        .arg(encode_exc_string(req.exc_string))
        .arg(req.call.default_timeout)
        .arg(stuck_after);
    for m in members {
        inv.arg(m);
    }
    let reply: Value = inv.invoke_async(conn).await?;
    let items = match reply {
        Value::Array(items) => items,
        other => {
            return Err(StoreError::UnexpectedReply {
                what: "recover.lua",
                detail: format!("{other:?}"),
            })
        }
    };
    let counts = with_notes("recover.lua", &items);
    match counts {
        [Value::Int(failed), Value::Int(retried), Value::Int(removed)]
            if *failed >= 0 && *retried >= 0 && *removed >= 0 =>
        {
            Ok(Recovered {
                failed: *failed as u64,
                retried: *retried as u64,
                removed: *removed as u64,
            })
        }
        other => Err(StoreError::UnexpectedReply {
            what: "recover.lua",
            detail: format!("{other:?}"),
        }),
    }
}

/// Removes dead worker keys from `rq:workers:<q>` and `rq:workers`; returns how many.
pub async fn clean_workers<C: ConnectionLike>(
    conn: &mut C,
    prefix: &str,
    queue: &str,
) -> Result<u64, StoreError> {
    Ok(CLEAN_WORKERS
        .prepare_invoke()
        .arg(prefix)
        .arg(queue)
        .invoke_async(conn)
        .await?)
}

/// The counts of a duties script's reply, logging its trailing notes (issue 13: what it did
/// around keys of the wrong type), if any.
fn with_notes<'v>(what: &'static str, items: &'v [Value]) -> &'v [Value] {
    match items.split_last() {
        Some((Value::BulkString(notes), counts)) => {
            tracing::error!(
                script = what,
                notes = %crate::protocol::text::escaped(notes, crate::protocol::text::MAX_MESSAGE_CHARS),
                "duties worked around unusable keys"
            );
            counts
        }
        _ => items,
    }
}

fn pair(what: &'static str, reply: Value) -> Result<(u64, u64), StoreError> {
    match reply {
        Value::Array(items) => match with_notes(what, &items) {
            [Value::Int(a), Value::Int(b)] if *a >= 0 && *b >= 0 => Ok((*a as u64, *b as u64)),
            _ => Err(StoreError::UnexpectedReply {
                what,
                detail: format!("{items:?}"),
            }),
        },
        other => Err(StoreError::UnexpectedReply {
            what,
            detail: format!("{other:?}"),
        }),
    }
}
