//! `QueueWaiters` (one blocking `BLMOVE` per queue) and `put_back` against a real
//! `redis-server`: a push is handed to one waiting worker only, the other pops stay armed until
//! disarmed, ids they moved before they were ended are returned too, and an id put back is at
//! the head of its queue exactly once.

mod support;

use std::time::Duration;

use redis::AsyncCommands;
use rqw::keys::Keys;
use rqw::store::connection::Endpoint;
use rqw::store::queue_wait::{put_back, PutBack};
use rqw::worker::waiters::{Claim, QueueWaiters};
use support::RedisServer;
use tokio_util::sync::CancellationToken;

fn waiters(redis: &RedisServer, queues: &[&str]) -> QueueWaiters {
    let endpoint = Endpoint::fixed(&redis.url(), None).unwrap();
    QueueWaiters::new(
        endpoint,
        Keys::default(),
        queues.iter().map(|q| q.to_string()).collect(),
    )
}

async fn blocked_clients(conn: &mut rqw::store::connection::CommandConnection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Polls until `n` clients are blocked (the pops are armed).
async fn until_blocked(conn: &mut rqw::store::connection::CommandConnection, n: i64) {
    for _ in 0..500 {
        if blocked_clients(conn).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} pops never blocked");
}

fn claim(queue: &str, id: &str) -> Claim {
    Claim {
        queue: queue.into(),
        id: id.into(),
    }
}

#[tokio::test]
async fn a_push_is_handed_to_one_of_two_waiting_workers_only() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let stop = CancellationToken::new();
    let mut first = waiters(&redis, &["high", "low"]);
    let mut second = waiters(&redis, &["high", "low"]);
    let wait_1 = first.wait(Duration::from_secs(3), &stop);
    let wait_2 = second.wait(Duration::from_secs(3), &stop);
    let push = async {
        until_blocked(&mut conn.clone(), 4).await;
        let _: () = conn.clone().rpush("rq:queue:low", "job-1").await.unwrap();
    };
    let (w1, w2, ()) = tokio::join!(wait_1, wait_2, push);
    assert!(w1.error.is_none() && w2.error.is_none());
    let mut claims = w1.claims;
    claims.extend(w2.claims);
    assert_eq!(
        claims,
        [claim("low", "job-1")],
        "one worker got the id, the other nothing"
    );
    let parked: Vec<String> = conn
        .lrange("rq:queue:low:intermediate", 0, -1)
        .await
        .unwrap();
    assert_eq!(parked, ["job-1"]);
    // The pops that did not answer stay armed until they are disarmed.
    assert_eq!(blocked_clients(&mut conn).await, 3);
    assert!(first.armed() && second.armed());
    let mut c = conn.clone();
    let (d1, d2) = (
        first.disarm(&mut c).await,
        second.disarm(&mut conn.clone()).await,
    );
    assert!(d1.claims.is_empty() && d2.claims.is_empty());
    assert_eq!(
        blocked_clients(&mut conn).await,
        0,
        "no pop outlives its disarm"
    );
    assert!(!first.armed() && !second.armed());
}

#[tokio::test]
async fn ids_the_other_pops_moved_before_they_were_ended_are_returned_too() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let stop = CancellationToken::new();
    let mut waiting = waiters(&redis, &["a", "b", "c"]);
    let wait = waiting.wait(Duration::from_secs(10), &stop);
    let push = async {
        until_blocked(&mut conn.clone(), 3).await;
        // Both pushes in one transaction: both pops are served before any UNBLOCK can come.
        let _: () = redis::pipe()
            .atomic()
            .rpush("rq:queue:b", "job-b")
            .ignore()
            .rpush("rq:queue:c", "job-c")
            .ignore()
            .query_async(&mut conn.clone())
            .await
            .unwrap();
    };
    let (waited, ()) = tokio::join!(wait, push);
    assert!(waited.error.is_none());
    let mut claims = waited.claims;
    // The second answer, if the wait returned before it, comes with the disarm.
    let ended = waiting.disarm(&mut conn.clone()).await;
    assert!(ended.error.is_none());
    claims.extend(ended.claims);
    claims.sort_by(|x, y| x.queue.cmp(&y.queue));
    assert_eq!(claims, [claim("b", "job-b"), claim("c", "job-c")]);
    assert_eq!(
        blocked_clients(&mut conn).await,
        0,
        "the pop on `a` was ended"
    );
    let a_len: i64 = conn.llen("rq:queue:a:intermediate").await.unwrap();
    assert_eq!(a_len, 0);
}

