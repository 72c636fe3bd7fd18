//! start.lua's batch against a real `redis-server` (issue 15): one pop with a count per
//! queue (the first one an `LMPOP` over all the queues, which is all an idle worker's call
//! runs) and one StartedJobRegistry `ZADD` per origin for the whole call, with the queue's
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
/// What a blocking `BLMOVE` does: the head of `queue` moved into its intermediate list.
async fn park(conn: &mut CommandConnection, queue: &str) {
    let _: () = redis::cmd("LMOVE")
        .arg(format!("rq:queue:{queue}"))
        .arg(format!("rq:queue:{queue}:intermediate"))
        .arg("LEFT")
        .arg("RIGHT")
        .query_async(conn)
        .await
        .unwrap();
}

/// Six queues `a` to `f`, in priority order.
fn six_queues() -> Vec<String> {
    ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|q| q.to_string())
        .collect()
}

/// (queue, id, execution id) of each started job, in order.
fn started_ids(started: &[rqw::store::scripts::StartedJob]) -> Vec<(&str, &str, &str)> {
    started
        .iter()
        .map(|j| (j.queue.as_str(), j.id.as_str(), j.execution_id.as_str()))
        .collect()
}

fn request(queues: &[String], whole_hash: bool) -> StartRequest<'_> {
    StartRequest {
        whole_hash,
        ..support::start_request("w", queues)
    }
}

/// Every command run since the last `CONFIG RESETSTAT` (those inside scripts included) with
/// its calls, from `INFO commandstats`, but `EVALSHA`, `INFO` and subcommands (`CONFIG
/// RESETSTAT`, `SCRIPT LOAD`), sorted by name.
async fn commandstats(conn: &mut CommandConnection) -> Vec<(String, u64)> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let mut stats: Vec<(String, u64)> = info
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(":calls=")?;
            Some((name.to_string(), rest.split(',').next()?.parse().ok()?))
        })
        .filter(|(name, _)| !name.contains('|') && !["evalsha", "info"].contains(&name.as_str()))
        .collect();
    stats.sort();
    stats
}

/// Calls of `command` since the last `CONFIG RESETSTAT` (those run inside scripts included).
async fn calls(conn: &mut CommandConnection, command: &str) -> u64 {
    commandstats(conn)
        .await
        .into_iter()
        .find_map(|(name, n)| (name == command).then_some(n))
        .unwrap_or(0)
}

/// Zeroes the command statistics (`CONFIG RESETSTAT`).
async fn reset_stats(conn: &mut CommandConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await
        .unwrap();
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
    reset_stats(&mut conn).await;

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

    // One pop per queue: the LMPOP over both took high's ids (a short reply: high is empty,
    // no empty pop after it), one LPOP gave all that was asked of low; one registry ZADD per
    // origin plus one executions ZADD per job.
    assert_eq!(calls(&mut conn, "lmpop").await, 1);
    assert_eq!(calls(&mut conn, "lpop").await, 1);
    assert_eq!(calls(&mut conn, "zadd").await, 2 + 5);
}

#[tokio::test]
async fn an_idle_call_on_six_queues_runs_one_lmpop_and_a_later_queue_is_taken_in_order() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let queues = six_queues();
    let xs: Vec<String> = (1..=3).map(|i| format!("x{i}")).collect();
    reset_stats(&mut conn).await;

    // Six empty queues: nothing started, nothing written, one command (no TIME, no LPOPs).
    let started = start_batch(&mut conn, &request(&queues, false), &xs)
        .await
        .unwrap();
    assert!(started.is_empty());
    assert_eq!(commandstats(&mut conn).await, [("lmpop".to_string(), 1)]);
    assert!(conn.keys::<_, Vec<String>>("*").await.unwrap().is_empty());

    // Jobs on the third and fifth queues only: the third's first (its one id, a short reply),
    // then the fifth's, in its order; the empty queues before the third are not popped.
    enqueue(&mut conn, "c", "c1", Some("")).await;
    enqueue(&mut conn, "e", "e1", Some("")).await;
    enqueue(&mut conn, "e", "e2", Some("")).await;
    enqueue(&mut conn, "e", "e3", Some("")).await;
    reset_stats(&mut conn).await;
    let started = start_batch(&mut conn, &request(&queues, false), &xs)
        .await
        .unwrap();
    let got = started_ids(&started);
    assert_eq!(
        got,
        [("c", "c1", "x1"), ("e", "e1", "x2"), ("e", "e2", "x3")]
    );
    assert_eq!(calls(&mut conn, "lmpop").await, 1);
    // d (empty) and e: one LPOP each after c's short reply.
    assert_eq!(calls(&mut conn, "lpop").await, 2);
    let left: Vec<String> = conn.lrange("rq:queue:e", 0, -1).await.unwrap();
    assert_eq!(left, ["e3"]);
}

