//! Read-only operator commands: `rqw info` (like `rq info`) and `rqw inspect` (what is
//! waiting, and whether rqw runs it natively).

pub mod healthcheck;
pub mod info;
pub mod inspect;

/// The command connection of an operator command and the endpoint's description (passwords
/// masked), for its output and its error messages.
pub async fn connect(
    url: &str,
    sentinel: Result<Option<crate::config::SentinelSettings>, crate::config::ConfigError>,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<(crate::store::connection::CommandConnection, String)> {
    use anyhow::Context;
    let redis = endpoint(url, sentinel, ca_cert)?;
    let described = redis.describe().to_string();
    let conn = crate::store::connection::command_connection(&redis)
        .await
        .with_context(|| format!("cannot connect to Redis at {described}"))?;
    Ok((conn, described))
}

/// The endpoint of an operator command: the sentinels when any are given, else the URL.
pub fn endpoint(
    url: &str,
    sentinel: Result<Option<crate::config::SentinelSettings>, crate::config::ConfigError>,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<crate::store::connection::Endpoint> {
    use anyhow::Context;
    let settings = sentinel?;
    crate::store::connection::Endpoint::from_settings(url, settings.as_ref(), ca_cert).with_context(
        || match &settings {
            Some(s) => format!("invalid sentinel settings {}", s.describe()),
            None => format!("invalid Redis URL {}", crate::config::mask_url(url)),
        },
    )
}
