//! Calls whose reply is lost after Redis ran them (`rqw::store::reconcile`), against a real
//! `redis-server` behind a proxy that cuts the connection right after forwarding the call:
//! what ran is found and run or written once, what did not run is not guessed.

mod support;

use redis::AsyncCommands;
use rqw::protocol::result::{success_entry, ExecutionSpan};
use rqw::protocol::timestamp::{parse_rq_timestamp, RqTimestamp};
use rqw::store::connection::{CommandConnection, Endpoint};
use rqw::store::finish::{finish_job, FinishRequest, Outcome};
use rqw::store::reconcile::{
    adopt_started, finish_until_known, reply_may_be_lost, FinishKnown, FinishReport,
};
use rqw::store::scripts::{start_batch, StartRequest, StartedJob};
use support::reply_dropper::{Drop, ReplyDropper};
use support::RedisServer;
use tokio_util::sync::CancellationToken;

const WORKER: &str = "w1";

async fn through(proxy: &ReplyDropper) -> CommandConnection {
    let endpoint = Endpoint::fixed(&proxy.url(), None).unwrap();
    CommandConnection::open(&endpoint).await.unwrap()
}

async fn enqueue(conn: &mut CommandConnection, id: &str, extra: &[(&str, &str)]) {
    let key = format!("rq:job:{id}");
    let _: () = conn
        .hset_multiple(
            &key,
            &[
                ("data", "x"),
                ("origin", "q"),
                ("status", "queued"),
                ("enqueued_at", "2020-01-01T00:00:00.000000Z"),
                // Written by every rq 2.x/3.0 producer; without it start.lua takes the job
                // for rq 1.x's and registers it under its plain id.
                ("group_id", ""),
            ],
        )
        .await
        .unwrap();
    for (k, v) in extra {
        let _: () = conn.hset(&key, *k, *v).await.unwrap();
    }
    let _: () = conn.rpush("rq:queue:q", id).await.unwrap();
}

async fn start(
    conn: &mut CommandConnection,
    queues: &[String],
    ids: &[String],
    now: RqTimestamp,
) -> Result<Vec<StartedJob>, rqw::error::StoreError> {
    let req = StartRequest {
        execution_id: &ids[0],
        now,
        monitoring_interval: 1,
        ..support::start_request(WORKER, queues)
    };
    start_batch(conn, &req, ids).await
}

fn finish_request(job_id: &str, execution_id: &str, outcome: Outcome) -> FinishRequest {
    FinishRequest {
        job_id: job_id.into(),
        execution_id: execution_id.into(),
        queue: "q".into(),
        rq1_member: false,
        now: RqTimestamp::now(),
        working_time: 0.01,
        rate_limit_key: None,
        has_dependencies: false,
        outcome,
    }
}

fn finished() -> Outcome {
    let span = ExecutionSpan {
        started_at: RqTimestamp::now(),
        ended_at: RqTimestamp::now(),
    };
    Outcome::Finished {
        repeat: None,
        result_ttl: 500,
        result: success_entry(None, &span),
    }
}

