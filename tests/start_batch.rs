//! start.lua's batch against a real `redis-server` (issue 15): one `LPOP` with a count per
//! queue and one StartedJobRegistry `ZADD` per origin for the whole call, with the queue's
//! order kept, an id of a deleted job dropped as a lone pop dropped it, and each job's
//! registry member in its own form (plain id for rq 1.x, "<id>:<execution id>" otherwise).

mod support;

use redis::AsyncCommands;
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

/// A start of worker `w` on `queues` (execution ids given to `start_batch`).
fn request(queues: &[String], whole_hash: bool) -> StartRequest<'_> {
    StartRequest {
        whole_hash,
        ..support::start_request("w", queues)
    }
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
    let started = start_batch(&mut conn, &request(&queues, false), &xs)
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

/// The start of one job `id` (already enqueued on `default`), the hash returned as asked.
async fn start_one(
    conn: &mut CommandConnection,
    whole_hash: bool,
) -> std::collections::HashMap<String, Vec<u8>> {
    let queues = ["default".to_string()];
    let started = start_batch(conn, &request(&queues, whole_hash), &["x1".to_string()])
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
    started.into_iter().next().unwrap().fields
}

/// Without Python horses only the fields the worker reads come back (issue 15: the reply is a
/// large part of the call's cost), never `description`, `created_at`, `enqueued_at` or an
/// empty callback name; with them, every field as the hash held it before the start.
#[tokio::test]
async fn the_reply_holds_the_fields_the_worker_reads_or_the_whole_hash_for_horses() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    // The fields rq 2.12 writes for `enqueue(f)`, plus a callback and a retry.
    let hash: &[(&str, &str)] = &[
        ("status", "queued"),
        ("created_at", "2026-12-01T10:00:00.000000Z"),
        ("data", "payload"),
        ("success_callback_name", "app.on_ok"),
        ("failure_callback_name", ""),
        ("stopped_callback_name", ""),
        ("started_at", ""),
        ("ended_at", ""),
        ("last_heartbeat", ""),
        ("worker_name", ""),
        ("group_id", ""),
        ("origin", "default"),
        ("description", "app.f()"),
        ("enqueued_at", "2026-12-01T10:00:00.000001Z"),
        ("timeout", "180"),
        ("retries_left", "2"),
    ];
    for whole in [false, true] {
        let _: () = conn.hset_multiple("rq:job:j", hash).await.unwrap();
        let _: () = conn.rpush("rq:queue:default", "j").await.unwrap();
        let fields = start_one(&mut conn, whole).await;
        let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
        names.sort_unstable();
        if whole {
            let mut all: Vec<&str> = hash.iter().map(|(k, _)| *k).collect();
            all.sort_unstable();
            assert_eq!(names, all);
            assert_eq!(fields["description"], b"app.f()");
            assert_eq!(fields["status"], b"queued");
        } else {
            assert_eq!(
                names,
                [
                    "data",
                    "group_id",
                    "origin",
                    "retries_left",
                    "status",
                    "success_callback_name",
                    "timeout"
                ]
            );
            assert_eq!(fields["data"], b"payload");
            assert_eq!(fields["success_callback_name"], b"app.on_ok");
        }
        // The hash itself got the whole start either way.
        let status: String = conn.hget("rq:job:j", "status").await.unwrap();
        assert_eq!(status, "started");
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    }
}
