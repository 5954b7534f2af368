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
# Headless Chromium runs the dashboard test. kubectl (kustomize) and docker-compose render the
# deployment manifests (no container engine or cluster is needed).
# As root on Debian they are installed when missing; elsewhere the tests say what is missing.
test-deps: install
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless maven; \
	  else echo "Java 17 and Maven are needed for the Kafka tests"; fi; fi
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Chromium is needed for the dashboard test (Debian: apt-get install chromium)"; fi; fi
	@if ! command -v kubectl >/dev/null || ! command -v docker-compose >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $$(command -v kubectl >/dev/null || echo kubernetes-client) \
	      $$(command -v docker-compose >/dev/null || echo docker-compose); \
	  else echo "kubectl and docker-compose render k8s/ and deploy/compose.yaml (Debian: apt-get install kubernetes-client docker-compose)"; fi; fi
	$(BIN)/python -m tests.harness.services prefetch

test: lint test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Benchmarks run in their own venv: the bench extra adds Quix Streams (which pins pydantic below
# 2.14) and pandas, and must not change the versions the tests run with.
BENCH_BIN := .venv-bench/bin

$(BENCH_BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-bench
	$(BENCH_BIN)/pip install --quiet --upgrade pip
	$(BENCH_BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: $(BENCH_BIN)/.installed
	$(BENCH_BIN)/python -m bench.aggregator
	$(BENCH_BIN)/python -m bench.kernels
	$(BENCH_BIN)/python -m bench.store_writer
	$(BENCH_BIN)/python -m bench.store_size
	$(BENCH_BIN)/python -m bench.year_totals
	$(BENCH_BIN)/python -m bench.opcua_gateway
	$(BENCH_BIN)/python -m bench.modbus_gateway
	$(BENCH_BIN)/python -m bench.gateway_buffer
	$(BENCH_BIN)/python -m bench.quix_compare
	$(BENCH_BIN)/python -m bench.pipeline
	$(BENCH_BIN)/python -m bench.scale_out
	$(BENCH_BIN)/python -m bench.aggregator_memory
	$(BENCH_BIN)/python -m bench.alert_latency
	$(BENCH_BIN)/python -m bench.live_endpoint
	$(BENCH_BIN)/python -m bench.sse_fanout

clean:
	rm -rf $(VENV) .venv-bench .plantpulse .mypy_cache .ruff_cache .pytest_cache
