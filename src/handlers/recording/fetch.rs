//! One HTTP GET against Twilio, following redirects by hand so credentials never leave the
//! trusted origin.
//!
//! The client is hyper-util's pooled HTTP/1.1 client over a rustls connector (the system's
//! trust store, through rustls-platform-verifier), with no redirect handling of its own: each
//! hop is checked by [`urls::redirect`](super::urls::redirect), and basic auth is attached
//! only to requests whose origin is the configured `TWILIO_API_BASE`'s. The token never appears in an error or
//! a log line, and neither does a URL (a redirect target may carry a storage signature).
//!
//! Memory per download is bounded by the connection's read buffer, capped at
//! [`READ_BUFFER_BYTES`]: hyper's default (about 400 KB, grown whenever a read fills it) made
//! 64 concurrent large downloads cost about 50 MB of buffers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::{Origin, Url};

use super::config::{Credentials, RecordingConfig};
use super::urls::{self, UrlError};

/// Sent as `User-Agent`.
const USER_AGENT_VALUE: &str = concat!("rqw-recording/", env!("CARGO_PKG_VERSION"));
/// Largest read buffer hyper aims for on one connection (`http1_max_buf_size`). hyper reads
/// the body into it and hands out chunks cut from it; `bytes` may round the allocation up to
/// twice the size asked for, so a chunk is at most `2 * READ_BUFFER_BYTES`, and a download
/// holds a few such buffers at once (the one being filled, a chunk queued for the job, one
/// being written).
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Idle keep-alive connections are closed after this long (hyper-util's default, as before).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Errors the connector and client return.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request that produced no usable response. All of these are worth retrying later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No response headers within the request timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Connecting or talking to the server failed.
    #[error("network error: {0}")]
    Network(String),
    /// A redirect that cannot be followed.
    #[error("{0}")]
    Redirect(#[from] UrlError),
}

/// The HTTP client could not be built (TLS set-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClientError(String);

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    inner: hyper::Response<Incoming>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The body's length when the server declared it (`Content-Length`).
    pub fn content_length(&self) -> Option<u64> {
        self.inner.body().size_hint().exact()
    }

    /// The next piece of the body; `None` at its end. Trailers are skipped.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            match self.inner.body_mut().frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// The TLS/TCP connector with a deadline on the whole connection set-up (DNS, TCP, TLS).
#[derive(Debug, Clone)]
struct Connector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for Connector {
    type Response = <HttpsConnector<HttpConnector> as tower_service::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {timeout:?}"),
                )
                .into()),
            }
        })
    }
}

/// Makes authenticated GETs to Twilio.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client<Connector, Empty<Bytes>>,
    trusted: Origin,
    /// `Basic …`, marked sensitive (its `Debug` hides it).
    authorization: HeaderValue,
    max_redirects: usize,
    request_timeout: Duration,
}

impl Fetcher {
    /// Builds the HTTP client (no automatic redirects, connect timeout from `config`, read
    /// buffer capped at [`READ_BUFFER_BYTES`]).
    pub fn new(config: &RecordingConfig, credentials: Credentials) -> Result<Self, ClientError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let https = HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| ClientError(format!("TLS set-up failed: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let connector = Connector {
            inner: https,
            timeout: config.connect_timeout,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http1_max_buf_size(READ_BUFFER_BYTES)
            .build(connector);
        let pair = format!("{}:{}", credentials.account_sid, credentials.auth_token);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| ClientError("credentials cannot form a header".to_string()))?;
        authorization.set_sensitive(true);
        Ok(Self {
            client,
            trusted: config.api_base.origin(),
            authorization,
            max_redirects: config.max_redirects,
            request_timeout: config.request_timeout,
        })
    }

    /// GETs `url`, following redirects; returns the first non-redirect response (its body not
    /// yet read). Credentials are sent only to the trusted origin.
    pub async fn get(&self, url: &Url) -> Result<Response, FetchError> {
        let mut current = url.clone();
        let mut send_credentials = urls::may_send_credentials(&current, &self.trusted);
        let mut followed = 0;
        loop {
            let request = self.request(&current, send_credentials)?;
            let response = match tokio::time::timeout(
                self.request_timeout,
                self.client.request(request),
            )
            .await
            {
                Err(_) => return Err(FetchError::Timeout(self.request_timeout)),
                Ok(Err(e)) => return Err(FetchError::Network(scrub(describe(&e), &current))),
                Ok(Ok(response)) => response,
            };
            if !is_redirect(response.status()) {
                return Ok(Response { inner: response });
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok());
            let hop = urls::redirect(
                &current,
                location,
                &self.trusted,
                followed,
                self.max_redirects,
            )?;
            tracing::debug!(
                from = %current.origin().ascii_serialization(),
                to = %hop.url.origin().ascii_serialization(),
                credentials = hop.send_credentials,
                "following redirect"
            );
            followed += 1;
            current = hop.url;
            send_credentials = hop.send_credentials;
        }
    }

    /// The GET request for `url` (without its fragment), with the credentials when asked.
    fn request(
        &self,
        url: &Url,
        send_credentials: bool,
    ) -> Result<Request<Empty<Bytes>>, FetchError> {
        let mut target = url.clone();
        target.set_fragment(None);
        let uri: Uri = target
            .as_str()
            .parse()
            .map_err(|_| FetchError::Network("the request URL is not a valid URI".to_string()))?;
        let mut builder = Request::get(uri)
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE))
            .header(ACCEPT, HeaderValue::from_static("*/*"));
        if send_credentials {
            builder = builder.header(AUTHORIZATION, self.authorization.clone());
        }
        builder
            .body(Empty::new())
            .map_err(|_| FetchError::Network("cannot build the request".to_string()))
    }
}

/// Statuses followed as redirects.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// An error as text: its message and chain of causes. None of the client's errors name the
/// URL; [`Fetcher::get`] still masks it in case a cause ever does.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `text` with `url` (whole, or its query, which may carry a signature) replaced.
fn scrub(text: String, url: &Url) -> String {
    let mut text = text.replace(url.as_str(), "<url>");
    if let Some(query) = url.query().filter(|q| !q.is_empty()) {
        text = text.replace(query, "<query>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_statuses() {
        for code in [301, 302, 303, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(code).unwrap()));
        }
        for code in [200, 304, 404] {
            assert!(!is_redirect(StatusCode::from_u16(code).unwrap()));
        }
    }

    #[tokio::test]
    async fn debug_never_shows_the_token() {
        let config = RecordingConfig::from_lookup(|_| None).unwrap();
        let creds = Credentials {
            account_sid: "AC1".into(),
            auth_token: "very-secret".into(),
        };
        let fetcher = Fetcher::new(&config, creds).unwrap();
        let shown = format!("{fetcher:?}");
        assert!(!shown.contains("very-secret"));
        let encoded = base64::engine::general_purpose::STANDARD.encode("AC1:very-secret");
        assert!(!shown.contains(&encoded), "{shown}");
    }

    #[test]
    fn describe_follows_the_causes_and_scrub_masks_the_url() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Outer(#[source] io::Error);
        let outer = Outer(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"));
        assert_eq!(describe(&outer), "client error: refused");
        let url = Url::parse("https://storage.example/rec.wav?Signature=abc").unwrap();
        let text = scrub(format!("failed for {url} and Signature=abc"), &url);
        assert_eq!(text, "failed for <url> and <query>");
    }
}
