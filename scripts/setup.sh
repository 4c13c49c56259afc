#!/usr/bin/env bash
# Installs, from Debian's packages, whatever coronet's build, tests, examples and
# benchmarks use and this machine lacks. Safe to run again: it installs only what
# is missing, and runs apt-get update only when it has something to install.
#   bash scripts/setup.sh            the build and test tools
#   bash scripts/setup.sh --bench    ... plus the benchmark peers' toolchains
set -euo pipefail

packages=(
  meson ninja-build pkg-config cmake python3   # the build
  g++ clang libclang-rt-14-dev                 # both compilers, and clang's sanitizer runtimes
  libasio-dev doctest-dev                      # the two dependencies
  nodejs netcat-openbsd socat                  # real peers for the tests
  clang-format clang-tidy doxygen              # lint and the API reference
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(golang-go cargo librust-tokio-dev gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere than Debian (it does on these machines): a working
# `node` on PATH is as good as the package.
if command -v node >/dev/null 2>&1; then
  missing=("${missing[@]/nodejs}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: run as root (or with sudo) to install packages" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
