//! The manifests cannot drift from the code: every container of the `saga` image is parsed
//! by the binary's own clap parser, with the variables the manifests set, and what it parses
//! to is checked against ports, probes, mounts, Services and grace periods.

use crate::manifests::{
    Container, containers, find, find_generated, id, objects, overlays, runs_saga,
};
use clap::{CommandFactory, FromArgMatches};
use saga_cli::{Cli, Command, Connection, OrchestratorArgs, ParticipantKind};
use saga_testkit::workspace_root;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Variables the binary reads outside its clap definition: `RUST_LOG`, by the log filter
/// that main.rs builds with `EnvFilter::try_from_default_env`.
const READ_OUTSIDE_CLAP: [&str; 1] = ["RUST_LOG"];

/// `saga`'s clap command with every `env` removed. The manifests' variables are turned into
/// flags instead, so a variable of the test process itself (a developer's SAGA_DATABASE_URL)
/// cannot stand in for a setting the manifests forgot.
fn command_without_env() -> clap::Command {
    fn strip(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| a.env(None::<&'static str>))
            .mut_subcommands(strip)
    }
    strip(Cli::command())
}

/// The variables subcommand `name` reads, each with the argument it feeds, as clap defines
/// them: the list cannot go stale.
fn env_read_by(name: &str) -> Option<BTreeMap<String, clap::Arg>> {
    let cli = Cli::command();
    let sub = cli.get_subcommands().find(|s| s.get_name() == name)?;
    Some(
        sub.get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_str()?.to_string();
                Some((env, a.clone()))
            })
            .collect(),
    )
}

/// What a `saga` container runs, as the binary would parse it.
struct Parsed {
    cli: Cli,
    /// Variable name → the value a manifest gives it (secrets resolved when rendered).
    env: BTreeMap<String, EnvSource>,
}

#[derive(Debug, Clone)]
enum EnvSource {
    Literal(String),
    Secret { name: String, key: String },
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        })
        .collect()
}

/// Parses a `saga` container's arguments and environment with clap, or says why not.
fn parse(container: &Container<'_>, objects: &[Value]) -> Result<Parsed, String> {
    if !container.spec["command"].is_null() {
        return Err("sets `command`: the image's entrypoint is the saga binary; use `args`".into());
    }
    if !container.spec["envFrom"].is_null() {
        return Err("uses envFrom, which hides the variable names from review".into());
    }
    let args = strings(&container.spec["args"]);
    let sub = args
        .first()
        .ok_or("has no arguments: which saga subcommand?")?;
    let reads = env_read_by(sub).ok_or_else(|| format!("runs `saga {sub}`, no such subcommand"))?;
    let mut argv = vec!["saga".to_string()];
    argv.extend(args.iter().cloned());
    let mut env = BTreeMap::new();
    for var in container.spec["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().unwrap_or_default().to_string();
        let source = if let Some(value) = var["value"].as_str() {
            EnvSource::Literal(value.to_string())
        } else if let Some(secret) = var["valueFrom"]["secretKeyRef"].as_object() {
            EnvSource::Secret {
                name: secret["name"].as_str().unwrap_or_default().to_string(),
                key: secret["key"].as_str().unwrap_or_default().to_string(),
            }
        } else {
            return Err(format!(
                "sets {name} from {}, which this test cannot check",
                var
            ));
        };
        env.insert(name.clone(), source.clone());
        if READ_OUTSIDE_CLAP.contains(&name.as_str()) {
            continue;
        }
        let arg = reads
            .get(&name)
            .ok_or_else(|| format!("sets {name}, which `saga {sub}` does not read"))?;
        let long = arg
            .get_long()
            .ok_or_else(|| format!("{name} feeds an argument without a flag"))?;
        let value = match &source {
            EnvSource::Literal(v) => v.clone(),
            EnvSource::Secret { name, key } => match secret_value(objects, name, key) {
                // Not rendered: the overlay expects it to be created outside the manifests.
                None => format!("secret:{name}/{key}"),
                Some(value) => value?,
            },
        };
        argv.push(format!("--{long}={value}"));
    }
    let matches = command_without_env()
        .try_get_matches_from(&argv)
        .map_err(|e| {
            format!(
                "`{}` is refused by the binary:\n{}",
                argv.join(" "),
                e.render()
            )
        })?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.render().to_string())?;
    Ok(Parsed { cli, env })
}

