//! The download against a local fake Twilio: formats order, status codes, redirects and
//! credentials, size cap, tiny and stalled bodies, latency; HTTPS through rustls, the connect
//! timeout, and the read-buffer cap that bounds memory per download.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use rqw::handlers::recording::download::{DownloadError, Downloader};
use rqw::handlers::recording::fetch::{Fetcher, READ_BUFFER_BYTES};
use rqw::handlers::recording::params::Sid;
use rqw::handlers::recording::RecordingConfig;
use support::{call_sid, files, FakeHttp, Reply};
use tokio::io::AsyncWriteExt;
use url::Url;

const PATH: &str = "/2010-04-01/Accounts/AC1/Recordings/RE1";

fn config(base: &str, dir: &std::path::Path) -> RecordingConfig {
    let dir = dir.to_string_lossy().into_owned();
    let base = base.to_string();
    let mut c = RecordingConfig::from_lookup(|name| match name {
        "TWILIO_ACCOUNT_SID" => Some("AC1".into()),
        "TWILIO_AUTH_TOKEN" => Some("secret-token".into()),
        "TWILIO_API_BASE" => Some(base.clone()),
        "RECORDINGS_DIR" => Some(dir.clone()),
        "RECORDING_MAX_BYTES" => Some("100000".into()),
        _ => None,
    })
    .unwrap();
    c.not_found_delay = Duration::from_millis(50);
    c.request_timeout = Duration::from_secs(2);
    c
}

fn downloader(c: &RecordingConfig) -> Downloader {
    Downloader::new(c, c.credentials.clone().unwrap()).unwrap()
}

fn sid() -> Sid {
    Sid::parse("CA", &call_sid(1)).unwrap()
}

fn url(server: &FakeHttp) -> Url {
    Url::parse(&format!("{}{PATH}", server.base())).unwrap()
}

fn expected_auth() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC1:secret-token")
    )
}

#[tokio::test]
async fn tries_formats_in_order_and_pauses_once_after_404() {
    let server = FakeHttp::start(|_| Reply::Status(404)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&server.base(), dir.path());
    c.not_found_delay = Duration::from_millis(300);
    let started = Instant::now();
    let err = downloader(&c)
        .download(&sid(), &url(&server))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, DownloadError::Unavailable { .. }), "{err}");
    assert!(!err.is_permanent());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1200),
        "{elapsed:?}"
    );
    assert_eq!(
        server.targets(),
        [
            format!("{PATH}.wav?RequestedChannels=2"),
            format!("{PATH}.wav"),
            format!("{PATH}.mp3"),
            PATH.to_string()
        ]
    );
    assert!(server
        .seen()
        .iter()
        .all(|s| s.authorization.as_deref() == Some(expected_auth().as_str())));
    assert!(server.seen().iter().all(|s| s
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("rqw-recording/"))));
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn saves_the_first_good_format() {
    let server = FakeHttp::start(|s| {
        if s.target.ends_with(".mp3") {
            Reply::Body(200, vec![b'm'; 5000])
        } else if s.target.contains("RequestedChannels") {
            Reply::Status(503)
        } else {
            Reply::Status(404)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let done = downloader(&config(&server.base(), dir.path()))
        .download(&sid(), &url(&server))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.format), (5000, "mp3"));
    assert_eq!(files(dir.path()), [format!("{}.mp3", call_sid(1))]);
    assert_eq!(std::fs::read(done.path).unwrap(), vec![b'm'; 5000]);
    assert_eq!(server.targets().len(), 3);
}

#[tokio::test]
async fn unauthorized_and_forbidden_stop_at_once() {
    for code in [401u16, 403] {
        let server = FakeHttp::start(move |_| Reply::Status(code)).await;
        let dir = tempfile::tempdir().unwrap();
        let err = downloader(&config(&server.base(), dir.path()))
            .download(&sid(), &url(&server))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            DownloadError::Unauthorized {
                status: code,
                format: "wav2"
            }
        );
        assert!(err.is_permanent());
        assert!(!err.to_string().contains("secret-token"));
        assert_eq!(server.targets().len(), 1);
    }
}

