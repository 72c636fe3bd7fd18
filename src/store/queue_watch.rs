//! Being told when a job lands on one of several queues, without taking it.
//!
//! Redis has no blocking pop over several lists that leaves the id in Redis (RQ's `BLPOP`
//! keeps it only in the worker's memory), so a worker on several queues polls its atomic
//! start script. A [`QueueWatch`] makes that poll prompt: a RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX rq:queue:<name> ...` (Redis 6+), on which the server pushes
//! an `invalidate` message whenever a key under those prefixes changes (an enqueue is an
//! `RPUSH`/`LPUSH` on `rq:queue:<name>`). Each push for a watched queue key wakes the waiter;
//! nothing is popped, so no job can be lost with the connection.
//!
//! Tracking needs no server configuration, unlike keyspace notifications. When it cannot be
//! enabled (Redis older than 6, an ACL without `HELLO` or `CLIENT`), [`QueueWatch::open`] fails
//! and the caller keeps polling on its own timer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::connection::CONNECT_TIMEOUT;
use super::endpoint::Endpoint;
use crate::error::StoreError;
use crate::keys::Keys;

/// How long [`QueueWatch::answers`] waits for its `PING` (a false alarm only reopens the
/// watch).
pub const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A tracking connection watching queue keys. Dropping it closes the connection.
pub struct QueueWatch {
    /// Held for the tracking to last: it ends with the connection.
    conn: MultiplexedConnection,
    signal: Arc<WatchSignal>,
    /// [`Endpoint::generation`] when it was opened.
    generation: u64,
}

/// What the push handler shares with the waiter.
struct WatchSignal {
    wake: Notify,
    lost: AtomicBool,
    watched: HashSet<Vec<u8>>,
}

impl QueueWatch {
    /// Opens a RESP3 connection to the endpoint's master and turns on broadcast tracking of
    /// the keys of `queues`.
    pub async fn open(
        endpoint: &Endpoint,
        keys: &Keys,
        queues: &[String],
    ) -> Result<Self, StoreError> {
        let generation = endpoint.generation();
        let client = endpoint.master().await?;
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let resp3 = Client::open(info.set_redis_settings(settings))?;
        let signal = Arc::new(WatchSignal {
            wake: Notify::new(),
            lost: AtomicBool::new(false),
            watched: queues.iter().map(|q| keys.queue(q).into_bytes()).collect(),
        });
        let handler = signal.clone();
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(endpoint.command_timeout()))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_push_sender(move |push: PushInfo| -> Result<(), redis::aio::SendError> {
                handler.on_push(push);
                Ok(())
            });
        let mut conn = resp3
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut tracking = redis::cmd("CLIENT");
        tracking.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in tracking_prefixes(keys, queues) {
            tracking.arg("PREFIX").arg(prefix);
        }
        let () = tracking.query_async(&mut conn).await?;
        Ok(Self {
            conn,
            signal,
            generation,
        })
    }

    /// True once the connection is gone (the caller opens a new watch).
    pub fn is_lost(&self) -> bool {
        self.signal.lost.load(Ordering::SeqCst)
    }

    /// [`Endpoint::generation`] when it was opened: an older one may watch a demoted master.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the tracking connection still answers a `PING` within [`PING_TIMEOUT`]. For
    /// when a job was found that no push announced: a half-open connection sends no
    /// disconnection push.
    pub async fn answers(&self) -> bool {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
    }

    /// Resolves at the next change of a watched queue, or at once if one happened since the
    /// last call (one change is remembered), or when the connection is lost.
    pub async fn changed(&self) {
        if self.is_lost() {
            return;
        }
        self.signal.wake.notified().await;
    }
}

impl WatchSignal {
    fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate if self.concerns_watched_queue(&push.data) => {
                self.wake.notify_one();
            }
            PushKind::Disconnection => {
                self.lost.store(true, Ordering::SeqCst);
                self.wake.notify_one();
            }
            _ => {}
        }
    }

    /// An `invalidate` push carries the changed keys, or nil when the whole database was
    /// flushed.
    fn concerns_watched_queue(&self, data: &[Value]) -> bool {
        match data.first() {
            Some(Value::Array(keys)) => keys.iter().any(|k| match k {
                Value::BulkString(key) => self.watched.contains(key),
                _ => false,
            }),
            _ => true,
        }
    }
}

/// Whether any of `queues` holds a job: one `EXISTS` over their keys (an empty list does not
/// exist). The cheap safety poll of a watched idle worker: one command, where a pop touches
/// every queue.
pub async fn any_queued<C: ConnectionLike>(
    conn: &mut C,
    keys: &Keys,
    queues: &[String],
) -> Result<bool, StoreError> {
    let mut cmd = redis::cmd("EXISTS");
    for queue in queues {
        cmd.arg(keys.queue(queue));
    }
    let existing: u64 = cmd.query_async(conn).await?;
    Ok(existing > 0)
}

/// The `PREFIX` arguments for `queues`: their queue keys, without any that another one
/// already covers (Redis refuses overlapping prefixes).
fn tracking_prefixes(keys: &Keys, queues: &[String]) -> Vec<String> {
    let mut all: Vec<String> = queues.iter().map(|q| keys.queue(q)).collect();
    all.sort();
    all.dedup();
    let mut kept: Vec<String> = Vec::with_capacity(all.len());
    for key in all {
        // Sorted order puts a prefix right before the keys it covers.
        if !kept.last().is_some_and(|p| key.starts_with(p.as_str())) {
            kept.push(key);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_prefixes_are_merged() {
        let keys = Keys::default();
        let queues: Vec<String> = ["low", "high", "hi", "default", "high", "defaults"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            tracking_prefixes(&keys, &queues),
            ["rq:queue:default", "rq:queue:hi", "rq:queue:low"]
        );
    }

    #[test]
    fn only_watched_queue_keys_wake() {
        let signal = WatchSignal {
            wake: Notify::new(),
            lost: AtomicBool::new(false),
            watched: [b"rq:queue:high".to_vec()].into_iter().collect(),
        };
        let keys = |k: &[&str]| {
            vec![Value::Array(
                k.iter()
                    .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                    .collect(),
            )]
        };
        assert!(signal.concerns_watched_queue(&keys(&["rq:queue:low", "rq:queue:high"])));
        assert!(!signal.concerns_watched_queue(&keys(&["rq:queue:high:intermediate"])));
        assert!(!signal.concerns_watched_queue(&keys(&["rq:queue:highest"])));
        // A flush (nil) may have touched anything.
        assert!(signal.concerns_watched_queue(&[Value::Nil]));
    }
}
