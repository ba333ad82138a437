//! Each overlay renders, validates against the Kubernetes schemas, and is snapshotted.

use crate::manifests::{self, containers, find_generated, objects, overlays, rendered};
use saga_testkit::workspace_root;
use std::collections::BTreeMap;
use std::process::Command;

/// The Kubernetes minor versions still supported upstream when this was written; the
/// newest is the one the pinned kubectl belongs to.
const KUBERNETES_VERSIONS: [&str; 3] = ["1.35.0", "1.36.0", "1.37.0"];

/// The rendered output is reviewed like code: a change to the manifests, or to what kustomize
/// makes of them, shows up as a snapshot diff (`cargo insta review`).
#[test]
fn every_overlay_renders_as_its_reviewed_snapshot() {
    for overlay in overlays() {
        let yaml = rendered(&overlay);
        insta::assert_snapshot!(overlay.clone(), yaml);
    }
}

/// `--strict` rejects fields the schema does not know (a typo such as `readinessprobe` would
/// otherwise be dropped silently by the API server). Every object must be validated: an
/// object of a kind without a schema (a CRD) only gets a warning, so warnings fail too.
#[test]
fn every_overlay_passes_strict_schema_validation() {
    let validate = manifests::tool("KUBERNETES_VALIDATE", "kubernetes-validate");
    let dir = tempfile::tempdir().unwrap();
    for overlay in overlays() {
        let file = dir.path().join(format!("{overlay}.yaml"));
        std::fs::write(&file, rendered(&overlay)).unwrap();
        let count = objects(&overlay).len();
        for version in KUBERNETES_VERSIONS {
            let out = Command::new(&validate)
                .args(["--strict", "--kubernetes-version", version])
                .arg(&file)
                .output()
                .expect("run kubernetes-validate");
            let report = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let passed = report
                .lines()
                .filter(|l| l.starts_with("INFO") && l.contains(" passed for resource "))
                .count();
            let problems: Vec<&str> = report.lines().filter(|l| !l.starts_with("INFO")).collect();
            assert!(
                out.status.success() && problems.is_empty() && passed == count,
                "{overlay} against Kubernetes {version}: {passed} of {count} objects passed\n{report}"
            );
        }
    }
}

