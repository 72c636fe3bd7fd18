//! Redis I/O: every read and write of RQ's keys goes through here. The job lifecycle writes
//! are Lua scripts (`scripts/*.lua`), so each step is atomic and one round trip.
//!
//! - [`command_channel`]: the worker's pub/sub command channel (`rq:pubsub:<name>`).
//! - [`connection`]: opening connections (commands, blocking pops), following the master.
//! - [`endpoint`]: where the master is (a URL, or Redis Sentinel).
//! - [`scripts`]: the Lua scripts and their typed wrappers (start, heartbeat).
//! - [`finish`]: recording outcomes, a batch of them per call (`finish.lua`).
//! - [`duties`]: the duties' Lua scripts (scheduler locks and moves, recovery, ready jobs, dead
//!   workers), the maintenance lease and the registry reads of a maintenance pass.
//! - [`observe`]: the reads behind `/metrics` and `/healthz` (heartbeat fields, queue depths).
//! - [`overview`]: the read-only reads of `rqw info` and `rqw inspect`.
//! - [`worker_record`]: the worker hash: registration, state, death.
//! - [`queue_wait`]: the blocking wait for a job on one queue.
//! - [`queue_watch`]: being woken when a job lands on one of several queues.
//! - [`reconcile`]: finding out what a call whose reply was lost did (start, finish).

pub mod command_channel;
pub mod connection;
pub mod duties;
pub mod endpoint;
pub mod finish;
pub mod observe;
pub mod overview;
pub mod queue_wait;
pub mod queue_watch;
pub mod reconcile;
pub mod scripts;
pub mod worker_record;
