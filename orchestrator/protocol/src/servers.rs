//! The NATS servers a process connects to, from one setting: a URL, or several separated by
//! commas (the nodes of a cluster). The client connects to one of them and moves to another
//! when it dies; the cluster tells it of the other nodes as well.
//!
//! ```
//! let servers = saga_protocol::servers::parse("nats://127.0.0.1:4222, nats://127.0.0.1:4223")?;
//! assert_eq!(servers.len(), 2);
//! assert!(saga_protocol::servers::parse("nats://127.0.0.1:notaport").is_err());
//! # Ok::<(), String>(())
//! ```

use crate::auth::{Credentials, Key, Role};
use async_nats::ServerAddr;

/// Why a process could not connect to NATS.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid NATS URL: {0}")]
    Url(String),
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },
}

/// Connects to `urls` (see [`parse`]) as client `name` in `role`, authenticated by
/// `credentials` (see [`crate::auth`]), with its request inboxes under the role's prefix.
/// NATS not being up yet is waited out: the client keeps connecting in the background, and
/// what needs the connection waits for it. Only a bad URL or bad settings fail here; refused
/// credentials are logged as the client retries (the server may be given them later).
pub async fn connect(
    urls: &str,
    name: &str,
    role: &Role,
    credentials: &Credentials,
) -> Result<async_nats::Client, ConnectError> {
    let options = options(name, role, credentials).retry_on_initial_connect();
    open(urls, options).await
}

/// [`connect`] for a command that should fail at once when NATS is not there (the command
/// line's clients): one attempt at the first connection.
pub async fn connect_once(
    urls: &str,
    name: &str,
    role: &Role,
    credentials: &Credentials,
) -> Result<async_nats::Client, ConnectError> {
    open(urls, options(name, role, credentials)).await
}

fn options(name: &str, role: &Role, credentials: &Credentials) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new()
        .name(name)
        .custom_inbox_prefix(role.inbox_prefix());
    let options = match &credentials.key {
        Key::NKey { seed, .. } => options.nkey(seed.clone()),
        Key::None => {
            tracing::warn!(
                role = role.name(),
                "connecting to NATS without authentication (--nats-no-auth): anyone who \
                 reaches the server can publish commands and forge replies"
            );
            options
        }
    };
    match &credentials.ca {
        Some(ca) => options.add_root_certificates(ca.clone()).require_tls(true),
        None => {
            tracing::warn!(
                role = role.name(),
                "connecting to NATS without TLS (no --nats-ca): the NKey is never sent, but \
                 commands and replies cross the network in clear text"
            );
            options
        }
    }
}

async fn open(
    urls: &str,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, ConnectError> {
    let servers = parse(urls).map_err(ConnectError::Url)?;
    options
        .connect(servers)
        .await
        .map_err(|source| ConnectError::Connect {
            url: urls.to_string(),
            source,
        })
}

/// The servers of `urls`, or why one of them is not a NATS URL.
pub fn parse(urls: &str) -> Result<Vec<ServerAddr>, String> {
    let servers = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<ServerAddr>()
                .map_err(|e| format!("`{url}` is not a NATS server URL: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err("no NATS server URL given".into());
    }
    Ok(servers)
}
