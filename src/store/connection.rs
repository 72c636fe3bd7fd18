//! Opening Redis connections, always to the master an [`Endpoint`] names.
//!
//! Two kinds: a [`CommandConnection`] for ordinary commands (reconnects by itself, bounded
//! response timeout, follows the master when it moves), and a dedicated connection for
//! blocking pops, whose response timeout is longer than any pop it issues (redis-rs' default
//! of 500 ms would cut a blocking pop short).
//!
//! A [`CommandConnection`] wraps redis-rs' `ConnectionManager`, which reconnects to one fixed
//! address. After a failover that address is dead, or a demoted master that answers
//! `READONLY`; so on a connection error (with sentinels) or a `READONLY` reply (always: a
//! managed service's DNS name moves the same way) the connection asks the endpoint for the
//! master again and swaps its inner connection. One caller does that at a time (the others
//! get their error and retry as they would after any lost connection), attempts are spaced
//! by a bounded backoff, and each event is logged twice: when it starts and when the master
//! is found. A command refused with `READONLY` was not executed, so it is sent once more on
//! the new master; any other error goes back to the caller (a lost reply may or may not have
//! been executed: the callers' own retries, which are safe to repeat, decide).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::{
    AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use tokio::sync::Mutex;

pub use super::endpoint::Endpoint;
use crate::error::StoreError;

/// How long an ordinary command may take before it counts as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a single-queue worker's blocking pop blocks; the worker checks for shutdown
/// between pops.
pub const MAX_BLOCK: Duration = Duration::from_secs(5);

/// Parses the URL into a client (no I/O).
pub fn client(url: &str) -> Result<Client, StoreError> {
    Ok(Client::open(url)?)
}

/// Like [`client`], trusting the PEM CA certificate at `ca_cert` for `rediss://` (a private
/// CA) instead of the public web roots.
pub fn client_with_ca(url: &str, ca_cert: Option<&std::path::Path>) -> Result<Client, StoreError> {
    let Some(path) = ca_cert else {
        return client(url);
    };
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::Tls(format!(
            "cannot read CA certificate {}: {e}",
            path.display()
        ))
    })?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    Ok(Client::build_with_tls(url, certificates)?)
}

/// The first pause between two attempts to find a moved master.
const FOLLOW_MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between two attempts to find a moved master.
pub const FOLLOW_MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Opens the reconnecting connection for ordinary commands and scripts, to the endpoint's
/// current master.
pub async fn command_connection(endpoint: &Endpoint) -> Result<CommandConnection, StoreError> {
    CommandConnection::open(endpoint).await
}

async fn manager(client: &Client, timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    let connect = client.get_connection_manager_with_config(config);
    // ConnectionManager's first connect retries by itself; bound it.
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, connect).await {
        Ok(opened) => Ok(opened?),
        Err(_) => Err(StoreError::Redis(RedisError::from((
            redis::ErrorKind::Io,
            "connecting timed out",
        )))),
    }
}

/// The command connection: a reconnecting connection that follows the master (see the module
/// documentation). Cheap to clone; every clone shares the same connection.
#[derive(Clone)]
pub struct CommandConnection {
    shared: Arc<Shared>,
}

struct Shared {
    endpoint: Endpoint,
    /// The inner connection and how many swaps it took to get it.
    current: RwLock<(u64, ConnectionManager)>,
    /// Held by the one caller looking for the master.
    follow: Mutex<Follow>,
}

/// The state of an event (from the first failure to the master found again).
#[derive(Default)]
struct Follow {
    /// When the current event started (`None`: no event).
    since: Option<tokio::time::Instant>,
    /// No attempt before this.
    next_try: Option<tokio::time::Instant>,
    /// The pause after the next attempt.
    backoff: Duration,
    /// Attempts in this event.
    attempts: u32,
    /// When the master was last found: a new event soon after keeps the backoff growing (a
    /// URL that keeps naming a replica reconnects at most once per [`FOLLOW_MAX_BACKOFF`]).
    found_at: Option<tokio::time::Instant>,
}

