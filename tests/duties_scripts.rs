//! The Lua scripts of the duties (`rqw::store::duties`) against a real `redis-server`: the
//! edges the compat suite (which drives whole workers) does not reach easily.

mod support;

use redis::AsyncCommands;
use rqw::protocol::timestamp::RqTimestamp;
use rqw::store::connection::CommandConnection;
use rqw::store::duties::{
    acquire_or_refresh, clean_workers, lease_acquire, lease_refresh, lease_release, move_scheduled,
    recover, release_locks, LockOutcome, Moved, QueueCall, RecoverRequest, Recovery,
};
use support::RedisServer;

const LOCK: &str = "rq:scheduler-lock:q";

fn call(now: RqTimestamp) -> QueueCall<'static> {
    QueueCall {
        prefix: "rq:",
        queue: "q",
        now,
        default_timeout: 180,
        limit: 1000,
    }
}

async fn job(conn: &mut CommandConnection, id: &str, fields: &[(&str, &str)]) {
    let key = format!("rq:job:{id}");
    let _: () = conn.hset(&key, "data", "x").await.unwrap();
    for (k, v) in fields {
        let _: () = conn.hset(&key, *k, *v).await.unwrap();
    }
}

async fn field(conn: &mut CommandConnection, id: &str, name: &str) -> Option<String> {
    conn.hget(format!("rq:job:{id}"), name).await.unwrap()
}

/// The recovery of `members` as abandoned, as maintenance asks for it.
fn abandoned(now: RqTimestamp, members: &[String]) -> RecoverRequest<'_> {
    RecoverRequest {
        call: call(now),
        recovery: Recovery::Abandoned { members },
        result_worker: "",
        count_worker: "",
        exc_string: "Moved to FailedJobRegistry, due to AbandonedJobError, at x",
    }
}

#[tokio::test]
async fn scheduler_locks_follow_rq_2_12_and_respect_a_2_0_pid() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let keys = vec![LOCK.to_string(), "rq:scheduler-lock:other".to_string()];
    let _: () = conn.set("rq:scheduler-lock:other", "4242").await.unwrap(); // rq 2.0.0's pid
    let fields = [("name", "me".to_string()), ("pid", "1".to_string())];
    let hash = "rq:scheduler:me";

    let got = acquire_or_refresh(&mut conn, "me", 61, hash, &fields, &keys)
        .await
        .unwrap();
    assert_eq!(got, vec![LockOutcome::Acquired, LockOutcome::Taken]);
    let again = acquire_or_refresh(&mut conn, "me", 61, hash, &fields, &keys)
        .await
        .unwrap();
    assert_eq!(again, vec![LockOutcome::Refreshed, LockOutcome::Taken]);
    let value: String = conn.get(LOCK).await.unwrap();
    assert_eq!(value, "me");
    let ttl: i64 = conn.ttl(hash).await.unwrap();
    assert!((55..=61).contains(&ttl));

    assert_eq!(
        release_locks(&mut conn, "me", hash, &keys).await.unwrap(),
        1
    );
    let other: String = conn.get("rq:scheduler-lock:other").await.unwrap();
    assert_eq!(other, "4242", "another scheduler's lock is never released");
    let left: bool = conn.exists(hash).await.unwrap();
    assert!(!left);

    // Holding nothing, no hash is left behind.
    let _: () = conn.set(LOCK, "them").await.unwrap();
    let none = acquire_or_refresh(&mut conn, "me", 61, hash, &fields, &keys[..1])
        .await
        .unwrap();
    assert_eq!(none, vec![LockOutcome::Taken]);
    assert!(!conn.exists::<_, bool>(hash).await.unwrap());
}

