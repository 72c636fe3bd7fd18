//! The lifecycle scripts against a real `redis-server`, for the StartedJobRegistry member of
//! a job enqueued by rq 1.x: the plain job id (rq 1.x's own format), where a job from rq 2.x
//! or 3.0 (its hash has `group_id`) gets `<id>:<execution id>`. Start, heartbeat and a finish
//! repeated after a lost reply all handle either form.

mod support;

use redis::AsyncCommands;
use rqw::protocol::timestamp::RqTimestamp;
use rqw::store::connection::CommandConnection;
use rqw::store::finish::{finish_job, FinishRequest, Outcome, Recorded};
use rqw::store::scripts::{heartbeat, start_jobs, RunningExecution, StartRequest};
use support::RedisServer;

const WIP: &str = "rq:wip:q";

async fn enqueue(conn: &mut CommandConnection, id: &str, group_id: Option<&str>) {
    let key = format!("rq:job:{id}");
    let _: () = conn
        .hset_multiple(
            &key,
            &[("data", "x"), ("origin", "q"), ("status", "queued")],
        )
        .await
        .unwrap();
    if let Some(group) = group_id {
        let _: () = conn.hset(&key, "group_id", group).await.unwrap();
    }
    let _: () = conn.rpush("rq:queue:q", id).await.unwrap();
}

async fn start(conn: &mut CommandConnection, execution_id: &str, now: RqTimestamp) -> String {
    start_as(conn, "w", execution_id, now).await
}

async fn start_as(
    conn: &mut CommandConnection,
    worker: &str,
    execution_id: &str,
    now: RqTimestamp,
) -> String {
    let queues = ["q".to_string()];
    let started = start_jobs(
        conn,
        &StartRequest {
            execution_id,
            now,
            ..support::start_request(worker, &queues)
        },
        1,
    )
    .await
    .unwrap();
    assert_eq!(started.len(), 1);
    started[0].id.clone()
}

/// A finish naming the member form `rq1` (as the worker knows it from the start).
async fn finish(conn: &mut CommandConnection, id: &str, execution_id: &str, rq1: bool) -> Recorded {
    finish_as(conn, "w", id, execution_id, rq1).await
}

async fn finish_as(
    conn: &mut CommandConnection,
    worker: &str,
    id: &str,
    execution_id: &str,
    rq1: bool,
) -> Recorded {
    finish_job(
        conn,
        "rq:",
        worker,
        &FinishRequest {
            job_id: id.into(),
            execution_id: execution_id.into(),
            queue: "q".into(),
            rq1_member: rq1,
            now: RqTimestamp::now(),
            working_time: 0.5,
            rate_limit_key: None,
            has_dependencies: false,
            outcome: Outcome::Requeue {
                retries_left: 0,
                at_front: false,
            },
        },
    )
    .await
    .unwrap()
}

async fn members(conn: &mut CommandConnection) -> Vec<(String, i64)> {
    conn.zrange_withscores(WIP, 0, -1).await.unwrap()
}

#[tokio::test]
async fn a_job_from_rq_1x_is_registered_under_its_plain_id() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "old", None).await;
    let base = chrono::Utc::now();
    let now = RqTimestamp::at(base);
    let id = start(&mut conn, "x1", now).await;
    assert_eq!(id, "old");
    let held = members(&mut conn).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, "old");
    assert_eq!(held[0].1, now.unix_seconds() + 90, "min(180, 30) + 60");

    // A heartbeat moves the plain member's expiry, and adds no composite one.
    let later = RqTimestamp::at(base + chrono::Duration::seconds(20));
    let row = RunningExecution {
        job_id: "old".into(),
        execution_id: "x1".into(),
        queue: "q".into(),
        ttl: 90,
        rq1_member: true,
    };
    assert!(heartbeat(&mut conn, "rq:", "w", later, 480, None, &[row])
        .await
        .unwrap());
    assert_eq!(
        members(&mut conn).await,
        vec![("old".to_string(), later.unix_seconds() + 90)]
    );

    // The outcome leaves the registry; the same call again (a lost reply) writes nothing.
    assert_eq!(
        finish(&mut conn, "old", "x1", true).await,
        Recorded::Written
    );
    assert!(members(&mut conn).await.is_empty());
    let queued: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queued, ["old"]);
    assert_eq!(
        finish(&mut conn, "old", "x1", true).await,
        Recorded::AlreadyRecorded
    );
    let queued: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queued, ["old"], "requeued once, not twice");
}

