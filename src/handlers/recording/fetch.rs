//! One HTTP GET against Twilio, following redirects by hand so credentials never leave the
//! trusted origin.
//!
//! reqwest's own redirect handling is disabled: each hop is checked by
//! [`urls::redirect`](super::urls::redirect), and basic auth is attached only to requests
//! whose origin is the configured `TWILIO_API_BASE`'s. The token never appears in an error or
//! a log line (reqwest's errors are stripped of their URL, which may carry a storage
//! signature).

use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use url::{Origin, Url};

use super::config::{Credentials, RecordingConfig};
use super::urls::{self, UrlError};

/// Sent as `User-Agent`.
const USER_AGENT: &str = concat!("rqw-recording/", env!("CARGO_PKG_VERSION"));

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

/// Makes authenticated GETs to Twilio.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client,
    trusted: Origin,
    credentials: Credentials,
    max_redirects: usize,
    request_timeout: Duration,
}

impl Fetcher {
    /// Builds the HTTP client (no automatic redirects, connect timeout from `config`).
    pub fn new(config: &RecordingConfig, credentials: Credentials) -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .redirect(Policy::none())
            .connect_timeout(config.connect_timeout)
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self {
            client,
            trusted: config.api_base.origin(),
            credentials,
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
            let mut request = self.client.get(current.clone());
            if send_credentials {
                request = request.basic_auth(
                    &self.credentials.account_sid,
                    Some(&self.credentials.auth_token),
                );
            }
            let response = match tokio::time::timeout(self.request_timeout, request.send()).await {
                Err(_) => return Err(FetchError::Timeout(self.request_timeout)),
                Ok(Err(e)) => return Err(FetchError::Network(describe(&e))),
                Ok(Ok(response)) => response,
            };
            if !is_redirect(response.status()) {
                return Ok(response);
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
}

/// Statuses followed as redirects.
fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// A reqwest error as text: its chain of causes, without the URL.
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else {
        String::new()
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = error.to_string();
        if let Some(url) = error.url() {
            text = text.replace(url.as_str(), "<url>");
        }
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

    #[test]
    fn debug_never_shows_the_token() {
        let config = RecordingConfig::from_lookup(|_| None).unwrap();
        let creds = Credentials {
            account_sid: "AC1".into(),
            auth_token: "very-secret".into(),
        };
        let fetcher = Fetcher::new(&config, creds).unwrap();
        assert!(!format!("{fetcher:?}").contains("very-secret"));
    }
}
