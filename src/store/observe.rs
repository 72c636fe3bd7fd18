//! The reads behind the metrics endpoint: the worker's heartbeat fields (for `/healthz`) and
//! the depth of its queues (for a `/metrics` scrape). Each is one pipelined round trip.

use redis::aio::ConnectionLike;

use crate::error::StoreError;
use crate::keys::Keys;

/// What `/healthz` judges: the worker hash's `last_heartbeat` and whether it has `death`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRead {
    /// `last_heartbeat` of `rq:worker:<name>` (absent: no such worker, or never beat).
    pub last_heartbeat: Option<String>,
    /// The hash has a `death` field (the worker ended).
    pub dead: bool,
}

/// Reads the heartbeat fields of worker `name`.
pub async fn worker_heartbeat<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    name: &str,
) -> Result<HeartbeatRead, StoreError> {
    let key = keys.worker(name);
    let mut pipe = redis::pipe();
    pipe.hget(&key, "last_heartbeat").hexists(&key, "death");
    let (last_heartbeat, dead) = pipe.query_async::<(Option<String>, bool)>(conn).await?;
    Ok(HeartbeatRead {
        last_heartbeat,
        dead,
    })
}

/// The length of `rq:queue:<q>` for every queue, in order.
pub async fn queue_depths<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<Vec<i64>, StoreError> {
    let mut pipe = redis::pipe();
    for q in queues {
        pipe.llen(keys.queue(q));
    }
    Ok(pipe.query_async::<Vec<i64>>(conn).await?)
}
