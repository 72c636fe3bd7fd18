//! The command line: raw flags and environment, as `rq worker` takes them. Validation into
//! [`crate::config::WorkerConfig`] happens in [`WorkerArgs::into_config`].

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{
    parse_sentinel_address, ConfigError, DequeueStrategy, QueueWait, SentinelSettings,
    WorkerConfig, DEFAULT_JOB_MONITORING_INTERVAL, DEFAULT_MAINTENANCE_INTERVAL,
    DEFAULT_MASTER_NAME, DEFAULT_REDIS_URL, DEFAULT_RESULT_TTL, DEFAULT_WORKER_TTL,
    MAX_CONCURRENCY,
};
use crate::horses::HorseConfig;
use crate::ops::info::InfoOptions;
use crate::ops::inspect::InspectOptions;
use crate::ops::RedisTarget;
use crate::protocol::payload::{
    DecodeLimits, Serializer, DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_FIELD_BYTES,
    DEFAULT_MAX_INFLATED_BYTES,
};

/// rqw: a native worker for RQ (python-rq) queues.
#[derive(Debug, Parser)]
#[command(name = "rqw", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker on RQ queues (like `rq worker`).
    Worker(Box<WorkerArgs>),
    /// List the Python function paths this binary runs natively.
    Handlers {
        /// Include the diagnostic `rqw.testing.*` handlers.
        #[arg(long)]
        enable_testing_handlers: bool,
        /// With Python horses (`--python` of the worker): say which runtime runs what.
        #[arg(long, value_name = "CMD", env = "RQW_PYTHON")]
        python: Option<String>,
    },
    /// Report, per queue and registry, the function paths waiting and whether rqw runs them.
    Inspect(RedisArgs),
    /// Show queues, registries and workers (Python's and rqw's), like `rq info`.
    Info(InfoArgs),
    /// Exit 0 when a running worker's /healthz (on its --metrics-addr) says healthy, else 1.
    Healthcheck(crate::ops::healthcheck::HealthcheckArgs),
}

/// Connection flags of the read-only subcommands.
#[derive(Debug, Args)]
pub struct RedisArgs {
    /// Redis URL: redis://, rediss:// (TLS) or unix://.
    #[arg(short = 'u', long = "url", env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub url: String,
    /// PEM CA certificate to trust for rediss:// URLs (a private CA).
    #[arg(long, value_name = "PATH", env = "REDIS_TLS_CA_CERT")]
    pub tls_ca_cert: Option<std::path::PathBuf>,
    /// Redis Sentinel (instead of --url).
    #[command(flatten)]
    pub sentinel: SentinelArgs,
    /// Serializer the producers use (to read function paths of JSON jobs).
    #[arg(short = 'S', long, value_enum, default_value = "pickle")]
    pub serializer: SerializerArg,
    /// Count the diagnostic `rqw.testing.*` handlers as native.
    #[arg(long)]
    pub enable_testing_handlers: bool,
    /// The worker runs Python horses (`--python`): paths without a native handler are Python's.
    #[arg(long, value_name = "CMD", env = "RQW_PYTHON")]
    pub python: Option<String>,
}

/// Flags of `rqw info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Redis URL: redis://, rediss:// (TLS) or unix://.
    #[arg(short = 'u', long = "url", env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub url: String,
    /// PEM CA certificate to trust for rediss:// URLs (a private CA).
    #[arg(long, value_name = "PATH", env = "REDIS_TLS_CA_CERT")]
    pub tls_ca_cert: Option<std::path::PathBuf>,
    /// Redis Sentinel (instead of --url).
    #[command(flatten)]
    pub sentinel: SentinelArgs,
    /// Refresh every this many seconds (a live view) instead of printing once.
    #[arg(short = 'i', long)]
    pub interval: Option<f64>,
    /// Only these queues (default: all).
    #[arg(value_name = "QUEUE")]
    pub queues: Vec<String>,
}

/// `--dequeue-strategy` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DequeueStrategyArg {
    /// Fixed priority order.
    Default,
    /// Rotate after each job.
    #[value(name = "round_robin")]
    RoundRobin,
    /// Shuffle after each job.
    Random,
}

/// `--queue-wait` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum QueueWaitArg {
    /// One blocking BLMOVE per queue (Redis 6.2+): a push wakes one worker of a fleet.
    Blocking,
    /// One client-tracking connection: every push and pop wakes every worker.
    Tracking,
}

