//! Read-only operator commands: `rqw info` (like `rq info`) and `rqw inspect` (what is
//! waiting, and whether rqw runs it natively).

pub mod healthcheck;
pub mod info;
pub mod inspect;
