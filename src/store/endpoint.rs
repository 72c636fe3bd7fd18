//! Where the Redis master is: a fixed URL, or whatever Redis Sentinel names now.
//!
//! An [`Endpoint`] answers "a client for the current master" ([`Endpoint::master`]). With a
//! URL that is always the same client; with sentinels (`--sentinel`) each call asks them
//! (redis-rs' [`redis::sentinel`]: `SENTINEL MASTERS`, then `ROLE` on the address named, so a
//! demoted master is never returned). Every connection of the store is opened through it, and
//! the command connection ([`super::connection::CommandConnection`]) tells it when it moved to
//! another master ([`Endpoint::generation`]), so that the long-lived connections (the blocking
//! wait, the queue watch, the command channel) reopen on the new master too. Nothing above the
//! store knows whether sentinels are in use.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr, TlsCertificates, TlsMode};
use tokio::sync::{watch, Mutex};

use super::connection::{client_with_ca, COMMAND_TIMEOUT, CONNECT_TIMEOUT};
use crate::config::{mask_url, SentinelSettings};
use crate::error::StoreError;

/// Where the master is; cheap to clone (every clone shares the sentinels' connections and the
/// generation).
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    description: String,
    command_timeout: Duration,
    /// How long asking the sentinels (and checking the master they name) may take.
    lookup_timeout: Duration,
    generation: watch::Sender<u64>,
}

enum Source {
    Fixed(Client),
    Sentinel(Mutex<SentinelClient>),
}

impl Endpoint {
    /// The master at `url` (its password may be in it), trusting `ca_cert` for `rediss://`.
    pub fn fixed(url: &str, ca_cert: Option<&Path>) -> Result<Self, StoreError> {
        Ok(Self::with(
            Source::Fixed(client_with_ca(url, ca_cert)?),
            mask_url(url),
            COMMAND_TIMEOUT,
            CONNECT_TIMEOUT,
        ))
    }

    /// The master the sentinels of `settings` name, trusting `ca_cert` for TLS.
    pub fn sentinel(
        settings: &SentinelSettings,
        ca_cert: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let certificates = match ca_cert {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(read_ca(path)?),
            }),
            None => None,
        };
        let addresses = settings.sentinels.iter().map(|(host, port)| {
            if settings.sentinels_tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut builder = SentinelClientBuilder::new(
            addresses,
            &settings.master_name,
            SentinelServerType::Master,
        )?
        .set_client_to_redis_db(settings.db);
        if let Some(u) = &settings.username {
            builder = builder.set_client_to_redis_username(u);
        }
        if let Some(p) = &settings.password {
            builder = builder.set_client_to_redis_password(p);
        }
        if settings.tls {
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(c) = &certificates {
                builder = builder.set_client_to_redis_certificates(c.clone());
            }
        }
        if let Some(u) = &settings.sentinels_username {
            builder = builder.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &settings.sentinels_password {
            builder = builder.set_client_to_sentinel_password(p);
        }
        if settings.sentinels_tls {
            builder = builder.set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(c) = certificates {
                builder = builder.set_client_to_sentinel_certificates(c);
            }
        }
        Ok(Self::with(
            Source::Sentinel(Mutex::new(builder.build()?)),
            settings.describe(),
            settings.socket_timeout.unwrap_or(COMMAND_TIMEOUT),
            settings
                .socket_timeout
                .map_or(CONNECT_TIMEOUT, |t| t.max(CONNECT_TIMEOUT)),
        ))
    }

    /// From the worker's or an operator command's settings: the sentinels when any are given,
    /// else the URL.
    pub fn from_settings(
        url: &str,
        sentinel: Option<&SentinelSettings>,
        ca_cert: Option<&Path>,
    ) -> Result<Self, StoreError> {
        match sentinel {
            Some(s) => Self::sentinel(s, ca_cert),
            None => Self::fixed(url, ca_cert),
        }
    }

    fn with(
        source: Source,
        description: String,
        command_timeout: Duration,
        lookup_timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                description,
                command_timeout,
                lookup_timeout,
                generation: watch::Sender::new(0),
            }),
        }
    }

    /// What to show in logs: the masked URL, or `sentinel://hosts/<master>/<db>`.
    pub fn describe(&self) -> &str {
        &self.inner.description
    }

    /// True when the master is found through sentinels (it can move).
    pub fn is_sentinel(&self) -> bool {
        matches!(self.inner.source, Source::Sentinel(_))
    }

    /// How long an ordinary command may take (`--sentinel-socket-timeout`, else
    /// [`COMMAND_TIMEOUT`]).
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// A client for the current master. With sentinels, asks them (bounded by the connect
    /// timeout, or the socket timeout if longer); fails while none names a reachable master
    /// (during a failover).
    pub async fn master(&self) -> Result<Client, StoreError> {
        match &self.inner.source {
            Source::Fixed(client) => Ok(client.clone()),
            Source::Sentinel(sentinel) => {
                let lookup = async { sentinel.lock().await.async_get_client().await };
                match tokio::time::timeout(self.inner.lookup_timeout, lookup).await {
                    Ok(found) => Ok(found?),
                    Err(_) => Err(StoreError::Redis(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "no sentinel answered in time",
                    )))),
                }
            }
        }
    }

    /// How many times the command connection moved to another master; a connection opened
    /// at an older generation may be on a demoted or dead master and should be reopened.
    pub fn generation(&self) -> u64 {
        *self.inner.generation.borrow()
    }

    /// Resolves when [`Self::generation`] changes (for a task holding a connection open).
    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Records that the command connection now talks to another master.
    pub(crate) fn moved(&self) {
        self.inner.generation.send_modify(|g| *g += 1);
    }
}

fn read_ca(path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::Tls(format!(
            "cannot read CA certificate {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SentinelSettings {
        SentinelSettings {
            sentinels: vec![("10.0.0.1".into(), 26379), ("::1".into(), 26380)],
            master_name: "mymaster".into(),
            db: 2,
            username: Some("app".into()),
            password: Some("s3cret".into()),
            tls: false,
            socket_timeout: None,
            sentinels_username: None,
            sentinels_password: Some("s3ntinel".into()),
            sentinels_tls: false,
        }
    }

    #[test]
    fn descriptions_and_debug_never_show_passwords() {
        let s = settings();
        assert_eq!(
            s.describe(),
            "sentinel://10.0.0.1:26379,[::1]:26380/mymaster/2"
        );
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("s3ntinel"),
            "{debug}"
        );
        let endpoint = Endpoint::sentinel(&s, None).unwrap();
        assert!(endpoint.is_sentinel());
        assert!(!endpoint.describe().contains("s3cret"));
        let fixed = Endpoint::fixed("redis://:pw@127.0.0.1:1/0", None).unwrap();
        assert_eq!(fixed.describe(), "redis://:***@127.0.0.1:1/0");
        assert!(!fixed.is_sentinel());
    }

    #[test]
    fn generation_counts_moves() {
        let e = Endpoint::fixed("redis://127.0.0.1:1/0", None).unwrap();
        let rx = e.watch_generation();
        assert_eq!(e.generation(), 0);
        e.clone().moved();
        assert_eq!(e.generation(), 1);
        assert!(rx.has_changed().unwrap());
    }
}
