# plantpulse: `make demo` runs the embedded demo, `make test` runs every check CI runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install test-deps bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "plantpulse needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/plantpulse demo

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Java 17 and Maven run the Kafka broker; PostgreSQL's binaries run a throwaway cluster.
# As root on Debian they are installed when missing; elsewhere the tests say what is missing.
test-deps: install
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; \
	  else echo "Java 17 and Maven are needed for the Kafka tests"; fi; fi
	$(BIN)/python -m tests.harness.services prefetch

test: lint test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python -m bench.aggregator
	$(BIN)/python -m bench.store_writer
	$(BIN)/python -m bench.opcua_gateway
	$(BIN)/python -m bench.modbus_gateway
	$(BIN)/python -m bench.gateway_buffer

clean:
	rm -rf $(VENV) .plantpulse .mypy_cache .ruff_cache .pytest_cache
