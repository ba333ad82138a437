//! A process's NATS identity: its NKey seed, made by `saga nats credentials` and loaded at
//! connect, and the CA it trusts the server by.

use super::{Error, Role};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
