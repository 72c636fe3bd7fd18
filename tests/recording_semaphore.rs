//! The semaphore scripts against a real redis-server: Python's key names, TTLs and atomic
//! semantics, rqw's waiting and handover, and many businesses and calls at once.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use rqw::handlers::recording::params::{BusinessId, RecordingParams, Sid};
use rqw::handlers::recording::semaphore::{Acquire, Leave, Poll, Semaphore};
use rqw::handlers::recording::slot::{acquire_slot, SlotOutcome};
use rqw::handlers::{JobArgs, Measure, Recorder};
use serde_pickle::Value;
use support::reply_dropper::{Drop as Cut, ReplyDropper};
use support::{call_sid, RedisServer};
use tokio_util::sync::CancellationToken;

const POLL: Duration = Duration::from_millis(20);

/// A job's wait for a slot, owning what it needs (to be spawned); no measure is recorded.
async fn acquire(
    sem: Semaphore,
    b: BusinessId,
    call: Sid,
    path: std::path::PathBuf,
    cancel: CancellationToken,
) -> Result<SlotOutcome, rqw::handlers::recording::slot::SlotError> {
    acquire_slot(&sem, &b, &call, &path, POLL, &cancel, &Recorder::default()).await
}

fn sid(n: u32) -> Sid {
    Sid::parse("CA", &call_sid(n)).unwrap()
}

fn business(id: i64) -> BusinessId {
    let args = JobArgs {
        args: vec![
            Value::String(call_sid(0)),
            Value::String("/x".into()),
            Value::I64(id),
        ],
        kwargs: Default::default(),
    };
    RecordingParams::from_args(&args).unwrap().business_id
}

async fn ttl(conn: &mut rqw::store::connection::CommandConnection, key: &str) -> i64 {
    conn.ttl(key).await.unwrap()
}

#[tokio::test]
async fn python_keys_and_ttls() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(42);
    for n in 1..=5 {
        assert_eq!(
            sem.acquire(&b, &sid(n), "t").await.unwrap(),
            Acquire::Acquired
        );
    }
    let slots: Vec<String> = conn.smembers("rec_slots:42").await.unwrap();
    assert_eq!(slots.len(), 5);
    let inflight: String = conn
        .get(format!("rec_inflight:42:{}", call_sid(1)))
        .await
        .unwrap();
    assert_eq!(inflight, "processing");
    assert!(
        (895..=900).contains(&ttl(&mut conn, &format!("rec_inflight:42:{}", call_sid(1))).await)
    );

    assert_eq!(
        sem.acquire(&b, &sid(6), "t6").await.unwrap(),
        Acquire::Queued { position: 1 }
    );
    assert_eq!(
        sem.acquire(&b, &sid(7), "t7").await.unwrap(),
        Acquire::Queued { position: 2 }
    );
    let queue: Vec<String> = conn.lrange("rec_queue:42", 0, -1).await.unwrap();
    assert_eq!(queue, [call_sid(6), call_sid(7)]);
    assert!(conn
        .sismember::<_, _, bool>("rec_queued:42", call_sid(6))
        .await
        .unwrap());
    assert!((1195..=1200).contains(&ttl(&mut conn, "rec_queued:42").await));
    assert!((25..=30).contains(&ttl(&mut conn, &format!("rec_waiter:42:{}", call_sid(6))).await));

    assert_eq!(
        sem.acquire(&b, &sid(1), "x").await.unwrap(),
        Acquire::Inflight
    );
    assert_eq!(
        sem.acquire(&b, &sid(6), "x").await.unwrap(),
        Acquire::AlreadyQueued
    );

    // Release hands the slot to the head of the queue, as Python's does.
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), Some(call_sid(6)));
    let slots: Vec<String> = conn.smembers("rec_slots:42").await.unwrap();
    assert!(slots.contains(&call_sid(6)) && !slots.contains(&call_sid(1)));
    assert!(!conn
        .exists::<_, bool>(format!("rec_inflight:42:{}", call_sid(1)))
        .await
        .unwrap());
    assert!(
        (895..=900).contains(&ttl(&mut conn, &format!("rec_inflight:42:{}", call_sid(6))).await)
    );
    assert!(!conn
        .sismember::<_, _, bool>("rec_queued:42", call_sid(6))
        .await
        .unwrap());
    assert_eq!(
        conn.lrange::<_, Vec<String>>("rec_queue:42", 0, -1)
            .await
            .unwrap(),
        [call_sid(7)]
    );

    // The waiter notices and claims it; nobody else can.
    assert_eq!(
        sem.poll(&b, &sid(7), "t7").await.unwrap(),
        Poll::Queued { position: 1 }
    );
    assert_eq!(
        sem.poll(&b, &sid(6), "someone-else").await.unwrap(),
        Poll::Other
    );
    assert_eq!(sem.poll(&b, &sid(6), "t6").await.unwrap(), Poll::Claimed);
    assert!(!conn
        .exists::<_, bool>(format!("rec_handover:42:{}", call_sid(6)))
        .await
        .unwrap());
    // The claimant's token stays until its release (a repeat after a lost reply claims
    // again); the release takes it away with the slot.
    let holder: String = conn
        .get(format!("rec_waiter:42:{}", call_sid(6)))
        .await
        .unwrap();
    assert_eq!(holder, "t6");
    sem.release(&b, &sid(6)).await.unwrap();
    assert!(!conn
        .exists::<_, bool>(format!("rec_waiter:42:{}", call_sid(6)))
        .await
        .unwrap());
}

