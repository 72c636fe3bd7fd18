//! `rqw info`: queues, registries and workers, like `rq info`.

use crate::cli::InfoArgs;

/// Runs `rqw info`.
pub async fn run(_args: InfoArgs) -> anyhow::Result<()> {
    anyhow::bail!("rqw info is not implemented yet")
}
