//! Validated worker configuration, with RQ's defaults as named constants.
//!
//! Stage one is the raw command line and environment (`crate::cli`); stage two is
//! [`WorkerConfig`], which the runtime trusts without further checks.

use std::time::Duration;

use crate::protocol::payload::{DecodeLimits, Serializer};

/// Redis URL used when neither `--url` nor `REDIS_URL` is given.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
/// Queue served when none is named (RQ's `default`).
pub const DEFAULT_QUEUE: &str = "default";
/// `DEFAULT_WORKER_TTL`: seconds a worker key lives without a heartbeat.
pub const DEFAULT_WORKER_TTL: u64 = 420;
/// `DEFAULT_JOB_MONITORING_INTERVAL`: seconds between heartbeats of a running job.
pub const DEFAULT_JOB_MONITORING_INTERVAL: u64 = 30;
/// `DEFAULT_RESULT_TTL`: seconds a successful job and its result are kept.
pub const DEFAULT_RESULT_TTL: i64 = 500;
/// `DEFAULT_FAILURE_TTL`: seconds a failed job is kept when it sets no `failure_ttl`.
pub const DEFAULT_FAILURE_TTL: i64 = 31_536_000;
/// `DEFAULT_MAINTENANCE_TASK_INTERVAL`: seconds between maintenance passes.
pub const DEFAULT_MAINTENANCE_INTERVAL: u64 = 600;
/// Seconds a forced stop (timeout, second signal) waits for a cancelled handler to return.
pub const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// The largest `--concurrency` (checked by the command line and again by [`WorkerConfig`]).
pub const MAX_CONCURRENCY: u16 = 10_000;

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A queue name RQ could not represent.
    #[error("invalid queue name {0:?}: it must be non-empty and contain no ',' or whitespace")]
    InvalidQueue(String),
    /// A worker name RQ could not represent.
    #[error("invalid worker name {0:?}: it must be non-empty and contain no whitespace")]
    InvalidName(String),
    /// A numeric option out of its range.
    #[error("invalid value for {option}: {reason}")]
    OutOfRange {
        /// The option's flag.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A Redis URL that cannot be parsed or uses an unsupported scheme.
    #[error("invalid Redis URL {0}: {1}")]
    InvalidUrl(String, String),
}

/// Everything the worker runtime needs, validated.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Redis connection URL (`redis://`, `rediss://`, `unix://`). May hold a password: log
    /// it only through [`mask_url`].
    pub redis_url: String,
    /// Queues in priority order.
    pub queues: Vec<String>,
    /// The worker's name (`rq:worker:<name>`).
    pub name: String,
    /// Exit when every queue is empty and no job is running.
    pub burst: bool,
    /// Exit after this many jobs.
    pub max_jobs: Option<u64>,
    /// Exit after being idle this long.
    pub max_idle_time: Option<Duration>,
    /// Seconds the worker key lives without a heartbeat.
    pub worker_ttl: u64,
    /// Seconds between heartbeats of running jobs.
    pub job_monitoring_interval: u64,
    /// Default `result_ttl` for jobs that set none.
    pub results_ttl: i64,
    /// Serializer of the queues' payloads.
    pub serializer: Serializer,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Run RQ's scheduler for the queues (`--with-scheduler`).
    pub with_scheduler: bool,
    /// Seconds between maintenance passes.
    pub maintenance_interval: u64,
    /// Order in which queues are tried.
    pub dequeue_strategy: DequeueStrategy,
    /// How a worker on several queues waits for a job (`--queue-wait`).
    pub queue_wait: QueueWait,
    /// Move jobs with no native handler to this queue instead of failing them.
    pub forward_unknown: Option<String>,
    /// Serve Prometheus `/metrics` and `/healthz` on this address.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// After a warm shutdown request, how long running jobs may still run before they are
    /// cancelled (failed through RQ's failure path, retries apply). `None`: until they end.
    pub shutdown_grace: Option<Duration>,
    /// How long to keep retrying when Redis is unreachable at start (`None`: forever).
    pub startup_timeout: Option<Duration>,
    /// PEM CA certificate to trust for `rediss://` (a private CA).
    pub tls_ca_cert: Option<std::path::PathBuf>,
    /// Run functions without a native handler in Python horses (`--python`).
    pub python: Option<crate::horses::HorseConfig>,
    /// The memory budget of decoding one payload (`--max-payload-bytes`,
    /// `--max-inflated-bytes`, `--max-decoded-bytes`).
    pub decode_limits: DecodeLimits,
    /// Find the master through these sentinels instead of `redis_url` (`--sentinel`).
    pub sentinel: Option<SentinelSettings>,
}