#[tokio::test]
async fn cleanup_frees_slots_of_crashed_downloads() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(7);
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    let _: () = conn
        .del(format!("rec_inflight:7:{}", call_sid(2)))
        .await
        .unwrap();
    assert_eq!(sem.cleanup(&b).await.unwrap(), 1);
    assert_eq!(conn.scard::<_, i64>("rec_slots:7").await.unwrap(), 4);
    // acquire runs cleanup too: a crashed slot never blocks a new download.
    let _: () = conn
        .del(format!("rec_inflight:7:{}", call_sid(3)))
        .await
        .unwrap();
    assert_eq!(
        sem.acquire(&b, &sid(8), "t").await.unwrap(),
        Acquire::Acquired
    );
    assert_eq!(
        sem.acquire(&b, &sid(9), "t").await.unwrap(),
        Acquire::Acquired
    );
    assert_eq!(
        sem.acquire(&b, &sid(10), "t").await.unwrap(),
        Acquire::Queued { position: 1 }
    );
}

#[tokio::test]
async fn mark_failed_sets_the_marker_and_clears_the_dedup_key() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let dedup = format!("job:download:42:{}", call_sid(1));
    let _: () = conn.set_ex(&dedup, "job-1", 120).await.unwrap();
    sem.mark_failed(&business(42), &sid(1), "Twilio refused the credentials")
        .await
        .unwrap();
    let failed = format!("rec_failed:42:{}", call_sid(1));
    assert_eq!(
        conn.get::<_, String>(&failed).await.unwrap(),
        "Twilio refused the credentials"
    );
    assert!((3595..=3600).contains(&ttl(&mut conn, &failed).await));
    assert!(!conn.exists::<_, bool>(&dedup).await.unwrap());
}

#[tokio::test]
async fn business_none_uses_pythons_interpolation() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    assert_eq!(
        sem.acquire(&BusinessId::none(), &sid(1), "t")
            .await
            .unwrap(),
        Acquire::Acquired
    );
    assert!(conn
        .sismember::<_, _, bool>("rec_slots:None", call_sid(1))
        .await
        .unwrap());
    assert!(conn
        .exists::<_, bool>(format!("rec_inflight:None:{}", call_sid(1)))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_waiting_job_gets_the_handed_over_slot() {
    let redis = RedisServer::start();
    let sem = Semaphore::new(redis.manager().await);
    let b = business(1);
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    let cancel = CancellationToken::new();
    let waits = Arc::new(AtomicUsize::new(0));
    let counted = waits.clone();
    let recorder = Recorder::new(move |m| {
        if m == Measure::RecordingSemaphoreWait {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (sem2, b2, path) = (sem.clone(), b.clone(), dir.path().to_path_buf());
    let waiter = tokio::spawn(async move {
        acquire_slot(&sem2, &b2, &sid(6), &path, POLL, &cancel, &recorder).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "no free slot: it must wait, not fail"
    );
    assert_eq!(sem.release(&b, &sid(3)).await.unwrap(), Some(call_sid(6)));
    let outcome = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let SlotOutcome::Acquired(guard) = outcome else {
        panic!("expected a slot, got {outcome:?}")
    };
    assert_eq!(
        waits.load(Ordering::SeqCst),
        1,
        "the wait is reported once, through the context's recorder"
    );
    guard.release().await;
}

#[tokio::test]
async fn a_handover_by_python_without_marker_is_honoured() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(2);
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    assert_eq!(
        sem.acquire(&b, &sid(6), "tok").await.unwrap(),
        Acquire::Queued { position: 1 }
    );
    // Python's release: no rec_handover marker.
    let next: String = conn.lpop("rec_queue:2", None).await.unwrap();
    let _: () = redis::pipe()
        .srem("rec_slots:2", call_sid(1))
        .del(format!("rec_inflight:2:{}", call_sid(1)))
        .srem("rec_queued:2", &next)
        .sadd("rec_slots:2", &next)
        .set_ex(format!("rec_inflight:2:{next}"), "processing", 900)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sem.poll(&b, &sid(6), "tok").await.unwrap(), Poll::Claimed);
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_wait_list() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(3);
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    let cancel = CancellationToken::new();
    let (sem2, b2, path, c2) = (
        sem.clone(),
        b.clone(),
        dir.path().to_path_buf(),
        cancel.clone(),
    );
    let waiter = tokio::spawn(acquire(sem2, b2, sid(6), path, c2));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        conn.lrange::<_, Vec<String>>("rec_queue:3", 0, -1)
            .await
            .unwrap(),
        [call_sid(6)]
    );
    cancel.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(2), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, SlotOutcome::Cancelled));
    assert!(conn
        .lrange::<_, Vec<String>>("rec_queue:3", 0, -1)
        .await
        .unwrap()
        .is_empty());
    assert!(!conn
        .sismember::<_, _, bool>("rec_queued:3", call_sid(6))
        .await
        .unwrap());
    assert!(!conn
        .exists::<_, bool>(format!("rec_waiter:3:{}", call_sid(6)))
        .await
        .unwrap());
}

