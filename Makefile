# One entry point for people and CI: `make demo`, `make test`, `make ci`.
# Every target installs what it needs (a virtualenv in .venv, the Rust build,
# the Python extension) and is safe to run again.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MATURIN := $(VENV)/bin/maturin
CARGO ?= cargo
export CARGO_TERM_COLOR ?= auto

.PHONY: help setup setup-release build fmt lint test test-rust test-python coverage demo bench bench-quick bench-full bench-peers setup-peers miri docs ci clean wheel setup-browser setup-redis test-redis-race bench-redis

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(PY):
	$(PYTHON) -m venv $(VENV)

setup: $(PY) setup-browser setup-redis ## virtualenv with the Python test dependencies, the Rust build, the extension (debug), chromium, redis-server
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r brain-py/requirements-dev.txt
	$(CARGO) build --workspace --bins
	cd brain-py && ../$(MATURIN) develop -q

setup-release: $(PY) ## the same, optimised: for the demo and the benchmarks
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r brain-py/requirements-dev.txt
	$(CARGO) build --release --bin brain
	cd brain-py && ../$(MATURIN) develop -q --release

# Debian's chromium and chromium-driver, for the Dash browser test
# (brain-py/tests/test_dash_app.py), installed when missing. Where that is
# impossible (no apt-get, neither root nor sudo, no network) this says so
# and the test skips with the same reason.
setup-browser: ## chromium and chromedriver for the Dash browser test (apt-get, when missing)
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "make: no apt-get to install chromium and chromedriver: the Dash browser test will be skipped"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
		echo "make: neither root nor sudo, so chromium and chromium-driver cannot be installed: the Dash browser test will be skipped"; exit 0; fi; \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver"; \
	$$install || { $$sudo apt-get update -q && $$install; } || \
		echo "make: apt-get could not install chromium and chromium-driver: the Dash browser test will be skipped"

# Debian's redis-server (and redis-cli), for the Redis backend's tests,
# which start their own servers on free loopback ports (never 6379) and
# stop them. Installed when missing; without it those tests fail and say
# how to get it. The package may try to start a daemon on 6379: the tests
# never use it.
setup-redis: ## redis-server and redis-cli for the Redis backend's tests (apt-get, when missing)
	@if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then exit 0; fi; \
	if ! command -v apt-get >/dev/null; then \
		echo "make: no apt-get: install redis-server (7.0 or later) by hand for the Redis tests"; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server"; \
	$$install || { $$sudo apt-get update -q && $$install; }

# One wheel for every CPython from 3.11 (abi3): the package `brain` and the
# `brain` command (a console script running the Rust CLI through the
# extension). The wheel test (brain-py/tests/test_wheel.py) installs this
# wheel when it is newer than every source it is built from, and otherwise
# builds a debug wheel of its own (seconds, from the debug build `setup`
# made, instead of minutes for a release build).
wheel: $(PY) ## the release wheel: `pip install target/wheels/brain-*.whl` gives the package and the `brain` command
	$(PIP) install -q "maturin>=1.5,<2"
	cd brain-py && ../$(MATURIN) build --release --strip --out ../target/wheels

fmt: ## format Rust and check nothing else changed
	$(CARGO) fmt --all

lint: setup ## rustfmt check, clippy (benches included), rustdoc, mypy --strict, stubtest
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --exclude brain-bench
	cd brain-py && ../$(VENV)/bin/mypy
	$(VENV)/bin/stubtest brain._brain --allowlist brain-py/stubtest-allowlist.txt

test-rust: ## every Rust test (unit, integration, multi-process end-to-end, doctests)
	$(CARGO) test --workspace --exclude brain-bench

test-python: setup ## the pytest suite against the real extension
	cd brain-py && ../$(PY) -m pytest -q

test: setup test-rust test-python ## set up, then run every test

test-redis-race: setup-redis ## the Redis race at full length: writers on two hosts, readers on three, 60 s
	BRAIN_REDIS_RACE_SECS=60 $(CARGO) test -p brain-tests --test e2e redis_hosts::race -- --nocapture

