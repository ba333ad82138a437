//! Who may do what on the bus: every process connects as its own NATS user, authenticated by
//! an [NKey](https://docs.nats.io/running-a-nats-service/configuration/securing_nats/auth_intro/nkey_auth)
//! (the server holds only public keys and challenges the client to sign a nonce with its
//! seed), and the server grants each user only the subjects its [`Role`] needs.
//!
//! - the **orchestrator** publishes commands, consumes replies through its durable consumer,
//!   keeps its partition leases in its KV bucket, and dead-letters on `saga.dlq.orchestrator`;
//! - a **participant** `p` consumes only `saga.cmd.p.>` through its durable consumer
//!   `participant-p`,
//!   publishes only `saga.reply.p` and `saga.dlq.p`, and answers admin requests on
//!   `saga.admin.p`; it cannot publish a command or another participant's reply;
//! - the **admin** identity (the `saga` command line's operator commands) calls the admin
//!   subjects and reads and replays the dead-letter stream.
//!
//! The grants are written for the server by [`authorization`]; a process loads its seed with
//! [`Credentials`]. Every user's request inboxes live under its own prefix
//! ([`Role::inbox_prefix`]), so no user can read another's replies from JetStream.
//!
//! ```
//! use saga_protocol::auth::{authorization, Identity, Role};
//!
//! let orchestrator = Identity::generate(Role::Orchestrator)?;
//! let account = Identity::generate(Role::participant("account")?)?;
//! let conf = authorization(&[orchestrator.user(), account.user()]);
//! assert!(conf.contains(&account.public_key()));
//! assert!(conf.contains("\"saga.reply.account\""));
//! # Ok::<(), saga_protocol::auth::Error>(())
//! ```

use crate::subjects;
use std::path::{Path, PathBuf};

/// Why credentials could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no NATS credentials: pass --nats-nkey FILE (a seed from `saga nats credentials`), \
         or --nats-no-auth to connect without authentication"
    )]
    Missing,
    #[error("cannot read the NATS seed {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no valid NATS user seed: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot generate an NKey: {0}")]
    Generate(String),
    #[error("`{0}` cannot name a participant on the bus: use letters, digits, `-` and `_` only")]
    Name(String),
}

/// What a user is allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Orchestrator,
    /// A participant, by its name (the second token of its command subjects).
    Participant(String),
    Admin,
}

impl Role {
    /// The role of participant `name`, if `name` is one subject token.
    pub fn participant(name: &str) -> Result<Role, Error> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Role::Participant(name.to_string()))
        } else {
            Err(Error::Name(name.to_string()))
        }
    }

    /// `orchestrator`, the participant's name, or `admin`.
    pub fn name(&self) -> &str {
        match self {
            Role::Orchestrator => "orchestrator",
            Role::Participant(name) => name,
            Role::Admin => "admin",
        }
    }

    /// The prefix of this user's request inboxes, `_INBOX_{name}`: only this user may
    /// subscribe below it.
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}", self.name())
    }

    /// The subjects this role may publish to and subscribe to.
    pub fn permissions(&self) -> Permissions {
        let inbox = format!("{}.>", self.inbox_prefix());
        match self {
            Role::Orchestrator => Permissions {
                publish: orchestrator_publish(),
                subscribe: vec![inbox],
                allow_responses: false,
            },
            Role::Participant(name) => Permissions {
                publish: participant_publish(name),
                subscribe: vec![inbox, crate::subjects::admin(name)],
                allow_responses: true,
            },
            Role::Admin => Permissions {
                publish: admin_publish(),
                subscribe: vec![inbox],
                allow_responses: false,
            },
        }
    }
}

/// The grants of one user, as the server's `permissions` block holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// Whether it may answer the requests it receives (on their reply subjects).
    pub allow_responses: bool,
}

const API: &str = "$JS.API";

