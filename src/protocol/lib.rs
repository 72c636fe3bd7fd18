//! RQ's wire format, pure and free of I/O: how jobs, results and timestamps are encoded in
//! Redis. Everything here is a function from bytes/strings to values and back, tested against
//! golden data made by real RQ (`python-fixtures/`).
//!
//! This is the bottom room of rqw, and the direction rule is the compiler's here: this crate
//! (`rqw-protocol`, which rqw re-exports as `rqw::protocol`) imports nothing of rqw (it
//! cannot: rqw depends on it), and depends on no Redis or async runtime crate (rqw's
//! `tests/layers.rs` checks its manifest). Everything above points down to it: the store
//! reads and writes RQ's keys in these formats, the worker and duties decide with them, and
//! handlers see only [`PyValue`] (re-exported as `rqw::handlers::PyValue`).
//!
//! - [`value`]: [`PyValue`], the Python value type of payloads and results.
//! - [`payload`]: the job's `data` tuple and `meta` (zlib + pickle or JSON), and result values.
//! - [`unpickle`]: the pickle decoder, which refuses pickle content beyond plain data.
//! - [`json_value`]: conversion between JSON and [`PyValue`].
//! - [`timestamp`]: RQ's datetime and score formats.
//! - [`job_record`]: the fields of a job hash that the worker reads.
//! - [`exception`]: Python-style exception texts for failed jobs.
//! - [`outcome`]: the pure decision of what RQ records for how an execution ended (retries,
//!   repeats, TTLs).
//! - [`result`]: the `rq:results:<id>` stream entry fields.
//! - [`text`]: hostile text escaped and bounded before it is echoed (logs, failure texts).

pub mod exception;
pub mod job_record;
pub mod json_value;
pub mod outcome;
pub mod payload;
pub mod result;
pub mod text;
pub mod timestamp;
pub mod unpickle;
pub mod value;

pub use value::PyValue;