/// An event this long after the last one starts again from [`FOLLOW_MIN_BACKOFF`].
const FOLLOW_CALM: Duration = Duration::from_secs(30);

impl CommandConnection {
    /// Connects to the endpoint's current master.
    pub async fn open(endpoint: &Endpoint) -> Result<Self, StoreError> {
        let client = endpoint.master().await?;
        let inner = manager(&client, endpoint.command_timeout()).await?;
        Ok(Self {
            shared: Arc::new(Shared {
                endpoint: endpoint.clone(),
                current: RwLock::new((0, inner)),
                follow: Mutex::new(Follow {
                    backoff: FOLLOW_MIN_BACKOFF,
                    ..Follow::default()
                }),
            }),
        })
    }

    /// Where this connection finds its master.
    pub fn endpoint(&self) -> &Endpoint {
        &self.shared.endpoint
    }

    fn current(&self) -> (u64, ConnectionManager) {
        match self.shared.current.read() {
            Ok(guard) => (guard.0, guard.1.clone()),
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                (guard.0, guard.1.clone())
            }
        }
    }

    /// After `trouble` on the connection of generation `seen`: finds the master again unless
    /// somebody did meanwhile (or the backoff says not yet). True when the inner connection
    /// was swapped (by this call or another since `seen`).
    async fn follow(&self, seen: u64, trouble: Trouble) -> bool {
        let read_only = matches!(trouble, Trouble::ReadOnly);
        let error = match &trouble {
            Trouble::ReadOnly => "READONLY".to_string(),
            Trouble::Lost(e) => e.to_string(),
        };
        let mut state = self.shared.follow.lock().await;
        if self.current().0 != seen {
            return true;
        }
        let now = tokio::time::Instant::now();
        if state.next_try.is_some_and(|at| now < at) {
            return false;
        }
        if state.since.is_none() && state.found_at.is_none_or(|at| at.elapsed() > FOLLOW_CALM) {
            state.backoff = FOLLOW_MIN_BACKOFF;
        }
        let started = *state.since.get_or_insert_with(|| {
            tracing::warn!(
                endpoint = %self.shared.endpoint.describe(),
                error = %error,
                "{}; looking for the Redis master",
                if read_only { "Redis answered READONLY (a demoted master)" } else { "lost the Redis master" }
            );
            now
        });
        state.attempts += 1;
        let attempted_at = tokio::time::Instant::now();
        let found = match self.shared.endpoint.master().await {
            Ok(client) => manager(&client, self.shared.endpoint.command_timeout())
                .await
                .map(|conn| (client, conn)),
            Err(e) => Err(e),
        };
        match found {
            Ok((client, conn)) => {
                {
                    let mut guard = match self.shared.current.write() {
                        Ok(g) => g,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    *guard = (guard.0 + 1, conn);
                }
                self.shared.endpoint.moved();
                tracing::info!(
                    endpoint = %self.shared.endpoint.describe(),
                    master = %master_address(&client),
                    attempts = state.attempts,
                    after = ?started.elapsed(),
                    "connected to the Redis master at {}", master_address(&client)
                );
                state.since = None;
                state.attempts = 0;
                state.found_at = Some(attempted_at);
                state.next_try = Some(attempted_at + state.backoff);
                state.backoff = (state.backoff * 2).min(FOLLOW_MAX_BACKOFF);
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?state.backoff, "no Redis master yet");
                state.next_try = Some(attempted_at + state.backoff);
                state.backoff = (state.backoff * 2).min(FOLLOW_MAX_BACKOFF);
                false
            }
        }
    }
}

/// `host:port` of a client's server (never credentials).
fn master_address(client: &Client) -> String {
    match &client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        redis::ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "?".to_string(),
    }
}

/// Why the master has to be found again.
enum Trouble {
    /// A `READONLY` reply: the server is a replica now.
    ReadOnly,
    /// The connection is gone, refused or timed out (acted on with sentinels only: a fixed
    /// URL's ConnectionManager reconnects by itself).
    Lost(RedisError),
}

