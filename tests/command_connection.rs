//! The command connection against real redis-servers: a `READONLY` reply (a demoted master
//! behind a fixed URL) is handed back, not hidden; the connection is rebuilt once, then not
//! again before its backoff; and it works on as soon as the server takes writes again.

mod support;

use std::time::Duration;

use rqw::store::connection::{is_read_only, CommandConnection, Endpoint, FOLLOW_MAX_BACKOFF};
use support::RedisServer;

async fn set(conn: &mut CommandConnection) -> redis::RedisResult<()> {
    redis::cmd("SET").arg("k").arg("v").query_async(conn).await
}

#[tokio::test]
async fn read_only_behind_a_fixed_url_is_reported_and_retried_with_backoff() {
    let primary = RedisServer::start();
    let demoted = RedisServer::start();
    let endpoint = Endpoint::fixed(&demoted.url(), None).unwrap();
    let mut conn = CommandConnection::open(&endpoint).await.unwrap();
    set(&mut conn).await.unwrap();
    assert_eq!(endpoint.generation(), 0);

    let mut admin = demoted.manager().await;
    let () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port())
        .query_async(&mut admin)
        .await
        .unwrap();
    let error = set(&mut conn).await.unwrap_err();
    assert!(is_read_only(&error), "{error}");
    // The URL names the same server: one new connection (it still answers READONLY).
    assert_eq!(endpoint.generation(), 1);
    let error = set(&mut conn).await.unwrap_err();
    assert!(is_read_only(&error), "{error}");
    assert_eq!(
        endpoint.generation(),
        1,
        "no second reconnect within the backoff"
    );

    let () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut admin)
        .await
        .unwrap();
    set(&mut conn).await.unwrap();
    tokio::time::sleep(FOLLOW_MAX_BACKOFF).await;
    set(&mut conn).await.unwrap();
    assert_eq!(endpoint.generation(), 1);
}

#[tokio::test]
async fn a_lost_connection_behind_a_fixed_url_is_left_to_the_connection_manager() {
    let server = RedisServer::start();
    let endpoint = Endpoint::fixed(&server.url(), None).unwrap();
    let mut conn = CommandConnection::open(&endpoint).await.unwrap();
    set(&mut conn).await.unwrap();
    let mut admin = server.manager().await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();
    // The first command may meet the closed connection; ConnectionManager reconnects.
    let mut ok = false;
    for _ in 0..50 {
        if set(&mut conn).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the connection came back");
    assert_eq!(endpoint.generation(), 0, "no master lookup for a fixed URL");
}
