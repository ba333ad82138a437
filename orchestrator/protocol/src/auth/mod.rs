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
//!   subjects and reads and replays the dead-letter stream;
//! - the **conformance** identity (`saga conformance`, on a test system) publishes commands
//!   and listens to the replies and dead letters, never through a consumer.
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

mod credentials;
mod grants;

pub(crate) use credentials::write_secret;
pub use credentials::{Credentials, Identity, Key, User};

use grants::{admin_publish, orchestrator_publish, participant_publish};

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
    /// `saga conformance`: drives a participant as the orchestrator would.
    Conformance,
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
            Role::Conformance => "conformance",
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
            // Commands go to the stream (its acks come to the inbox); replies and dead
            // letters are heard as they are published, no consumer taking them from anyone.
            Role::Conformance => Permissions {
                publish: vec![crate::subjects::COMMANDS_SUBJECTS.to_string()],
                subscribe: vec![
                    inbox,
                    crate::subjects::REPLIES_SUBJECTS.to_string(),
                    crate::subjects::DLQ_SUBJECTS.to_string(),
                ],
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
}