# brain on Redis against redis-py with hiredis, on a redis-server of its
# own: in the peers' virtualenv (.venv-peers, as `make bench-peers` makes
# it), with brain built optimised there, and redis-rs's clients compared
# by brain-bench's redis_client. Writes its tables into docs/BENCHMARKS.md.
REDIS_PEERS := .venv-peers
bench-redis: setup-redis ## brain on Redis against redis-py + hiredis (1 MiB to 1 GiB, the 10-million-row frame); writes docs/BENCHMARKS.md
	test -x $(REDIS_PEERS)/bin/python || $(PYTHON) -m venv $(REDIS_PEERS)
	$(REDIS_PEERS)/bin/pip install -q "maturin>=1.5,<2" "redis>=5" "hiredis>=2" numpy pandas pyarrow
	cd brain-py && VIRTUAL_ENV=$(CURDIR)/$(REDIS_PEERS) ../$(REDIS_PEERS)/bin/maturin develop -q --release
	$(CARGO) build --release -p brain-bench --bin redis_client
	$(REDIS_PEERS)/bin/python brain-bench/redis_bench.py --write-docs --client-bin target/release/redis_client

# Line coverage of the Rust crates, measured by cargo-tarpaulin's ptrace
# engine (no llvm-tools needed) over every Rust test (the code run in helper
# processes is not counted: following them under ptrace crashes tarpaulin);
# and of the Python package, by coverage.py over the pytest suite.
# brain-py's Rust is loaded into Python, where tarpaulin cannot follow it:
# the Python figure covers the package's behaviour end to end.
COVERAGE_EXCLUDE := --exclude-files 'tests/*' '*/tests/*' 'brain-bench/*' 'brain-py/*'
coverage: setup ## line coverage of the Rust crates (cargo-tarpaulin) and of the Python package (coverage.py)
	@command -v cargo-tarpaulin >/dev/null || $(CARGO) install cargo-tarpaulin --locked
	$(CARGO) tarpaulin --workspace --exclude brain-bench --exclude brain-py --engine ptrace \
		--skip-clean --target-dir target/tarpaulin $(COVERAGE_EXCLUDE) --out Stdout
	cd brain-py && ../$(PY) -m coverage run --source=brain -m pytest -q -p no:cacheprovider \
		&& ../$(PY) -m coverage report --show-missing

demo: setup-release ## two processes share a 10-million-row DataFrame; against Parquet
	$(PY) examples/demo.py --brain-bin target/release/brain

bench-quick: setup-release ## the comparison with Parquet and memcpy, quick version (< 2 minutes)
	$(CARGO) build --release -p brain-bench --bin compare
	$(PY) brain-bench/compare.py --quick --rust-bin target/release/compare

bench-full: setup-release ## the comparison, full version (10-million-row frame, 1 GiB arrays)
	$(CARGO) build --release -p brain-bench --bin compare
	$(PY) brain-bench/compare.py --rust-bin target/release/compare

# The peers of `make bench-peers` live in virtualenvs of their own, so the
# test environment stays small: .venv-peers has Ray, redis-py with hiredis,
# pyarrow, pandas and brain (built optimised); .venv-plasma has pyarrow 11,
# the last with Plasma, which needs numpy < 2. redis-server comes from
# Debian's packages when it is missing. A tmpfs with huge pages is mounted
# for the run when this is root (and unmounted after).
PEERS_VENV := .venv-peers
PLASMA_VENV := .venv-plasma

$(PEERS_VENV)/bin/python:
	$(PYTHON) -m venv $(PEERS_VENV)

$(PLASMA_VENV)/bin/python:
	$(PYTHON) -m venv $(PLASMA_VENV)

setup-peers: $(PEERS_VENV)/bin/python $(PLASMA_VENV)/bin/python ## the peers of bench-peers, in .venv-peers and .venv-plasma
	$(PEERS_VENV)/bin/pip install -q --upgrade pip
	$(PEERS_VENV)/bin/pip install -q -r brain-bench/requirements-peers.txt
	-$(PLASMA_VENV)/bin/pip install -q -r brain-bench/requirements-plasma.txt
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	cd brain-py && VIRTUAL_ENV=$(CURDIR)/$(PEERS_VENV) ../$(PEERS_VENV)/bin/maturin develop -q --release

bench-peers: setup-peers ## brain beside Ray, Plasma, Redis, Parquet and shared_memory, with the floors; writes docs/BENCHMARKS.md
	mkdir -p bench-results
	$(PEERS_VENV)/bin/python brain-bench/peers.py --write-docs --plasma-python $(PLASMA_VENV)/bin/python \
		--json bench-results/peers.json $$([ "$$(id -u)" = 0 ] && echo --huge)

