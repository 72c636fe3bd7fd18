//! `rqw inspect`: per queue and registry, the function paths waiting and whether rqw can run
//! each natively.

use crate::cli::RedisArgs;

/// Runs `rqw inspect`.
pub async fn run(_args: RedisArgs) -> anyhow::Result<()> {
    anyhow::bail!("rqw inspect is not implemented yet")
}
