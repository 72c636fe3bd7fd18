//! The worker hash `rq:worker:<name>` and the worker sets, as `rq info`, `Worker.all()` and
//! rq-dashboard read them (`BaseWorker.register_birth`, `register_death`).

use redis::aio::ConnectionLike;

use crate::error::StoreError;
use crate::keys::Keys;
use crate::protocol::timestamp::RqTimestamp;

/// What a worker says about itself when it registers.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Unique worker name.
    pub name: String,
    /// Queues in priority order.
    pub queues: Vec<String>,
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub hostname: String,
    /// `host:port` of our connection as Redis sees it, or `unknown`.
    pub ip_address: String,
}

/// The `version` field: readers show it as the worker's software version.
pub const VERSION_FIELD: &str = concat!("rqw-", env!("CARGO_PKG_VERSION"));
/// The `python_version` field: there is no Python here; say what runs instead.
pub const RUNTIME_FIELD: &str = concat!("rqw ", env!("CARGO_PKG_VERSION"), " (native Rust worker)");

/// The address Redis sees for this connection (`addr=` of `CLIENT INFO`), as RQ records it.
pub async fn client_address<C: ConnectionLike>(conn: &mut C) -> String {
    let info: Result<String, _> = redis::cmd("CLIENT").arg("INFO").query_async(conn).await;
    info.ok()
        .and_then(|line| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr=").map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Registers the worker, refusing a name held by a live worker (a hash without `death`).
pub async fn register<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    identity: &WorkerIdentity,
    worker_key_ttl: u64,
    now: RqTimestamp,
) -> Result<(), StoreError> {
    let key = keys.worker(&identity.name);
    let (exists, dead): (bool, bool) = redis::pipe()
        .exists(&key)
        .hexists(&key, "death")
        .query_async(conn)
        .await?;
    if exists && !dead {
        return Err(StoreError::DuplicateWorker(identity.name.clone()));
    }
    write_birth(conn, keys, identity, worker_key_ttl, now).await
}

/// Writes the worker hash and sets (also used to re-register after the hash expired).
pub async fn write_birth<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    identity: &WorkerIdentity,
    worker_key_ttl: u64,
    now: RqTimestamp,
) -> Result<(), StoreError> {
    let key = keys.worker(&identity.name);
    let ts = now.rq_format();
    let mut pipe = redis::pipe();
    pipe.atomic().del(&key).hset_multiple(
        &key,
        &[
            ("birth", ts.as_str()),
            ("last_heartbeat", ts.as_str()),
            ("queues", &identity.queues.join(",")),
            ("pid", &identity.pid.to_string()),
            ("hostname", &identity.hostname),
            ("ip_address", &identity.ip_address),
            ("version", VERSION_FIELD),
            ("python_version", RUNTIME_FIELD),
            ("state", "idle"),
            ("successful_job_count", "0"),
            ("failed_job_count", "0"),
            ("total_working_time", "0"),
        ],
    );
    pipe.sadd(keys.workers(), &key);
    for q in &identity.queues {
        pipe.sadd(keys.queue_workers(q), &key);
    }
    pipe.expire(&key, worker_key_ttl as i64);
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// True while `rq suspend` is in force.
pub async fn is_suspended<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
) -> Result<bool, StoreError> {
    Ok(redis::cmd("EXISTS")
        .arg(keys.suspended())
        .query_async::<i64>(conn)
        .await?
        == 1)
}

/// Records that a warm shutdown was requested (`shutdown_requested_date`).
pub async fn mark_shutdown_requested<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    name: &str,
    now: RqTimestamp,
) -> Result<(), StoreError> {
    redis::cmd("HSET")
        .arg(keys.worker(name))
        .arg("shutdown_requested_date")
        .arg(now.rq_format())
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

/// Deregisters the worker as `register_death` does: out of the sets, `death` set, the hash
/// kept 60 s for readers.
pub async fn register_death<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    identity: &WorkerIdentity,
    now: RqTimestamp,
) -> Result<(), StoreError> {
    let key = keys.worker(&identity.name);
    let mut pipe = redis::pipe();
    pipe.atomic().srem(keys.workers(), &key);
    for q in &identity.queues {
        pipe.srem(keys.queue_workers(q), &key);
    }
    pipe.hset(&key, "death", now.rq_format())
        .hdel(&key, "current_job")
        .expire(&key, 60)
        .del(keys.worker_executions(&identity.name));
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// Sets the worker's `state` field (`idle`, `busy`, `suspended`).
pub async fn set_state<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    name: &str,
    state: &str,
) -> Result<(), StoreError> {
    redis::cmd("HSET")
        .arg(keys.worker(name))
        .arg("state")
        .arg(state)
        .query_async::<()>(conn)
        .await?;
    Ok(())
}
