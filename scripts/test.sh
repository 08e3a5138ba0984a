#!/usr/bin/env bash
# Builds modelswap and runs every test: the README's second command, and what CI runs.
#   1. installs the Debian packages it needs (scripts/install-deps.sh)
#   2. builds everything (tests, benchmarks, binaries) in build/ and runs ctest
#   3. rebuilds the parsers' tests with AddressSanitizer + UndefinedBehaviorSanitizer in
#      build-asan/ and runs them (skip with MODELSWAP_SKIP_SANITIZE=1)
#   4. builds the coverage-guided fuzzers with clang in build-fuzz/ and runs each for
#      MODELSWAP_FUZZ_SECONDS (default 30) over its committed corpus (skip with MODELSWAP_SKIP_FUZZ=1)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

step() { printf '\n==> %s\n' "$*"; }

rm -f build/ctest.log build/ctest-e2e.log build-asan/ctest.log

step "installing Debian packages"
scripts/install-deps.sh

step "configuring and building (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

step "running tests"
(cd build && ctest --output-on-failure --timeout 600 -LE e2e) | tee build/ctest.log

# The end-to-end suite needs a real API server: a cluster named by MODELSWAP_E2E_KUBECONFIG, or a
# throwaway control plane from KUBEBUILDER_ASSETS (scripts/envtest.sh); else one line says so.
if [ -n "${MODELSWAP_E2E_KUBECONFIG:-}" ]; then
  step "end-to-end tests against the cluster in $MODELSWAP_E2E_KUBECONFIG"
  (cd build && ctest --output-on-failure --timeout 900 -L e2e) | tee build/ctest-e2e.log
elif [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  step "end-to-end tests against a throwaway control plane from $KUBEBUILDER_ASSETS"
  scripts/envtest.sh ctest --test-dir build --output-on-failure --timeout 900 -L e2e |
    tee build/ctest-e2e.log
else
  echo "e2e: skipped (no real API server: set MODELSWAP_E2E_KUBECONFIG or KUBEBUILDER_ASSETS;" \
    "the same suite ran above against the in-repo fake as fake.E2e*)"
fi

if [ "${MODELSWAP_SKIP_SANITIZE:-0}" != 1 ]; then
  step "sanitizer build (build-asan/): ASan + UBSan over the parsers and shared-memory code"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMODELSWAP_SANITIZE=ON \
    -DMODELSWAP_BUILD_BENCH=OFF >/dev/null
  # Test executables built here carry the ctest label "sanitize".
  targets="common_test msf_test volume_test writer_test chunked_write_test cli_test channel_test
    client_test agent_unit_test region_test snapshot_test chunk_test cache_test volume_chain_test
    delta_write_test chain_record_test"
  # shellcheck disable=SC2086
  cmake --build build-asan -j "$JOBS" --target modelswap-sidecar $targets
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
     ctest --output-on-failure --timeout 900 -L sanitize -E MultiGiB) | tee build-asan/ctest.log
fi

fuzz_passed=0
if [ "${MODELSWAP_SKIP_FUZZ:-0}" != 1 ]; then
  seconds=${MODELSWAP_FUZZ_SECONDS:-30}
  step "coverage-guided fuzzing (build-fuzz/: clang, libFuzzer, ASan + UBSan), ${seconds} s per target"
  CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMODELSWAP_FUZZ=ON -DMODELSWAP_BUILD_BENCH=OFF >/dev/null
  fuzzers="msf_fuzz manifest_fuzz recipe_fuzz control_block_fuzz channel_fuzz region_fuzz admission_fuzz"
  # shellcheck disable=SC2086
  cmake --build build-fuzz -j "$JOBS" --target $fuzzers
  for f in $fuzzers; do
    mkdir -p "build-fuzz/corpus/$f"
    # New inputs go to build-fuzz/corpus/ (first directory); the committed corpus is only read.
    if ! "build-fuzz/tests/fuzz/$f" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$f-" \
        "build-fuzz/corpus/$f" "tests/fuzz/corpus/$f" >"build-fuzz/$f.log" 2>&1; then
      tail -n 60 "build-fuzz/$f.log"
      echo "fuzz: $f failed; the input is in build-fuzz/crash-$f-* (see tests/fuzz/README.md)"
      exit 1
    fi
    echo "fuzz: $f ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/$f.log" |
      grep -o '[0-9]*$') inputs in ${seconds} s)"
    fuzz_passed=$((fuzz_passed + 1))
  done
fi

# One closing line for the whole run: ctest's counts (both builds) plus the fuzz targets.
count() { sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' "$1" 2>/dev/null; }
failed=0 total=0
for log in build/ctest.log build/ctest-e2e.log build-asan/ctest.log; do
  read -r f t <<<"$(count "$log")" || true
  failed=$((failed + ${f:-0})) total=$((total + ${t:-0}))
done
echo "all: $((total - failed + fuzz_passed)) passed, ${failed} failed"