/// `--dequeue-strategy`, as `rq worker` has it (`BaseWorker.reorder_queues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DequeueStrategy {
    /// Fixed priority order.
    #[default]
    Default,
    /// After taking from queue `i`, the order becomes `queues[i+1..] + queues[..=i]`.
    RoundRobin,
    /// Shuffled after each job.
    Random,
}

/// `--queue-wait`: how a worker on several queues waits while they are empty (one queue:
/// always RQ's `BLMOVE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueWait {
    /// One `BLMOVE` per queue, each on its own connection (Redis 6.2+): a push wakes one
    /// worker of a fleet. Falls back to [`QueueWait::Tracking`] where Redis refuses `BLMOVE`.
    #[default]
    Blocking,
    /// One client-tracking connection (Redis 6+), told of every change to the queues: a
    /// push wakes every worker watching them.
    Tracking,
}

impl WorkerConfig {
    /// Checks every value and builds the configuration.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        if self.queues.is_empty() {
            self.queues.push(DEFAULT_QUEUE.to_string());
        }
        for q in &self.queues {
            if q.is_empty() || q.contains(',') || q.chars().any(char::is_whitespace) {
                return Err(ConfigError::InvalidQueue(q.clone()));
            }
        }
        if self.name.is_empty() || self.name.chars().any(char::is_whitespace) {
            return Err(ConfigError::InvalidName(self.name.clone()));
        }
        if self.concurrency == 0 || self.concurrency > usize::from(MAX_CONCURRENCY) {
            return Err(ConfigError::OutOfRange {
                option: "--concurrency",
                reason: format!("must be 1..={MAX_CONCURRENCY}"),
            });
        }
        if self.worker_ttl == 0 {
            // rq 2.x/3.0's Worker takes a falsy worker_ttl as "not given": the default.
            self.worker_ttl = DEFAULT_WORKER_TTL;
        }
        if self.job_monitoring_interval == 0 {
            return Err(ConfigError::OutOfRange {
                option: "--job-monitoring-interval",
                reason: "must be at least 1".into(),
            });
        }
        if self.results_ttl < -1 {
            return Err(ConfigError::OutOfRange {
                option: "--results-ttl",
                reason: "must be -1 or more".into(),
            });
        }
        if let Some(q) = &self.forward_unknown {
            if q.is_empty() || q.contains(',') || q.chars().any(char::is_whitespace) {
                return Err(ConfigError::InvalidQueue(q.clone()));
            }
            if self.queues.contains(q) {
                return Err(ConfigError::OutOfRange {
                    option: "--forward-unknown",
                    reason: format!("'{q}' is one of the queues this worker serves; jobs would come straight back"),
                });
            }
        }
        if let Some(python) = &self.python {
            if python.command.is_empty() {
                return Err(ConfigError::OutOfRange {
                    option: "--python",
                    reason: "the command is empty".into(),
                });
            }
            if python.processes == 0 || python.processes > 1024 {
                return Err(ConfigError::OutOfRange {
                    option: "--python-processes",
                    reason: "must be 1..=1024".into(),
                });
            }
            if python.max_jobs == Some(0) || python.max_memory_bytes == Some(0) {
                return Err(ConfigError::OutOfRange {
                    option: "--python-max-jobs / --python-max-memory",
                    reason: "must be at least 1".into(),
                });
            }
            if python.setup.as_deref().is_some_and(|s| {
                let (module, callable) = s.split_once(':').unwrap_or_default();
                module.is_empty() || callable.is_empty()
            }) {
                return Err(ConfigError::OutOfRange {
                    option: "--python-setup",
                    reason: "must be module:callable".into(),
                });
            }
            if self.forward_unknown.is_some() {
                return Err(ConfigError::OutOfRange {
                    option: "--forward-unknown",
                    reason: "cannot be combined with --python (every function without a native handler runs in Python)".into(),
                });
            }
        }
        for (option, value) in [
            ("--max-payload-bytes", self.decode_limits.max_field_bytes),
            (
                "--max-inflated-bytes",
                self.decode_limits.max_inflated_bytes,
            ),
            ("--max-decoded-bytes", self.decode_limits.max_decoded_bytes),
        ] {
            if value < 1024 {
                return Err(ConfigError::OutOfRange {
                    option,
                    reason: "must be at least 1024".into(),
                });
            }
        }
        if self.maintenance_interval == 0 {
            return Err(ConfigError::OutOfRange {
                option: "--maintenance-interval",
                reason: "must be at least 1".into(),
            });
        }
        match &self.sentinel {
            Some(s) => s.check()?,
            None => check_url(&self.redis_url)?,
        }
        Ok(self)
    }

    /// How long a blocking pop may wait (`max(1, worker_ttl - 15)` in RQ, capped by
    /// `--max-idle-time`).
    pub fn dequeue_timeout(&self) -> Duration {
        let rq = Duration::from_secs(self.worker_ttl.saturating_sub(15).max(1));
        match self.max_idle_time {
            Some(idle) => rq.min(idle.max(Duration::from_secs(1))),
            None => rq,
        }
    }
}