/// The value of `key` in Secret `name` when the overlay renders that Secret (dev does; prod
/// expects it to be created outside the manifests), or why it has none.
fn secret_value(objects: &[Value], name: &str, key: &str) -> Option<Result<String, String>> {
    let secret =
        find(objects, "Secret", name).or_else(|| find_generated(objects, "Secret", name))?;
    if let Some(v) = secret["stringData"][key].as_str() {
        return Some(Ok(v.to_string()));
    }
    let value = secret["data"][key]
        .as_str()
        .and_then(base64_decode)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format!("Secret {name} has no readable key {key}"));
    Some(value)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    // kustomize wraps long values; decoders skip the line breaks, and so does this one.
    for byte in text
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
    {
        let value = ALPHABET.iter().position(|a| *a == byte)?;
        buffer = (buffer << 6) | u32::try_from(value).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The container port a probe or a name refers to.
fn container_port(container: &Container<'_>, port: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let name = port.as_str()?;
    container.spec["ports"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
}

/// Probes hit the endpoints the binary serves, on the port it listens on, on every address.
fn check_listen(container: &Container<'_>, listen: Option<SocketAddr>, problems: &mut Vec<String>) {
    let Some(listen) = listen else {
        problems.push("serves no health endpoints: set SAGA_LISTEN".into());
        return;
    };
    if !listen.ip().is_unspecified() {
        problems.push(format!(
            "listens on {listen}: the kubelet cannot reach it; use 0.0.0.0"
        ));
    }
    for (probe, path) in [
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &container.spec[probe]["httpGet"];
        if get.is_null() {
            problems.push(format!("has no {probe}"));
            continue;
        }
        if get["path"] != path {
            problems.push(format!(
                "{probe} asks {}, the binary serves {path}",
                get["path"]
            ));
        }
        if container_port(container, &get["port"]) != Some(listen.port()) {
            problems.push(format!(
                "{probe} asks port {}, the binary listens on {}",
                get["port"],
                listen.port()
            ));
        }
    }
}

/// NATS is a rendered Service at the URL's host and port, and the streams get as many copies
/// as the cluster has nodes.
fn check_nats(connection: &Connection, objects: &[Value], problems: &mut Vec<String>) {
    let address = connection.nats.trim_start_matches("nats://");
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "4222"));
    let service = find(objects, "Service", host);
    let has_port = service.is_some_and(|s| {
        s["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port))
    });
    if !has_port {
        problems.push(format!(
            "NATS URL {} names no rendered Service port",
            connection.nats
        ));
    }
    let nodes = find(objects, "StatefulSet", "nats")
        .and_then(|s| s["spec"]["replicas"].as_u64())
        .unwrap_or(1);
    if connection.stream_replicas as u64 != nodes {
        problems.push(format!(
            "streams get {} copies on a {nodes}-node NATS cluster",
            connection.stream_replicas
        ));
    }
}

/// The process authenticates to NATS as `identity`: its seed file is that identity's key,
/// projected from a mounted Secret, and nothing turns authentication off.
fn check_nats_auth(
    container: &Container<'_>,
    connection: &Connection,
    identity: &str,
    problems: &mut Vec<String>,
) {
    if connection.nats_auth.no_auth {
        problems.push("connects to NATS without authentication (--nats-no-auth)".into());
    }
    let Some(seed) = connection.nats_auth.nkey.as_ref() else {
        problems.push("has no SAGA_NATS_NKEY: the binary refuses to connect to NATS".into());
        return;
    };
    let (Some(dir), Some(file)) = (seed.parent(), seed.file_name()) else {
        problems.push(format!(
            "SAGA_NATS_NKEY {} is not a file path",
            seed.display()
        ));
        return;
    };
    if file.to_string_lossy() != format!("{identity}.nk") {
        problems.push(format!(
            "authenticates with {}, not the {identity} identity's seed",
            seed.display()
        ));
    }
    if !secret_item_mounted(container, dir, file) {
        problems.push(format!(
            "SAGA_NATS_NKEY {} is not a key of a Secret mounted there",
            seed.display()
        ));
    }
    // TLS: the server is trusted by the system's CA, from a mounted Secret.
    match connection.nats_auth.ca.as_ref() {
        None => problems.push("has no SAGA_NATS_CA: it talks to NATS over plain TCP".into()),
        Some(ca) => {
            let mounted = match (ca.parent(), ca.file_name()) {
                (Some(dir), Some(file)) => secret_item_mounted(container, dir, file),
                _ => false,
            };
            if !mounted {
                problems.push(format!(
                    "SAGA_NATS_CA {} is not a key of a Secret mounted there",
                    ca.display()
                ));
            }
        }
    }
}

/// Whether `file` is an item of a Secret volume mounted at `dir` in `container`.
fn secret_item_mounted(
    container: &Container<'_>,
    dir: &std::path::Path,
    file: &std::ffi::OsStr,
) -> bool {
    container.spec["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["mountPath"].as_str().map(std::path::Path::new) == Some(dir))
        .filter_map(|m| {
            container.pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == m["name"])
        })
        .any(|v| {
            v["secret"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|item| item["path"].as_str() == file.to_str())
        })
}

/// An API on every interface needs its bearer token (the binary refuses to start without
/// one), and a token is a credential: it comes from a Secret.
fn check_token(parsed: &Parsed, args: &OrchestratorArgs, problems: &mut Vec<String>) {
    if args.api.listen.ip().is_loopback() {
        return;
    }
    match (&args.api.token, parsed.env.get("SAGA_API_TOKEN")) {
        (None, _) => problems.push(format!(
            "listens on {} without SAGA_API_TOKEN: the binary refuses to start",
            args.api.listen
        )),
        (Some(_), Some(EnvSource::Secret { .. })) => {}
        (Some(_), _) => {
            problems.push("SAGA_API_TOKEN must come from a Secret: it is a credential".into())
        }
    }
}

/// The database URL comes from a Secret, and names PostgreSQL where the Secret is rendered.
fn check_database(parsed: &Parsed, connection: &Connection, problems: &mut Vec<String>) {
    let env = Cli::command()
        .get_subcommands()
        .flat_map(|s| s.get_arguments())
        .find(|a| a.get_id() == "database")
        .and_then(|a| a.get_env())
        .and_then(|e| e.to_str())
        .map(String::from)
        .unwrap_or_default();
    match parsed.env.get(&env) {
        Some(EnvSource::Secret { .. }) => {}
        _ => problems.push(format!(
            "{env} must come from a Secret: it holds credentials"
        )),
    }
    // Rendered Secrets (dev) are checked too: PostgreSQL, since replicas share the database
    // and the root filesystem is read-only, so an SQLite file has nowhere to live.
    let rendered = !connection.database.starts_with("secret:");
    let backend = saga_sql::Backend::of(&connection.database);
    if rendered && backend != Some(saga_sql::Backend::Postgres) {
        problems.push(format!(
            "the database URL in the Secret is not a PostgreSQL URL the binary accepts: {backend:?}"
        ));
    }
}

/// SIGTERM to exit fits in the grace period: preStop, then the binary's own drain deadline.
fn check_grace(container: &Container<'_>, drain: Duration, problems: &mut Vec<String>) {
    let grace = container.pod["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or(30);
    let pre_stop = container.spec["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    let needed = pre_stop + drain.as_secs();
    if grace < needed {
        problems.push(format!(
            "terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + drain {} s",
            drain.as_secs()
        ));
    }
}

/// The mount path of the saga definitions ConfigMap in this container.
fn definitions_mount(container: &Container<'_>) -> Option<String> {
    let volume = container.pod["volumes"].as_array()?.iter().find(|v| {
        v["configMap"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("saga-definitions-"))
    })?;
    container.spec["volumeMounts"]
        .as_array()?
        .iter()
        .find(|m| m["name"] == volume["name"])
        .and_then(|m| m["mountPath"].as_str())
        .map(String::from)
}

/// Everything wrong with one `saga` container.
fn problems_of(container: &Container<'_>, objects: &[Value]) -> Vec<String> {
    let parsed = match parse(container, objects) {
        Ok(parsed) => parsed,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let workload = container.workload.as_str();
    match &parsed.cli.command {
        Command::Orchestrator(args) if workload == "Deployment/orchestrator" => {
            check_listen(container, Some(args.api.listen), &mut problems);
            check_nats(&args.connection, objects, &mut problems);
            check_nats_auth(container, &args.connection, "orchestrator", &mut problems);
            check_database(&parsed, &args.connection, &mut problems);
            check_token(&parsed, args, &mut problems);
            // The replies in hand drain first, then the HTTP requests still open.
            check_grace(
                container,
                2 * saga_orchestrator::runtime::SHUTDOWN_GRACE,
                &mut problems,
            );
            let sagas = args.sagas.to_string_lossy().into_owned();
            if definitions_mount(container).as_deref() != Some(sagas.as_str()) {
                problems.push(format!(
                    "reads definitions from {sagas}, where no saga-definitions ConfigMap is mounted"
                ));
            }
        }
        Command::Participant(args)
            if (workload, args.kind) == ("Deployment/account", ParticipantKind::Account)
                || (workload, args.kind) == ("Deployment/order", ParticipantKind::Order)
                || (workload, args.kind)
                    == ("Deployment/inventory", ParticipantKind::Inventory) =>
        {
            check_listen(container, args.listen, &mut problems);
            check_nats(&args.connection, objects, &mut problems);
            let identity = match args.kind {
                ParticipantKind::Account => "account",
                ParticipantKind::Order => "order",
                ParticipantKind::Inventory => "inventory",
            };
            check_nats_auth(container, &args.connection, identity, &mut problems);
            check_database(&parsed, &args.connection, &mut problems);
            check_grace(
                container,
                saga_participants::runtime::SHUTDOWN_GRACE,
                &mut problems,
            );
        }
        other => problems.push(format!(
            "runs {other:?}, which is not what {workload} is for"
        )),
    }
    problems
}

#[test]
fn every_saga_container_runs_a_command_line_the_binary_accepts() {
    let mut report = Vec::new();
    for overlay in overlays() {
        let objects = objects(&overlay);
        let saga: Vec<_> = containers(&objects).into_iter().filter(runs_saga).collect();
        let mut workloads: Vec<&str> = saga.iter().map(|c| c.workload.as_str()).collect();
        workloads.sort();
        // Without this a renamed image would leave nothing to check, and the test would pass.
        assert_eq!(
            workloads,
            [
                "Deployment/account",
                "Deployment/inventory",
                "Deployment/orchestrator",
                "Deployment/order"
            ],
            "{overlay}: the containers running the saga image"
        );
        for container in &saga {
            for problem in problems_of(container, &objects) {
                report.push(format!("{overlay} {}: {problem}", container.workload));
            }
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

/// The drift check itself must catch drift: a variable the binary does not read, a missing
/// required setting, a value the binary refuses, a probe on the wrong port.
#[test]
fn drift_check_refuses_manifests_that_disagree_with_the_binary() {
    let objects = objects("dev");
    let orchestrator = containers(&objects)
        .into_iter()
        .find(|c| c.workload == "Deployment/orchestrator")
        .expect("orchestrator container");
    assert!(problems_of(&orchestrator, &objects).is_empty());

    let mutate = |change: &dyn Fn(&mut Value)| -> Vec<String> {
        let mut pod = orchestrator.pod.clone();
        change(&mut pod["containers"][0]);
        let container = Container {
            workload: orchestrator.workload.clone(),
            pod: &pod,
            spec: &pod["containers"][0],
        };
        problems_of(&container, &objects)
    };
    let env_named = |c: &mut Value, name: &str| -> usize {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .position(|v| v["name"] == name)
            .unwrap()
    };

    let unknown = mutate(&|c| {
        c["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "SAGA_LISTEN_ADDR", "value": "x"}));
    });
    assert!(
        unknown[0].contains("SAGA_LISTEN_ADDR, which `saga orchestrator` does not read"),
        "{unknown:?}"
    );

    let missing = mutate(&|c| {
        let i = env_named(c, "SAGA_DATABASE_URL");
        c["env"].as_array_mut().unwrap().remove(i);
    });
    assert!(missing[0].contains("--database"), "{missing:?}");

    let refused = mutate(&|c| {
        c["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "SAGA_REPUBLISH_AFTER", "value": "soon"}));
    });
    assert!(refused[0].contains("refused by the binary"), "{refused:?}");

    let wrong_port = mutate(&|c| {
        let i = env_named(c, "SAGA_LISTEN");
        c["env"][i]["value"] = "0.0.0.0:9090".into();
    });
    assert!(
        wrong_port
            .iter()
            .any(|p| p.contains("the binary listens on 9090")),
        "{wrong_port:?}"
    );

    let no_token = mutate(&|c| {
        let i = env_named(c, "SAGA_API_TOKEN");
        c["env"].as_array_mut().unwrap().remove(i);
    });
    assert!(
        no_token
            .iter()
            .any(|p| p.contains("without SAGA_API_TOKEN: the binary refuses to start")),
        "{no_token:?}"
    );

    let literal = mutate(&|c| {
        let i = env_named(c, "SAGA_DATABASE_URL");
        c["env"][i] =
            serde_json::json!({"name": "SAGA_DATABASE_URL", "value": "postgres://u:p@db/x"});
    });
    assert!(
        literal
            .iter()
            .any(|p| p.contains("must come from a Secret")),
        "{literal:?}"
    );

    let unauthenticated = mutate(&|c| {
        let i = env_named(c, "SAGA_NATS_NKEY");
        c["env"].as_array_mut().unwrap().remove(i);
    });
    assert!(
        unauthenticated
            .iter()
            .any(|p| p.contains("has no SAGA_NATS_NKEY")),
        "{unauthenticated:?}"
    );

    let borrowed = mutate(&|c| {
        let i = env_named(c, "SAGA_NATS_NKEY");
        c["env"][i]["value"] = "/etc/saga/nats/account.nk".into();
    });
    assert!(
        borrowed
            .iter()
            .any(|p| p.contains("not the orchestrator identity's seed")),
        "{borrowed:?}"
    );

    let plain = mutate(&|c| {
        let i = env_named(c, "SAGA_NATS_CA");
        c["env"].as_array_mut().unwrap().remove(i);
    });
    assert!(
        plain.iter().any(|p| p.contains("has no SAGA_NATS_CA")),
        "{plain:?}"
    );
    let unmounted = mutate(&|c| {
        let i = env_named(c, "SAGA_NATS_CA");
        c["env"][i]["value"] = "/etc/ssl/ca.pem".into();
    });
    assert!(
        unmounted
            .iter()
            .any(|p| p.contains("SAGA_NATS_CA /etc/ssl/ca.pem is not a key of a Secret")),
        "{unmounted:?}"
    );
}

/// The `saga` containers get their binary from the image's entrypoint; it must be the binary,
/// run by a non-root user, as the manifests assume.
/// The `--api-max-body` the overlay's orchestrator runs with.
fn api_max_body(overlay: &str, objects: &[Value]) -> usize {
    let orchestrator = containers(objects)
        .into_iter()
        .find(|c| c.workload == "Deployment/orchestrator")
        .unwrap_or_else(|| panic!("{overlay}: no orchestrator container"));
    match parse(&orchestrator, objects).map(|p| p.cli.command) {
        Ok(Command::Orchestrator(args)) => args.api.api_max_body,
        _ => panic!("{overlay}: the orchestrator does not run `saga orchestrator`"),
    }
}

/// nginx's `proxy-body-size` (`1m`, `512k`, bytes) in bytes.
fn nginx_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.char_indices().last()? {
        (i, 'k' | 'K') => (&text[..i], 1024),
        (i, 'm' | 'M') => (&text[..i], 1024 * 1024),
        (i, 'g' | 'G') => (&text[..i], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

/// Where an overlay puts the API behind an Ingress (prod), TLS ends there: the Ingress
/// names its certificate's Secret, redirects plain HTTP, forwards to the orchestrator
/// Service's API port, and refuses bodies over the orchestrator's own --api-max-body; and
/// the API's port takes connections from the ingress controller only, so nothing bypasses it.
#[test]
fn an_ingress_in_front_of_the_api_ends_tls_and_is_the_only_way_in() {
    let mut checked = 0;
    for overlay in overlays() {
        let objects = objects(&overlay);
        let Some(ingress) = objects.iter().find(|o| o["kind"] == "Ingress") else {
            continue;
        };
        checked += 1;
        let what = format!("{overlay} {}", id(ingress));
        let tls = ingress["spec"]["tls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !tls.is_empty() && tls.iter().all(|t| t["secretName"].is_string()),
            "{what}: no TLS certificate Secret"
        );
        let annotations = &ingress["metadata"]["annotations"];
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"], "true",
            "{what}: plain HTTP is not redirected"
        );
        let backends: Vec<&Value> = ingress["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
            .map(|p| &p["backend"]["service"])
            .collect();
        let service = find(&objects, "Service", "orchestrator").expect("Service orchestrator");
        let ports = strings(&Value::Array(
            service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["name"].clone())
                .collect(),
        ));
        assert!(
            !backends.is_empty()
                && backends.iter().all(|b| b["name"] == "orchestrator"
                    && ports.iter().any(|p| b["port"]["name"] == p.as_str())),
            "{what}: its backends are not the orchestrator Service's ports {ports:?}: {backends:?}"
        );
        let edge = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
            .as_str()
            .and_then(nginx_size);
        assert_eq!(
            edge,
            Some(api_max_body(&overlay, &objects)),
            "{what}: the edge's body limit is not the orchestrator's --api-max-body"
        );
        let policy = find(&objects, "NetworkPolicy", "orchestrator-api").expect("orchestrator-api");
        let rules = policy["spec"]["ingress"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !rules.is_empty()
                && rules
                    .iter()
                    .all(|r| r["from"].as_array().is_some_and(|f| !f.is_empty())),
            "{overlay}: the API port takes connections from anywhere, bypassing the ingress: {rules:?}"
        );
    }
    assert!(checked > 0, "no overlay puts the API behind an ingress");
}

/// nats-server's `max_payload` in `nats_conf` in bytes (1 MiB when it is not set).
fn nats_max_payload(nats_conf: &str) -> Option<usize> {
    let Some(value) = nats_conf.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("max_payload")
            .map(|rest| rest.trim_start_matches([':', '=', ' ']).trim())
    }) else {
        return Some(1024 * 1024);
    };
    let upper = value.to_ascii_uppercase();
    let digits: String = upper.chars().take_while(char::is_ascii_digit).collect();
    let unit = match upper[digits.len()..].trim() {
        "" | "B" => 1,
        "K" | "KB" => 1024,
        "M" | "MB" => 1024 * 1024,
        "G" | "GB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

/// The `max_payload` of an overlay's nats.conf, in bytes.
fn overlay_max_payload(overlay: &str, objects: &[Value]) -> usize {
    let config = find_generated(objects, "ConfigMap", "nats-config").expect("nats-config");
    let conf = config["data"]["nats.conf"].as_str().expect("nats.conf");
    nats_max_payload(conf)
        .unwrap_or_else(|| panic!("{overlay}: max_payload of nats.conf is not a size"))
}

/// A saga's input travels on in its commands: the largest body the orchestrator's API takes
/// is at most half of the largest message NATS lets it publish, so an accepted saga can
/// always send its commands.
#[test]
fn an_input_the_api_takes_fits_in_a_nats_message() {
    for overlay in overlays() {
        let objects = objects(&overlay);
        let max_payload = overlay_max_payload(&overlay, &objects);
        let api_max_body = api_max_body(&overlay, &objects);
        assert!(
            api_max_body * 2 <= max_payload,
            "{overlay}: --api-max-body {api_max_body} is more than half of NATS's max_payload {max_payload}"
        );
    }
}

/// A process that refused to decode what NATS let through would dead-letter good messages:
/// every saga server decodes at least NATS's max_payload (`--max-message`).
#[test]
fn every_process_decodes_whatever_nats_carries() {
    for overlay in overlays() {
        let objects = objects(&overlay);
        let max_payload = overlay_max_payload(&overlay, &objects);
        let mut servers = 0;
        for container in containers(&objects).iter().filter(|c| runs_saga(c)) {
            let max_message = match parse(container, &objects).map(|p| p.cli.command) {
                Ok(Command::Orchestrator(args)) => args.connection.max_message,
                Ok(Command::Participant(args)) => args.connection.max_message,
                _ => continue,
            };
            servers += 1;
            assert!(
                max_message >= max_payload,
                "{overlay}: {} decodes messages up to {max_message} bytes, NATS carries {max_payload}",
                container.workload
            );
        }
        assert!(servers >= 3, "{overlay}: {servers} saga servers");
    }
}

#[test]
fn image_entrypoint_is_the_saga_binary_run_as_non_root() {
    let path = workspace_root().join("deploy/container/Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap();
    let last = |word: &str| {
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix(word))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{}: no {word}", path.display()))
            .to_string()
    };
    let entrypoint: Vec<String> = serde_json::from_str(&last("ENTRYPOINT ")).unwrap();
    assert_eq!(entrypoint, ["/usr/local/bin/saga"]);
    let user = last("USER ");
    let uid: u32 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0, "the image runs as root");
    for overlay in overlays() {
        for container in containers(&objects(&overlay))
            .iter()
            .filter(|c| runs_saga(c))
        {
            let run_as = container.pod["securityContext"]["runAsUser"].as_u64();
            assert_eq!(
                run_as,
                Some(u64::from(uid)),
                "{overlay} {}",
                container.workload
            );
        }
    }
}

/// Every pod and container, not only ours, meets the restricted Pod Security Standard, has
/// requests and limits, and mounts no service-account token it does not use.
#[test]
fn every_workload_is_locked_down() {
    let mut report = Vec::new();
    for overlay in overlays() {
        let objects = objects(&overlay);
        for object in objects.iter().filter(|o| o["kind"] == "ServiceAccount") {
            if object["automountServiceAccountToken"] != false {
                report.push(format!("{overlay} {}: token automount", id(object)));
            }
        }
        for c in containers(&objects) {
            let pod = &c.pod;
            let sc = &c.spec["securityContext"];
            let name = format!("{overlay} {} {}", c.workload, c.spec["name"]);
            let checks = [
                (
                    "automountServiceAccountToken: false",
                    pod["automountServiceAccountToken"] == false,
                ),
                (
                    "runAsNonRoot",
                    sc["runAsNonRoot"] == true || pod["securityContext"]["runAsNonRoot"] == true,
                ),
                (
                    "seccompProfile RuntimeDefault",
                    pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault",
                ),
                (
                    "readOnlyRootFilesystem",
                    sc["readOnlyRootFilesystem"] == true,
                ),
                (
                    "allowPrivilegeEscalation: false",
                    sc["allowPrivilegeEscalation"] == false,
                ),
                (
                    "capabilities drop ALL",
                    sc["capabilities"]["drop"] == serde_json::json!(["ALL"]),
                ),
                (
                    "cpu and memory requests and limits",
                    ["requests", "limits"].iter().all(|k| {
                        !c.spec["resources"][k]["cpu"].is_null()
                            && !c.spec["resources"][k]["memory"].is_null()
                    }),
                ),
            ];
            for (what, ok) in checks {
                if !ok {
                    report.push(format!("{name}: needs {what}"));
                }
            }
            for var in c.spec["env"].as_array().into_iter().flatten() {
                let key = var["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_uppercase();
                let value = var["value"].as_str().unwrap_or_default();
                let secret_name = ["PASSWORD", "SECRET", "TOKEN", "DATABASE_URL"]
                    .iter()
                    .any(|w| key.contains(w));
                let url_with_password = value
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.split('/').next().unwrap_or("").contains('@'));
                if (secret_name && var["value"].is_string()) || url_with_password {
                    report.push(format!(
                        "{name}: {key} is a literal credential; use a Secret"
                    ));
                }
            }
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}
