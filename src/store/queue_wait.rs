//! The blocking waits for a job: `BLMOVE <queue> <queue>:intermediate LEFT RIGHT`, exactly as
//! RQ's worker does with one queue. The id lands in the intermediate list (never only in our
//! memory) and `start.lua` then starts it as a claimed job. A worker on several queues blocks
//! on each of them at once, on a connection per queue (`worker::waiters`), and puts back at
//! the head of its queue an id it has no free slot for ([`put_back`]).
//!
//! The pop is bounded (the connection's `max_block`) and never raced inside `select!`:
//! dropping a pending BLMOVE would not cancel it on the server. Shutdown ends a pending pop
//! with `CLIENT UNBLOCK` from another connection, which makes it return nil.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Script;

use super::connection::BlockingConnection;
use crate::error::StoreError;
use crate::keys::Keys;

static PUT_BACK: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("scripts/put_back.lua")));

/// Blocks up to `timeout` (at most the connection's `max_block`) for a job on `queue`.
/// Returns the id moved into the intermediate list, or `None` on timeout or unblock.
pub async fn wait_for_job(
    blocking: &mut BlockingConnection,
    keys: &Keys,
    queue: &str,
    timeout: Duration,
) -> Result<Option<String>, StoreError> {
    let seconds = timeout.min(blocking.max_block).as_secs_f64().max(0.01);
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
    unblock_all(conn, &[client_id]).await
}

/// Ends the pending blocking pops of the connections `client_ids`, in one round trip. A
/// connection that is not blocked (its pop just returned) is left as it is.
pub async fn unblock_all<C: ConnectionLike>(
    conn: &mut C,
    client_ids: &[i64],
) -> Result<(), StoreError> {
    if client_ids.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for id in client_ids {
        pipe.cmd("CLIENT").arg("UNBLOCK").arg(*id).ignore();
    }
    pipe.query_async::<()>(conn).await?;
    Ok(())
}

/// What [`put_back`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutBack {
    /// The id is at the head of its queue again.
    Queued,
    /// The id was no longer in the intermediate list (maintenance recovered it meanwhile):
    /// nothing changed.
    Gone,
    /// The queue key is no list any more (a producer's doing): the id stays in the
    /// intermediate list, where maintenance recovers it as RQ does a stuck one.
    QueueUnusable,
}

/// Puts `id`, which a blocking pop moved into `queue`'s intermediate list, back at the head
/// of `queue` (where it was), for a worker that has no free slot for it.
pub async fn put_back<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    queue: &str,
    id: &str,
) -> Result<PutBack, StoreError> {
    let moved: i64 = PUT_BACK
        .key(keys.intermediate(queue))
        .key(keys.queue(queue))
        .arg(id)
        .invoke_async(conn)
        .await?;
    Ok(match moved {
        1 => PutBack::Queued,
        0 => PutBack::Gone,
        _ => PutBack::QueueUnusable,
    })
}

/// True when `e` says this Redis cannot run a blocking move at all (`BLMOVE` is Redis 6.2+;
/// an ACL may refuse it): waiting must take another way. Not for a connection problem or a
/// queue key of the wrong type.
pub fn is_blocking_move_refused(e: &StoreError) -> bool {
    match e {
        StoreError::Redis(r) => {
            let text = r.to_string().to_ascii_lowercase();
            r.code() == Some("NOPERM") || text.contains("unknown command")
        }
        _ => false,
    }
}

/// True when `e` is a queue key of the wrong type (a producer's doing): that queue cannot be
/// waited on until it is a list again.
pub fn is_wrong_type(e: &StoreError) -> bool {
    matches!(e, StoreError::Redis(r) if r.code() == Some("WRONGTYPE"))
}
