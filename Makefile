# runstream: set-up, the local stack and the test suite.
# `make` alone lists the targets. Every target is safe to run twice.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
# Touched after a successful install; pyproject.toml being newer triggers a re-install.
INSTALL_STAMP := $(VENV)/.runstream-installed

# Endpoints of the local stack, read by the integration tests.
export RUNSTREAM_KAFKA ?= 127.0.0.1:9092
export RUNSTREAM_CLICKHOUSE ?= clickhouse://127.0.0.1:9000/runstream
# The stack scripts probe Kafka with kafka-python from this interpreter.
export RUNSTREAM_PYTHON ?= $(CURDIR)/$(VENV_PY)

.PHONY: help install stack-deps stack-up stack-down stack-status test clean demo bench ui \
	cluster-up cluster-down cluster-status test-cluster
# `make demo` (the embedded default, no servers) and `make bench` are added by
# the work that delivers them; `help` lists every target with a `## ` comment.

help: ## List the targets
	@echo "usage: make TARGET"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(INSTALL_STAMP) ## Create .venv with runstream, the embedded engine and the dev tools

$(INSTALL_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet -e '.[embedded,dev]'
	touch $@

stack-deps: ## Install what the local stack runs on: OS packages and the Kafka jars
	deploy/local/deps.sh

stack-up: install stack-deps ## Start Kafka and ClickHouse on 127.0.0.1; wait until both answer
	deploy/local/kafka.sh start
	deploy/local/clickhouse.sh start

stack-down: ## Stop Kafka and ClickHouse (state is kept under deploy/local/.state)
	deploy/local/kafka.sh stop
	deploy/local/clickhouse.sh stop

stack-status: ## Say whether Kafka and ClickHouse are up
	deploy/local/kafka.sh status || true
	deploy/local/clickhouse.sh status || true

# The stack comes down on every exit path, pytest's failure and Ctrl-C included;
# the exit code is pytest's. The cluster's fault tests are a stage of their own (test-cluster).
test: install stack-deps ## Install, start the stack, run the whole suite, stop the stack
	trap '$(MAKE) stack-down' EXIT; \
	$(MAKE) stack-up; \
	$(VENV)/bin/pytest tests/ --ignore=tests/cluster

cluster-up: install stack-deps ## Start the local cluster: 3 Kafka brokers, ZooKeeper, 2x2 ClickHouse; wait until ready
	deploy/local/cluster.sh start

cluster-down: ## Stop the local cluster (state is kept under deploy/local/.state/cluster)
	deploy/local/cluster.sh stop

cluster-status: ## Say which nodes of the local cluster are up
	deploy/local/cluster.sh status || true

# Like `test`, for the fault tests on the cluster; they read its endpoints from
# `deploy/local/cluster.sh env`, not from the RUNSTREAM_* exported above.
test-cluster: install stack-deps ## Start the local cluster, run the fault tests (tests/cluster/), stop it
	trap '$(MAKE) cluster-down' EXIT; \
	$(MAKE) cluster-up; \
	$(VENV)/bin/pytest tests/cluster/

clean: stack-down cluster-down ## Stop the stack and the cluster, remove .venv, their state and downloaded jars
	rm -rf $(VENV) deploy/local/.state deploy/local/.cache .pytest_cache

# Every RUNSTREAM_* setting but RUNSTREAM_PYTHON (secure-mode ones included: a shell set up for the
# secure stack must not turn the demo into a half-configured one).
DEMO_UNSET := RUNSTREAM_KAFKA RUNSTREAM_CLICKHOUSE RUNSTREAM_HOME RUNSTREAM_TOPIC RUNSTREAM_CONFIG \
	RUNSTREAM_KAFKA_SECURITY RUNSTREAM_KAFKA_CA_FILE RUNSTREAM_KAFKA_SASL_MECHANISM RUNSTREAM_KAFKA_USER \
	RUNSTREAM_KAFKA_PASSWORD RUNSTREAM_KAFKA_PASSWORD_FILE RUNSTREAM_CLICKHOUSE_PASSWORD \
	RUNSTREAM_CLICKHOUSE_PASSWORD_FILE RUNSTREAM_CLICKHOUSE_WRITER RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD \
	RUNSTREAM_CLICKHOUSE_WRITER_PASSWORD_FILE
# The README's first command: no servers, no settings. RUNSTREAM_* exported above
# for the integration tests must not turn the demo into a Kafka/ClickHouse one.
# The web UI is built at development time and committed (runstream/server/static/), so
# `make install` and `pip install` never need node; a test checks the committed files are this build.
ui: ## Rebuild the web UI from ui/ into runstream/server/static/ (needs node and npm)
	cd ui && npm ci --ignore-scripts --no-audit --no-fund && node build.mjs

demo: install ## Run an 8-run sweep on the embedded default (spool + chDB in ./.runstream), print a leaderboard
	env $(addprefix -u ,$(DEMO_UNSET)) $(VENV_PY) examples/sweep_demo.py

# Starts the stack only when it is not already answering, and then stops it again on
# every exit path; a stack that was running before (a shared one) is left running.
bench: install ## Benchmarks on the real local stack: bench/results/latest.json and BENCHMARKS.md (<10 min)
	$(VENV_PY) -m pip install --quiet -e '.[embedded,dev,bench]'
	if $(VENV_PY) -m bench.stack check; then \
		$(VENV_PY) -m bench; \
	else \
		trap '$(MAKE) stack-down' EXIT; \
		$(MAKE) stack-up; \
		$(VENV_PY) -m bench; \
	fi
