//! The blocking wait for a job on a single queue: `BLMOVE <queue> <queue>:intermediate LEFT
//! RIGHT`, exactly as RQ's worker does with one queue. The id lands in the intermediate list
//! (never only in our memory) and `start.lua` then starts it as a claimed job.
//!
//! The pop is bounded ([`super::connection::MAX_BLOCK`]) and never raced inside `select!`:
//! dropping a pending BLMOVE would not cancel it on the server. Shutdown ends a pending pop
//! with `CLIENT UNBLOCK` from another connection, which makes it return nil.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::connection::{BlockingConnection, MAX_BLOCK};
use crate::error::StoreError;
use crate::keys::Keys;

/// Blocks up to `timeout` (at most [`MAX_BLOCK`]) for a job on `queue`. Returns the id moved
/// into the intermediate list, or `None` on timeout or unblock.
pub async fn wait_for_job(
    blocking: &mut BlockingConnection,
    keys: &Keys,
    queue: &str,
    timeout: Duration,
) -> Result<Option<String>, StoreError> {
    let seconds = timeout.min(MAX_BLOCK).as_secs_f64().max(0.01);
    let id: Option<String> = redis::cmd("BLMOVE")
        .arg(keys.queue(queue))
        .arg(keys.intermediate(queue))
        .arg("LEFT")
        .arg("RIGHT")
        .arg(format!("{seconds:.3}"))
        .query_async(&mut blocking.conn)
        .await?;
    Ok(id)
}

/// Ends a pending blocking pop of the connection `client_id` (it returns nil, as on timeout).
pub async fn unblock<C: ConnectionLike>(conn: &mut C, client_id: i64) -> Result<(), StoreError> {
    let _: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(client_id)
        .query_async(conn)
        .await?;
    Ok(())
}
