//! State shared by the worker loop and every job task, read-only after start-up except the
//! running set (which has its own lock).

use std::sync::Arc;

use super::running::RunningJobs;
use super::shutdown::Shutdown;
use crate::config::WorkerConfig;
use crate::handlers::HandlerRegistry;
use crate::horses::HorsePool;
use crate::keys::Keys;
use crate::store::connection::CommandConnection;
use crate::store::worker_record::WorkerIdentity;

/// Everything a job task needs.
pub struct WorkerContext {
    /// Validated configuration.
    pub config: WorkerConfig,
    /// Key names.
    pub keys: Keys,
    /// Who we are in Redis.
    pub identity: WorkerIdentity,
    /// Function path -> handler.
    pub handlers: HandlerRegistry,
    /// Reconnecting command connection that follows the master (cheap to clone).
    pub conn: CommandConnection,
    /// Executions in progress.
    pub running: RunningJobs,
    /// Shutdown requests.
    pub shutdown: Shutdown,
    /// The Python horses (`--python`), for functions without a native handler.
    pub horses: Option<Arc<HorsePool>>,
}

impl WorkerContext {
    /// TTL of the worker key while idle (`worker_ttl + 60`, RQ's 480 by default).
    pub fn worker_key_ttl(&self) -> u64 {
        self.config.worker_ttl + 60
    }
}