/// Payload serializer choice on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SerializerArg {
    /// RQ's default (pickle).
    Pickle,
    /// `rq.serializers.JSONSerializer`.
    Json,
}

pub use crate::logging::LogFormat;

/// Flags of `rqw worker`, mirroring `rq worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queues to listen on, in priority order [env: RQ_QUEUES, comma-separated; default: default].
    #[arg(value_name = "QUEUE")]
    pub queues: Vec<String>,
    /// Redis URL: redis://, rediss:// (TLS) or unix://.
    #[arg(short = 'u', long = "url", env = "REDIS_URL", default_value = DEFAULT_REDIS_URL, hide_env_values = true)]
    pub url: String,
    /// Worker name [default: a random uuid4 hex, like RQ].
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Run in burst mode: quit once every queue is empty and no job runs.
    #[arg(short = 'b', long)]
    pub burst: bool,
    /// Quit after running this many jobs.
    #[arg(long)]
    pub max_jobs: Option<u64>,
    /// Quit after being idle this many seconds.
    #[arg(long)]
    pub max_idle_time: Option<u64>,
    /// Seconds the worker key lives without a heartbeat.
    #[arg(long, default_value_t = DEFAULT_WORKER_TTL)]
    pub worker_ttl: u64,
    /// Seconds between heartbeats of running jobs.
    #[arg(long, default_value_t = DEFAULT_JOB_MONITORING_INTERVAL)]
    pub job_monitoring_interval: u64,
    /// Default seconds to keep a successful job and its result (-1: forever).
    #[arg(long, default_value_t = DEFAULT_RESULT_TTL, allow_negative_numbers = true)]
    pub results_ttl: i64,
    /// Serializer the producers use (RQ does not record it in Redis).
    #[arg(short = 'S', long, value_enum, default_value = "pickle")]
    pub serializer: SerializerArg,
    /// Jobs run at once in this process (1 to 10000).
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: u16,
    /// Threads of the async runtime (default: one per core). 1 runs everything on one
    /// thread, for a container given one core.
    #[arg(long, env = "RQW_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log level: DEBUG, INFO, WARNING, ERROR (RQ's names) or a tracing filter.
    #[arg(short = 'l', long, default_value = "INFO")]
    pub logging_level: String,
    /// Register the diagnostic handlers `rqw.testing.*` (tests, demos, benchmarks).
    #[arg(long)]
    pub enable_testing_handlers: bool,
    /// Also run RQ's scheduler: move due scheduled jobs (enqueue_at/in, retry intervals) to their queues.
    #[arg(long)]
    pub with_scheduler: bool,
    /// Seconds between maintenance passes (abandoned jobs, expired registry entries, dead workers).
    #[arg(long, default_value_t = DEFAULT_MAINTENANCE_INTERVAL)]
    pub maintenance_interval: u64,
    /// Order in which queues are tried: default, round_robin or random.
    #[arg(long, value_enum, default_value = "default")]
    pub dequeue_strategy: DequeueStrategyArg,
    /// How a worker on several queues waits while they are empty: blocking (one BLMOVE per
    /// queue, each on its own connection; a push wakes one worker of a fleet) or tracking
    /// (one client-tracking connection; every push and pop wakes every worker).
    #[arg(long, value_enum, default_value = "blocking", env = "RQW_QUEUE_WAIT")]
    pub queue_wait: QueueWaitArg,
    /// Move jobs whose function has no native handler, intact, to this queue (served by a
    /// Python worker) instead of failing them.
    #[arg(long, value_name = "QUEUE")]
    pub forward_unknown: Option<String>,
    /// Serve Prometheus /metrics and /healthz on this address (e.g. 0.0.0.0:9108).
    #[arg(long, value_name = "ADDR", env = "RQW_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// After SIGTERM, seconds running jobs may still run before they are cancelled and failed
    /// (retries apply) [default: until they end, each bounded by its timeout].
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_grace: Option<u64>,
    /// Seconds to keep retrying when Redis is unreachable at start, then exit 1 (0: forever).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub startup_timeout: u64,
    /// PEM CA certificate to trust for rediss:// URLs (a private CA) [default: public web roots].
    #[arg(long, value_name = "PATH", env = "REDIS_TLS_CA_CERT")]
    pub tls_ca_cert: Option<std::path::PathBuf>,
    /// Run functions without a native handler in Python horses started with this command
    /// (e.g. `python3`, `/app/.venv/bin/python`; split on whitespace) [default: off].
    #[arg(long, value_name = "CMD", env = "RQW_PYTHON")]
    pub python: Option<String>,
    /// `module:callable` each horse calls once after it starts; a callable it returns is a
    /// context-manager factory each job runs inside (Flask's `app.app_context`).
    #[arg(long, value_name = "MODULE:CALLABLE", requires = "python")]
    pub python_setup: Option<String>,
    /// Python horses (each runs one job at a time) [default: the number of cores].
    #[arg(long, value_name = "N", requires = "python")]
    pub python_processes: Option<usize>,
    /// Replace a horse after it ran this many jobs.
    #[arg(long, value_name = "N", requires = "python")]
    pub python_max_jobs: Option<u64>,
    /// Replace a horse whose resident memory, checked between jobs, is over this many MB.
    #[arg(long, value_name = "MB", requires = "python")]
    pub python_max_memory: Option<u64>,
    /// Longest raw `data` or `meta` field of a job, in bytes; a longer one is left in Redis
    /// and the job fails (or is forwarded with --forward-unknown).
    #[arg(long, value_name = "BYTES", env = "RQW_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_FIELD_BYTES)]
    pub max_payload_bytes: u64,
    /// Largest `data` after zlib inflation, in bytes (the inflater stops there).
    #[arg(long, value_name = "BYTES", env = "RQW_MAX_INFLATED_BYTES", default_value_t = DEFAULT_MAX_INFLATED_BYTES)]
    pub max_inflated_bytes: u64,
    /// Memory budget of one decoded payload (its value as built), in bytes.
    #[arg(long, value_name = "BYTES", env = "RQW_MAX_DECODED_BYTES", default_value_t = DEFAULT_MAX_DECODED_BYTES)]
    pub max_decoded_bytes: u64,
    /// Redis Sentinel (instead of --url).
    #[command(flatten)]
    pub sentinel: SentinelArgs,
}