/// The names of the `kind` sources (`configMap`, `secret`) projected into the NATS pods.
fn nats_projected<'a>(objects: &'a [serde_json::Value], kind: &str) -> Vec<&'a str> {
    objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "nats")
        .flat_map(|o| {
            o["spec"]["template"]["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .filter_map(|source| source[kind]["name"].as_str())
        .collect()
}

/// The NATS configuration each overlay mounts is one nats-server accepts (`-t` checks it
/// without starting), with the environment the StatefulSet gives the pod.
#[test]
fn nats_configuration_is_accepted_by_nats_server() {
    let nats_server = saga_testkit::nats_server_bin().unwrap();
    for overlay in overlays() {
        let objects = objects(&overlay);
        let config = find_generated(&objects, "ConfigMap", "nats-config")
            .unwrap_or_else(|| panic!("{overlay}: no nats-config ConfigMap"));
        let text = config["data"]["nats.conf"].as_str().expect("nats.conf");
        let nats = containers(&objects)
            .into_iter()
            .find(|c| c.spec["name"] == "nats")
            .unwrap_or_else(|| panic!("{overlay}: no nats container"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats.conf");
        // The pod mounts its configuration, auth.conf and the TLS files at /etc/nats; here
        // they are in the temporary directory, with a certificate made for the check.
        let etc = format!("{}/", dir.path().display());
        std::fs::write(&file, text.replace("/etc/nats/", &etc)).unwrap();
        saga_protocol::tls::write(dir.path(), &["nats".into()]).unwrap();
        // auth.conf is projected beside it from the ConfigMap nats-auth: the dev overlay's
        // own, or (prod) the one the operator creates from `saga nats credentials`.
        let auth = match find_generated(&objects, "ConfigMap", "nats-auth") {
            Some(map) => map["data"]["auth.conf"]
                .as_str()
                .expect("auth.conf")
                .to_string(),
            None => {
                let users: Vec<_> = [
                    saga_protocol::auth::Role::Orchestrator,
                    saga_protocol::auth::Role::Admin,
                ]
                .into_iter()
                .map(|role| {
                    saga_protocol::auth::Identity::generate(role)
                        .unwrap()
                        .user()
                })
                .collect();
                saga_protocol::auth::authorization(&users)
            }
        };
        std::fs::write(dir.path().join("auth.conf"), auth).unwrap();
        let projected = nats_projected(&objects, "configMap");
        assert!(
            projected.iter().any(|name| name.starts_with("nats-auth")),
            "{overlay}: nats.conf's auth.conf is not projected beside it: {projected:?}"
        );
        let secrets = nats_projected(&objects, "secret");
        assert!(
            secrets.iter().any(|name| name.starts_with("saga-nats-tls"))
                && text.contains("cert_file: /etc/nats/server.pem"),
            "{overlay}: the TLS certificate nats.conf names is not projected beside it: {secrets:?}"
        );
        let mut check = Command::new(&nats_server);
        check.arg("-t").arg("-c").arg(&file).env_clear();
        for var in nats.spec["env"].as_array().into_iter().flatten() {
            // Values from the downward API are the pod's; any pod name will do.
            check.env(var["name"].as_str().unwrap(), "nats-0");
        }
        let out = check.output().expect("run nats-server -t");
        assert!(
            out.status.success(),
            "{overlay}: nats-server refuses nats.conf:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let args: Vec<&str> = nats.spec["command"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(nats.spec["args"].as_array().into_iter().flatten())
            .filter_map(|a| a.as_str())
            .collect();
        assert!(
            args.windows(2)
                .any(|w| w == ["--config", "/etc/nats/nats.conf"]),
            "{overlay}: nats runs {args:?}, not the mounted configuration"
        );
    }
}

/// Every `sagas/*.toml` is in the ConfigMap the orchestrator mounts, unchanged, and nothing
/// else is: a definition added without listing it in sagas/kustomization.yaml fails here.
#[test]
fn saga_definitions_configmap_holds_every_definition() {
    let sagas = workspace_root().join("sagas");
    let mut on_disk = BTreeMap::new();
    for entry in std::fs::read_dir(&sagas).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            on_disk.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(!on_disk.is_empty(), "no saga definitions in sagas/");
    for overlay in overlays() {
        let objects = objects(&overlay);
        let config = find_generated(&objects, "ConfigMap", "saga-definitions")
            .unwrap_or_else(|| panic!("{overlay}: no saga-definitions ConfigMap"));
        let in_config: BTreeMap<String, String> = config["data"]
            .as_object()
            .expect("data")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(
            in_config.keys().collect::<Vec<_>>(),
            on_disk.keys().collect::<Vec<_>>(),
            "{overlay}: list every sagas/*.toml in sagas/kustomization.yaml"
        );
        assert_eq!(
            in_config, on_disk,
            "{overlay}: definitions differ from sagas/"
        );
    }
}

/// A ConfigMap volume is not a plain directory: each key is a symlink into a hidden,
/// timestamped directory (`..data`), which is how updates swap atomically. The orchestrator
/// must load the same definitions through those links as from `sagas/` itself.
#[test]
fn orchestrator_loads_definitions_from_a_configmap_volume_layout() {
    use saga_orchestrator::runtime::Registry;
    use std::os::unix::fs::symlink;
    let sagas = workspace_root().join("sagas");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let version = root.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir(&version).unwrap();
    for entry in std::fs::read_dir(&sagas).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let name = path.file_name().unwrap();
            std::fs::copy(&path, version.join(name)).unwrap();
            symlink(std::path::Path::new("..data").join(name), root.join(name)).unwrap();
        }
    }
    symlink(version.file_name().unwrap(), root.join("..data")).unwrap();
    let names = |registry: Registry| registry.names().map(String::from).collect::<Vec<_>>();
    let from_volume = Registry::load_dir(root).unwrap_or_else(|e| panic!("{e:?}"));
    let from_repo = Registry::load_dir(&sagas).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!from_repo.is_empty());
    assert_eq!(names(from_volume), names(from_repo));
}