#[tokio::test]
async fn a_slot_handed_to_a_leaving_waiter_is_passed_on() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(4);
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    sem.acquire(&b, &sid(6), "t6").await.unwrap();
    sem.acquire(&b, &sid(7), "t7").await.unwrap();
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), Some(call_sid(6)));
    assert_eq!(sem.leave(&b, &sid(6), "t6").await.unwrap(), Leave::Handed);
    assert_eq!(sem.release(&b, &sid(6)).await.unwrap(), Some(call_sid(7)));
    assert_eq!(sem.poll(&b, &sid(7), "t7").await.unwrap(), Poll::Claimed);
    assert_eq!(conn.scard::<_, i64>("rec_slots:4").await.unwrap(), 5);
    assert_eq!(
        sem.leave(&b, &sid(7), "not-the-waiter").await.unwrap(),
        Leave::NotWaiting
    );
}

#[tokio::test]
async fn a_duplicate_job_waits_and_finds_the_file() {
    let redis = RedisServer::start();
    let sem = Semaphore::new(redis.manager().await);
    let b = business(5);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        sem.acquire(&b, &sid(1), "first").await.unwrap(),
        Acquire::Acquired
    );
    let cancel = CancellationToken::new();
    let (sem2, b2, path) = (sem.clone(), b.clone(), dir.path().to_path_buf());
    let dup = tokio::spawn(acquire(sem2, b2, sid(1), path, cancel));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!dup.is_finished());
    std::fs::write(
        dir.path().join(format!("{}.mp3", call_sid(1))),
        vec![0u8; 2000],
    )
    .unwrap();
    sem.release(&b, &sid(1)).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), dup)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, SlotOutcome::Cached(2000)), "{outcome:?}");
}

