#!/usr/bin/env bash
# Installs, from Debian's packages, what this machine lacks for one of three jobs.
# Safe to run again: it installs only what is missing, and runs apt-get update only
# when it has something to install.
#   bash scripts/setup.sh              use: build programs against coronet, install
#                                      it, run the examples and the demo
#   bash scripts/setup.sh --develop    ... plus the tests, CI and docs tools
#                                      (what scripts/test.sh needs)
#   bash scripts/setup.sh --bench      ... plus the benchmark peers' toolchains
#                                      (what scripts/bench.sh needs)
# --develop and --bench may be given together.
set -euo pipefail

use=(
  g++ meson ninja-build pkg-config   # a C++20 compiler and the build
  libasio-dev                        # standalone Asio, coronet's one dependency
  libssl-dev openssl                 # OpenSSL 3 for the opt-in coronet/tls.hpp; the CLI makes test certificates
)
develop=(
  doctest-dev                        # the test framework
  clang libclang-rt-14-dev           # the second compiler, its sanitizer and libFuzzer runtimes
  nodejs netcat-openbsd socat        # real peers for the tests
  cmake python3                      # the CMake consumer test; the README snippet extractor
  clang-format clang-tidy doxygen    # lint and the API reference
  liburing-dev                       # the io_uring build (-Dio_uring=enabled)
)
bench=(
  nodejs python3                     # the Node peer; benchmarks/run.py
  golang-go cargo librust-tokio-dev  # the Go and tokio peers (tokio built offline from Debian's crates)
  redis-server redis-tools strace linux-perf  # scripts/syscalls.sh: redis as the reference, and the counters
  gnuplot-nox                        # the chart
  liburing-dev                       # coronet's and Asio's servers on io_uring, beside epoll
)

packages=("${use[@]}")
for arg in "$@"; do
  case "$arg" in
    --develop) packages+=("${develop[@]}") ;;
    --bench) packages+=("${bench[@]}") ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (--develop, --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in $(printf '%s\n' "${packages[@]}" | sort -u); do
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