/// Finding the master through Redis Sentinel, as RQ's `SENTINEL` settings do. Given any
/// `--sentinel`, the master comes from the sentinels and `--url` is not used.
#[derive(Debug, Args)]
pub struct SentinelArgs {
    /// A sentinel, HOST:PORT (repeatable; env comma-separated) [RQ: SENTINEL INSTANCES].
    #[arg(
        long = "sentinel",
        value_name = "HOST:PORT",
        env = "RQW_SENTINELS",
        value_delimiter = ','
    )]
    pub sentinels: Vec<String>,
    /// Name of the master the sentinels monitor [RQ: MASTER_NAME].
    #[arg(long, value_name = "NAME", env = "RQW_SENTINEL_MASTER", default_value = DEFAULT_MASTER_NAME)]
    pub sentinel_master: String,
    /// Database on the master [RQ: DB].
    #[arg(long, value_name = "N", env = "RQW_SENTINEL_DB", default_value_t = 0)]
    pub sentinel_db: i64,
    /// ACL user on the master [RQ: USERNAME].
    #[arg(long, value_name = "USER", env = "RQW_SENTINEL_USERNAME")]
    pub sentinel_username: Option<String>,
    /// Password on the master [RQ: PASSWORD].
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "RQW_SENTINEL_PASSWORD",
        hide_env_values = true
    )]
    pub sentinel_password: Option<String>,
    /// TLS to the master, trusting --tls-ca-cert [RQ: SSL].
    #[arg(long, env = "RQW_SENTINEL_TLS")]
    pub sentinel_tls: bool,
    /// Seconds a command to the master (or a sentinel query) may take [RQ: SOCKET_TIMEOUT]
    /// [default: 30].
    #[arg(long, value_name = "SECONDS", env = "RQW_SENTINEL_SOCKET_TIMEOUT")]
    pub sentinel_socket_timeout: Option<f64>,
    /// ACL user on the sentinels themselves [RQ: SENTINEL_KWARGS username].
    #[arg(long, value_name = "USER", env = "RQW_SENTINELS_USERNAME")]
    pub sentinels_username: Option<String>,
    /// Password on the sentinels themselves [RQ: SENTINEL_KWARGS password].
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "RQW_SENTINELS_PASSWORD",
        hide_env_values = true
    )]
    pub sentinels_password: Option<String>,
    /// TLS to the sentinels, trusting --tls-ca-cert [RQ: SENTINEL_KWARGS ssl].
    #[arg(long, env = "RQW_SENTINELS_TLS")]
    pub sentinels_tls: bool,
}