#[tokio::test]
async fn due_jobs_move_only_under_our_lock_and_front_as_rq_says() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    let t = now.unix_seconds();
    job(&mut conn, "plain", &[("timeout", "7"), ("ttl", "300")]).await;
    job(&mut conn, "front", &[("enqueue_at_front", "1")]).await;
    job(
        &mut conn,
        "retried",
        &[
            ("enqueue_at_front_on_retry", "1"),
            ("ended_at", "2026-01-01T00:00:00.000000Z"),
        ],
    )
    .await;
    job(
        &mut conn,
        "fresh",
        &[("enqueue_at_front_on_retry", "1"), ("ended_at", "")],
    )
    .await;
    job(&mut conn, "later", &[]).await;
    let _: () = conn.rpush("rq:queue:q", "waiting").await.unwrap();
    let scheduled = [
        ("plain", t - 5),
        ("front", t - 4),
        ("retried", t - 3),
        ("fresh", t - 2),
        ("gone", t - 1),
        ("later", t + 60),
    ];
    for (id, at) in scheduled {
        let _: () = conn.zadd("rq:scheduled:q", id, at).await.unwrap();
    }

    assert_eq!(
        move_scheduled(&mut conn, &call(now), LOCK, "me")
            .await
            .unwrap(),
        None
    );
    let _: () = conn.set(LOCK, "me").await.unwrap();
    let moved = move_scheduled(&mut conn, &call(now), LOCK, "me")
        .await
        .unwrap();
    assert_eq!(
        moved,
        Some(Moved {
            enqueued: 4,
            dropped: 1
        })
    );

    let queue: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queue, ["retried", "front", "waiting", "plain", "fresh"]);
    let left: Vec<String> = conn.zrange("rq:scheduled:q", 0, -1).await.unwrap();
    assert_eq!(left, ["later"]);
    assert_eq!(
        field(&mut conn, "plain", "status").await.as_deref(),
        Some("queued")
    );
    assert_eq!(
        field(&mut conn, "plain", "origin").await.as_deref(),
        Some("q")
    );
    assert_eq!(
        field(&mut conn, "plain", "enqueued_at").await,
        Some(now.rq_format())
    );
    assert_eq!(
        field(&mut conn, "plain", "timeout").await.as_deref(),
        Some("7")
    );
    assert_eq!(
        field(&mut conn, "front", "timeout").await.as_deref(),
        Some("180")
    );
    let ttl: i64 = conn.ttl("rq:job:plain").await.unwrap();
    assert!((290..=300).contains(&ttl));
}

#[tokio::test]
async fn rate_limited_jobs_go_through_the_limiter() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    for id in ["a", "b"] {
        job(
            &mut conn,
            id,
            &[("rate_limit_key", "k"), ("rate_limit_concurrency", "1")],
        )
        .await;
        let _: () = conn
            .zadd("rq:scheduled:q", id, now.unix_seconds() - 1)
            .await
            .unwrap();
    }
    let _: () = conn.set(LOCK, "me").await.unwrap();
    move_scheduled(&mut conn, &call(now), LOCK, "me")
        .await
        .unwrap();
    let queue: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queue.len(), 1, "concurrency 1: one job let through");
    let waiting: Vec<String> = conn.zrange("rq:rl:k:rate_limited", 0, -1).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        field(&mut conn, &waiting[0], "status").await.as_deref(),
        Some("rate_limited")
    );
    assert_eq!(
        field(&mut conn, &queue[0], "status").await.as_deref(),
        Some("queued")
    );
    assert!(conn
        .sismember::<_, _, bool>("rq:rl-keys", "k")
        .await
        .unwrap());
}

#[tokio::test]
async fn abandoned_members_are_rechecked_and_retried_by_interval() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    let t = now.unix_seconds();
    job(
        &mut conn,
        "r",
        &[
            ("status", "started"),
            ("retries_left", "1"),
            ("retry_intervals", "[10, 30]"),
        ],
    )
    .await;
    job(&mut conn, "done", &[("status", "finished")]).await;
    job(&mut conn, "alive", &[("status", "started")]).await;
    for (member, score) in [("r:x1", t - 5), ("done:x2", t - 5), ("alive:x3", t + 60)] {
        let _: () = conn.zadd("rq:wip:q", member, score).await.unwrap();
    }
    let members = [
        "r:x1".to_string(),
        "done:x2".to_string(),
        "alive:x3".to_string(),
    ];
    let req = abandoned(now, &members);
    let done = recover(&mut conn, &req).await.unwrap();
    assert_eq!((done.failed, done.retried, done.removed), (0, 1, 2));
    assert_eq!(
        field(&mut conn, "r", "status").await.as_deref(),
        Some("scheduled")
    );
    assert_eq!(
        field(&mut conn, "r", "retries_left").await.as_deref(),
        Some("0")
    );
    let at: f64 = conn.zscore("rq:scheduled:q", "r").await.unwrap();
    assert_eq!(at as i64, t + 30, "retries_left 1 of [10, 30] picks 30");
    assert_eq!(
        field(&mut conn, "done", "status").await.as_deref(),
        Some("finished")
    );
    let wip: Vec<String> = conn.zrange("rq:wip:q", 0, -1).await.unwrap();
    assert_eq!(wip, ["alive:x3"]);
}