#[tokio::test]
async fn a_dead_waiters_place_is_adopted() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let b = business(6);
    let dir = tempfile::tempdir().unwrap();
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    sem.acquire(&b, &sid(6), "dead").await.unwrap();
    let _: () = conn
        .del(format!("rec_waiter:6:{}", call_sid(6)))
        .await
        .unwrap(); // its TTL ran out
    let cancel = CancellationToken::new();
    let (sem2, b2, path) = (sem.clone(), b.clone(), dir.path().to_path_buf());
    let retry = tokio::spawn(acquire(sem2, b2, sid(6), path, cancel));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(conn
        .exists::<_, bool>(format!("rec_waiter:6:{}", call_sid(6)))
        .await
        .unwrap());
    sem.release(&b, &sid(2)).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), retry)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, SlotOutcome::Acquired(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_businesses_and_calls_never_exceed_five_slots() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let dir = tempfile::tempdir().unwrap();
    let active: Arc<Mutex<HashMap<i64, (usize, usize)>>> = Arc::default();
    let mut tasks = Vec::new();
    for b in 0..12i64 {
        for n in 0..15u32 {
            let (sem, active, path) = (sem.clone(), active.clone(), dir.path().to_path_buf());
            tasks.push(tokio::spawn(async move {
                let business = business(b);
                let call = sid(b as u32 * 1000 + n);
                let cancel = CancellationToken::new();
                let outcome = acquire_slot(
                    &sem,
                    &business,
                    &call,
                    &path,
                    POLL,
                    &cancel,
                    &Recorder::default(),
                )
                .await
                .unwrap();
                let SlotOutcome::Acquired(guard) = outcome else {
                    panic!("{outcome:?}")
                };
                {
                    let mut map = active.lock().unwrap();
                    let entry = map.entry(b).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(entry.0);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                active.lock().unwrap().entry(b).or_default().0 -= 1;
                guard.release().await;
            }));
        }
    }
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
    for (b, (now, max)) in active.lock().unwrap().iter() {
        assert_eq!(*now, 0);
        assert!(
            *max <= 5 && *max >= 1,
            "business {b} had {max} downloads at once"
        );
        assert_eq!(*max, 5, "business {b} never used all its slots");
    }
    for b in 0..12 {
        assert_eq!(
            conn.scard::<_, i64>(format!("rec_slots:{b}"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            conn.llen::<_, i64>(format!("rec_queue:{b}")).await.unwrap(),
            0
        );
        assert_eq!(
            conn.scard::<_, i64>(format!("rec_queued:{b}"))
                .await
                .unwrap(),
            0
        );
    }
    let leftovers: Vec<String> = conn.keys("rec_*").await.unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A semaphore whose connection goes through a proxy that can lose a reply, with every script
/// loaded (so the armed call is the one that runs).
async fn lossy(redis: &RedisServer, b: &BusinessId) -> (ReplyDropper, Semaphore) {
    let proxy = ReplyDropper::start(redis.port()).await;
    let endpoint = rqw::store::connection::Endpoint::fixed(&proxy.url(), None).unwrap();
    let conn = rqw::store::connection::CommandConnection::open(&endpoint)
        .await
        .unwrap();
    let sem = Semaphore::new(conn);
    let warm = sid(99);
    sem.acquire(b, &warm, "w").await.unwrap();
    sem.poll(b, &warm, "w").await.unwrap();
    sem.release(b, &warm).await.unwrap();
    sem.leave(b, &warm, "w").await.unwrap();
    (proxy, sem)
}

#[tokio::test]
async fn an_acquire_whose_reply_is_lost_gets_its_own_slot() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let b = business(7);
    let (proxy, sem) = lossy(&redis, &b).await;
    let dir = tempfile::tempdir().unwrap();
    proxy.arm(call_sid(1).as_bytes(), Cut::Reply);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        acquire_slot(
            &sem,
            &b,
            &sid(1),
            dir.path(),
            POLL,
            &CancellationToken::new(),
            &Recorder::default(),
        ),
    )
    .await
    .expect("not waiting for itself")
    .unwrap();
    assert_eq!(proxy.fired(), 1);
    let SlotOutcome::Acquired(guard) = outcome else {
        panic!("expected its slot, got {outcome:?}")
    };
    let slots: Vec<String> = conn.smembers("rec_slots:7").await.unwrap();
    assert_eq!(slots, vec![call_sid(1)], "one slot, taken once");
    guard.release().await;
    assert_eq!(conn.scard::<_, i64>("rec_slots:7").await.unwrap(), 0);
}

#[tokio::test]
async fn a_release_whose_reply_is_lost_hands_over_once() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let b = business(8);
    let (proxy, sem) = lossy(&redis, &b).await;
    for n in 1..=5 {
        assert_eq!(
            sem.acquire(&b, &sid(n), "t").await.unwrap(),
            Acquire::Acquired
        );
    }
    for n in 6..=7 {
        assert!(matches!(
            sem.acquire(&b, &sid(n), &format!("t{n}")).await.unwrap(),
            Acquire::Queued { .. }
        ));
    }
    proxy.arm(call_sid(1).as_bytes(), Cut::Reply);
    assert!(
        sem.release(&b, &sid(1)).await.is_err(),
        "the reply was lost"
    );
    // It ran: the slot went to the first waiter. The repeat hands nothing over again.
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), None);
    let mut slots: Vec<String> = conn.smembers("rec_slots:8").await.unwrap();
    slots.sort();
    let mut want: Vec<String> = (2..=6).map(call_sid).collect();
    want.sort();
    assert_eq!(
        slots, want,
        "five slots, the sixth call holds the freed one"
    );
    let queue: Vec<String> = conn.lrange("rec_queue:8", 0, -1).await.unwrap();
    assert_eq!(queue, vec![call_sid(7)], "the seventh still waits");
    assert_eq!(sem.poll(&b, &sid(6), "t6").await.unwrap(), Poll::Claimed);
}

