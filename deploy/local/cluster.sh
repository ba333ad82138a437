#!/usr/bin/env bash
# Runs the scaled-out system on loopback: a 3-node NATS JetStream cluster (R3 streams), one
# PostgreSQL, 3 orchestrator replicas and 2 instances of each participant, every process a
# real `saga` (or nats-server, postgres) process with its own log.
#
#   deploy/local/cluster.sh              build (debug) and run until Ctrl-C
#   deploy/local/cluster.sh --release    the same with a release build
#
# Settings (environment): CLUSTER_DIR (default: a new temp dir; logs, NATS stores and the
# database live there), ORCHESTRATORS (3), INSTANCES (2 per participant), FAILOVER_AFTER (5s).
# Every process authenticates to NATS with its own NKey and gets only its role's permissions:
# `saga nats credentials` writes the seeds and the servers' authorization to $CLUSTER_DIR/credentials,
# with a CA and certificate: clients speak TLS to the nodes (--nats-ca), the routes mutual TLS.
# When everything is ready it prints the API URLs and writes them to $CLUSTER_DIR/cluster.env
# (SAGA_NATS_URL, SAGA_API_URLS, SAGA_NATS_CA, and SAGA_NATS_NKEY: the admin identity, for `saga account`
# and `saga dlq`); kill -9 any process to watch the others take over.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile=debug
cargo_flags=()
for arg in "$@"; do
  case "$arg" in
    --release) profile=release; cargo_flags=(--release) ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
orchestrators="${ORCHESTRATORS:-3}"
instances="${INSTANCES:-2}"
failover="${FAILOVER_AFTER:-5s}"
dir="${CLUSTER_DIR:-$(mktemp -d -t saga-cluster-XXXXXX)}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

nats_server="$("$root/deploy/local/ensure-nats.sh")"
(cd "$root" && cargo build --quiet "${cargo_flags[@]}" -p saga-cli --bin saga)
saga="${CARGO_TARGET_DIR:-$root/target}/$profile/saga"

# Runs a PostgreSQL tool as the postgres user when this script runs as root.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pids=()       # saga processes
nats_pids=()
pg_ctl=""
sleeper=""
stop() {
  trap - EXIT INT TERM
  if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null || true; fi
  echo "stopping the cluster (logs stay in $dir)"
  # The saga processes first (SIGTERM: they finish what they hold and release their leases),
  # then NATS, then PostgreSQL.
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for pid in "${nats_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${nats_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg_ctl" ]; then as_pg "$pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true; fi
  echo "cluster stopped"
}
trap stop EXIT
trap 'exit 130' INT TERM

# A free TCP port on loopback, never one handed out before in this run.
used=" "
free_port() {
  local port
  while :; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    case "$used" in *" $port "*) continue ;; esac
    used="$used$port "
    echo "$port"; return
  done
}

# Waits until $1 answers 2xx, for at most $2 seconds (python3 is there; curl may not be).
http_ok() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}
wait_http() {
  local deadline=$((SECONDS + $2))
  until http_ok "$1"; do
    if [ "$SECONDS" -ge "$deadline" ]; then echo "timed out waiting for $1" >&2; return 1; fi
    sleep 0.2
  done
}

# --- NATS identities: an NKey each, and the authorization every node includes.
creds="$dir/credentials"
"$saga" nats credentials --out "$creds" >/dev/null

# --- NATS: three nodes with routes to each other, JetStream on each.
nats_ports=(); cluster_ports=(); monitor_ports=()
for i in 0 1 2; do
  nats_ports+=("$(free_port)"); cluster_ports+=("$(free_port)"); monitor_ports+=("$(free_port)")
done
routes=$(printf 'nats://127.0.0.1:%s,' "${cluster_ports[@]}"); routes=${routes%,}
for i in 0 1 2; do
  mkdir -p "$dir/nats-$i"
  cp "$creds/auth.conf" "$creds/tls.conf" "$creds/cluster-tls.conf" "$dir/nats-$i/"
  printf 'include "auth.conf"\ninclude "tls.conf"\ncluster {\n  include "cluster-tls.conf"\n}\n' >"$dir/nats-$i/node.conf"
  "$nats_server" -c "$dir/nats-$i/node.conf" -a 127.0.0.1 -p "${nats_ports[$i]}" -m "${monitor_ports[$i]}" -n "node-$i" \
    -js -sd "$dir/nats-$i" --cluster_name saga-local \
    --cluster "nats://127.0.0.1:${cluster_ports[$i]}" --routes "$routes" \
    >"$dir/nats-$i.log" 2>&1 &
  nats_pids+=("$!")
