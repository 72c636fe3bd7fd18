//! Pure URL logic, no I/O: which URL a job may download from, the formats tried in order,
//! and where a redirect may lead (and whether it still gets the credentials).
//!
//! Credentials go only to the configured Twilio origin (scheme, host and port of
//! `TWILIO_API_BASE`). A recording URL on any other origin is refused before any request; a
//! redirect may lead elsewhere (Twilio sends media to its storage) but then without them.

use url::{Origin, Url};

use super::params::Sid;

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The recording URL does not parse.
    #[error("recording_url {0:?} is not a valid URL")]
    Unparseable(String),
    /// The recording URL is not on the configured Twilio origin.
    #[error("recording_url must be on {allowed}, got {url}")]
    ForeignOrigin {
        /// The configured origin.
        allowed: String,
        /// The refused URL (without query).
        url: String,
    },
    /// The recording URL carries credentials of its own.
    #[error("recording_url must not contain credentials")]
    EmbeddedCredentials,
    /// A redirect without a usable `Location`.
    #[error("redirect with a missing or invalid Location header")]
    BadLocation,
    /// A redirect to something other than http(s).
    #[error("redirect to a non-http(s) URL refused")]
    BadRedirectScheme,
    /// Too many redirects.
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
}

/// One of the formats tried, in the contract's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Short label for logs and errors (`wav2`, `wav`, `mp3`, `original`).
    pub label: &'static str,
    /// The URL to request.
    pub url: Url,
}

/// Builds the absolute URL of the recording: `recording_url` (absolute, or relative to the
/// base), or, when it is empty, the REST path of `recording_sid` under the account. A trailing
/// `.json` is stripped and the fragment dropped; the result must be on the base's origin.
pub fn recording_url(
    base: &Url,
    raw: &str,
    recording_sid: Option<&Sid>,
    account_sid: &str,
) -> Result<Url, UrlError> {
    let mut url = match (raw.trim(), recording_sid) {
        ("", Some(sid)) => base
            .join(&format!(
                "/2010-04-01/Accounts/{account_sid}/Recordings/{sid}"
            ))
            .map_err(|_| UrlError::Unparseable(raw.to_string()))?,
        (raw, _) => match Url::parse(raw) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) => base
                .join(raw)
                .map_err(|_| UrlError::Unparseable(raw.to_string()))?,
            Err(_) => return Err(UrlError::Unparseable(raw.to_string())),
        },
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::EmbeddedCredentials);
    }
    if url.origin() != base.origin() || !matches!(url.scheme(), "http" | "https") {
        let mut shown = url.clone();
        shown.set_query(None);
        return Err(UrlError::ForeignOrigin {
            allowed: base.origin().ascii_serialization(),
            url: shown.to_string(),
        });
    }
    url.set_fragment(None);
    if let Some(stripped) = url.path().strip_suffix(".json").map(str::to_string) {
        url.set_path(&stripped);
    }
    Ok(url)
}

/// The formats to try, in order: `.wav?RequestedChannels=2`, `.wav`, `.mp3`, as given.
pub fn candidates(url: &Url) -> Vec<Candidate> {
    let with_suffix = |suffix: &str| {
        let mut u = url.clone();
        let path = format!("{}{suffix}", url.path());
        u.set_path(&path);
        u
    };
    let mut two_channels = with_suffix(".wav");
    two_channels
        .query_pairs_mut()
        .append_pair("RequestedChannels", "2");
    vec![
        Candidate {
            label: "wav2",
            url: two_channels,
        },
        Candidate {
            label: "wav",
            url: with_suffix(".wav"),
        },
        Candidate {
            label: "mp3",
            url: with_suffix(".mp3"),
        },
        Candidate {
            label: "original",
            url: url.clone(),
        },
    ]
}

/// The next request after a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Where to go.
    pub url: Url,
    /// True only when `url` is on the trusted origin.
    pub send_credentials: bool,
}

/// Whether a request to `url` may carry the credentials.
pub fn may_send_credentials(url: &Url, trusted: &Origin) -> bool {
    &url.origin() == trusted
}