#[tokio::test]
async fn stuck_ids_are_failed_once_and_counted_on_the_cleaning_worker() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    let inter = "rq:queue:q:intermediate";
    job(
        &mut conn,
        "s",
        &[("status", "queued"), ("failure_ttl", "100")],
    )
    .await;
    job(&mut conn, "running", &[("status", "started")]).await;
    let _: () = conn
        .rpush(inter, &["s", "s", "running", "gone"])
        .await
        .unwrap();
    let _: () = conn
        .zadd("rq:wip:q", "running:x", now.unix_seconds() + 60)
        .await
        .unwrap();
    let _: () = conn
        .hset("rq:worker:w", "failed_job_count", "0")
        .await
        .unwrap();
    let _: () = conn
        .set(format!("{inter}:first_seen:s"), now.unix_float() - 61.0)
        .await
        .unwrap();
    let req = RecoverRequest {
        call: call(now),
        recovery: Recovery::Stuck { after_secs: 60 },
        result_worker: "w",
        count_worker: "w",
        exc_string: "Job was stuck in intermediate queue.",
    };
    let done = recover(&mut conn, &req).await.unwrap();
    assert_eq!((done.failed, done.retried, done.removed), (1, 0, 2));
    assert_eq!(
        field(&mut conn, "s", "status").await.as_deref(),
        Some("failed")
    );
    let left: Vec<String> = conn.lrange(inter, 0, -1).await.unwrap();
    assert_eq!(
        left,
        ["s", "running"],
        "one failure per job, running ids untouched"
    );
    let results: usize = conn.xlen("rq:results:s").await.unwrap();
    assert_eq!(results, 1);
    let results_ttl: i64 = conn.ttl("rq:results:s").await.unwrap();
    assert!((90..=100).contains(&results_ttl));
    let count: String = conn.hget("rq:worker:w", "failed_job_count").await.unwrap();
    assert_eq!(count, "1");
}

#[tokio::test]
async fn dead_worker_keys_leave_both_sets() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let _: () = conn.hset("rq:worker:live", "birth", "x").await.unwrap();
    for key in ["rq:worker:live", "rq:worker:dead"] {
        let _: () = conn.sadd("rq:workers", key).await.unwrap();
        let _: () = conn.sadd("rq:workers:q", key).await.unwrap();
    }
    assert_eq!(clean_workers(&mut conn, "rq:", "q").await.unwrap(), 1);
    let all: Vec<String> = conn.smembers("rq:workers").await.unwrap();
    let by_queue: Vec<String> = conn.smembers("rq:workers:q").await.unwrap();
    assert_eq!(all, ["rq:worker:live"]);
    assert_eq!(by_queue, ["rq:worker:live"]);
}

#[tokio::test]
async fn maintenance_leases_are_refreshed_and_released_only_by_their_owner() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let key = "rq:clean_registries:q";
    assert!(lease_acquire(&mut conn, key, "me", 5).await.unwrap());
    assert!(!lease_acquire(&mut conn, key, "other", 5).await.unwrap());
    let ttl: i64 = conn.ttl(key).await.unwrap();
    assert!((1..=5).contains(&ttl));
    let _: () = conn.expire(key, 2).await.unwrap();
    assert!(lease_refresh(&mut conn, key, "me", 5).await.unwrap());
    assert!(conn.ttl::<_, i64>(key).await.unwrap() > 2);
    assert!(!lease_refresh(&mut conn, key, "other", 60).await.unwrap());
    assert!(!lease_release(&mut conn, key, "other").await.unwrap());
    assert!(conn.exists::<_, bool>(key).await.unwrap());
    assert!(lease_release(&mut conn, key, "me").await.unwrap());
    assert!(
        !lease_release(&mut conn, key, "me").await.unwrap(),
        "repeat is a no-op"
    );
    // A Python worker's lock (`SET 1 NX EX 899`) is neither refreshed nor released by rqw.
    let _: () = conn.set_ex(key, 1, 899).await.unwrap();
    assert!(!lease_acquire(&mut conn, key, "me", 5).await.unwrap());
    assert!(!lease_refresh(&mut conn, key, "me", 5).await.unwrap());
    assert!(!lease_release(&mut conn, key, "me").await.unwrap());
    assert!(conn.ttl::<_, i64>(key).await.unwrap() > 800);
}