impl SentinelArgs {
    /// The settings, or `None` when no sentinel is given (the URL is used).
    pub fn settings(&self) -> Result<Option<SentinelSettings>, ConfigError> {
        let listed: Vec<&str> = self
            .sentinels
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if listed.is_empty() {
            return Ok(None);
        }
        let sentinels = listed
            .into_iter()
            .map(parse_sentinel_address)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ConfigError::OutOfRange {
                option: "--sentinel",
                reason,
            })?;
        let socket_timeout = match self.sentinel_socket_timeout {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Some(Duration::from_secs_f64(s))
            }
            Some(s) => {
                return Err(ConfigError::OutOfRange {
                    option: "--sentinel-socket-timeout",
                    reason: format!("{s} is not a number of seconds above 0"),
                })
            }
        };
        let settings = SentinelSettings {
            sentinels,
            master_name: self.sentinel_master.clone(),
            db: self.sentinel_db,
            username: self.sentinel_username.clone(),
            password: self.sentinel_password.clone(),
            tls: self.sentinel_tls,
            socket_timeout,
            sentinels_username: self.sentinels_username.clone(),
            sentinels_password: self.sentinels_password.clone(),
            sentinels_tls: self.sentinels_tls,
        };
        settings.check()?;
        Ok(Some(settings))
    }
}

impl RedisArgs {
    /// The options of `rqw inspect` (fails on invalid sentinel settings).
    pub fn into_options(self) -> Result<InspectOptions, ConfigError> {
        Ok(InspectOptions {
            target: RedisTarget {
                sentinel: self.sentinel.settings()?,
                url: self.url,
                tls_ca_cert: self.tls_ca_cert,
            },
            serializer: match self.serializer {
                SerializerArg::Pickle => Serializer::Pickle,
                SerializerArg::Json => Serializer::Json,
            },
            enable_testing_handlers: self.enable_testing_handlers,
            python: self.python.is_some(),
        })
    }
}

impl InfoArgs {
    /// The options of `rqw info` (fails on invalid sentinel settings).
    pub fn into_options(self) -> Result<InfoOptions, ConfigError> {
        Ok(InfoOptions {
            target: RedisTarget {
                sentinel: self.sentinel.settings()?,
                url: self.url,
                tls_ca_cert: self.tls_ca_cert,
            },
            interval: self.interval,
            queues: self.queues,
        })
    }
}

