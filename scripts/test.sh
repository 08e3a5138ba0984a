#!/usr/bin/env bash
# Builds modelswap and runs every test: the README's second command, and what CI runs.
#   1. installs the Debian packages it needs (scripts/install-deps.sh)
#   2. builds everything (tests, benchmarks, binaries) in build/ and runs ctest
#   3. rebuilds the parsers' tests with AddressSanitizer + UndefinedBehaviorSanitizer in
#      build-asan/ and runs them (skip with MODELSWAP_SKIP_SANITIZE=1)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

step() { printf '\n==> %s\n' "$*"; }

step "installing Debian packages"
scripts/install-deps.sh

step "configuring and building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

step "running tests"
(cd build && ctest --output-on-failure --timeout 600)

if [ "${MODELSWAP_SKIP_SANITIZE:-0}" != 1 ]; then
  step "sanitizer build (build-asan/): ASan + UBSan over the parsers and shared-memory code"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMODELSWAP_SANITIZE=ON \
    -DMODELSWAP_BUILD_BENCH=OFF >/dev/null
  # Test executables built here carry the ctest label "sanitize".
  targets="common_test msf_test volume_test writer_test cli_test channel_test client_test
    agent_unit_test region_test snapshot_test"
  # shellcheck disable=SC2086
  cmake --build build-asan -j "$JOBS" --target modelswap-sidecar $targets
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure --timeout 900 -L sanitize -E MultiGiB)
fi
