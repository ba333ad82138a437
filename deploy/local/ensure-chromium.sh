#!/usr/bin/env bash
# Prints the paths of chromium and chromedriver (one a line), installing Debian's `chromium`
# and `chromium-driver` packages when either is missing. Used by `make test` for the browser
# test of the web UI; idempotent, and apt-get runs only when something is missing.
set -euo pipefail

have() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }

if ! have; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "chromium and chromium-driver are missing; install them as root:" >&2
      echo "  apt-get update && apt-get install -y chromium chromium-driver" >&2
      exit 1
    }
    sudo="sudo"
  fi
  echo "installing chromium and chromium-driver (Debian packages)" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >&2
fi
command -v chromium
command -v chromedriver
