//! # rqw: a native worker for RQ (python-rq) queues
//!
//! rqw takes jobs that Python enqueues with RQ, runs them with native Rust handlers, and
//! writes status, results, registries and its worker record exactly as `rq worker` does, so
//! the Python side (`job.get_status()`, `job.return_value()`, `rq info`, rq-dashboard)
//! cannot tell the difference.
//!
//! ## Layout
//! - [`protocol`]: RQ's wire format, pure (job hash fields, payloads, results, timestamps,
//!   and [`protocol::PyValue`], the Python value type); the `rqw-protocol` crate of
//!   `src/protocol/`, re-exported here.
//! - [`keys`]: every Redis key name.
//! - [`store`]: Redis I/O; the job lifecycle as atomic Lua scripts.
//! - [`worker`]: the runtime (dequeue, execution, heartbeats, shutdown).
//! - [`duties`]: RQ's scheduler (`--with-scheduler`) and maintenance, under RQ's locks.
//! - [`handlers`]: the handler API, its registry, and the handlers themselves.
//! - [`horses`]: Python horses for functions without a native handler (`--python`).
//! - [`ops`]: operator commands (`rqw info`, `rqw inspect`, `rqw healthcheck`).
//! - [`metrics`]: Prometheus `/metrics` and `/healthz` on `--metrics-addr`.
//! - [`config`], [`cli`], [`logging`], [`error`]: the edges.
//!
//! Imports point down only: `protocol` (pure) <- `store` (every RQ key read and write, every
//! Lua script) <- `worker` / `duties`. `protocol` and `keys` name nothing else of the crate:
//! for `protocol` the compiler checks it, since a crate cannot import the crate that depends
//! on it, and `tests/layers.rs` keeps its manifest free of Redis and async crates. `store`
//! names neither the runtime nor handlers, horses or metrics; `handlers` see only their
//! context (the value type they return is the protocol's, re-exported as
//! [`handlers::PyValue`]); `horses` and `metrics` do not reach into the runtime.
//! `tests/layers.rs` checks the rest (and that Redis I/O stays in `store`), with the arrows
//! still to be removed listed there.
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
pub mod store;
pub mod worker;