#[tokio::test]
async fn a_stopped_wait_claims_nothing_and_the_next_wait_reuses_the_armed_pops() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let stop = CancellationToken::new();
    let mut waiting = waiters(&redis, &["a", "b"]);
    let wait = waiting.wait(Duration::from_secs(20), &stop);
    let stopper = async {
        until_blocked(&mut conn.clone(), 2).await;
        stop.cancel();
    };
    let (waited, ()) = tokio::join!(wait, stopper);
    assert!(waited.error.is_none() && waited.claims.is_empty());
    // Still armed: the next wait arms nothing more, and a push reaches it.
    let stop = CancellationToken::new();
    let wait = waiting.wait(Duration::from_secs(10), &stop);
    let push = async {
        assert_eq!(blocked_clients(&mut conn.clone()).await, 2);
        let _: () = conn.clone().rpush("rq:queue:a", "job-a").await.unwrap();
    };
    let (waited, ()) = tokio::join!(wait, push);
    assert_eq!(waited.claims, [claim("a", "job-a")]);
    let ended = waiting.disarm(&mut conn.clone()).await;
    assert!(ended.claims.is_empty() && ended.error.is_none());
    assert_eq!(blocked_clients(&mut conn).await, 0);
}

#[tokio::test]
async fn a_queue_key_of_the_wrong_type_is_not_waited_on_and_the_others_are() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let _: () = conn.set("rq:queue:a", "not a list").await.unwrap();
    let stop = CancellationToken::new();
    let mut waiting = waiters(&redis, &["a", "b"]);
    let wait = waiting.wait(Duration::from_secs(10), &stop);
    let push = async {
        until_blocked(&mut conn.clone(), 1).await;
        let _: () = conn.clone().rpush("rq:queue:b", "job-b").await.unwrap();
    };
    let (waited, ()) = tokio::join!(wait, push);
    assert!(waited.error.is_none());
    assert_eq!(waited.claims, [claim("b", "job-b")]);
    waiting.disarm(&mut conn.clone()).await;
}

#[tokio::test]
async fn an_id_put_back_is_at_the_head_of_its_queue_once() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let keys = Keys::default();
    let _: () = conn.rpush("rq:queue:q", "next").await.unwrap();
    let _: () = conn
        .rpush("rq:queue:q:intermediate", "claimed")
        .await
        .unwrap();
    assert_eq!(
        put_back(&mut conn, &keys, "q", "claimed").await.unwrap(),
        PutBack::Queued
    );
    let queue: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queue, ["claimed", "next"]);
    let parked: i64 = conn.llen("rq:queue:q:intermediate").await.unwrap();
    assert_eq!(parked, 0);
    // Again (a repeated call, or maintenance recovered it): nothing changes.
    assert_eq!(
        put_back(&mut conn, &keys, "q", "claimed").await.unwrap(),
        PutBack::Gone
    );
    let queue: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queue, ["claimed", "next"]);
    // A queue key a producer replaced: the id stays where maintenance finds it.
    let _: () = conn.set("rq:queue:r", "not a list").await.unwrap();
    let _: () = conn
        .rpush("rq:queue:r:intermediate", "other")
        .await
        .unwrap();
    assert_eq!(
        put_back(&mut conn, &keys, "r", "other").await.unwrap(),
        PutBack::QueueUnusable
    );
    let parked: Vec<String> = conn.lrange("rq:queue:r:intermediate", 0, -1).await.unwrap();
    assert_eq!(parked, ["other"]);
}
