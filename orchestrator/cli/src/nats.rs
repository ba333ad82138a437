//! `saga nats credentials`: an NKey per identity of the system and the nats-server
//! `authorization` block that grants each identity only what its role needs (see
//! [`saga_protocol::auth`]).
//!
//! The seeds (`orchestrator.nk`, `admin.nk`, `{participant}.nk`) are secrets: each goes to the
//! one process of that identity (under Kubernetes, a Secret each). `auth.conf` holds only
//! public keys and is included by the server's configuration. TLS too: a CA (`ca.pem`, which
//! every client trusts with `--nats-ca`), the servers' certificate and key (`server.pem`,
//! `server-key.pem`, a secret), and the `tls` blocks of the client port (`tls.conf`) and of
//! the cluster routes (`cluster-tls.conf`, mutual TLS).

use super::{Error, NatsAction, NatsArgs};
use saga_protocol::auth::{self, Identity, Role};
use std::process::ExitCode;

pub fn run(args: NatsArgs) -> Result<ExitCode, Error> {
    match args.action {
        NatsAction::Credentials {
            out,
            participants,
            tls_hosts,
            conformance,
        } => {
            let mut roles = vec![Role::Orchestrator, Role::Admin];
            if conformance {
                roles.push(Role::Conformance);
            }
            for name in &participants {
                roles.push(Role::participant(name)?);
            }
            std::fs::create_dir_all(&out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            let mut users = Vec::new();
            for role in roles {
                let identity = Identity::generate(role)?;
                let file = out.join(format!("{}.nk", identity.role().name()));
                identity.write_seed(&file)?;
                println!(
                    "{:<14} {}  {}",
                    identity.role().name(),
                    identity.public_key(),
                    file.display()
                );
                users.push(identity.user());
            }
            let conf = out.join("auth.conf");
            std::fs::write(&conf, auth::authorization(&users))
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            println!(
                "{:<14} include it from the nats-server configuration",
                conf.display()
            );
            // TLS: a CA, the server's certificate, and the blocks that use them.
            let files = saga_protocol::tls::write(&out, &tls_hosts)?;
            let client = out.join("tls.conf");
            std::fs::write(&client, files.client_block())
                .map_err(|e| format!("cannot write {}: {e}", client.display()))?;
            let routes = out.join("cluster-tls.conf");
            std::fs::write(&routes, files.route_block())
                .map_err(|e| format!("cannot write {}: {e}", routes.display()))?;
            println!(
                "{:<14} {}  clients trust it (--nats-ca); server.pem for {}",
                "ca",
                files.ca.display(),
                tls_hosts.join(", ")
            );
            println!(
                "{:<14} include it at the top level (clients) and {} inside `cluster {{}}` (routes)",
                client.display(),
                routes.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