/// A `READONLY` error (also raised inside a script, whose reply keeps the code since Redis 7).
pub fn is_read_only(error: &RedisError) -> bool {
    error.code() == Some("READONLY")
}

/// A `READONLY` error reply (redis-rs hands server errors back as values).
fn is_read_only_value(value: &Value) -> bool {
    matches!(value, Value::ServerError(e) if e.code() == "READONLY")
}

/// The connection is gone, refused or timed out.
pub fn is_connection_lost(error: &RedisError) -> bool {
    error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_io_error()
}

impl CommandConnection {
    /// What calls for finding the master, in the outcome of a command.
    fn trouble<T>(
        &self,
        outcome: &RedisResult<T>,
        read_only_reply: impl Fn(&T) -> bool,
    ) -> Option<Trouble> {
        match outcome {
            Ok(value) if read_only_reply(value) => Some(Trouble::ReadOnly),
            Ok(_) => None,
            Err(e) if is_read_only(e) => Some(Trouble::ReadOnly),
            Err(e) if self.shared.endpoint.is_sentinel() && is_connection_lost(e) => {
                Some(Trouble::Lost(e.clone()))
            }
            Err(_) => None,
        }
    }
}

impl ConnectionLike for CommandConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (seen, mut conn) = self.current();
            let outcome = conn.req_packed_command(cmd).await;
            match self.trouble(&outcome, is_read_only_value) {
                // Refused, so not executed: send it once more, to the new master.
                Some(Trouble::ReadOnly) if self.follow(seen, Trouble::ReadOnly).await => {
                    self.current().1.req_packed_command(cmd).await
                }
                Some(trouble) => {
                    self.follow(seen, trouble).await;
                    outcome
                }
                None => outcome,
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (seen, mut conn) = self.current();
            let outcome = conn.req_packed_commands(pipeline, offset, count).await;
            let any_read_only = |values: &Vec<Value>| values.iter().any(is_read_only_value);
            match self.trouble(&outcome, any_read_only) {
                // A pipeline's writes were all refused on a replica (its reads are harmless).
                Some(Trouble::ReadOnly) if self.follow(seen, Trouble::ReadOnly).await => {
                    self.current()
                        .1
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
                Some(trouble) => {
                    self.follow(seen, trouble).await;
                    outcome
                }
                None => outcome,
            }
        })
    }

    fn get_db(&self) -> i64 {
        self.current().1.get_db()
    }
}

/// A connection reserved for blocking pops, and its server-side client id (so another
/// connection can end a pop early with `CLIENT UNBLOCK` at shutdown).
pub struct BlockingConnection {
    /// The connection.
    pub conn: MultiplexedConnection,
    /// `CLIENT ID` of the connection.
    pub client_id: i64,
    /// [`Endpoint::generation`] when it was opened.
    pub generation: u64,
    /// The longest block a pop on it may ask for (its response timeout allows that much
    /// plus the command timeout).
    pub max_block: Duration,
}

/// Opens a [`BlockingConnection`] to the endpoint's current master, for pops of up to
/// `max_block` each.
pub async fn blocking_connection(
    endpoint: &Endpoint,
    max_block: Duration,
) -> Result<BlockingConnection, StoreError> {
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(max_block + endpoint.command_timeout()))
        .set_connection_timeout(Some(CONNECT_TIMEOUT));
    let mut conn = endpoint
        .master()
        .await?
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let client_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    Ok(BlockingConnection {
        conn,
        client_id,
        generation: endpoint.generation(),
        max_block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_replies_are_recognised() {
        let value =
            redis::parse_redis_value(b"-READONLY You can't write against a read only replica. script: abc, on @user_script:1.\r\n")
                .unwrap();
        assert!(is_read_only_value(&value));
        let error = value.extract_error().unwrap_err();
        assert!(is_read_only(&error), "{error}");
    }
}
