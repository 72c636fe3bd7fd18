//! start.lua's batch against a real `redis-server` (issue 15): one `LPOP` with a count per
//! queue and one StartedJobRegistry `ZADD` per origin for the whole call, with the queue's
//! order kept, an id of a deleted job dropped as a lone pop dropped it, and each job's
//! registry member in its own form (plain id for rq 1.x, "<id>:<execution id>" otherwise).

mod support;

use redis::AsyncCommands;
use rqw::protocol::timestamp::RqTimestamp;
use rqw::store::connection::CommandConnection;
use rqw::store::scripts::{start_batch, StartRequest};
use support::RedisServer;

async fn enqueue(conn: &mut CommandConnection, queue: &str, id: &str, group_id: Option<&str>) {
    let key = format!("rq:job:{id}");
    let _: () = conn
        .hset_multiple(
            &key,
            &[("data", "x"), ("origin", queue), ("status", "queued")],
        )
        .await
        .unwrap();
    if let Some(group) = group_id {
        let _: () = conn.hset(&key, "group_id", group).await.unwrap();
    }
    let _: () = conn.rpush(format!("rq:queue:{queue}"), id).await.unwrap();
}

/// Calls of `command` since the last `CONFIG RESETSTAT` (those run inside scripts included).
async fn calls(conn: &mut CommandConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn a_batch_pops_each_queue_once_and_registers_each_origin_once() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "high", "h1", Some("")).await;
    enqueue(&mut conn, "high", "old", None).await;
    // An id whose job was deleted after it was enqueued: dropped, as one popped alone.
    let _: () = conn.rpush("rq:queue:high", "gone").await.unwrap();
    enqueue(&mut conn, "high", "h2", Some("")).await;
    enqueue(&mut conn, "low", "l1", Some("")).await;
    enqueue(&mut conn, "low", "l2", Some("")).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();

    let queues = ["high".to_string(), "low".to_string()];
    let xs: Vec<String> = (1..=5).map(|i| format!("x{i}")).collect();
    let started = start_batch(
        &mut conn,
        &StartRequest {
            prefix: "rq:",
            worker_name: "w",
            execution_id: "",
            now: RqTimestamp::now(),
            monitoring_interval: 30,
            default_timeout: 180,
            worker_key_ttl: 480,
            claimed: None,
            queues: &queues,
            max_field_bytes: rqw::protocol::payload::DEFAULT_MAX_FIELD_BYTES,
        },
        &xs,
    )
    .await
    .unwrap();

    // Priority order of the queues, and each queue's own order; execution ids in that order.
    let got: Vec<(&str, &str)> = started
        .iter()
        .map(|j| (j.id.as_str(), j.execution_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("h1", "x1"),
            ("old", "x2"),
            ("h2", "x3"),
            ("l1", "x4"),
            ("l2", "x5")
        ]
    );
    let high: Vec<String> = conn.zrange("rq:wip:high", 0, -1).await.unwrap();
    let mut high = high;
    high.sort();
    assert_eq!(high, ["h1:x1", "h2:x3", "old"]);
    let low: Vec<String> = conn.zrange("rq:wip:low", 0, -1).await.unwrap();
    assert_eq!(low.len(), 2);
    for (id, x) in [
        ("h1", "x1"),
        ("old", "x2"),
        ("h2", "x3"),
        ("l1", "x4"),
        ("l2", "x5"),
    ] {
        let status: String = conn.hget(format!("rq:job:{id}"), "status").await.unwrap();
        assert_eq!(status, "started", "{id}");
        let held: Vec<String> = conn
            .zrange(format!("rq:executions:{id}"), 0, -1)
            .await
            .unwrap();
        assert_eq!(held, [x], "{id}");
    }
    let left: Vec<String> = conn.lrange("rq:queue:high", 0, -1).await.unwrap();
    assert!(left.is_empty());
    assert!(!conn.exists::<_, bool>("rq:job:gone").await.unwrap());

    // One LPOP per queue (the first queue's reply was short: it is empty, no empty pop after
    // it; the second gave all that was asked), one registry ZADD per origin plus one
    // executions ZADD per job.
    assert_eq!(calls(&mut conn, "lpop").await, 2);
    assert_eq!(calls(&mut conn, "zadd").await, 2 + 5);
}