done
for i in 0 1 2; do wait_http "http://127.0.0.1:${monitor_ports[$i]}/healthz" 60; done
nats_url=$(printf 'nats://127.0.0.1:%s,' "${nats_ports[@]}"); nats_url=${nats_url%,}
echo "nats          3 nodes: $nats_url"

# --- PostgreSQL: a throwaway cluster (run as the postgres user when this runs as root).
pg_ctl_path=$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1 || true)
# The real directory: PATH may hold symlinks to pg_ctl and initdb only.
pg_bin=$(dirname "$(readlink -f "${pg_ctl_path:-/nonexistent}")")
[ -x "$pg_bin/pg_ctl" ] && [ -x "$pg_bin/createdb" ] || { echo "PostgreSQL (initdb, pg_ctl, createdb) not found" >&2; exit 1; }
mkdir -p "$dir/pg"
if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$dir/pg"; fi
pg_port=$(free_port)
as_pg "$pg_bin/initdb" -D "$dir/pg/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/pg/initdb.log" 2>&1
as_pg "$pg_bin/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/log" -w start \
  -o "-p $pg_port -k $dir/pg -h 127.0.0.1 -c max_connections=200" >/dev/null
pg_ctl="$pg_bin/pg_ctl"
for db in orchestrator account order; do
  as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$db"
done
db_url() { echo "postgres://postgres@127.0.0.1:$pg_port/$1"; }
echo "postgres      $(db_url orchestrator) (and /account, /order)"

common=(--nats "$nats_url" --nats-ca "$creds/ca.pem" --stream-replicas 3 --failover-after "$failover")

# --- Participants: each instance shares its participant's consumer and database.
health=()
for i in $(seq 0 $((instances - 1))); do
  for kind in account order; do
    port=$(free_port)
    "$saga" participant "$kind" "${common[@]}" --nats-nkey "$creds/$kind.nk" --database "$(db_url "$kind")" \
      --catalogue "$root/sagas/participants.toml" --listen "127.0.0.1:$port" \
      >"$dir/$kind-$i.log" 2>&1 &
    pids+=("$!"); health+=("http://127.0.0.1:$port/readyz")
  done
done

# --- Orchestrators: replicas on one store, sharing the reply consumer and the partitions.
apis=()
for i in $(seq 0 $((orchestrators - 1))); do
  port=$(free_port)
  "$saga" orchestrator "${common[@]}" --nats-nkey "$creds/orchestrator.nk" --database "$(db_url orchestrator)" \
    --sagas "$root/sagas" --listen "127.0.0.1:$port" >"$dir/orchestrator-$i.log" 2>&1 &
  pids+=("$!"); apis+=("http://127.0.0.1:$port"); health+=("http://127.0.0.1:$port/readyz")
done
for url in "${health[@]}"; do wait_http "$url" 120; done

{
  echo "SAGA_NATS_URL=$nats_url"
  echo "SAGA_API_URLS=$(IFS=,; echo "${apis[*]}")"
  echo "SAGA_NATS_NKEY=$creds/admin.nk"
  echo "SAGA_NATS_CA=$creds/ca.pem"
} >"$dir/cluster.env"
echo "participants  $instances each of account and order"
echo "orchestrators ${apis[*]}"
echo "cluster ready; logs and cluster.env in $dir. Try:"
echo "  $saga account open c-1 --deposit 1000 --nats $nats_url --nats-nkey $creds/admin.nk"
echo "  $saga start place_order --input '{\"customer_id\": \"c-1\", \"amount\": 100}' --wait --server ${apis[0]}"
echo "kill -9 a process to watch the others take over; Ctrl-C stops everything."
# Runs until interrupted; processes that die (or are killed) stay dead, as in a failure.
while :; do
  sleep 60 &
  sleeper=$!
  wait "$sleeper" || true
done