/// A call that starts an id a blocking pop claimed, with slots to spare, pops for the others
/// the same way: on six empty queues one `LMPOP` and no `LPOP` (the claimed job starts all the
/// same); with jobs on a later queue, those after the claimed one, in order.
#[tokio::test]
async fn a_claimed_start_with_slots_to_spare_pops_the_others_with_one_lmpop() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let queues = six_queues();
    let xs: Vec<String> = (1..=3).map(|i| format!("x{i}")).collect();
    // What a BLMOVE leaves: the id in b's intermediate list, its queue empty.
    enqueue(&mut conn, "b", "b1", Some("")).await;
    park(&mut conn, "b").await;
    reset_stats(&mut conn).await;
    let claimed = StartRequest {
        claimed: Some(("b", "b1")),
        ..request(&queues, false)
    };
    let started = start_batch(&mut conn, &claimed, &xs).await.unwrap();
    assert_eq!(started_ids(&started), [("b", "b1", "x1")]);
    assert_eq!(calls(&mut conn, "lmpop").await, 1);
    assert_eq!(calls(&mut conn, "lpop").await, 0);
    let parked: i64 = conn.llen("rq:queue:b:intermediate").await.unwrap();
    assert_eq!(parked, 0);

    // Now with jobs on e: the claimed one first, then e's in their order, as many as slots.
    enqueue(&mut conn, "d", "d1", Some("")).await;
    park(&mut conn, "d").await;
    for id in ["e1", "e2", "e3"] {
        enqueue(&mut conn, "e", id, Some("")).await;
    }
    reset_stats(&mut conn).await;
    let claimed = StartRequest {
        claimed: Some(("d", "d1")),
        ..request(&queues, false)
    };
    let xs: Vec<String> = (4..=6).map(|i| format!("x{i}")).collect();
    let started = start_batch(&mut conn, &claimed, &xs).await.unwrap();
    let got = started_ids(&started);
    assert_eq!(
        got,
        [("d", "d1", "x4"), ("e", "e1", "x5"), ("e", "e2", "x6")]
    );
    assert_eq!(calls(&mut conn, "lmpop").await, 1);
    assert_eq!(calls(&mut conn, "lpop").await, 0);
    let left: Vec<String> = conn.lrange("rq:queue:e", 0, -1).await.unwrap();
    assert_eq!(left, ["e3"]);

    // A claimed id no longer in the intermediate list (recovered as stuck while the worker
    // stalled) is not started; the call still takes what the queues hold.
    let claimed = StartRequest {
        claimed: Some(("d", "d1")),
        ..request(&queues, false)
    };
    let xs: Vec<String> = (7..=8).map(|i| format!("x{i}")).collect();
    let started = start_batch(&mut conn, &claimed, &xs).await.unwrap();
    assert_eq!(started_ids(&started), [("e", "e3", "x7")]);
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

#[tokio::test]
async fn a_queue_key_of_the_wrong_type_before_the_first_jobs_falls_back_to_one_pop_per_queue() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    // The LMPOP over all the queues fails on `broken` (it comes before the first non-empty
    // list): the loop pops each queue itself, refuses `broken` and starts `good`'s jobs.
    let _: () = conn.set("rq:queue:broken", "not a list").await.unwrap();
    enqueue(&mut conn, "good", "g1", Some("")).await;
    enqueue(&mut conn, "good", "g2", Some("")).await;
    let queues = ["broken".to_string(), "good".to_string()];
    let xs: Vec<String> = (1..=2).map(|i| format!("x{i}")).collect();
    let started = start_batch(&mut conn, &request(&queues, false), &xs)
        .await
        .unwrap();
    let got: Vec<&str> = started.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(got, ["g1", "g2"]);
    let broken: String = conn.get("rq:queue:broken").await.unwrap();
    assert_eq!(broken, "not a list");
}