/// What a process needs to use durable pull consumer `consumer` of `stream`, filtered on
/// `filter`: create it with that filter only, read its state, pull, acknowledge.
fn consumer_grants(stream: &str, consumer: &str, filter: &str) -> Vec<String> {
    vec![
        format!("{API}.CONSUMER.CREATE.{stream}.{consumer}.{filter}"),
        format!("{API}.CONSUMER.INFO.{stream}.{consumer}"),
        format!("{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]
}

fn protocol_streams() -> [&'static str; 3] {
    [
        subjects::COMMANDS_STREAM,
        subjects::REPLIES_STREAM,
        subjects::DLQ_STREAM,
    ]
}

fn orchestrator_publish() -> Vec<String> {
    let leases = format!("KV_{}", subjects::LEASES_BUCKET);
    let mut publish = vec![
        subjects::COMMANDS_SUBJECTS.to_string(),
        subjects::dead_letter("orchestrator"),
        format!("{API}.INFO"),
    ];
    for stream in protocol_streams().into_iter().chain([leases.as_str()]) {
        publish.push(format!("{API}.STREAM.CREATE.{stream}"));
        publish.push(format!("{API}.STREAM.UPDATE.{stream}"));
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend(consumer_grants(
        subjects::REPLIES_STREAM,
        "orchestrator",
        subjects::REPLIES_SUBJECTS,
    ));
    // The lease bucket: writes, reads, and the ordered consumer that lists its keys.
    publish.extend([
        format!("$KV.{}.>", subjects::LEASES_BUCKET),
        format!("{API}.DIRECT.GET.{leases}.>"),
        format!("{API}.STREAM.MSG.GET.{leases}"),
        // An ordered consumer has no name: created on the bare subject.
        format!("{API}.CONSUMER.CREATE.{leases}"),
        format!("{API}.CONSUMER.CREATE.{leases}.>"),
        format!("{API}.CONSUMER.DELETE.{leases}.>"),
        format!("$JS.FC.{leases}.>"),
    ]);
    publish
}

fn participant_publish(name: &str) -> Vec<String> {
    let mut publish = vec![
        subjects::reply(name),
        subjects::dead_letter(name),
        format!("{API}.INFO"),
    ];
    // A participant that starts first creates the streams as the orchestrator would (it may
    // create them, not change or delete them).
    for stream in protocol_streams() {
        publish.push(format!("{API}.STREAM.CREATE.{stream}"));
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend(consumer_grants(
        subjects::COMMANDS_STREAM,
        &subjects::participant_consumer(name),
        &subjects::commands_for(name),
    ));
    publish
}

fn admin_publish() -> Vec<String> {
    let dlq = subjects::DLQ_STREAM;
    let mut publish = vec![
        format!("{}.>", subjects::ADMIN_PREFIX),
        // Replaying a dead letter publishes it to its original subject again.
        subjects::COMMANDS_SUBJECTS.to_string(),
        subjects::REPLIES_SUBJECTS.to_string(),
        format!("{API}.INFO"),
    ];
    for stream in protocol_streams() {
        publish.push(format!("{API}.STREAM.INFO.{stream}"));
    }
    publish.extend([
        format!("{API}.STREAM.MSG.GET.{dlq}"),
        format!("{API}.STREAM.MSG.DELETE.{dlq}"),
        format!("{API}.DIRECT.GET.{dlq}.>"),
        format!("{API}.CONSUMER.CREATE.{dlq}"),
        format!("{API}.CONSUMER.CREATE.{dlq}.>"),
        format!("{API}.CONSUMER.DELETE.{dlq}.>"),
        format!("{API}.CONSUMER.MSG.NEXT.{dlq}.>"),
        format!("$JS.ACK.{dlq}.>"),
        format!("$JS.FC.{dlq}.>"),
    ]);
    publish
}

/// A user: its role and public key, as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub role: Role,
    pub public_key: String,
}

/// A user with its seed: what `saga nats credentials` writes, one file per identity.
pub struct Identity {
    role: Role,
    keys: nkeys::KeyPair,
}

impl Identity {
    /// A new identity with a fresh NKey.
    pub fn generate(role: Role) -> Result<Self, Error> {
        Ok(Identity {
            role,
            keys: nkeys::KeyPair::new_user(),
        })
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    pub fn public_key(&self) -> String {
        self.keys.public_key()
    }

    /// The user the server is told of.
    pub fn user(&self) -> User {
        User {
            role: self.role.clone(),
            public_key: self.public_key(),
        }
    }

    /// The seed, the secret a process of this identity loads (see [`Credentials`]).
    pub fn seed(&self) -> Result<String, Error> {
        self.keys.seed().map_err(|e| Error::Generate(e.to_string()))
    }

    /// Writes the seed to `path`, readable by its owner only.
    pub fn write_seed(&self, path: &Path) -> Result<(), Error> {
        let failed = |e: std::io::Error| Error::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        write_secret(path, format!("{}\n", self.seed()?).as_bytes()).map_err(failed)
    }
}

/// How a process authenticates to NATS, and how it knows the server is the real one.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Who the process is.
    pub key: Key,
    /// The CA whose certificate the server must show (see [`crate::tls`]): with one, the
    /// client speaks TLS only; without, plain TCP.
    pub ca: Option<PathBuf>,
}

/// The key a process authenticates with.
#[derive(Clone, PartialEq, Eq)]
pub enum Key {
    /// As the user whose NKey seed this is.
    NKey { seed: String, file: PathBuf },
    /// Not at all: only for a server that asks for nothing, chosen explicitly.
    None,
}

impl std::fmt::Debug for Credentials {
    /// Names the seed's file, never the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Key::NKey { file, .. } => write!(f, "NKey({})", file.display())?,
            Key::None => f.write_str("None")?,
        }
        match &self.ca {
            Some(ca) => write!(f, " over TLS (CA {})", ca.display()),
            None => Ok(()),
        }
    }
}

impl Credentials {
    /// No key, no TLS: for a server that asks for neither.
    pub fn none() -> Self {
        Credentials {
            key: Key::None,
            ca: None,
        }
    }

    /// The credentials the settings name: the seed in `nkey_file`, or none when `no_auth`
    /// says so (with a warning in the log, where the caller connects). Neither is refused.
    pub fn from_settings(nkey_file: Option<&Path>, no_auth: bool) -> Result<Self, Error> {
        match (nkey_file, no_auth) {
            (Some(file), _) => Credentials::read(file),
            (None, true) => Ok(Credentials::none()),
            (None, false) => Err(Error::Missing),
        }
    }

    /// These credentials, trusting the server by the CA certificate in `ca` (TLS only), or
    /// over plain TCP when `None`.
    pub fn with_ca(self, ca: Option<PathBuf>) -> Self {
        Credentials { ca, ..self }
    }

    /// The NKey seed, if the process has one.
    pub fn seed(&self) -> Option<&str> {
        match &self.key {
            Key::NKey { seed, .. } => Some(seed),
            Key::None => None,
        }
    }

    /// Reads the seed in `file` and checks that it is a user seed.
    pub fn read(file: &Path) -> Result<Self, Error> {
        let path = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| Error::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let seed = text.trim().to_string();
        match nkeys::KeyPair::from_seed(&seed) {
            Ok(keys) if keys.public_key().starts_with('U') => Ok(Credentials {
                key: Key::NKey {
                    seed,
                    file: file.to_path_buf(),
                },
                ca: None,
            }),
            Ok(_) => Err(Error::Invalid {
                path,
                reason: "not a user seed (it should start with SU)".into(),
            }),
            // The seed itself stays out of the message.
            Err(_) => Err(Error::Invalid {
                path,
                reason: "not an NKey seed".into(),
            }),
        }
    }
}

/// Writes `bytes` to `path`, created readable and writable by its owner only (a secret is
/// never world-readable, not even for a moment).
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    // A file that existed keeps its mode on open: narrow it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

/// The server's `authorization` block granting each of `users` its role's permissions.
/// Include it from `nats.conf` (`include "auth.conf"`).
pub fn authorization(users: &[User]) -> String {
    let entries: Vec<String> = users.iter().map(user_entry).collect();
    authorization_of(&entries)
}

/// An `authorization` block of the given user entries ([`user_entry`], or any other entry of
/// the server's syntax).
pub fn authorization_of(entries: &[String]) -> String {
    format!(
        "authorization {{\n  users = [\n{}  ]\n}}\n",
        entries.concat()
    )
}

/// The server's entry of one user: its NKey and its role's permissions.
pub fn user_entry(user: &User) -> String {
    let p = user.role.permissions();
    format!(
        "    {{\n      # {}\n      nkey: {}\n      permissions: {{\n        publish: {{ allow: {} }}\n        subscribe: {{ allow: {} }}\n{}      }}\n    }}\n",
        user.role.name(),
        user.public_key,
        list(&p.publish),
        list(&p.subscribe),
        if p.allow_responses {
            "        allow_responses: true\n"
        } else {
            ""
        },
    )
}

fn list(subjects: &[String]) -> String {
    let quoted: Vec<String> = subjects.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_participant_may_publish_only_its_own_replies_and_dead_letters() {
        let p = Role::participant("account").unwrap().permissions();
        assert!(p.publish.contains(&"saga.reply.account".to_string()));
        assert!(p.publish.contains(&"saga.dlq.account".to_string()));
        for forbidden in [
            "saga.cmd.>",
            "saga.reply.>",
            "saga.reply.order",
            "saga.admin.>",
        ] {
            assert!(!p.publish.iter().any(|s| s == forbidden), "{forbidden}");
        }
        assert!(
            p.publish.contains(
                &"$JS.API.CONSUMER.CREATE.SAGA_COMMANDS.participant-account.saga.cmd.account.>"
                    .into()
            ),
            "its consumer, on its own commands only"
        );
    }

    #[test]
    fn names_that_are_not_one_token_are_refused() {
        for bad in ["", "a.b", "a*", "a>", "a b"] {
            assert!(Role::participant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_seed_is_read_back_and_never_shown() {
        let dir = std::env::temp_dir().join(format!("saga-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let identity = Identity::generate(Role::Admin).unwrap();
        let file = dir.join("admin.nk");
        identity.write_seed(&file).unwrap();
        let credentials = Credentials::read(&file).unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains(&identity.seed().unwrap()), "{shown}");
        std::fs::write(&file, "not a seed").unwrap();
        let error = Credentials::read(&file).unwrap_err().to_string();
        assert!(error.contains("not an NKey seed"), "{error}");
        assert!(matches!(
            Credentials::from_settings(None, false),
            Err(Error::Missing)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