#[tokio::test]
async fn redirect_to_another_origin_goes_without_credentials() {
    let storage = FakeHttp::start(|_| Reply::Body(200, vec![b's'; 4000])).await;
    let storage_base = storage.base();
    let twilio = FakeHttp::start(move |s| {
        if s.target.contains("RequestedChannels") {
            Reply::Redirect(format!("{storage_base}/bucket/rec.wav?Signature=abc"))
        } else {
            Reply::Status(500)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let done = downloader(&config(&twilio.base(), dir.path()))
        .download(&sid(), &url(&twilio))
        .await
        .unwrap();
    assert_eq!(done.bytes, 4000);
    assert_eq!(
        twilio.seen()[0].authorization.as_deref(),
        Some(expected_auth().as_str())
    );
    let at_storage = storage.seen();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].target, "/bucket/rec.wav?Signature=abc");
    assert_eq!(
        at_storage[0].authorization, None,
        "credentials must not leave the Twilio origin"
    );
}

#[tokio::test]
async fn same_origin_redirect_keeps_credentials_and_loops_are_bounded() {
    let server = FakeHttp::start(|s| match s.target.as_str() {
        t if t.contains("RequestedChannels") => Reply::Redirect("/moved/rec.wav".into()),
        "/moved/rec.wav" => Reply::Body(200, vec![1; 2000]),
        _ => Reply::Redirect("/loop".into()),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    downloader(&config(&server.base(), dir.path()))
        .download(&sid(), &url(&server))
        .await
        .unwrap();
    assert!(server.seen().iter().all(|s| s.authorization.is_some()));

    let looping = FakeHttp::start(|_| Reply::Redirect("/loop".into())).await;
    let err = downloader(&config(&looping.base(), dir.path()))
        .download(&sid(), &url(&looping))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than 5 redirects"), "{err}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn tiny_bodies_do_not_count() {
    let server = FakeHttp::start(|_| Reply::Body(200, vec![0; 1000])).await;
    let dir = tempfile::tempdir().unwrap();
    let err = downloader(&config(&server.base(), dir.path()))
        .download(&sid(), &url(&server))
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::Unavailable { .. }));
    assert_eq!(server.targets().len(), 4);
    let undeclared = FakeHttp::start(|_| Reply::Stream {
        len: 900,
        fill: 1,
        declare: false,
    })
    .await;
    let err = downloader(&config(&undeclared.base(), dir.path()))
        .download(&sid(), &url(&undeclared))
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::Unavailable { .. }));
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
}

#[tokio::test]
async fn bodies_over_the_cap_are_aborted_and_removed() {
    for declare in [true, false] {
        let server = FakeHttp::start(move |_| Reply::Stream {
            len: 5_000_000,
            fill: 9,
            declare,
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let err = downloader(&config(&server.base(), dir.path()))
            .download(&sid(), &url(&server))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DownloadError::TooLarge { max: 100_000, .. }),
            "{err}"
        );
        assert!(err.is_permanent());
        assert!(
            files(dir.path()).is_empty(),
            "declare={declare}: {:?}",
            files(dir.path())
        );
    }
}

