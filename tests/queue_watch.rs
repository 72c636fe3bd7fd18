//! `QueueWatch` (client tracking) against a real `redis-server`: an enqueue on a watched queue
//! wakes the waiter, and a closed connection is reported instead of hanging.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use rqw::keys::Keys;
use rqw::store::queue_watch::QueueWatch;
use support::RedisServer;

/// Far longer than a push takes; only a missing wake-up reaches it.
const NEVER: Duration = Duration::from_secs(10);

/// A fresh redis-server and a watch on its queues `high` and `low`.
async fn watching() -> (RedisServer, QueueWatch) {
    let redis = RedisServer::start();
    let endpoint = rqw::store::connection::Endpoint::fixed(&redis.url(), None).unwrap();
    let queues = vec!["high".to_string(), "low".to_string()];
    let watch = QueueWatch::open(&endpoint, &Keys::default(), &queues)
        .await
        .unwrap();
    (redis, watch)
}

#[tokio::test]
async fn an_enqueue_on_a_watched_queue_wakes_the_waiter() {
    let (redis, watch) = watching().await;
    let mut conn = redis.manager().await;
    let _: () = conn.rpush("rq:queue:low", "job-1").await.unwrap();
    tokio::time::timeout(NEVER, watch.changed())
        .await
        .expect("the RPUSH on rq:queue:low wakes the watch");
    assert!(!watch.is_lost());
}

#[tokio::test]
async fn a_killed_connection_is_reported_as_lost() {
    let (redis, watch) = watching().await;
    let mut conn = redis.manager().await;
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::timeout(NEVER, watch.changed())
        .await
        .expect("a lost connection ends the wait");
    assert!(watch.is_lost());
}
