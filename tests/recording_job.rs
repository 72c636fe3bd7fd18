//! The whole handler (`process_recording_download_job`) against a spawned redis-server and a
//! fake Twilio: result dict, log lines, cache, failure marking, waiting, cancellation.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use rqw::handlers::recording::semaphore::Semaphore;
use rqw::handlers::recording::{params::Sid, RecordingConfig, RecordingHandler};
use rqw::handlers::{Handler, HandlerResult, JobArgs, JobContext};
use serde_pickle::{HashableValue, Value};
use support::{call_sid, files, FakeHttp, RedisServer, Reply};
use tokio_util::sync::CancellationToken;

fn config(base: &str, dir: &std::path::Path, credentials: bool) -> RecordingConfig {
    let (base, dir) = (base.to_string(), dir.to_string_lossy().into_owned());
    let mut c = RecordingConfig::from_lookup(|name| match name {
        "TWILIO_ACCOUNT_SID" if credentials => Some("AC1".into()),
        "TWILIO_AUTH_TOKEN" if credentials => Some("secret-token".into()),
        "TWILIO_API_BASE" => Some(base.clone()),
        "RECORDINGS_DIR" => Some(dir.clone()),
        _ => None,
    })
    .unwrap();
    c.not_found_delay = Duration::from_millis(20);
    c.wait_poll_interval = Duration::from_millis(20);
    c
}

fn api_kwargs(call: &str, url: &str, business: Value) -> JobArgs {
    let kwargs = BTreeMap::from([
        ("call_sid".to_string(), Value::String(call.into())),
        ("recording_url".to_string(), Value::String(url.into())),
        ("business_id".to_string(), business),
    ]);
    JobArgs {
        args: vec![],
        kwargs,
    }
}

fn ctx(retries_left: u32) -> JobContext {
    JobContext {
        job_id: "recording_download_x_1".into(),
        queue: "recordings".into(),
        meta: None,
        retries_left,
        last_attempt: retries_left == 0,
        cancel: CancellationToken::new(),
        recorder: Default::default(),
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Dict(d) => d.get(&HashableValue::String(key.into())),
        _ => None,
    }
}

async fn run(handler: &RecordingHandler, ctx: JobContext, args: JobArgs) -> HandlerResult {
    handler.call(ctx, args).await
}

#[tokio::test]
async fn downloads_and_returns_the_contract_dict() {
    // The operators' log lines are checked end to end, with the real binary, in
    // compat-tests/test_recording.py (a captured subscriber here raced with parallel tests).
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|s| {
        if s.target.ends_with(".wav?RequestedChannels=2") {
            Reply::Body(200, vec![4; 3000])
        } else {
            Reply::Status(404)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let call = call_sid(11);
    let url = format!(
        "{}/2010-04-01/Accounts/AC1/Recordings/RE1.json",
        twilio.base()
    );
    let value = run(&handler, ctx(3), api_kwargs(&call, &url, Value::I64(42)))
        .await
        .unwrap();

    assert_eq!(get(&value, "success"), Some(&Value::Bool(true)));
    assert_eq!(get(&value, "call_sid"), Some(&Value::String(call.clone())));
    assert!(matches!(get(&value, "duration_ms"), Some(Value::I64(ms)) if *ms >= 0));
    assert_eq!(
        std::fs::read(dir.path().join(format!("{call}.mp3")))
            .unwrap()
            .len(),
        3000
    );
    assert_eq!(files(dir.path()).len(), 1);
    assert_eq!(conn.scard::<_, i64>("rec_slots:42").await.unwrap(), 0);
    assert!(!conn
        .exists::<_, bool>(format!("rec_inflight:42:{call}"))
        .await
        .unwrap());
}

#[tokio::test]
async fn an_existing_file_is_returned_as_cached_without_requests() {
    let redis = RedisServer::start();
    let twilio = FakeHttp::start(|_| Reply::Status(500)).await;
    let dir = tempfile::tempdir().unwrap();
    let call = call_sid(12);
    std::fs::write(dir.path().join(format!("{call}.mp3")), vec![1u8; 1001]).unwrap();
    let handler = RecordingHandler::new(
        redis.manager().await,
        config(&twilio.base(), dir.path(), false),
    );
    let value = run(&handler, ctx(3), api_kwargs(&call, "/x", Value::I64(1)))
        .await
        .unwrap();
    assert_eq!(get(&value, "cached"), Some(&Value::Bool(true)));
    assert!(twilio.targets().is_empty());
}

#[tokio::test]
async fn refused_credentials_fail_permanently_and_mark_the_call_failed() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|_| Reply::Status(401)).await;
    let dir = tempfile::tempdir().unwrap();
    let call = call_sid(13);
    let _: () = conn
        .set_ex(format!("job:download:42:{call}"), "1", 120)
        .await
        .unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let err = run(
        &handler,
        ctx(3),
        api_kwargs(&call, "/2010-04-01/R/RE1", Value::I64(42)),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.message.contains("401"), "{err}");
    let failed: String = conn.get(format!("rec_failed:42:{call}")).await.unwrap();
    assert!(failed.contains("401"));
    assert!(!conn
        .exists::<_, bool>(format!("job:download:42:{call}"))
        .await
        .unwrap());
    assert_eq!(conn.scard::<_, i64>("rec_slots:42").await.unwrap(), 0);
}

