//! [`DutyContext`]: what the duties know of the worker they run beside, and nothing more.

use std::sync::Arc;

use crate::keys::Keys;
use crate::store::connection::CommandConnection;

/// The StartedJobRegistry members of the executions this worker runs now (both forms
/// start.lua writes: `<id>:<execution id>` and the plain id of an rq 1.x job). Maintenance
/// leaves them alone: a lapsed heartbeat of a job still running here is not abandonment.
pub type OwnExecutions = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Everything the scheduler and maintenance need: a connection, the key names, who the worker
/// is, its queues and the two duty settings. Built by the top-level run from the started
/// worker; the duties never see the worker itself.
#[derive(Clone)]
pub struct DutyContext {
    /// Reconnecting command connection that follows the master (shared with the worker).
    pub conn: CommandConnection,
    /// Key names.
    pub keys: Keys,
    /// The worker's name (in maintenance lease tokens and log lines).
    pub worker_name: String,
    /// The worker's host (in the scheduler hash).
    pub hostname: String,
    /// The worker's pid (in the scheduler hash).
    pub pid: u32,
    /// The worker's queues, in order.
    pub queues: Vec<String>,
    /// `--maintenance-interval` (seconds).
    pub maintenance_interval: u64,
    /// `--with-scheduler`.
    pub with_scheduler: bool,
    /// `--burst`: one pass of each duty, before the worker takes jobs.
    pub burst: bool,
    /// The executions the worker runs now.
    pub own_executions: OwnExecutions,
}