# miri runs the code that decodes bytes (format/: header, checksum, parts,
# ndarray metadata, Arrow IPC as stored, control file, keys) and the copy
# into the store with its checksum and the stream hasher (sys/copy.rs,
# shm/fill.rs, hash.rs, in their portable form: miri runs no assembly),
# where no system call is made.
# Isolation is off only because proptest reads the working directory.
MIRI_TESTS := format:: hash:: sys::copy:: shm::fill::
miri: ## the byte-decoding code and the checksummed copy under miri (nightly)
	rustup +nightly component add miri rust-src
	MIRIFLAGS="-Zmiri-disable-isolation" PROPTEST_CASES=8 $(CARGO) +nightly miri test -p brain-core --lib -- $(MIRI_TESTS)

bench: ## criterion benches of the core (release build)
	$(CARGO) bench -p brain-bench --bench core

docs: ## API docs
	$(CARGO) doc --no-deps --workspace --exclude brain-bench

ci: test lint ## what .ci/run runs: the README's test command, then the lints

clean: ## remove build outputs and the virtualenv
	$(CARGO) clean
	rm -rf $(VENV) brain-py/python/brain/*.so

# Fuzzing (cargo-fuzz, libFuzzer, nightly toolchain) of every parser of
# bytes another process or a disk can hand brain: one target per parser
# family in fuzz/fuzz_targets/, seeds in fuzz/corpus/<target>/. Targets run
# one after another, each on one core. Inputs a run finds new go to
# fuzz/grown/<target>/ (kept on the machine, not in git); a crash stops the
# run with its input in fuzz/artifacts/<target>/. See docs/RELIABILITY.md.
# dump_frames keeps a real dump in /dev/shm while it runs (libFuzzer exits
# without running destructors): the run removes it when it ends.
# dump_frames runs without leak checks: its reads use worker threads, whose
# thread-locals are freed as they exit, just after the read returns, and
# LeakSanitizer, checking right then or at the run's end, counts them as
# leaks.
FUZZ_TARGETS := header parts ndarray_meta arrow control names dump_manifest dump_entry dump_frames frame_manifest small_record
FUZZ_SECONDS ?= 60
FUZZ_TOOLCHAIN ?= nightly

.PHONY: fuzz fuzz-smoke fuzz-tool

fuzz-tool:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

fuzz: fuzz-tool ## every fuzz target for FUZZ_SECONDS seconds each (default 60)
	@set -e; \
	trap 'for dir in /dev/shm/brain-fuzz-dump-* /dev/shm/brain-fuzz-frames-* "$${TMPDIR:-/tmp}"/brain-fuzz-dump-*; do \
		if [ -e "$$dir" ] && [ ! -d "/proc/$${dir##*-}" ]; then rm -rf "$$dir"; fi; done' EXIT; \
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/grown/$$target; \
		echo "== fuzz $$target: $(FUZZ_SECONDS) s"; \
		leaks=1; [ $$target != dump_frames ] || leaks=0; \
		ASAN_OPTIONS=detect_leaks=$$leaks \
		$(CARGO) +$(FUZZ_TOOLCHAIN) fuzz run $$target fuzz/grown/$$target fuzz/corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=30 -print_final_stats=1; \
	done

fuzz-smoke: ## every fuzz target for 10 s (CI)
	$(MAKE) fuzz FUZZ_SECONDS=10

# The crash campaign and the soak of docs/RELIABILITY.md, full length, in
# an optimised build (make test runs both briefly: 3 kills per operation,
# a 60-second soak). A run prints its seed; SEED=... repeats it.
KILLS ?= 300
SOAK_SECONDS ?= 600
SEED_FLAG = $(if $(SEED),--seed $(SEED),)

.PHONY: crash-campaign soak

crash-campaign: ## SIGKILL at random points of every operation, KILLS times each (default 300), checking the store after each
	$(CARGO) build --release -p brain-tests --bin brain-reliability
	target/release/brain-reliability crash --kills $(KILLS) $(SEED_FLAG)

soak: ## writers, readers and a watcher in processes of their own for SOAK_SECONDS (default 600), every value checked
	$(CARGO) build --release -p brain-tests --bin brain-reliability
	target/release/brain-reliability soak --seconds $(SOAK_SECONDS) $(SEED_FLAG)