/// Keys of the wrong type (issue 13): the scheduler script never stops halfway. An id whose
/// job key is not a hash is no job: it leaves the registry (dropped); the other due jobs move;
/// a due job whose queue key is not a list stays scheduled, untouched.
#[tokio::test]
async fn the_scheduler_moves_around_keys_of_the_wrong_type() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    let t = now.unix_seconds();
    let _: () = conn.set(LOCK, "me").await.unwrap();
    let _: () = conn.set("rq:job:not-a-hash", "x").await.unwrap();
    job(&mut conn, "before", &[("status", "scheduled")]).await;
    job(&mut conn, "after", &[("status", "scheduled")]).await;
    for (id, at) in [("before", t - 3), ("not-a-hash", t - 2), ("after", t - 1)] {
        let _: () = conn.zadd("rq:scheduled:q", id, at).await.unwrap();
    }
    let moved = move_scheduled(&mut conn, &call(now), LOCK, "me")
        .await
        .unwrap();
    assert_eq!(
        moved,
        Some(Moved {
            enqueued: 2,
            dropped: 1
        })
    );
    let queue: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queue, ["before", "after"]);
    assert_eq!(conn.zcard::<_, u64>("rq:scheduled:q").await.unwrap(), 0);

    // The queue key itself is not a list: nothing moves, nothing is half-written.
    let lock = "rq:scheduler-lock:q2";
    let _: () = conn.set(lock, "me").await.unwrap();
    let _: () = conn.set("rq:queue:q2", "x").await.unwrap();
    job(&mut conn, "stuck", &[("status", "scheduled")]).await;
    let _: () = conn.zadd("rq:scheduled:q2", "stuck", t - 1).await.unwrap();
    let q2 = QueueCall {
        queue: "q2",
        ..call(now)
    };
    let moved = move_scheduled(&mut conn, &q2, lock, "me").await.unwrap();
    assert_eq!(
        moved,
        Some(Moved {
            enqueued: 0,
            dropped: 0
        })
    );
    assert_eq!(
        conn.zscore::<_, _, Option<i64>>("rq:scheduled:q2", "stuck")
            .await
            .unwrap(),
        Some(t - 1)
    );
    assert_eq!(
        field(&mut conn, "stuck", "status").await.as_deref(),
        Some("scheduled")
    );
}

/// Abandoned-job recovery around keys of the wrong type (issue 13): a member whose job key is
/// not a hash only leaves the registry; an abandoned job whose results stream is not a stream
/// is still failed into its registry; one that cannot be requeued (its queue key is not a
/// list) is failed instead of lost; the call never stops halfway.
#[tokio::test]
async fn recovery_works_around_keys_of_the_wrong_type() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let now = RqTimestamp::now();
    let t = now.unix_seconds();
    let _: () = conn.set("rq:job:not-a-hash", "x").await.unwrap();
    job(&mut conn, "plain", &[("status", "started")]).await;
    let _: () = conn.set("rq:results:plain", "x").await.unwrap();
    job(
        &mut conn,
        "retry",
        &[
            ("status", "started"),
            ("retries_left", "1"),
            ("origin", "q3"),
        ],
    )
    .await;
    for (member, score) in [("not-a-hash:x1", t - 5), ("plain:x2", t - 5)] {
        let _: () = conn.zadd("rq:wip:q", member, score).await.unwrap();
    }
    let members = ["not-a-hash:x1".to_string(), "plain:x2".to_string()];
    let req = abandoned(now, &members);
    let done = recover(&mut conn, &req).await.unwrap();
    assert_eq!((done.failed, done.retried, done.removed), (1, 0, 2));
    assert_eq!(
        field(&mut conn, "plain", "status").await.as_deref(),
        Some("failed")
    );
    assert!(conn
        .zscore::<_, _, Option<f64>>("rq:failed:q", "plain")
        .await
        .unwrap()
        .is_some());
    assert_eq!(conn.zcard::<_, u64>("rq:wip:q").await.unwrap(), 0);

    // Retries left, but its queue key is a string: failed, not lost.
    let _: () = conn.set("rq:queue:q3", "x").await.unwrap();
    let _: () = conn.zadd("rq:wip:q3", "retry:x3", t - 5).await.unwrap();
    let members = ["retry:x3".to_string()];
    let req = RecoverRequest {
        call: QueueCall {
            queue: "q3",
            ..call(now)
        },
        recovery: Recovery::Abandoned { members: &members },
        ..req
    };
    let done = recover(&mut conn, &req).await.unwrap();
    assert_eq!((done.failed, done.retried, done.removed), (1, 0, 1));
    assert_eq!(
        field(&mut conn, "retry", "status").await.as_deref(),
        Some("failed")
    );
    assert!(conn
        .zscore::<_, _, Option<f64>>("rq:failed:q3", "retry")
        .await
        .unwrap()
        .is_some());
}