#[tokio::test]
async fn a_repeated_finish_leaves_a_later_execution_of_the_same_1x_job_alone() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "old", None).await;
    start(&mut conn, "x1", RqTimestamp::now()).await;
    assert_eq!(
        finish(&mut conn, "old", "x1", true).await,
        Recorded::Written
    );
    // Requeued, started again (another execution, the same plain member), then the first
    // execution's finish arrives again: the new execution keeps its entry.
    start(&mut conn, "x2", RqTimestamp::now()).await;
    assert_eq!(
        finish(&mut conn, "old", "x1", true).await,
        Recorded::AlreadyRecorded
    );
    let held: Vec<String> = conn.zrange(WIP, 0, -1).await.unwrap();
    assert_eq!(held, ["old"]);
    assert_eq!(
        finish(&mut conn, "old", "x2", true).await,
        Recorded::Written
    );
    assert!(members(&mut conn).await.is_empty());
}

/// A worker stalls (its heartbeats stop), rq 1.x's own cleanup requeues its job (it removes
/// the plain member and knows no execution hash), another worker starts it again under the
/// same member; the stalled worker's late outcome is refused and the new execution keeps its
/// entry (the soak's frozen worker found this).
#[tokio::test]
async fn a_late_finish_after_rq_1x_requeued_the_job_to_another_worker_is_refused() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "old", None).await;
    start(&mut conn, "x1", RqTimestamp::now()).await;
    // StartedJobRegistry.cleanup of rq 1.16.2, then Queue.enqueue_job.
    let _: () = conn.zrem(WIP, "old").await.unwrap();
    let _: () = conn.rpush("rq:queue:q", "old").await.unwrap();
    start_as(&mut conn, "w2", "x2", RqTimestamp::now()).await;
    assert_eq!(
        finish(&mut conn, "old", "x1", true).await,
        Recorded::AlreadyRecorded
    );
    let held: Vec<String> = conn.zrange(WIP, 0, -1).await.unwrap();
    assert_eq!(held, ["old"], "the new execution keeps its entry");
    let queued: i64 = conn.llen("rq:queue:q").await.unwrap();
    assert_eq!(queued, 0, "the late outcome (a requeue) was not written");
    assert_eq!(
        finish_as(&mut conn, "w2", "old", "x2", true).await,
        Recorded::Written
    );
    assert!(members(&mut conn).await.is_empty());
}

#[tokio::test]
async fn a_job_from_rq_2_or_3_keeps_the_execution_member() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "new", Some("")).await;
    start(&mut conn, "x1", RqTimestamp::now()).await;
    let held: Vec<String> = conn.zrange(WIP, 0, -1).await.unwrap();
    assert_eq!(held, ["new:x1"]);
    assert_eq!(
        finish(&mut conn, "new", "x1", false).await,
        Recorded::Written
    );
    assert!(members(&mut conn).await.is_empty());
    assert_eq!(
        finish(&mut conn, "new", "x1", false).await,
        Recorded::AlreadyRecorded
    );
}

#[tokio::test]
async fn a_finish_naming_the_other_member_form_still_finds_its_execution_once() {
    // The job hash gained group_id after the start (so a worker that looked it up again
    // would take it for a 2.x job): the execution is found under the plain member all the
    // same, while its execution hash exists, and only once.
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    enqueue(&mut conn, "old", None).await;
    start(&mut conn, "x1", RqTimestamp::now()).await;
    assert_eq!(
        finish(&mut conn, "old", "x1", false).await,
        Recorded::Written
    );
    assert!(members(&mut conn).await.is_empty());
    assert_eq!(
        finish(&mut conn, "old", "x1", false).await,
        Recorded::AlreadyRecorded
    );
    let queued: Vec<String> = conn.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queued, ["old"], "requeued once");
}
