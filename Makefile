# Thin wrapper around CMake/CTest. Every target installs what it needs first
# (scripts/install-deps is idempotent and fast when nothing is missing).

JOBS         ?= $(shell nproc)
FUZZ_SECONDS ?= 30
BUILD        ?= build

.PHONY: all deps build test unit asan fuzz bench-micro demo soak format clean

all: build

deps:
	@./scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DSFT_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# The test command of the README and of CI: -Werror build + every test,
# then the same under ASan+UBSan, then every fuzz target for FUZZ_SECONDS.
test: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) ./scripts/run-tests

# Quicker loops while developing.
unit: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

asan: deps
	@cmake -S . -B build-asan -DSFT_WERROR=ON -DSFT_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ctest --output-on-failure -j$(JOBS)

fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) ./scripts/run-tests --fuzz-only

bench-micro: deps
	@cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-bench -j$(JOBS)
	@for b in build-bench/bench_*; do [ -x "$$b" ] && "$$b"; done

demo: build
	@./scripts/demo

# 100 SIGKILLs of the receiving daemon, then of the sending daemon, during
# one transfer each (CI runs 10 per side).
soak: build
	@SFT=$(BUILD)/sft SFT_BUILD_DIR=$(BUILD) SFT_RESUME_KILLS=100 \
	  SFT_RESUME_MIB=700 bash tests/integration/test_resume.sh
	@SFT=$(BUILD)/sft SFT_BUILD_DIR=$(BUILD) SFT_RESUME_KILLS=100 \
	  SFT_RESUME_MIB=700 bash tests/integration/test_resume_sender.sh

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz build-bench
