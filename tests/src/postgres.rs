use crate::{Error, Result, free_port};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A throwaway PostgreSQL cluster on a free port, stopped and deleted on drop. The one
/// launcher of the project: the tests and `saga bench` start PostgreSQL with it.
///
/// Uses the `initdb` and `pg_ctl` of the machine (`$PG_BIN_DIR`, `/usr/lib/postgresql/*/bin`,
/// or `PATH`), trust authentication on 127.0.0.1. When running as root, the cluster runs as
/// the `postgres` user through `runuser`, because PostgreSQL refuses to run as root.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres_user: bool,
    durable: bool,
}

impl Postgres {
    /// Creates and starts a cluster for tests: durability off (`fsync`,
    /// `synchronous_commit`, `full_page_writes`), since a test's data is thrown away.
    pub fn start() -> Result<Self> {
        Self::create(false)
    }

    /// From async code: starts a test cluster with database `name` in it, off the runtime's
    /// worker threads (starting a cluster blocks for a second or two). Keep the cluster for as
    /// long as the database is used.
    pub async fn with_database(name: &str) -> Result<(Self, String)> {
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let pg = Self::start()?;
            let url = pg.create_database(&name)?;
            Ok((pg, url))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Creates and starts a cluster with PostgreSQL's durability defaults, so what is
    /// measured against it is what a real deployment on this disk would do.
    pub fn start_durable() -> Result<Self> {
        Self::create(true)
    }

    fn create(durable: bool) -> Result<Self> {
        let bin = pg_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("saga-pg-").tempdir()?;
        let as_postgres_user = is_root();
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()))?;
        }
        let pg = Postgres {
            bin,
            dir,
            port: free_port()?,
            as_postgres_user,
            durable,
        };
        let data = pg.data_dir();
        pg.run_pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        pg.launch()?;
        Ok(pg)
    }

    /// Stops the server as an outage would: open connections are cut (`pg_ctl -m fast`),
    /// the data stays. [`Postgres::start_again`] brings it back.
    pub fn stop(&self) -> Result<()> {
        let data = self.data_dir();
        self.run_pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"])
    }

    /// Starts a server stopped by [`Postgres::stop`] again, on the same port with the same data.
    pub fn start_again(&self) -> Result<()> {
        self.launch()
    }

    /// Starts the server on its port and waits until it accepts connections.
    fn launch(&self) -> Result<()> {
        let data = self.data_dir();
        let durability = if self.durable {
            "-c shared_buffers=128MB"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let opts = format!(
            "-p {} -k {} -h 127.0.0.1 -c max_connections=200 {durability}",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/log", self.dir.path().display());
        self.run_pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(Error::Timeout("PostgreSQL to accept connections".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// URL of database `name` (see [`Postgres::create_database`]).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let port = self.port.to_string();
        self.run_pg(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        )?;
        Ok(self.database_url(name))
    }

    /// Keeps the cluster's directory (data and `log`) after it is dropped; returns where it is.
    pub fn keep_files(&mut self) -> &Path {
        self.dir.disable_cleanup(true);
        self.dir.path()
    }

    /// The postmaster's pid (first line of `postmaster.pid`), while it runs.
    pub fn pid(&self) -> Option<u32> {
        let text =
            std::fs::read_to_string(Path::new(&self.data_dir()).join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args);
        run(&mut cmd)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run_pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Command {
        command: format!("{cmd:?}"),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    if let Some(dir) = versions
        .into_iter()
        .rev()
        .find(|d| d.join("pg_ctl").exists())
    {
        return Ok(dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").exists() && dir.join("initdb").exists() {
                return Ok(canonical_bin(&dir));
            }
        }
    }
    Err(Error::NotFound {
        what: "PostgreSQL (initdb, pg_ctl)",
        hint: "install PostgreSQL server binaries or set PG_BIN_DIR".into(),
    })
}

fn canonical_bin(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir.join("pg_ctl"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| dir.to_path_buf())
}
