//! # rqw: a native worker for RQ (python-rq) queues
//!
//! rqw takes jobs that Python enqueues with RQ, runs them with native Rust handlers, and
//! writes status, results, registries and its worker record exactly as `rq worker` does, so
//! the Python side (`job.get_status()`, `job.return_value()`, `rq info`, rq-dashboard)
//! cannot tell the difference.
//!
//! ## Layout
//! - [`protocol`]: RQ's wire format, pure (job hash fields, payloads, results, timestamps).
//! - [`keys`]: every Redis key name.
//! - [`store`]: Redis I/O; the job lifecycle as atomic Lua scripts.
//! - [`worker`]: the runtime (dequeue, execution, heartbeats, shutdown).
//! - [`duties`]: RQ's scheduler (`--with-scheduler`) and maintenance, under RQ's locks.
//! - [`handlers`]: the handler API, its registry, and the handlers themselves.
//! - [`horses`]: Python horses for functions without a native handler (`--python`).
//! - [`ops`]: operator commands (`rqw info`, `rqw inspect`, `rqw healthcheck`).
//! - [`metrics`]: Prometheus `/metrics` and `/healthz` on `--metrics-addr`.
//! - [`run`]: the top-level run of `rqw worker`: the worker, and the duties beside it.
//! - [`config`], [`cli`], [`logging`], [`error`]: the edges.
//!
//! Imports point down only: `protocol` and `keys` name nothing else of the crate; `store`
//! names neither the runtime nor handlers, horses or metrics; `handlers`, `horses` and
//! `metrics` do not reach into the runtime. `tests/layers.rs` checks this (and that Redis I/O
//! stays in `store`), with the arrows still to be removed listed there.
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
pub mod protocol;
pub mod run;
pub mod store;
pub mod worker;
