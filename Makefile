# tpc - top-level entry points. CMake does the building; this file wraps it.
#
#   make          install missing Debian packages, configure and build (build/)
#   make test     build with AddressSanitizer + UBSan (build-asan/) and run every test
#   make demo     build and run the end-to-end demo (TLS=1 make demo: with mutual TLS)
#   make bench    build and run the benchmark matrix; writes BENCHMARKS.md (BASELINE=REV:
#                 the commit the latency table compares with, built in a git worktree)
#   make lesson   exactly-once vs effectively-once vs at-least-once, run and measured
#   make lesson-docs  the same, writing its figures into docs/exactly-once.md
#   make torture  a long torture run (10 minutes, random seed; see docs/failure-injection.md)
#   make growth   rule D9: 10 minutes at peak rate, every LMDB file's size each minute
#   make bench-tls  tpc-bench with TLS beside plaintext (a section of BENCHMARKS.md)
#   make bench-etcd tpc-bench with the etcd log beside LMDB (a section of BENCHMARKS.md)
#   make ha-demo  kill -9 the leader coordinator under load: takeover time and the check
#   make fuzz     the libFuzzer harnesses of fuzz/, each for FUZZ_SECONDS (default 60)
#   make install  install binaries, libraries, headers, pkg-config and CMake files, man
#                 pages, the systemd unit and /etc/tpc/coordinator.conf under PREFIX
#                 (default /usr/local); DESTDIR=DIR stages the same tree under DIR
#   make deb      a Debian package (CPack) of an install with the prefix /usr (build-deb/)
#   make deb-check  build the package, unpack it and run its programs (scripts/deb-check.sh)
#   make clean    remove the build folders

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
CMAKE_FLAGS ?=

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps build test unit integration demo install clean

all: build

# Install packages once per build folder (the script is a no-op when all are present).
$(DEPS_STAMP): scripts/install-deps.sh
	@bash scripts/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

deps: $(DEPS_STAMP)

build: $(DEPS_STAMP)
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPC_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

$(ASAN_BUILD)/CMakeCache.txt: $(DEPS_STAMP)
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTPC_SANITIZE=ON -DTPC_WERROR=ON $(CMAKE_FLAGS) >/dev/null

test: $(ASAN_BUILD)/CMakeCache.txt build
	@cmake --build $(ASAN_BUILD) -j$(JOBS) -- --no-print-directory
	@bash scripts/run-tests.sh $(ASAN_BUILD) $(BUILD)

unit: $(ASAN_BUILD)/CMakeCache.txt
	@cmake --build $(ASAN_BUILD) -j$(JOBS) -- --no-print-directory
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L unit

integration: $(ASAN_BUILD)/CMakeCache.txt
	@cmake --build $(ASAN_BUILD) -j$(JOBS) -- --no-print-directory
	@cd $(ASAN_BUILD) && ctest --output-on-failure -L integration

demo: build
	@bash scripts/demo.sh $(BUILD)

# make ha-demo: coordinator failover on a real 3-member etcd cluster (scripts/ha-demo.sh):
# kill -9 the leader under load, print the takeover time and the torture checker's verdict.
.PHONY: ha-demo
ha-demo: build
	@bash scripts/ha-demo.sh $(BUILD)

install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(DEB_BUILD)

# make bench: the benchmark matrix (scripts/bench.sh) on the optimised build in $(BUILD)
# (the RelWithDebInfo build of `make build`: -O2 -DNDEBUG, symbols kept for profiles),
# after installing gnuplot and python3 if missing. Writes bench/results/STAMP/ (raw,
# not committed), bench/bench.png, bench/summary.json and BENCHMARKS.md.
.PHONY: bench
BASELINE ?= 1706e8d
bench: build
	@bash scripts/install-deps.sh --bench
	@BASELINE=$(BASELINE) bash scripts/bench.sh $(BUILD)

# make lesson: the lesson of docs/exactly-once.md run for real (scripts/lesson.sh) on the
# optimised build in $(BUILD): the financial close (2PC), the page-view counter in three
# modes and the transactional outbox, each crashed on purpose with seeded kill -9 and
# fault points and checked against the source. Prints one table, and writes it, the
# replay checks and a plot (gnuplot, from install-deps.sh --lesson) into
# $(BUILD)/lesson-report/; a missing plot is a warning, a broken guarantee exits 1.
# make lesson-docs: the same, and (only if every guarantee held) rewrites the tracked
# docs/exactly-once.md and docs/exactly-once.svg with this run's figures.
.PHONY: lesson lesson-docs
LESSON_DEPS = bash scripts/install-deps.sh --lesson || echo "lesson: could not install \
	gnuplot-nox; the lesson runs without a new plot" >&2
lesson: build
	@$(LESSON_DEPS)
	@bash scripts/lesson.sh $(BUILD)
lesson-docs: build
	@$(LESSON_DEPS)
	@LESSON_DOCS=1 bash scripts/lesson.sh $(BUILD)

# make torture: the long torture run of docs/failure-injection.md on the release build
# (TORTURE_DURATION, default 10m; a new seed each time, printed first).
.PHONY: torture
TORTURE_DURATION ?= 10m
torture: build
	@$(BUILD)/tools/tpc-torture run --duration $(TORTURE_DURATION)

# make growth: rule D9 measured (scripts/growth.sh): a coordinator and two tpc-kv under
# tpc-bench's peak load for GROWTH_MINUTES (default 10), every LMDB file's size and table
# entries printed each minute; fails if a file still grows in the second half of the run.
.PHONY: growth
GROWTH_MINUTES ?= 10
growth: build
	@bash scripts/growth.sh $(BUILD) $(GROWTH_MINUTES)

# make fuzz: the libFuzzer harnesses of fuzz/ (fuzz/README.md), built with clang into
# $(FUZZ_BUILD) with -fsanitize=fuzzer,address,undefined, each run for FUZZ_SECONDS
# (default 60) from the seed corpus in fuzz/corpus/ (scripts/fuzz.sh prints the
# executions per harness; a crash leaves its input in $(FUZZ_BUILD)/fuzz/).
.PHONY: fuzz
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: $(DEPS_STAMP)
	@bash scripts/fuzz.sh --build $(FUZZ_BUILD) $(FUZZ_SECONDS)

# make bench-tls: what mutual TLS costs (scripts/bench-tls.sh): tpc-bench pairs, plaintext
# then TLS, at 256 clients; rewrites the "TLS beside plaintext" section of BENCHMARKS.md.
.PHONY: bench-tls
bench-tls: build
	@bash scripts/bench-tls.sh $(BUILD)

# make bench-etcd: what the decision log on etcd costs (scripts/bench-etcd.sh): tpc-bench
# against --log etcd beside --log lmdb; rewrites "The etcd log beside LMDB" of BENCHMARKS.md.
.PHONY: bench-etcd
bench-etcd: build
	@bash scripts/bench-etcd.sh $(BUILD)

# make deb: a Debian package built by CPack (packaging/cpack.cmake) from a release build
# configured with the prefix /usr in $(DEB_BUILD); writes $(DEB_BUILD)/tpc_VERSION_ARCH.deb.
# scripts/deb-check.sh builds it, unpacks it and runs its programs.
.PHONY: deb
DEB_BUILD ?= build-deb
deb: $(DEPS_STAMP)
	@cmake -S . -B $(DEB_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPC_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(DEB_BUILD) -j$(JOBS) -- --no-print-directory
	@cd $(DEB_BUILD) && cpack -G DEB >/dev/null && ls -1 "$$PWD"/*.deb

.PHONY: deb-check
deb-check:
	@bash scripts/deb-check.sh