impl WorkerArgs {
    /// Validates the flags (with `RQ_QUEUES` from the environment when no queue is named).
    pub fn into_config(self, rq_queues_env: Option<String>) -> Result<WorkerConfig, ConfigError> {
        let queues = if self.queues.is_empty() {
            rq_queues_env
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            self.queues
        };
        let sentinel = self.sentinel.settings()?;
        let serializer = match self.serializer {
            SerializerArg::Pickle => Serializer::Pickle,
            SerializerArg::Json => Serializer::Json,
        };
        let python = self.python.map(|command| HorseConfig {
            command: command.split_whitespace().map(String::from).collect(),
            setup: self.python_setup,
            processes: self
                .python_processes
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
            max_jobs: self.python_max_jobs,
            max_memory_bytes: self
                .python_max_memory
                .map(|mb| mb.saturating_mul(1024 * 1024)),
            redis_url: self.url.clone(),
            sentinel: sentinel.clone(),
            serializer_name: match serializer {
                Serializer::Pickle => "pickle",
                Serializer::Json => "json",
            },
            tls_ca_cert: self.tls_ca_cert.clone(),
        });
        WorkerConfig {
            redis_url: self.url,
            queues,
            name: self
                .name
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            burst: self.burst,
            max_jobs: self.max_jobs,
            max_idle_time: self.max_idle_time.map(Duration::from_secs),
            worker_ttl: self.worker_ttl,
            job_monitoring_interval: self.job_monitoring_interval,
            results_ttl: self.results_ttl,
            serializer,
            concurrency: usize::from(self.concurrency),
            with_scheduler: self.with_scheduler,
            maintenance_interval: self.maintenance_interval,
            dequeue_strategy: match self.dequeue_strategy {
                DequeueStrategyArg::Default => DequeueStrategy::Default,
                DequeueStrategyArg::RoundRobin => DequeueStrategy::RoundRobin,
                DequeueStrategyArg::Random => DequeueStrategy::Random,
            },
            queue_wait: match self.queue_wait {
                QueueWaitArg::Blocking => QueueWait::Blocking,
                QueueWaitArg::Tracking => QueueWait::Tracking,
            },
            forward_unknown: self.forward_unknown,
            metrics_addr: self.metrics_addr,
            shutdown_grace: self.shutdown_grace.map(Duration::from_secs),
            startup_timeout: (self.startup_timeout > 0)
                .then(|| Duration::from_secs(self.startup_timeout)),
            tls_ca_cert: self.tls_ca_cert,
            python,
            decode_limits: DecodeLimits {
                max_field_bytes: self.max_payload_bytes,
                max_inflated_bytes: self.max_inflated_bytes,
                max_decoded_bytes: self.max_decoded_bytes,
            },
            sentinel,
        }
        .validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> WorkerArgs {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Worker(w) => *w,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn queues_from_args_or_env() {
        let c = parse(&["rqw", "worker", "high", "low"])
            .into_config(Some("x".into()))
            .unwrap();
        assert_eq!(c.queues, vec!["high", "low"]);
        let c = parse(&["rqw", "worker"])
            .into_config(Some("high, default,low".into()))
            .unwrap();
        assert_eq!(c.queues, vec!["high", "default", "low"]);
        let c = parse(&["rqw", "worker"]).into_config(None).unwrap();
        assert_eq!(c.queues, vec!["default"]);
    }

    #[test]
    fn flags_map_to_config() {
        let c = parse(&[
            "rqw",
            "worker",
            "--burst",
            "--name",
            "w1",
            "--results-ttl",
            "-1",
            "-S",
            "json",
            "--concurrency",
            "8",
            "--max-jobs",
            "3",
            "--max-idle-time",
            "2",
        ])
        .into_config(None)
        .unwrap();
        assert!(c.burst);
        assert_eq!(c.name, "w1");
        assert_eq!(c.results_ttl, -1);
        assert_eq!(c.serializer, Serializer::Json);
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.max_jobs, Some(3));
        assert_eq!(c.max_idle_time, Some(Duration::from_secs(2)));
        assert_eq!(c.worker_ttl, 420);
        assert_eq!(c.job_monitoring_interval, 30);
        assert!(c.sentinel.is_none());
        assert!(c.python.is_none());
    }

    #[test]
    fn sentinel_flags_map_to_settings() {
        let c = parse(&[
            "rqw",
            "worker",
            "--sentinel",
            "s1:26379",
            "--sentinel",
            "[::1]:26380",
            "--sentinel-master",
            "calls",
            "--sentinel-db",
            "3",
            "--sentinel-password",
            "pw",
            "--sentinel-socket-timeout",
            "2.5",
            "--sentinels-password",
            "spw",
        ])
        .into_config(None)
        .unwrap();
        let s = c.sentinel.unwrap();
        assert_eq!(s.sentinels, [("s1".into(), 26379), ("::1".into(), 26380)]);
        assert_eq!(s.master_name, "calls");
        assert_eq!(s.db, 3);
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.sentinels_password.as_deref(), Some("spw"));
        assert_eq!(s.socket_timeout, Some(Duration::from_millis(2500)));
        assert!(!s.tls && !s.sentinels_tls);
        let bad = parse(&["rqw", "worker", "--sentinel", "s1"]).into_config(None);
        assert!(bad.unwrap_err().to_string().contains("--sentinel"));
        let bad = parse(&[
            "rqw",
            "worker",
            "--sentinel",
            "s1:1",
            "--sentinel-socket-timeout",
            "0",
        ])
        .into_config(None);
        assert!(bad.is_err());
    }

    #[test]
    fn python_flags_map_to_the_horse_config() {
        let c = parse(&[
            "rqw",
            "worker",
            "-S",
            "json",
            "--python",
            "/app/.venv/bin/python -X dev",
            "--python-setup",
            "app:setup",
            "--python-processes",
            "3",
            "--python-max-jobs",
            "100",
            "--python-max-memory",
            "512",
        ])
        .into_config(None)
        .unwrap();
        let p = c.python.unwrap();
        assert_eq!(p.command, vec!["/app/.venv/bin/python", "-X", "dev"]);
        assert_eq!(p.setup.as_deref(), Some("app:setup"));
        assert_eq!(p.processes, 3);
        assert_eq!(p.max_jobs, Some(100));
        assert_eq!(p.max_memory_bytes, Some(512 * 1024 * 1024));
        assert_eq!(p.serializer_name, "json");
        let both = parse(&[
            "rqw",
            "worker",
            "--python",
            "python3",
            "--forward-unknown",
            "py",
        ])
        .into_config(None);
        assert!(both.unwrap_err().to_string().contains("--python"));
        assert!(Cli::try_parse_from(["rqw", "worker", "--python-processes", "2"]).is_err());
    }
}
