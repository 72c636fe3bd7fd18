//! # rqw: a native worker for RQ (python-rq) queues
//!
//! rqw takes jobs that Python enqueues with RQ, runs them with native Rust handlers, and
//! writes status, results, registries and its worker record exactly as `rq worker` does, so
//! the Python side (`job.get_status()`, `job.return_value()`, `rq info`, rq-dashboard)
//! cannot tell the difference.
//!
//! ## Layout
//! Each room, and what it may touch (`tests/layers.rs` checks the imports and that Redis I/O
//! stays in `store`):
//! - [`protocol`]: RQ's wire format, pure (job hash fields, payloads, results, timestamps,
//!   and [`protocol::PyValue`], the Python value type); the `rqw-protocol` crate of
//!   `src/protocol/`, re-exported here: the compiler checks that it names nothing else of
//!   rqw (a crate cannot import the crate that depends on it), and `tests/layers.rs` keeps
//!   its manifest free of Redis and async crates.
//! - [`keys`]: every Redis key name of RQ's; pure.
//! - [`store`]: every read and write of RQ's keys and every Lua script (the job lifecycle,
//!   the duties' scripts and their shared library, the reads of `rqw info`/`inspect` and of
//!   `/metrics`, the command channel); names `protocol`, `keys`, `config`, `error`, never the
//!   runtime, handlers, horses, metrics or ops.
//! - [`worker`]: the runtime (dequeue, execution, heartbeats, commands, shutdown); names the
//!   store, handlers (their context), horses and metrics (it feeds them); not the duties, ops
//!   or the command line.
//! - [`duties`]: RQ's scheduler (`--with-scheduler`) and maintenance, under RQ's locks; they
//!   see only their [`duties::DutyContext`] and call store functions; never the worker.
//! - [`handlers`]: the handler API, its registry, and the handlers themselves; a handler sees
//!   only its [`handlers::JobContext`] (measures go to its `Recorder`; the last-attempt rule
//!   is `is_last_attempt`). The recording semaphore's own keys are the one Redis I/O outside
//!   the store, by design (they are that contract's, not RQ's).
//! - [`horses`]: Python horses for functions without a native handler (`--python`); no
//!   store, no metrics: the runtime records every outcome.
//! - [`ops`]: operator commands (`rqw info`, `rqw inspect`, `rqw healthcheck`); plain option
//!   structs in, reads through the store; not the command line, worker or duties.
//! - [`metrics`]: Prometheus `/metrics` and `/healthz` on `--metrics-addr`; fed by the
//!   runtime (its probe is filled in by the worker and reads through the store).
//! - [`run`]: the top-level run of `rqw worker`: starts the worker, the duties beside it,
//!   and stops them; named by nothing else of the library.
//! - [`config`], [`cli`], [`logging`], [`error`]: the edges (only `cli` names the operator
//!   commands, to convert its flags into their options).
//!
//! ## Job lifecycle
//! ```text
//! rq:queue:<q> ──start.lua (LPOP, one atomic script)──> rq:wip:<q> "<id>:<x>", status started
//!   (with one queue, an idle wait is RQ's BLMOVE into rq:queue:<q>:intermediate, which
//!    start.lua then empties: an id is never only in the worker's memory)
//!                                                                              │ handler
//!                      ┌──────────────── finish.lua ─────────────────────────┘
//!                      ├─ finished: rq:results:<id> (type 1), rq:finished:<q>, result_ttl
//!                      ├─ failed:   rq:results:<id> (type 2), rq:failed:<q>, failure_ttl
//!                      ├─ retry:    back on rq:queue:<q>, or rq:scheduled:<q> with an interval
//!                      └─ dependents whose dependencies are met: onto their queues
//! ```

pub mod cli;
pub mod config;
pub mod duties;
pub mod error;
pub mod handlers;
pub mod horses;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod ops;
/// RQ's wire format: the `rqw-protocol` crate of `src/protocol/`, pure by construction.
pub use rqw_protocol as protocol;
pub mod run;
pub mod store;
pub mod worker;
