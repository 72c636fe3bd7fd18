//! The metrics endpoint against a real redis-server: `/healthz` follows the worker record,
//! `/metrics` reads queue depths at scrape, and the server stops with its token.

mod support;

use std::time::Duration;

use rqw::keys::Keys;
use rqw::metrics::server::{bind, serve};
use rqw::metrics::{Metrics, WorkerProbe};
use rqw::ops::healthcheck::{fetch_healthz, get};
use rqw::protocol::timestamp::RqTimestamp;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn healthz_and_metrics_follow_redis() {
    let redis = support::RedisServer::start();
    let mut conn = redis.manager().await;
    let keys = Keys::default();
    let _: () = redis::cmd("HSET")
        .arg(keys.worker("w1"))
        .arg("last_heartbeat")
        .arg(RqTimestamp::now().rq_format())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(keys.queue("q1"))
        .arg(&["a", "b", "c"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let probe = WorkerProbe {
        conn: conn.clone(),
        keys: keys.clone(),
        worker: "w1".into(),
        queues: vec!["q1".into(), "q2".into()],
        stale_after: Duration::from_secs(90),
    };
    let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, metrics, probe, stop.clone()));

    let (code, body) = fetch_healthz(addr, WAIT).await.unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(r#""status":"ok","worker":"w1","redis":true"#),
        "{body}"
    );

    let (code, text) = get(addr, "/metrics", WAIT).await.unwrap();
    assert_eq!(code, 200);
    assert!(text.contains("rqw_queue_depth{queue=\"q1\"} 3"), "{text}");
    assert!(text.contains("rqw_queue_depth{queue=\"q2\"} 0"), "{text}");
    assert!(text.contains("rqw_redis_up 1"), "{text}");
    assert_eq!(get(addr, "/other", WAIT).await.unwrap().0, 404);

    let _: () = redis::cmd("HSET")
        .arg(keys.worker("w1"))
        .arg("death")
        .arg(RqTimestamp::now().rq_format())
        .query_async(&mut conn)
        .await
        .unwrap();
    let (code, body) = fetch_healthz(addr, WAIT).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("deregistered"), "{body}");

    // Redis gone: unhealthy within the probe timeout, not hanging.
    drop(redis);
    let (code, body) = fetch_healthz(addr, WAIT).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(r#""redis":false"#), "{body}");

    stop.cancel();
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap();
    assert!(fetch_healthz(addr, Duration::from_secs(1)).await.is_err());
}

#[tokio::test]
async fn a_taken_address_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = bind(addr).await.unwrap_err();
    assert!(err
        .to_string()
        .starts_with(&format!("cannot serve metrics on {addr}")));
}
