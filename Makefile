# Thin wrapper around CMake (CMakeLists.txt does the work).
#
#   make / make build   configure and build Release in build/ (warnings are errors)
#   make demo           build, then benchmark a built-in loopback HTTP server for 5 s
#   make test           install deps, then three builds and their ctest runs:
#                         build/       Release, all tests
#                         build-asan/  ASan + UBSan, all tests
#                         build-tsan/  TSan, tests labelled "concurrency"
#   make clean          remove build*/
#   make format         clang-format -i every C file; format-check only checks
#
# Each ctest run's output is also kept in <build dir>/ctest.log (.ci/run recaps them).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

JOBS ?= 2
CMAKE ?= cmake
CTEST ?= ctest
CLANG_FORMAT ?= clang-format

BUILD_DIR := build
ASAN_DIR := build-asan
TSAN_DIR := build-tsan

ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_SUPP := $(wildcard $(CURDIR)/tests/tsan.supp)
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1$(if $(TSAN_SUPP),:suppressions=$(TSAN_SUPP))

FORMAT_DIRS := include src tests bench tools

.PHONY: all build demo test test-deps test-release test-asan test-tsan clean format format-check

all: build

build:
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DTIDEPOOL_WERROR=ON
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)

demo: build
	@test -x ./$(BUILD_DIR)/tidepool || \
		{ echo "demo: $(BUILD_DIR)/tidepool was not built" >&2; exit 1; }
	./$(BUILD_DIR)/tidepool bench -c 16 -d 5

# All three steps run even when one fails, so one run shows every failure; the exit
# status is non-zero if any step failed.
test: test-deps
	@failed=""; \
	$(MAKE) --no-print-directory test-release || failed="$$failed release"; \
	$(MAKE) --no-print-directory test-asan || failed="$$failed asan+ubsan"; \
	$(MAKE) --no-print-directory test-tsan || failed="$$failed tsan"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi

test-deps:
	@bash scripts/install-deps.sh

# (a) Release, warnings are errors, every test.
test-release:
	@rm -f $(BUILD_DIR)/ctest.log
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DTIDEPOOL_WERROR=ON
	$(CMAKE) --build $(BUILD_DIR) -j$(JOBS)
	$(CTEST) --test-dir $(BUILD_DIR) --output-on-failure -j$(JOBS) 2>&1 | tee $(BUILD_DIR)/ctest.log

# (b) AddressSanitizer + UndefinedBehaviorSanitizer, every test.
test-asan:
	@rm -f $(ASAN_DIR)/ctest.log
	$(CMAKE) -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DTIDEPOOL_SANITIZE=address,undefined -DTIDEPOOL_WERROR=ON
	$(CMAKE) --build $(ASAN_DIR) -j$(JOBS)
	$(ASAN_ENV) $(CTEST) --test-dir $(ASAN_DIR) --output-on-failure -j$(JOBS) 2>&1 | tee $(ASAN_DIR)/ctest.log

# (c) ThreadSanitizer, the tests labelled "concurrency" (TIDEPOOL_CONCURRENCY_TESTS in
# tests/CMakeLists.txt). Not -Werror: GCC's -Wtsan warns about constructs TSan cannot
# model (atomic_thread_fence), which is a note for us, not a build failure.
test-tsan:
	@rm -f $(TSAN_DIR)/ctest.log
	$(CMAKE) -S . -B $(TSAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDEPOOL_SANITIZE=thread
	$(CMAKE) --build $(TSAN_DIR) -j$(JOBS)
	$(TSAN_ENV) $(CTEST) --test-dir $(TSAN_DIR) --output-on-failure -j$(JOBS) -L concurrency 2>&1 | tee $(TSAN_DIR)/ctest.log

clean:
	rm -rf -- build*/

# The C files under FORMAT_DIRS that exist (directories may be missing).
format_dirs = $(wildcard $(FORMAT_DIRS))
format_files = $(if $(format_dirs),$(shell find $(format_dirs) -type f \( -name '*.c' -o -name '*.h' \) | sort))

format:
	@files="$(format_files)"; if [ -n "$$files" ]; then $(CLANG_FORMAT) -i $$files; fi

format-check:
	@files="$(format_files)"; if [ -n "$$files" ]; then $(CLANG_FORMAT) --dry-run -Werror $$files; fi
