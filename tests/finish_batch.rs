//! `finish.lua` records a batch of outcomes in one call (issue 15), against a real
//! `redis-server`: every job of the batch ends where RQ's readers look for it, the worker's
//! counters count each once, keys of the wrong type cost their own job only (issue 13), and
//! the same call repeated (a lost reply) writes nothing twice.

mod support;

use redis::AsyncCommands;
use rqw::protocol::result::{failure_entry, success_entry, ExecutionSpan};
use rqw::protocol::timestamp::RqTimestamp;
use rqw::store::connection::CommandConnection;
use rqw::store::finish::{finish_jobs, FinishRequest, Outcome, Recorded};
use rqw::store::scripts::{start_jobs, StartRequest, StartedJob};
use support::RedisServer;

const WORKER: &str = "w";

async fn enqueue(conn: &mut CommandConnection, id: &str, origin: &str) {
    let key = format!("rq:job:{id}");
    let _: () = conn
        .hset_multiple(
            &key,
            &[
                ("data", "x"),
                ("origin", origin),
                ("status", "queued"),
                ("group_id", ""),
            ],
        )
        .await
        .unwrap();
    let _: () = conn.rpush(format!("rq:queue:{origin}"), id).await.unwrap();
}

async fn start_all(conn: &mut CommandConnection, queues: &[String], n: usize) -> Vec<StartedJob> {
    let started = start_jobs(
        conn,
        &StartRequest {
            execution_id: "x0",
            ..support::start_request(WORKER, queues)
        },
        n,
    )
    .await
    .unwrap();
    assert_eq!(started.len(), n);
    let _: () = conn
        .hset(format!("rq:worker:{WORKER}"), "birth", "x")
        .await
        .unwrap();
    started
}

fn request(job: &StartedJob, outcome: Outcome) -> FinishRequest {
    FinishRequest {
        job_id: job.id.clone(),
        execution_id: job.execution_id.clone(),
        queue: job.queue.clone(),
        rq1_member: job.rq1_member(),
        now: RqTimestamp::now(),
        working_time: 0.25,
        rate_limit_key: None,
        has_dependencies: false,
        outcome,
    }
}

fn span() -> ExecutionSpan {
    ExecutionSpan {
        started_at: RqTimestamp::now(),
        ended_at: RqTimestamp::now(),
    }
}

fn finished() -> Outcome {
    Outcome::Finished {
        repeat: None,
        result_ttl: 500,
        result: success_entry(None, &span()),
    }
}

