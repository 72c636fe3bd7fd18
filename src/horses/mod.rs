//! Python horses: persistent Python processes, started and owned by rqw, that run the jobs
//! whose function has no native handler (`--python`).
//!
//! ```text
//!  HorsePool (--python-processes N)
//!   ├─ Horse: `<python> -c runner.py`, fds 0/1 = framed protocol, stderr -> rqw's log
//!   │    hello (protocol, rq version) -> job(hash) -> result(return value | exc_string) ...
//!   ├─ a job takes an idle horse (or starts one), gives it back healthy, or discards it
//!   │    (killed at a timeout / command, died, answered garbage, recycled): a replacement starts
//!   └─ start failures: reported once per streak, retried with backoff
//! ```
//! The pool never touches Redis bookkeeping: the runtime (`crate::worker::python`) records
//! every outcome exactly as for a native handler.

pub mod frame;
pub mod horse;
pub mod message;
pub mod pool;

pub use horse::{CallError, Horse, StartError};
pub use pool::{Discard, HorsePool, Lease};

/// How horses are started and recycled.
#[derive(Debug, Clone)]
pub struct HorseConfig {
    /// The Python command (`--python`), split on whitespace: program and its arguments.
    pub command: Vec<String>,
    /// `--python-setup module:callable`.
    pub setup: Option<String>,
    /// Pool size (`--python-processes`).
    pub processes: usize,
    /// Replace a horse after this many jobs (`--python-max-jobs`).
    pub max_jobs: Option<u64>,
    /// Replace a horse whose RSS, checked between jobs, is over this many bytes
    /// (`--python-max-memory`, given in MB).
    pub max_memory_bytes: Option<u64>,
    /// The Redis URL the horses' jobs use (`get_current_job().save_meta()`); handed over in
    /// the environment, never on the command line.
    pub redis_url: String,
    /// With `--sentinel`, the sentinels the horses' own connection finds the master through
    /// (redis-py's `Sentinel.master_for`, which follows a failover), instead of `redis_url`.
    pub sentinel: Option<crate::config::SentinelSettings>,
    /// `pickle` or `json`: the serializer the runner uses.
    pub serializer_name: &'static str,
    /// CA certificate for `rediss://`.
    pub tls_ca_cert: Option<std::path::PathBuf>,
}