#[tokio::test]
async fn a_claim_whose_reply_is_lost_is_claimed_again() {
    let redis = RedisServer::start();
    let b = business(9);
    let (proxy, sem) = lossy(&redis, &b).await;
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    assert!(matches!(
        sem.acquire(&b, &sid(6), "mine").await.unwrap(),
        Acquire::Queued { .. }
    ));
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), Some(call_sid(6)));
    proxy.arm(call_sid(6).as_bytes(), Cut::Reply);
    assert!(sem.poll(&b, &sid(6), "mine").await.is_err());
    assert_eq!(sem.poll(&b, &sid(6), "mine").await.unwrap(), Poll::Claimed);
    assert_eq!(
        sem.poll(&b, &sid(6), "someone else").await.unwrap(),
        Poll::Other,
        "and nobody else's"
    );
}

#[tokio::test]
async fn a_leave_whose_reply_is_lost_still_hands_the_slot_on() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let b = business(10);
    let (proxy, sem) = lossy(&redis, &b).await;
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    sem.acquire(&b, &sid(6), "t6").await.unwrap();
    sem.acquire(&b, &sid(7), "t7").await.unwrap();
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), Some(call_sid(6)));
    // The cancelled waiter's leave runs (the slot was handed to it), its reply is lost.
    proxy.arm(call_sid(6).as_bytes(), Cut::Reply);
    assert!(sem.leave(&b, &sid(6), "t6").await.is_err());
    assert_eq!(sem.leave(&b, &sid(6), "t6").await.unwrap(), Leave::Handed);
    assert_eq!(sem.release(&b, &sid(6)).await.unwrap(), Some(call_sid(7)));
    assert_eq!(sem.poll(&b, &sid(7), "t7").await.unwrap(), Poll::Claimed);
    assert_eq!(conn.scard::<_, i64>("rec_slots:10").await.unwrap(), 5);
    // A lost 'left' answers 'not waiting' when repeated; the call is out of the list.
    sem.acquire(&b, &sid(8), "t8").await.unwrap();
    proxy.arm(call_sid(8).as_bytes(), Cut::Reply);
    assert!(sem.leave(&b, &sid(8), "t8").await.is_err());
    assert_eq!(
        sem.leave(&b, &sid(8), "t8").await.unwrap(),
        Leave::NotWaiting
    );
    assert_eq!(conn.llen::<_, i64>("rec_queue:10").await.unwrap(), 0);
}

/// Semaphore keys of the wrong type (issue 13): the job fails at once with a reason naming
/// the business, instead of retrying until its timeout; no script stops halfway.
#[tokio::test]
async fn unusable_semaphore_keys_fail_at_once_and_never_half_write() {
    let redis = RedisServer::start();
    let mut conn = redis.manager().await;
    let sem = Semaphore::new(conn.clone());
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();

    // rec_slots of the wrong type: refused on the first call.
    let b = business(7);
    let _: () = conn.set("rec_slots:7", "not a set").await.unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(2),
        acquire(
            sem.clone(),
            b.clone(),
            sid(1),
            dir.path().into(),
            cancel.clone(),
        ),
    )
    .await
    .expect("fails at once, does not spin");
    let error = outcome.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert!(
        error.to_string().contains("business 7 cannot be used")
            && error.to_string().contains("WRONGTYPE"),
        "{error}"
    );

    // A full business whose wait list is of the wrong type: acquire refuses before any
    // write (rec_queued is not touched), and the job fails at once.
    let b = business(8);
    for n in 1..=5 {
        sem.acquire(&b, &sid(n), "t").await.unwrap();
    }
    let _: () = conn.set("rec_queue:8", "not a list").await.unwrap();
    let error = acquire(
        sem.clone(),
        b.clone(),
        sid(6),
        dir.path().into(),
        cancel.clone(),
    )
    .await
    .unwrap_err();
    assert!(error.is_permanent(), "{error}");
    assert!(!conn.exists::<_, bool>("rec_queued:8").await.unwrap());
    // A release still frees the slot whatever the wait list holds.
    assert_eq!(sem.release(&b, &sid(1)).await.unwrap(), None);
    let slots: Vec<String> = conn.smembers("rec_slots:8").await.unwrap();
    assert_eq!(slots.len(), 4);
    assert!(!conn
        .exists::<_, bool>(format!("rec_inflight:8:{}", call_sid(1)))
        .await
        .unwrap());
}
