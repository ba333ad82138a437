//! TLS for the bus: a certificate authority and the server certificate it signs, made with
//! rcgen for dev, tests and a first deployment (`saga nats credentials` writes them beside
//! the NKeys), and the nats-server `tls` blocks that use them for the client port and the
//! cluster routes. A client trusts the CA (`--nats-ca`), and then connects over TLS only.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let files = saga_protocol::tls::write(dir.path(), &["localhost".into(), "127.0.0.1".into()])?;
//! assert!(std::fs::read_to_string(&files.ca)?.starts_with("-----BEGIN CERTIFICATE-----"));
//! assert!(files.client_block().contains("cert_file"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// How long the certificates made here are valid: renewed by running the command again.
pub const VALIDITY_DAYS: i64 = 365;

/// Why certificates could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot make the TLS certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The files of a CA and one certificate it signed for the server (valid for both server and
/// client authentication, as a cluster route is both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// The CA certificate: what every client and every route peer trusts.
    pub ca: PathBuf,
    /// The server's certificate and its private key (mode 0600).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    /// The files in `dir` under the names [`write`] gives them.
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }

    /// The nats-server `tls` block of the client port: clients must speak TLS.
    pub fn client_block(&self) -> String {
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  timeout: 5\n}}\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }

    /// The `tls` block of a `cluster` section: routes are mutual TLS, each node proving
    /// itself with a certificate of the same CA.
    pub fn route_block(&self) -> String {
        format!(
            "  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n    ca_file: \"{}\"\n    verify: true\n    timeout: 5\n  }}\n",
            self.cert.display(),
            self.key.display(),
            self.ca.display()
        )
    }
}

/// A new CA and a server certificate for `hosts` (DNS names or IP addresses), as PEM:
/// (CA certificate, server certificate, server private key).
pub fn generate(hosts: &[String]) -> Result<(String, String, String), Error> {
    let now = ::time::OffsetDateTime::now_utc();
    let until = now + ::time::Duration::days(VALIDITY_DAYS);

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "saga orchestrator NATS CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - ::time::Duration::minutes(5);
    ca.not_after = until;
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

    let mut server = CertificateParams::new(hosts.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "saga nats-server");
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now - ::time::Duration::minutes(5);
    server.not_after = until;
    let key = KeyPair::generate()?;
    let cert = server.signed_by(&key, &ca)?;
    Ok((ca.pem(), cert.pem(), key.serialize_pem()))
}

/// Makes a CA and a server certificate for `hosts` and writes them into `dir` as
/// `ca.pem`, `server.pem` and `server-key.pem` (the key readable by its owner only).
pub fn write(dir: &Path, hosts: &[String]) -> Result<Files, Error> {
    let (ca, cert, key) = generate(hosts)?;
    let files = Files::in_dir(dir);
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    std::fs::write(&files.ca, ca).map_err(failed(&files.ca))?;
    std::fs::write(&files.cert, cert).map_err(failed(&files.cert))?;
    crate::auth::write_secret(&files.key, key.as_bytes()).map_err(failed(&files.key))?;
    Ok(files)
}
