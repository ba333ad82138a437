#!/usr/bin/env bash
# `make test`: every test binary of the workspace (`--no-fail-fast`, so one failing binary
# does not hide the others), then the doc tests, whatever the first command did. Ends with
# one line summed over every `test result:` line both printed:
#
#   412 passed, 0 failed, 3 ignored
#
# and exits non-zero if any test failed or either cargo command failed (a build error, or a
# test binary that crashed before printing its result, fails the run without a count).
#
#   deploy/local/test-summary.sh            # CARGO=... to use another cargo
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo=${CARGO:-cargo}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

nats=$(deploy/local/ensure-nats.sh) || {
  echo "cannot find or install nats-server (deploy/local/ensure-nats.sh)" >&2
  exit 1
}

failed_commands=()
# pipefail: each pipeline's status is cargo's, not tee's.
NATS_SERVER_BIN="$nats" "$cargo" test --workspace --all-targets --no-fail-fast 2>&1 | tee -a "$log" ||
  failed_commands+=("$cargo test --workspace --all-targets --no-fail-fast")
"$cargo" test --workspace --doc 2>&1 | tee -a "$log" ||
  failed_commands+=("$cargo test --workspace --doc")

# "test result: ok. 4 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; …", once per
# binary; colour codes stripped in case the output was coloured.
read -r passed failed ignored < <(
  sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
    /^test result:/ {
      for (i = 2; i <= NF; i++) {
        if ($i ~ /^passed;?$/) p += $(i - 1)
        if ($i ~ /^failed;?$/) f += $(i - 1)
        if ($i ~ /^ignored;?$/) g += $(i - 1)
      }
    }
    END { printf "%d %d %d\n", p, f, g }'
)

echo
for command in "${failed_commands[@]}"; do
  echo "failed: $command"
done
echo "$passed passed, $failed failed, $ignored ignored"
if [ "$failed" -gt 0 ] || [ "${#failed_commands[@]}" -gt 0 ]; then
  exit 1
fi