async fn evalsha_calls(conn: &mut CommandConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn status(conn: &mut CommandConnection, id: &str) -> Option<String> {
    conn.hget(format!("rq:job:{id}"), "status").await.unwrap()
}

async fn in_zset(conn: &mut CommandConnection, key: &str, member: &str) -> bool {
    conn.zscore::<_, _, Option<f64>>(key, member)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn one_call_records_a_batch_and_a_bad_job_spoils_nothing_else() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    // Ten good jobs on "q", around them the hostile ones: a results stream, a job key, an
    // executions key and a dependents set of the wrong type, a job whose origin's finished
    // registry is a string, a job whose origin's started registry is a string, and a failure.
    let ids: Vec<String> = (0..10).map(|i| format!("good{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        enqueue(&mut conn, id, "q").await;
        if i == 4 {
            for bad in [
                "bad-results",
                "bad-key",
                "bad-executions",
                "bad-dependents",
                "failing",
            ] {
                enqueue(&mut conn, bad, "q").await;
            }
        }
    }
    enqueue(&mut conn, "bad-finished", "trapf").await;
    enqueue(&mut conn, "bad-wip", "trapw").await;
    let queues: Vec<String> = ["q", "trapf", "trapw"].map(String::from).to_vec();
    let started = start_all(&mut conn, &queues, 17).await;

    // Sabotage while they run.
    let _: () = conn.set("rq:results:bad-results", "x").await.unwrap();
    let _: () = conn.del("rq:job:bad-key").await.unwrap();
    let _: () = conn.set("rq:job:bad-key", "not a hash").await.unwrap();
    let _: () = conn.del("rq:executions:bad-executions").await.unwrap();
    let _: () = conn.set("rq:executions:bad-executions", "x").await.unwrap();
    let _: () = conn
        .set("rq:job:bad-dependents:dependents", "x")
        .await
        .unwrap();
    let _: () = conn.set("rq:finished:trapf", "x").await.unwrap();
    let _: () = conn.del("rq:wip:trapw").await.unwrap();
    let _: () = conn.set("rq:wip:trapw", "x").await.unwrap();

    let requests: Vec<FinishRequest> = started
        .iter()
        .map(|job| {
            let outcome = if job.id == "failing" {
                Outcome::Failed {
                    failure_ttl: None,
                    result: failure_entry("ValueError: no\n", &span()),
                }
            } else {
                finished()
            };
            request(job, outcome)
        })
        .collect();
    let batch: Vec<&FinishRequest> = requests.iter().collect();
    // Loads the script (a first EVALSHA answers NOSCRIPT): a job never started, nothing written.
    let mut unknown = request(&started[0], finished());
    unknown.execution_id = "never".into();
    let warm = finish_jobs(&mut conn, "rq:", WORKER, &[&unknown])
        .await
        .unwrap();
    assert_eq!(warm, [Recorded::AlreadyRecorded]);
    let before = evalsha_calls(&mut conn).await;
    let statuses = finish_jobs(&mut conn, "rq:", WORKER, &batch).await.unwrap();
    assert_eq!(
        evalsha_calls(&mut conn).await - before,
        1,
        "one call for the batch"
    );

    for (job, status) in started.iter().zip(&statuses) {
        let expected = if job.id == "bad-key" {
            Recorded::JobMissing
        } else {
            Recorded::Written
        };
        assert_eq!(*status, expected, "{}", job.id);
    }
    for id in &ids {
        assert_eq!(
            status(&mut conn, id).await.as_deref(),
            Some("finished"),
            "{id}"
        );
        assert!(in_zset(&mut conn, "rq:finished:q", id).await, "{id}");
        assert_eq!(
            conn.xlen::<_, i64>(format!("rq:results:{id}"))
                .await
                .unwrap(),
            1
        );
        let ttl: i64 = conn.ttl(format!("rq:job:{id}")).await.unwrap();
        assert!((490..=500).contains(&ttl), "{id}: {ttl}");
        let ttl: i64 = conn.ttl(format!("rq:results:{id}")).await.unwrap();
        assert!((490..=500).contains(&ttl), "{id}: {ttl}");
        assert!(!conn
            .exists::<_, bool>(format!("rq:executions:{id}"))
            .await
            .unwrap());
    }
    // A results stream of the wrong type loses the entry only.
    assert_eq!(
        status(&mut conn, "bad-results").await.as_deref(),
        Some("finished")
    );
    assert!(in_zset(&mut conn, "rq:finished:q", "bad-results").await);
    // A job key replaced by a string is left alone, and in no registry.
    let left: String = conn.get("rq:job:bad-key").await.unwrap();
    assert_eq!(left, "not a hash");
    assert!(!in_zset(&mut conn, "rq:finished:q", "bad-key").await);
    // An executions key of the wrong type stays, the outcome is written.
    assert_eq!(
        status(&mut conn, "bad-executions").await.as_deref(),
        Some("finished")
    );
    // A dependents key of the wrong type: the outcome is written, no dependent enqueued.
    assert_eq!(
        status(&mut conn, "bad-dependents").await.as_deref(),
        Some("finished")
    );
    // An unusable finished registry fails that job into its failed registry, saying why.
    assert_eq!(
        status(&mut conn, "bad-finished").await.as_deref(),
        Some("failed")
    );
    assert!(in_zset(&mut conn, "rq:failed:trapf", "bad-finished").await);
    let exc: String = conn.hget("rq:job:bad-finished", "exc_info").await.unwrap();
    assert!(exc.contains("rq:finished:trapf"), "{exc}");
    // An unusable started registry: the outcome is recorded all the same.
    assert_eq!(
        status(&mut conn, "bad-wip").await.as_deref(),
        Some("finished")
    );
    assert!(in_zset(&mut conn, "rq:finished:trapw", "bad-wip").await);
    // The failure, beside the successes.
    assert_eq!(
        status(&mut conn, "failing").await.as_deref(),
        Some("failed")
    );
    assert!(in_zset(&mut conn, "rq:failed:q", "failing").await);

    // The worker's record: every execution counted once, the worker idle.
    let wk = format!("rq:worker:{WORKER}");
    let ok: i64 = conn.hget(&wk, "successful_job_count").await.unwrap();
    let failed: i64 = conn.hget(&wk, "failed_job_count").await.unwrap();
    assert_eq!((ok, failed), (16, 1));
    let total: f64 = conn.hget(&wk, "total_working_time").await.unwrap();
    assert!((total - 17.0 * 0.25).abs() < 1e-9, "{total}");
    let state: String = conn.hget(&wk, "state").await.unwrap();
    assert_eq!(state, "idle");
    assert!(!conn
        .hexists::<_, _, bool>(&wk, "current_job")
        .await
        .unwrap());
    assert_eq!(
        conn.scard::<_, i64>(format!("{wk}:executions"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(conn.zcard::<_, i64>("rq:wip:q").await.unwrap(), 0);

    // The same batch again (its reply lost): nothing is written twice. (Without the job
    // whose started registry is unusable: that one cannot be told apart, see finish.lua.)
    let repeat: Vec<&FinishRequest> = requests.iter().filter(|r| r.job_id != "bad-wip").collect();
    let again = finish_jobs(&mut conn, "rq:", WORKER, &repeat)
        .await
        .unwrap();
    assert!(
        again.iter().all(|s| *s == Recorded::AlreadyRecorded),
        "{again:?}"
    );
    let ok_again: i64 = conn.hget(&wk, "successful_job_count").await.unwrap();
    let failed_again: i64 = conn.hget(&wk, "failed_job_count").await.unwrap();
    assert_eq!((ok_again, failed_again), (16, 1));
    assert_eq!(conn.xlen::<_, i64>("rq:results:good0").await.unwrap(), 1);
}

#[tokio::test]
async fn a_batch_finishing_some_of_the_running_jobs_keeps_the_others_current() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    for i in 0..4 {
        enqueue(&mut conn, &format!("j{i}"), "q").await;
    }
    let queues = vec!["q".to_string()];
    let started = start_all(&mut conn, &queues, 4).await;
    let wk = format!("rq:worker:{WORKER}");
    let current: String = conn.hget(&wk, "current_job").await.unwrap();
    assert_eq!(current, "j3", "start.lua shows the last one started");
    let requests: Vec<FinishRequest> = started[1..]
        .iter()
        .map(|job| request(job, finished()))
        .collect();
    let batch: Vec<&FinishRequest> = requests.iter().collect();
    finish_jobs(&mut conn, "rq:", WORKER, &batch).await.unwrap();
    // j0 still runs: it is the current job now, the worker still busy.
    let current: String = conn.hget(&wk, "current_job").await.unwrap();
    assert_eq!(current, "j0");
    let state: String = conn.hget(&wk, "state").await.unwrap();
    assert_eq!(state, "busy");
    let members: Vec<String> = conn.zrange("rq:wip:q", 0, -1).await.unwrap();
    assert_eq!(members, [format!("j0:{}", started[0].execution_id)]);
}

/// Each job's result entry, as `finish.lua` builds it from the few items sent per job, holds
/// exactly `ResultEntry::fields` for the finishing worker and the execution: in RQ's order, a
/// None return value without `return_value`, a value or a traceback under its own name.
#[tokio::test]
async fn the_result_entry_is_written_field_for_field() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    for id in ["none", "value", "error"] {
        enqueue(&mut conn, id, "q").await;
    }
    let jobs = start_all(&mut conn, &["q".to_string()], 3).await;
    let entries = [
        success_entry(None, &span()),
        success_entry(Some(b"\x80\x05K\x05."), &span()),
        failure_entry("ValueError: no\n", &span()),
    ];
    let requests: Vec<FinishRequest> = jobs
        .iter()
        .zip(&entries)
        .map(|(job, entry)| {
            let outcome = match entry.kind {
                rqw::protocol::result::ResultType::Successful => Outcome::Finished {
                    repeat: None,
                    result_ttl: 500,
                    result: entry.clone(),
                },
                rqw::protocol::result::ResultType::Failed => Outcome::Failed {
                    failure_ttl: None,
                    result: entry.clone(),
                },
            };
            request(job, outcome)
        })
        .collect();
    let refs: Vec<&FinishRequest> = requests.iter().collect();
    let done = finish_jobs(&mut conn, "rq:", WORKER, &refs).await.unwrap();
    assert_eq!(done, [Recorded::Written; 3]);
    for (job, entry) in jobs.iter().zip(&entries) {
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(format!("rq:results:{}", job.id))
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let redis::Value::Array(items) = reply else {
            panic!("no stream for {}", job.id)
        };
        assert_eq!(items.len(), 1, "one entry for {}", job.id);
        let redis::Value::Array(item) = &items[0] else {
            panic!("an entry")
        };
        let redis::Value::Array(flat) = &item[1] else {
            panic!("entry fields")
        };
        let written: Vec<String> = flat
            .iter()
            .map(|v| match v {
                redis::Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: Vec<String> = entry
            .fields(WORKER, &job.execution_id)
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()])
            .collect();
        assert_eq!(written, expected, "the entry of {}", job.id);
    }
}
