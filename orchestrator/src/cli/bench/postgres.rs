//! A throwaway PostgreSQL cluster for the bench, stopped and deleted on drop.
//!
//! The same recipe as the test harness (`tests/src/postgres.rs`): the machine's `initdb` and
//! `pg_ctl` (`$PG_BIN_DIR`, `/usr/lib/postgresql/*/bin`, or `PATH`), trust authentication on
//! 127.0.0.1, and `runuser -u postgres` when running as root, because PostgreSQL refuses to
//! run as root. Unlike the tests it keeps PostgreSQL's durability defaults (`fsync`,
//! `synchronous_commit`), so the figures are those of a real deployment on this disk.

use super::super::Error;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    /// Creates a cluster under `dir` (which must exist and be empty) and starts it on `port`.
    pub fn start(dir: &Path, port: u16) -> Result<Self, Error> {
        let as_postgres_user = is_root();
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir))?;
        }
        let pg = Postgres {
            bin: pg_bin_dir()?,
            dir: dir.to_path_buf(),
            port,
            as_postgres_user,
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
        let opts = format!(
            "-p {port} -k {} -h 127.0.0.1 -c max_connections=200 -c shared_buffers=128MB",
            dir.display()
        );
        let log = format!("{}/postgres.log", dir.display());
        pg.run_pg(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-o", &opts, "-w", "start"],
        )?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("PostgreSQL did not open port {port}; see {log}").into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(pg)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, Error> {
        let port = self.port.to_string();
        self.run_pg(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
        )?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// The postmaster's pid (first line of `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        let text =
            std::fs::read_to_string(Path::new(&self.data_dir()).join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    fn data_dir(&self) -> String {
        format!("{}/data", self.dir.display())
    }

    fn run_pg(&self, tool: &str, args: &[&str]) -> Result<(), Error> {
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

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin_dir() -> Result<PathBuf, Error> {
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
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("pg_ctl").exists() && d.join("initdb").exists())
        .map(|d| {
            std::fs::canonicalize(d.join("pg_ctl"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or(d)
        })
        .ok_or_else(|| {
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install them or set PG_BIN_DIR"
                .into()
        })
}
