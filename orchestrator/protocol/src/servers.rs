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

/// Connects to `urls` (see [`parse`]) as client `name`. NATS not being up yet is waited
/// out: the client keeps connecting in the background, and what needs the connection waits
/// for it. Only a bad URL or bad settings fail here.
pub async fn connect(urls: &str, name: &str) -> Result<async_nats::Client, ConnectError> {
    let servers = parse(urls).map_err(ConnectError::Url)?;
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
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