#[tokio::test]
async fn a_wav_over_the_cap_falls_back_to_mp3() {
    let server = FakeHttp::start(|s| {
        if s.target.ends_with(".mp3") {
            Reply::Stream {
                len: 50_000,
                fill: 3,
                declare: false,
            }
        } else {
            Reply::Stream {
                len: 3_000_000,
                fill: 2,
                declare: false,
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let done = downloader(&config(&server.base(), dir.path()))
        .download(&sid(), &url(&server))
        .await
        .unwrap();
    assert_eq!((done.bytes, done.format), (50_000, "mp3"));
    assert_eq!(files(dir.path()).len(), 1);
}

#[tokio::test]
async fn large_bodies_stream_to_disk() {
    let server = FakeHttp::start(|_| Reply::Stream {
        len: 40_000_000,
        fill: 5,
        declare: true,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&server.base(), dir.path());
    c.max_bytes = 64_000_000;
    let done = downloader(&c)
        .download(&sid(), &url(&server))
        .await
        .unwrap();
    assert_eq!(done.bytes, 40_000_000);
    assert_eq!(std::fs::metadata(done.path).unwrap().len(), 40_000_000);
}

#[tokio::test]
async fn stalled_body_is_transient_and_leaves_no_file() {
    let server = FakeHttp::start(|s| {
        if s.target.contains("RequestedChannels") {
            Reply::Stall {
                declared: 50_000,
                sent: 2_000,
            }
        } else {
            Reply::Status(404)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&server.base(), dir.path());
    c.request_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = downloader(&c)
        .download(&sid(), &url(&server))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("stalled"), "{err}");
    assert!(!err.is_permanent());
    assert!(files(dir.path()).is_empty());
}

#[tokio::test]
async fn slow_headers_time_out_but_latency_within_the_limit_is_fine() {
    let slow = FakeHttp::start(|_| {
        Reply::Delay(
            Duration::from_millis(800),
            Box::new(Reply::Body(200, vec![1; 2000])),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&slow.base(), dir.path());
    c.request_timeout = Duration::from_millis(200);
    let err = downloader(&c)
        .download(&sid(), &url(&slow))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no response within"), "{err}");
    assert!(!err.is_permanent());
    c.request_timeout = Duration::from_secs(3);
    let done = downloader(&c).download(&sid(), &url(&slow)).await.unwrap();
    assert_eq!(done.bytes, 2000);
}

/// Downloads from `base` (nothing must be written) and returns the error, which must be
/// transient.
async fn unavailable(base: &str) -> DownloadError {
    let dir = tempfile::tempdir().unwrap();
    let url = Url::parse(&format!("{base}{PATH}")).unwrap();
    let err = downloader(&config(base, dir.path()))
        .download(&sid(), &url)
        .await
        .unwrap_err();
    assert!(matches!(err, DownloadError::Unavailable { .. }), "{err}");
    assert!(files(dir.path()).is_empty(), "nothing is left behind");
    err
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = unavailable(&format!("http://127.0.0.1:{port}")).await;
    assert!(err.to_string().contains("network error"), "{err}");
    assert!(!err.to_string().contains(PATH), "{err}");
}

#[tokio::test]
async fn body_chunks_never_exceed_the_read_buffer_cap() {
    let len = 8_000_000u64;
    let server = FakeHttp::start(move |_| Reply::Stream {
        len,
        fill: 4,
        declare: true,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = config(&server.base(), dir.path());
    let fetcher = Fetcher::new(&c, c.credentials.clone().unwrap()).unwrap();
    let mut response = fetcher.get(&url(&server)).await.unwrap();
    assert_eq!(response.content_length(), Some(len));
    let (mut total, mut largest, mut first) = (0u64, 0usize, true);
    while let Some(chunk) = response.chunk().await.unwrap() {
        if first {
            // Let the socket fill up: with hyper's default buffer, reads would now grow it
            // (and the chunks cut from it) to about 400 KB.
            first = false;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        total += chunk.len() as u64;
        largest = largest.max(chunk.len());
    }
    assert_eq!(total, len);
    // The buffer's allocation may be rounded up to twice the cap (see READ_BUFFER_BYTES).
    assert!(
        largest <= 2 * READ_BUFFER_BYTES,
        "a chunk of {largest} bytes"
    );
}

/// Accepts connections and answers each at once with a plain-text HTTP response.
async fn plain_http_answering_at_once() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    format!("https://{addr}")
}

#[tokio::test]
async fn https_goes_through_tls_and_a_non_tls_server_is_a_network_error() {
    let err = unavailable(&plain_http_answering_at_once().await).await;
    let text = err.to_string();
    assert!(text.contains("network error"), "{text}");
    assert!(!text.contains("scheme"), "https must be supported: {text}");
    assert!(
        !text.contains("secret-token") && !text.contains(PATH),
        "{text}"
    );
}

#[tokio::test]
async fn connect_timeout_covers_the_tls_handshake() {
    // The kernel completes the TCP handshake for a listener nobody accepts from; the TLS
    // handshake then never gets an answer.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", silent.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&base, dir.path());
    c.connect_timeout = Duration::from_millis(200);
    c.request_timeout = Duration::from_secs(5);
    c.not_found_delay = Duration::ZERO;
    let url = Url::parse(&format!("{base}{PATH}")).unwrap();
    let started = Instant::now();
    let err = downloader(&c).download(&sid(), &url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, DownloadError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("connect timed out"), "{err}");
    drop(silent);
}
