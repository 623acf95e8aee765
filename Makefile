# tpc - top-level entry points. CMake does the building; this file wraps it.
#
#   make          install missing Debian packages, configure and build (build/)
#   make test     build with AddressSanitizer + UBSan (build-asan/) and run every test
#   make demo     build and run the end-to-end demo
#   make install  install binaries, libraries, headers, pkg-config and CMake files
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

install: build
	@cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