/// One start and one finish with nothing armed, so the scripts are loaded (a lost `NOSCRIPT`
/// round would otherwise be the call the proxy cuts).
async fn load_scripts(conn: &mut CommandConnection) {
    let queues = vec!["warmup".to_string()];
    assert!(start(conn, &queues, &["warm".into()], RqTimestamp::now())
        .await
        .unwrap()
        .is_empty());
    let _ = finish_job(
        conn,
        "rq:",
        WORKER,
        &finish_request("none", "none", finished()),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_start_whose_reply_is_lost_is_found_and_its_finish_written_once() {
    let redis = RedisServer::start();
    let proxy = ReplyDropper::start(redis.port()).await;
    let mut direct = redis.manager().await;
    let mut conn = through(&proxy).await;
    load_scripts(&mut conn).await;
    enqueue(&mut direct, "j1", &[]).await;
    enqueue(&mut direct, "j2", &[]).await;
    let queues = vec!["q".to_string()];

    proxy.arm(b"x-lost-1", Drop::Reply);
    let ids = vec![
        "x-lost-1".to_string(),
        "x-lost-2".to_string(),
        "x-lost-3".to_string(),
    ];
    let err = start(&mut conn, &queues, &ids, RqTimestamp::now())
        .await
        .expect_err("the reply was dropped");
    assert_eq!(proxy.fired(), 1);
    assert!(reply_may_be_lost(&err), "{err}");
    // The script ran: both jobs are started under this worker, none is left queued.
    let status: String = direct.hget("rq:job:j1", "status").await.unwrap();
    assert_eq!(status, "started");
    assert_eq!(direct.llen::<_, i64>("rq:queue:q").await.unwrap(), 0);

    // A long outage: the heartbeats have run out meanwhile.
    let _: () = direct.zadd("rq:wip:q", "j1:x-lost-1", 1).await.unwrap();
    // After the reconnect, the lookup returns exactly what started, as start.lua would have,
    // and renews their heartbeat.
    let adopted = adopt_started(&mut conn, "rq:", WORKER, 1, &queues, &ids)
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = adopted
        .iter()
        .map(|j| (j.id.clone(), j.execution_id.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("j1".to_string(), "x-lost-1".to_string()),
            ("j2".to_string(), "x-lost-2".to_string())
        ]
    );
    assert!(adopted.iter().all(|j| j.queue == "q"));
    // Both heartbeats renewed with the 61 s TTL the request asked for.
    for member in ["j1:x-lost-1", "j2:x-lost-2"] {
        let score: f64 = direct.zscore("rq:wip:q", member).await.unwrap();
        let now = chrono::Utc::now().timestamp() as f64;
        assert!(
            (score - (now + 61.0)).abs() <= 2.0,
            "heartbeat of {member} renewed: {score}"
        );
    }
    assert_eq!(adopted[0].fields.get("status").unwrap(), b"started");
    let unknown = adopt_started(&mut conn, "rq:", WORKER, 1, &queues, &["x-other".into()])
        .await
        .unwrap();
    assert!(
        unknown.is_empty(),
        "an id that was not asked for is not adopted"
    );

    // The finish of j1 loses its reply too: repeated, it knows the lost call wrote it.
    proxy.arm(b"x-lost-1", Drop::Reply);
    let req = finish_request("j1", "x-lost-1", finished());
    let report = finish_until_known(&conn, "rq:", WORKER, &[&req], &CancellationToken::new())
        .await
        .remove(0)
        .unwrap();
    assert_eq!(
        report,
        FinishReport {
            known: FinishKnown::WrittenEarlier,
            lost_replies: 1
        }
    );
    let status: String = direct.hget("rq:job:j1", "status").await.unwrap();
    assert_eq!(status, "finished");
    assert_eq!(direct.xlen::<_, i64>("rq:results:j1").await.unwrap(), 1);
    let count: i64 = direct
        .hget("rq:worker:w1", "successful_job_count")
        .await
        .unwrap();
    assert_eq!(count, 1, "counted once");
    assert!(direct
        .zscore::<_, _, Option<f64>>("rq:finished:q", "j1")
        .await
        .unwrap()
        .is_some());
    // Once adopted and finished, it is not adopted again.
    let again = adopt_started(&mut conn, "rq:", WORKER, 1, &queues, &ids)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, "j2");
}

#[tokio::test]
async fn a_start_that_never_reached_redis_adopts_nothing() {
    let redis = RedisServer::start();
    let proxy = ReplyDropper::start(redis.port()).await;
    let mut direct = redis.manager().await;
    let mut conn = through(&proxy).await;
    load_scripts(&mut conn).await;
    enqueue(&mut direct, "j1", &[]).await;
    let queues = vec!["q".to_string()];
    proxy.arm(b"x-never", Drop::Request);
    let ids = vec!["x-never".to_string()];
    let err = start(&mut conn, &queues, &ids, RqTimestamp::now())
        .await
        .expect_err("the connection was cut");
    assert!(reply_may_be_lost(&err), "{err}");
    let adopted = adopt_started(&mut conn, "rq:", WORKER, 1, &queues, &ids)
        .await
        .unwrap();
    assert!(adopted.is_empty());
    let queued: Vec<String> = direct.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(
        queued,
        vec!["j1".to_string()],
        "still queued, to be taken normally"
    );
}

#[tokio::test]
async fn a_lost_requeue_reply_is_not_pushed_twice() {
    let redis = RedisServer::start();
    let proxy = ReplyDropper::start(redis.port()).await;
    let mut direct = redis.manager().await;
    let mut conn = through(&proxy).await;
    load_scripts(&mut conn).await;
    enqueue(&mut direct, "j1", &[("retries_left", "1")]).await;
    let queues = vec!["q".to_string()];
    let started = start(&mut conn, &queues, &["x1".into()], RqTimestamp::now())
        .await
        .unwrap();
    assert_eq!(started.len(), 1);
    proxy.arm(b"x1", Drop::Reply);
    let req = finish_request(
        "j1",
        "x1",
        Outcome::Requeue {
            retries_left: 0,
            at_front: false,
        },
    );
    let report = finish_until_known(&conn, "rq:", WORKER, &[&req], &CancellationToken::new())
        .await
        .remove(0)
        .unwrap();
    assert_eq!(report.known, FinishKnown::GoneAfterLostReply);
    assert_eq!(report.lost_replies, 1);
    let queued: Vec<String> = direct.lrange("rq:queue:q", 0, -1).await.unwrap();
    assert_eq!(queued, vec!["j1".to_string()], "requeued once");
    let failed: i64 = direct
        .hget("rq:worker:w1", "failed_job_count")
        .await
        .unwrap();
    assert_eq!(failed, 1);
}

#[tokio::test]
async fn started_at_is_redis_time_at_the_pop_and_never_before_enqueued_at() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let future = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    enqueue(&mut conn, "now", &[]).await;
    enqueue(&mut conn, "ahead", &[("enqueued_at", future.as_str())]).await;
    let queues = vec!["q".to_string()];
    // The worker's own clock an hour behind: the script does not use it.
    let stale = RqTimestamp::at(chrono::Utc::now() - chrono::Duration::hours(1));
    let started = start(&mut conn, &queues, &["a".into(), "b".into()], stale)
        .await
        .unwrap();
    assert_eq!(started.len(), 2);
    let written: String = conn.hget("rq:job:now", "started_at").await.unwrap();
    let at = parse_rq_timestamp(&written).expect("RQ's format");
    let skew = (chrono::Utc::now() - at).num_seconds().abs();
    assert!(
        skew < 5,
        "started_at {written} is Redis's clock, not the stale one"
    );
    assert_eq!(written.len(), "2026-11-28T13:31:33.171040Z".len());
    let score: f64 = conn.zscore("rq:wip:q", "now:a").await.unwrap();
    assert!(
        (score - (at.timestamp() as f64 + 61.0)).abs() <= 1.0,
        "score {score}"
    );
    let created: String = conn.hget("rq:execution:now:a", "created_at").await.unwrap();
    let created: f64 = created.parse().unwrap();
    assert!((created - at.timestamp_micros() as f64 / 1e6).abs() < 0.001);
    // A producer's clock ahead of Redis's: started_at is clamped up to enqueued_at.
    let ahead: String = conn.hget("rq:job:ahead", "started_at").await.unwrap();
    assert_eq!(ahead, future);
}