fn check_url(raw: &str) -> Result<(), ConfigError> {
    let parsed =
        url::Url::parse(raw).map_err(|e| ConfigError::InvalidUrl(mask_url(raw), e.to_string()))?;
    match parsed.scheme() {
        "redis" | "rediss" | "unix" | "redis+unix" => Ok(()),
        other => Err(ConfigError::InvalidUrl(
            mask_url(raw),
            format!("unsupported scheme '{other}'"),
        )),
    }
}

/// The URL with any password replaced by `***`, for logs and error messages.
pub fn mask_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
                return "<unprintable url>".to_string();
            }
            parsed.to_string()
        }
        // Cannot parse: never echo it, it may hold a secret.
        Err(_) => "<unparseable url>".to_string(),
    }
}

/// RQ's default `SENTINEL['MASTER_NAME']`.
pub const DEFAULT_MASTER_NAME: &str = "mymaster";

/// How to find the master through Redis Sentinel (RQ's `SENTINEL` settings).
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// The sentinels, `(host, port)` (`INSTANCES`).
    pub sentinels: Vec<(String, u16)>,
    /// The monitored master's name (`MASTER_NAME`).
    pub master_name: String,
    /// Database on the master (`DB`).
    pub db: i64,
    /// ACL user on the master (`USERNAME`).
    pub username: Option<String>,
    /// Password on the master (`PASSWORD`). Never logged.
    pub password: Option<String>,
    /// TLS to the master (`SSL`).
    pub tls: bool,
    /// Response timeout of commands to the master and of sentinel queries (`SOCKET_TIMEOUT`);
    /// `None`: rqw's defaults.
    pub socket_timeout: Option<Duration>,
    /// ACL user on the sentinels (`SENTINEL_KWARGS['username']`).
    pub sentinels_username: Option<String>,
    /// Password on the sentinels (`SENTINEL_KWARGS['password']`). Never logged.
    pub sentinels_password: Option<String>,
    /// TLS to the sentinels (`SENTINEL_KWARGS['ssl']`).
    pub sentinels_tls: bool,
}