#[tokio::test]
async fn a_url_on_another_host_is_refused_without_a_request() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|_| Reply::Body(200, vec![0; 5000])).await;
    let evil = FakeHttp::start(|_| Reply::Body(200, vec![0; 5000])).await;
    let dir = tempfile::tempdir().unwrap();
    let call = call_sid(14);
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let err = run(
        &handler,
        ctx(3),
        api_kwargs(&call, &format!("{}/steal", evil.base()), Value::I64(42)),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(err.exc_type, "ValueError");
    assert!(evil.targets().is_empty() && twilio.targets().is_empty());
    assert!(conn
        .exists::<_, bool>(format!("rec_failed:42:{call}"))
        .await
        .unwrap());
}

#[tokio::test]
async fn bad_arguments_and_missing_credentials_are_permanent() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(
        redis.manager().await,
        config("http://127.0.0.1:9", dir.path(), false),
    );
    let err = run(
        &handler,
        ctx(3),
        api_kwargs("../../etc/passwd", "/x", Value::I64(1)),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable() && err.message.contains("call_sid"));
    let err = run(
        &handler,
        ctx(3),
        api_kwargs(&call_sid(15), "/x", Value::I64(1)),
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.message.contains("TWILIO_ACCOUNT_SID"), "{err}");
}

#[tokio::test]
async fn only_the_last_attempt_of_a_retryable_failure_marks_the_call() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|_| Reply::Status(404)).await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let call = call_sid(16);
    let err = run(&handler, ctx(2), api_kwargs(&call, "/R/RE1", Value::I64(5)))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(!conn
        .exists::<_, bool>(format!("rec_failed:5:{call}"))
        .await
        .unwrap());
    run(&handler, ctx(0), api_kwargs(&call, "/R/RE1", Value::I64(5)))
        .await
        .unwrap_err();
    assert!(conn
        .exists::<_, bool>(format!("rec_failed:5:{call}"))
        .await
        .unwrap());
}

#[tokio::test]
async fn positional_arguments_and_missing_business_id() {
    let redis = RedisServer::start();
    let twilio = FakeHttp::start(|_| Reply::Body(200, vec![1; 2000])).await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(
        redis.manager().await,
        config(&twilio.base(), dir.path(), true),
    );
    let call = call_sid(17);
    let args = JobArgs {
        args: vec![Value::String(call.clone()), Value::String("/R/RE1".into())],
        kwargs: BTreeMap::new(),
    };
    let value = run(&handler, ctx(0), args).await.unwrap();
    assert_eq!(get(&value, "call_sid"), Some(&Value::String(call)));
}

#[tokio::test]
async fn a_job_in_a_full_business_waits_queued_then_downloads() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = rqw::handlers::recording::params::RecordingParams::from_args(&api_kwargs(
        &call_sid(0),
        "/x",
        Value::I64(9),
    ))
    .unwrap()
    .business_id;
    for n in 100..105 {
        sem.acquire(&b, &Sid::parse("CA", &call_sid(n)).unwrap(), "t")
            .await
            .unwrap();
    }
    let twilio = FakeHttp::start(|_| Reply::Body(200, vec![1; 2000])).await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let call = call_sid(18);
    let job = tokio::spawn({
        let handler = handler.clone();
        let args = api_kwargs(&call, "/R/RE1", Value::I64(9));
        async move { run(&handler, ctx(3), args).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!job.is_finished());
    // What the API's status check reads: the call is queued, first in line.
    assert_eq!(
        conn.lrange::<_, Vec<String>>("rec_queue:9", 0, -1)
            .await
            .unwrap(),
        std::slice::from_ref(&call)
    );
    assert!(conn
        .sismember::<_, _, bool>("rec_queued:9", &call)
        .await
        .unwrap());
    sem.release(&b, &Sid::parse("CA", &call_sid(100)).unwrap())
        .await
        .unwrap();
    let value = tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(get(&value, "duration_ms").is_some());
    assert_eq!(conn.scard::<_, i64>("rec_slots:9").await.unwrap(), 4);
}

#[tokio::test]
async fn cancellation_mid_download_releases_the_slot_and_removes_the_temp_file() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|_| Reply::Stall {
        declared: 1_000_000,
        sent: 5000,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let call = call_sid(19);
    let context = ctx(3);
    let cancel = context.cancel.clone();
    let job = tokio::spawn({
        let handler = handler.clone();
        let args = api_kwargs(&call, "/R/RE1", Value::I64(8));
        async move { run(&handler, context, args).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(conn.scard::<_, i64>("rec_slots:8").await.unwrap(), 1);
    assert_eq!(files(dir.path()).len(), 1, "a temp file is being written");
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(4), job)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.exc_type, "rqw.errors.Cancelled");
    assert_eq!(conn.scard::<_, i64>("rec_slots:8").await.unwrap(), 0);
    assert!(!conn
        .exists::<_, bool>(format!("rec_inflight:8:{call}"))
        .await
        .unwrap());
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

#[tokio::test]
async fn a_dropped_job_future_still_releases_its_slot() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let twilio = FakeHttp::start(|_| Reply::Stall {
        declared: 1_000_000,
        sent: 5000,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let handler = RecordingHandler::new(conn.clone(), config(&twilio.base(), dir.path(), true));
    let job = tokio::spawn({
        let args = api_kwargs(&call_sid(20), "/R/RE1", Value::I64(8));
        async move { run(&handler, ctx(3), args).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(conn.scard::<_, i64>("rec_slots:8").await.unwrap(), 1);
    job.abort();
    let _ = job.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(conn.scard::<_, i64>("rec_slots:8").await.unwrap(), 0);
    assert!(files(dir.path()).is_empty());
}
