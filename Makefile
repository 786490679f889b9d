# sagaflow developer entry points. Every target can be run repeatedly; the
# scripts in deployment/ skip work that is already done.
#
# Runtime state (broker, logs, pid files, service data) lives under var/, or
# under $SAGAFLOW_VAR if set. The build tree is build/.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

BUILD_DIR := build
BUILD_TYPE := RelWithDebInfo
# The one sanitizer build (clang, ASan + UBSan, libFuzzer coverage; tests/sanitize-build):
# the unit tests of make test-asan and the fuzz targets of make fuzz.
ASAN_BUILD_DIR := build-asan
# Seconds each fuzz target runs (4 targets, one per core at once).
FUZZ_SECONDS ?= 15
# Tests ctest runs at once in make test: the integration tests share the broker
# but nothing else; the crash, secured and scenario tests always run alone.
TEST_JOBS ?= 3
# The failure scenarios 'make scenarios' runs, and extra options for the runner
# (e.g. SCENARIO_ARGS='--kafka-port 19700 --http-port-base 18700 --json').
SCENARIOS ?= $(sort $(wildcard deployment/scenarios/*.yaml))
# A quicker subset (make scenarios-ci): two reference settings, a kill, a pause
# past the deadline, a wiped disk and malformed records. CI runs the whole set.
SCENARIOS_CI := $(addprefix deployment/scenarios/,reference-all-ok.yaml reference-payment-fails.yaml \
  orchestrator-killed.yaml payment-paused.yaml warehouse-wiped.yaml malformed-records.yaml)
# What CI runs on Docker Compose (make scenarios-compose-ci): the four reference
# settings and the orchestrator killed mid-load.
SCENARIOS_COMPOSE_CI := $(addprefix deployment/scenarios/,reference-all-ok.yaml reference-warehouse-fails.yaml \
  reference-payment-fails.yaml reference-notification-fails.yaml orchestrator-killed.yaml)
# What make scenarios-compose runs: every scenario the compose stack can hold (it has one broker
# and one container per service, so not those with several brokers or instances).
SCENARIOS_MULTI := $(addprefix deployment/scenarios/,three-broker-node-lost.yaml instances-rebalance.yaml)
SCENARIOS_COMPOSE ?= $(filter-out $(SCENARIOS_MULTI),$(SCENARIOS))
SCENARIO_ARGS ?=
# Scenarios the local targets run at once, each with its own broker (sagaflow scenario run --jobs).
SCENARIO_JOBS ?= 2

.PHONY: help deps configure build kafka-fetch test test-unit test-asan fuzz up up-detached down check clean \
        scenarios scenarios-ci scenarios-compose scenarios-compose-ci

help: ## list the targets
	@echo "Usage: make TARGET"
	@echo
	@awk -F':.*## ' '/^[a-z][a-z-]*:.*## / { printf "  %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@echo
	@echo "Scripts behind the targets (each has --help): deployment/install-deps,"
	@echo "deployment/up, deployment/down, deployment/check.sh, deployment/kafka/broker,"
	@echo "deployment/docker/compose."
	@echo "To also delete runtime data: deployment/down --purge (Compose: deployment/docker/compose down --purge)"

deps: ## install the Debian packages needed to build, run and test
	deployment/install-deps

configure: deps
	@if [[ ! -f $(BUILD_DIR)/CMakeCache.txt ]]; then \
	  echo "cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)"; \
	  cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE); \
	fi

build: configure ## configure (first time) and build everything, tests included
	cmake --build $(BUILD_DIR)

kafka-fetch: deps
	deployment/kafka/fetch

test: build kafka-fetch ## run unit, integration and crash tests (the tests start and stop Kafka themselves)
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L 'unit|integration|crash' --no-tests=error -j $(TEST_JOBS)

test-unit: build ## run the unit tests only (no broker)
	ctest --test-dir $(BUILD_DIR) --output-on-failure -L unit

test-asan: deps ## unit tests built with ASan + UBSan (clang) in build-asan/, one process per core
	tests/sanitize-build --build-dir $(ASAN_BUILD_DIR) unit_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD_DIR) --output-on-failure -L unit --no-tests=error -j $$(nproc)

fuzz: deps ## build the libFuzzer targets in build-asan/ and run each for FUZZ_SECONDS (default 15), one per core
	tests/fuzz/run --build-dir $(ASAN_BUILD_DIR) --seconds $(FUZZ_SECONDS)

up: ## build and start broker + services, follow the logs; Ctrl+C stops all
	deployment/up

up-detached: ## like up, but return once every service is healthy
	deployment/up --detach

down: ## stop the services and the broker
	deployment/down

check: deps ## end-to-end saga scenarios against the running system
	deployment/check.sh

scenarios: configure kafka-fetch ## run the failure scenarios (deployment/scenarios/) on local processes of their own
	cmake --build $(BUILD_DIR) --target sagaflow
	$(BUILD_DIR)/bin/sagaflow scenario run --jobs $(SCENARIO_JOBS) $(SCENARIOS) $(SCENARIO_ARGS)

scenarios-ci: configure kafka-fetch ## a quicker subset of the failure scenarios (local processes)
	cmake --build $(BUILD_DIR) --target sagaflow
	$(BUILD_DIR)/bin/sagaflow scenario run --jobs $(SCENARIO_JOBS) $(SCENARIOS_CI) $(SCENARIO_ARGS)

scenarios-compose: configure ## run the failure scenarios on the Docker Compose stack (deployment/docker/compose)
	cmake --build $(BUILD_DIR) --target sagaflow
	$(BUILD_DIR)/bin/sagaflow scenario run --backend compose $(SCENARIOS_COMPOSE) $(SCENARIO_ARGS)

scenarios-compose-ci: configure kafka-fetch ## the reference scenarios and a kill on Compose, the image made from build/bin/sagaflow (CI)
	cmake --build $(BUILD_DIR) --target sagaflow
	SAGAFLOW_COMPOSE_BINARIES=$(BUILD_DIR)/bin $(BUILD_DIR)/bin/sagaflow scenario run --backend compose \
	  $(SCENARIOS_COMPOSE_CI) $(SCENARIO_ARGS)

.PHONY: compose-up compose-down
compose-up: ## like up-detached, under Docker Compose (images built offline; deployment/docker/compose)
	deployment/docker/compose up

compose-down: ## remove the Compose containers (data kept), stop the dockerd compose-up started
	deployment/docker/compose down

.PHONY: bench bench-rebuild bench-replay
BENCH_ARGS ?=
bench: configure ## build and run the microbenchmarks, then show how to load the running system
	cmake --build $(BUILD_DIR) --target sagaflow_microbench sagaflow
	$(BUILD_DIR)/bin/sagaflow_microbench $(BENCH_ARGS)
	@echo
	@echo "End-to-end (completed sagas/s, latency percentiles) against a running system:"
	@echo "  make up-detached && $(BUILD_DIR)/bin/sagaflow bench --orders 2000 --concurrency 50"
	@echo "  ($(BUILD_DIR)/bin/sagaflow bench --help for the options, --json FILE to save the results)"

bench-rebuild: build ## orchestrator rebuild time for 100,000 sagas (needs the broker: make up-detached)
	$(BUILD_DIR)/bin/sagaflow_rebuild_bench --sagas 100000 --brokers 127.0.0.1:9092

bench-replay: build ## sagaflow replay over 1,000,000 events read from Kafka (needs the broker; see bench/RESULTS.md)
	$(BUILD_DIR)/bin/sagaflow_replay_bench --events 1000000 --brokers 127.0.0.1:9092

clean: ## delete the build trees (runtime data: deployment/down --purge)
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) build-fuzz
