//! Test harness: real servers on free loopback ports, started per test and removed on drop.
//!
//! - [`NatsServer`]: a `nats-server -js` with its own store directory.
//! - [`NatsCluster`]: several `nats-server` nodes of one JetStream cluster, each killable.
//! - [`Postgres`]: a throwaway PostgreSQL cluster (`initdb` + `pg_ctl`) in a temp directory.
//! - [`OtlpReceiver`]: an OTLP/HTTP receiver that decodes the spans and metrics exported to it.
//! - [`wait_for`]: poll a condition until it holds or a deadline passes, instead of sleeping.
//!
//! ```no_run
//! # async fn demo() -> Result<(), saga_testkit::Error> {
//! let nats = saga_testkit::NatsServer::start()?;
//! let client_url = nats.url();
//! # Ok(()) }
//! ```
//!
//! The end-to-end scenarios live in `tests/e2e/`.

mod cluster;
mod identities;
mod nats;
pub mod otlp;
mod postgres;
mod wait;

pub use cluster::NatsCluster;
pub use identities::{HARNESS, Identities};
pub use nats::{NatsOptions, NatsServer, nats_server_bin};
pub use otlp::OtlpReceiver;
pub use postgres::Postgres;
pub use wait::wait_for;

use std::net::TcpListener;
use std::path::PathBuf;

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found: {hint}")]
    NotFound { what: &'static str, hint: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A TCP port on 127.0.0.1 that was free a moment ago, and never handed out before by this
/// process: the kernel may give a just-released port again, and two servers of one test told
/// the same port would race for it.
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut handed_out = match HANDED_OUT.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// Path of the `saga` binary, built once per test process if it is not there yet.
///
/// Test binaries live in `target/<profile>/deps/`; the binary is in `target/<profile>/`.
pub fn saga_bin() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let profile_dir = exe
                .parent()
                .and_then(|deps| deps.parent())
                .ok_or("test binary has no profile directory")?
                .to_path_buf();
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "saga-cli", "--bin", "saga"])
                .current_dir(workspace_root())
                .status()
                .map_err(|e| format!("cargo build: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build of the saga binary failed: {status}"));
            }
            Ok(profile_dir.join("saga"))
        })
        .clone()
        .map_err(|hint| Error::NotFound {
            what: "saga binary",
            hint,
        })
}

/// The last `lines` lines of every `*.log` in `dir`, each under its name, for failure messages.
pub fn log_tails(dir: &std::path::Path, lines: usize) -> String {
    let mut out = String::new();
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|x| x == "log"));
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(lines).collect();
        let name = log.file_stem().unwrap_or_default().to_string_lossy();
        out.push_str(&format!("--- {name} ---\n"));
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