impl std::fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mask = |p: &Option<String>| p.as_ref().map(|_| "***");
        f.debug_struct("SentinelSettings")
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &mask(&self.password))
            .field("tls", &self.tls)
            .field("socket_timeout", &self.socket_timeout)
            .field("sentinels_username", &self.sentinels_username)
            .field("sentinels_password", &mask(&self.sentinels_password))
            .field("sentinels_tls", &self.sentinels_tls)
            .finish()
    }
}

impl SentinelSettings {
    /// `sentinel://host:port,host:port/<master>/<db>`: no credentials, for logs.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(h, p)| {
                if h.contains(':') {
                    format!("[{h}]:{p}")
                } else {
                    format!("{h}:{p}")
                }
            })
            .collect();
        format!(
            "sentinel://{}/{}/{}",
            hosts.join(","),
            self.master_name,
            self.db
        )
    }
}

/// Parses `HOST:PORT` (`[v6]:PORT` for IPv6) of a sentinel.
pub fn parse_sentinel_address(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || (host.contains(':') && !text.starts_with('[')) {
        return Err(format!("{text:?} is not HOST:PORT"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{text:?}: the port must be 1..=65535"))?;
    Ok((host.to_string(), port))
}

impl SentinelSettings {
    /// Checks that there is a sentinel and a master name.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.sentinels.is_empty() {
            return Err(ConfigError::OutOfRange {
                option: "--sentinel",
                reason: "at least one HOST:PORT is needed".into(),
            });
        }
        if self.master_name.is_empty() || self.master_name.chars().any(char::is_whitespace) {
            return Err(ConfigError::OutOfRange {
                option: "--sentinel-master",
                reason: format!("{:?} is not a master name", self.master_name),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            redis_url: DEFAULT_REDIS_URL.into(),
            queues: vec![],
            name: "w".into(),
            burst: false,
            max_jobs: None,
            max_idle_time: None,
            worker_ttl: DEFAULT_WORKER_TTL,
            job_monitoring_interval: DEFAULT_JOB_MONITORING_INTERVAL,
            results_ttl: DEFAULT_RESULT_TTL,
            serializer: Serializer::Pickle,
            concurrency: 1,
            with_scheduler: false,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            dequeue_strategy: DequeueStrategy::Default,
            queue_wait: QueueWait::Blocking,
            forward_unknown: None,
            metrics_addr: None,
            shutdown_grace: None,
            startup_timeout: None,
            tls_ca_cert: None,
            python: None,
            decode_limits: DecodeLimits::default(),
            sentinel: None,
        }
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(
            mask_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(mask_url("redis://:s3cret@host/0"), "redis://:***@host/0");
        assert_eq!(mask_url("redis://host:6379/0"), "redis://host:6379/0");
        assert!(!mask_url("not a url s3cret").contains("s3cret"));
    }

    #[test]
    fn defaults_and_validation() {
        let c = config().validate().unwrap();
        assert_eq!(c.queues, vec!["default".to_string()]);
        assert_eq!(c.dequeue_timeout(), Duration::from_secs(405));
        let mut bad = config();
        bad.queues = vec!["a,b".into()];
        assert!(bad.validate().is_err());
        let mut bad = config();
        bad.redis_url = "http://x".into();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("unsupported scheme"));
        let mut bad = config();
        bad.concurrency = 0;
        assert!(bad.validate().is_err());
        let mut bad = config();
        bad.forward_unknown = Some("default".into());
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("come straight back"));
    }

    #[test]
    fn sentinel_addresses_parse() {
        assert_eq!(
            parse_sentinel_address("sentinel-1:26379"),
            Ok(("sentinel-1".into(), 26379))
        );
        assert_eq!(
            parse_sentinel_address(" [::1]:26380 "),
            Ok(("::1".into(), 26380))
        );
        assert!(parse_sentinel_address("sentinel-1").is_err());
        assert!(parse_sentinel_address("::1:26379").is_err());
        assert!(parse_sentinel_address("h:0").is_err());
        assert!(parse_sentinel_address("h:99999").is_err());
        assert!(parse_sentinel_address(":26379").is_err());
    }
}