/// Where a redirect from `current` with header `location` leads (relative locations are
/// resolved against `current`), and whether the credentials follow. `followed` counts the
/// redirects already followed for this request.
pub fn redirect(
    current: &Url,
    location: Option<&str>,
    trusted: &Origin,
    followed: usize,
    max: usize,
) -> Result<Hop, UrlError> {
    if followed >= max {
        return Err(UrlError::TooManyRedirects(max));
    }
    let location = location
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or(UrlError::BadLocation)?;
    let url = current.join(location).map_err(|_| UrlError::BadLocation)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::BadRedirectScheme);
    }
    let send_credentials = may_send_credentials(&url, trusted);
    Ok(Hop {
        url,
        send_credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = "RE0123456789abcdef0123456789abcdef";

    fn base() -> Url {
        Url::parse("https://api.twilio.com").unwrap()
    }

    #[test]
    fn absolute_and_relative_urls_strip_json() {
        let abs = recording_url(
            &base(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1.json",
            None,
            "AC1",
        );
        assert_eq!(
            abs.unwrap().as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
        );
        let rel = recording_url(
            &base(),
            "/2010-04-01/Accounts/AC1/Recordings/RE1",
            None,
            "AC1",
        )
        .unwrap();
        assert_eq!(
            rel.as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
        );
        let explicit_port = recording_url(
            &base(),
            "https://api.twilio.com:443/x.json#frag",
            None,
            "AC1",
        )
        .unwrap();
        assert_eq!(explicit_port.as_str(), "https://api.twilio.com/x");
    }

    #[test]
    fn builds_from_recording_sid_when_url_is_empty() {
        let sid = Sid::parse("RE", REC).unwrap();
        let url = recording_url(&base(), " ", Some(&sid), "AC9").unwrap();
        assert_eq!(
            url.as_str(),
            format!("https://api.twilio.com/2010-04-01/Accounts/AC9/Recordings/{REC}")
        );
    }

    #[test]
    fn refuses_other_origins() {
        for bad in [
            "https://evil.example/2010-04-01/Recordings/RE1",
            "//evil.example/x",
            "http://api.twilio.com/x",
            "https://api.twilio.com:8443/x",
            "https://api.twilio.com.evil.example/x",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(
                    recording_url(&base(), bad, None, "AC1"),
                    Err(UrlError::ForeignOrigin { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            recording_url(&base(), "https://u:p@api.twilio.com/x", None, "AC1"),
            Err(UrlError::EmbeddedCredentials)
        );
        assert!(matches!(
            recording_url(&base(), "http://[::1", None, "AC1"),
            Err(UrlError::Unparseable(_))
        ));
    }

    #[test]
    fn formats_in_contract_order() {
        let url = Url::parse("https://api.twilio.com/R/RE1").unwrap();
        let got: Vec<String> = candidates(&url)
            .into_iter()
            .map(|c| c.url.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "https://api.twilio.com/R/RE1.wav?RequestedChannels=2",
                "https://api.twilio.com/R/RE1.wav",
                "https://api.twilio.com/R/RE1.mp3",
                "https://api.twilio.com/R/RE1",
            ]
        );
    }

    #[test]
    fn redirects_keep_credentials_only_on_the_trusted_origin() {
        let trusted = base().origin();
        let here = Url::parse("https://api.twilio.com/R/RE1.wav").unwrap();
        let storage = redirect(
            &here,
            Some("https://media.twiliocdn.com/x?sig=1"),
            &trusted,
            0,
            5,
        )
        .unwrap();
        assert!(!storage.send_credentials);
        let same = redirect(&here, Some("/R/RE1.mp3"), &trusted, 1, 5).unwrap();
        assert_eq!(same.url.as_str(), "https://api.twilio.com/R/RE1.mp3");
        assert!(same.send_credentials);
        let downgrade = redirect(&here, Some("http://api.twilio.com/R"), &trusted, 0, 5).unwrap();
        assert!(!downgrade.send_credentials);
        let other_port =
            redirect(&here, Some("https://api.twilio.com:444/R"), &trusted, 0, 5).unwrap();
        assert!(!other_port.send_credentials);
        let back = redirect(
            &storage.url,
            Some("https://api.twilio.com/again"),
            &trusted,
            2,
            5,
        )
        .unwrap();
        assert!(back.send_credentials);
    }

    #[test]
    fn redirect_limits_and_bad_locations() {
        let trusted = base().origin();
        let here = Url::parse("https://api.twilio.com/R").unwrap();
        assert_eq!(
            redirect(&here, Some("/x"), &trusted, 5, 5),
            Err(UrlError::TooManyRedirects(5))
        );
        assert_eq!(
            redirect(&here, None, &trusted, 0, 5),
            Err(UrlError::BadLocation)
        );
        assert_eq!(
            redirect(&here, Some("  "), &trusted, 0, 5),
            Err(UrlError::BadLocation)
        );
        assert_eq!(
            redirect(&here, Some("file:///etc/passwd"), &trusted, 0, 5),
            Err(UrlError::BadRedirectScheme)
        );
    }
}
