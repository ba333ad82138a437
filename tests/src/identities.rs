//! The NATS identities of a test system: an NKey each for the orchestrator, the admin, every
//! participant and the harness itself, with the server's `authorization` block granting each
//! its role's permissions ([`saga_protocol::auth`]). Made by the launchers ([`crate::NatsServer`],
//! [`crate::NatsCluster`]); a test gives each process its identity's flags.

use crate::{Error, Result};
use saga_protocol::auth::{self, Credentials, Identity, Role};
use std::path::{Path, PathBuf};

/// The identity of the test harness itself: it may publish and subscribe to anything, as a
/// test observing (or attacking) the system must.
pub const HARNESS: &str = "harness";

/// The seeds of every identity, in one directory; or none, for a server without
/// authentication.
#[derive(Debug, Clone)]
pub struct Identities {
    dir: Option<PathBuf>,
    /// The server's `authorization` block.
    authorization: String,
    /// The CA every client trusts the server by, when the server speaks TLS.
    ca: Option<PathBuf>,
}

impl Identities {
    /// No authentication: every client connects with `--nats-no-auth`.
    pub fn none() -> Self {
        Identities {
            dir: None,
            authorization: String::new(),
            ca: None,
        }
    }

    /// These identities, trusting a server that speaks TLS by the CA certificate `ca`.
    pub fn with_ca(self, ca: PathBuf) -> Self {
        Identities {
            ca: Some(ca),
            ..self
        }
    }

    /// The CA certificate of the server, when it speaks TLS.
    pub fn ca(&self) -> Option<PathBuf> {
        self.ca.clone()
    }

    /// Makes the identities of the orchestrator, the admin, the conformance kit,
    /// `participants` (default: `account`, `order` and `inventory`) and the harness, with their seeds in
    /// `dir`.
    pub fn make(dir: &Path, participants: &[String]) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let failed = |e: auth::Error| Error::Command {
            command: "make the NATS identities".into(),
            output: e.to_string(),
        };
        let defaults = [
            "account".to_string(),
            "order".to_string(),
            "inventory".to_string(),
        ];
        let participants = if participants.is_empty() {
            &defaults[..]
        } else {
            participants
        };
        let mut roles = vec![Role::Orchestrator, Role::Admin, Role::Conformance];
        for name in participants {
            roles.push(Role::participant(name).map_err(failed)?);
        }
        let mut entries = Vec::new();
        for role in roles {
            let identity = Identity::generate(role).map_err(failed)?;
            identity
                .write_seed(&dir.join(format!("{}.nk", identity.role().name())))
                .map_err(failed)?;
            entries.push(auth::user_entry(&identity.user()));
        }
        // Only its key is of use: its entry grants everything.
        let harness = Identity::generate(Role::Admin).map_err(failed)?;
        harness
            .write_seed(&dir.join(format!("{HARNESS}.nk")))
            .map_err(failed)?;
        entries.push(format!(
            "    {{\n      # {HARNESS}: the tests themselves, unrestricted\n      nkey: {}\n    }}\n",
            harness.public_key()
        ));
        Ok(Identities {
            dir: Some(dir.to_path_buf()),
            authorization: auth::authorization_of(&entries),
            ca: None,
        })
    }

    /// The server's `authorization` block (empty without authentication).
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The seed file of identity `name` (`orchestrator`, `admin`, a participant's name, or
    /// [`HARNESS`]); `None` without authentication.
    pub fn nkey(&self, name: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{name}.nk")))
    }

    /// The credentials of identity `name`.
    pub fn credentials(&self, name: &str) -> Result<Credentials> {
        let credentials = match self.nkey(name) {
            None => Credentials::none(),
            Some(file) => Credentials::read(&file).map_err(|e| Error::Command {
                command: format!("read the seed of {name}"),
                output: e.to_string(),
            })?,
        };
        Ok(credentials.with_ca(self.ca.clone()))
    }

    /// The command-line flags of a `saga` process running as identity `name`.
    pub fn auth_args(&self, name: &str) -> Vec<String> {
        let mut args = match self.nkey(name) {
            Some(file) => vec!["--nats-nkey".into(), file.display().to_string()],
            None => vec!["--nats-no-auth".into()],
        };
        if let Some(ca) = &self.ca {
            args.extend(["--nats-ca".into(), ca.display().to_string()]);
        }
        args
    }

    /// A client of `urls` connected as identity `name`, with that identity's request inboxes
    /// (the harness's are the default `_INBOX`).
    pub async fn connect(&self, urls: &str, name: &str) -> Result<async_nats::Client> {
        let credentials = self.credentials(name)?;
        let mut options = async_nats::ConnectOptions::new().name(format!("test-{name}"));
        let role = match name {
            HARNESS => None,
            "orchestrator" => Some(Role::Orchestrator),
            "admin" => Some(Role::Admin),
            "conformance" => Some(Role::Conformance),
            other => Some(Role::Participant(other.into())),
        };
        if let Some(role) = role {
            options = options.custom_inbox_prefix(role.inbox_prefix());
        }
        if let Some(seed) = credentials.seed() {
            options = options.nkey(seed.to_string());
        }
        if let Some(ca) = &credentials.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        let servers = saga_protocol::servers::parse(urls).map_err(|e| Error::Command {
            command: format!("parse {urls}"),
            output: e,
        })?;
        options.connect(servers).await.map_err(|e| Error::Command {
            command: format!("connect to {urls} as {name}"),
            output: e.to_string(),
        })
    }
}
