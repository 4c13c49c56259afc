#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing (the
# developer set), then builds and tests a g++ release build, a g++ build under
# AddressSanitizer+UBSan on Asio's io_uring backend and a clang++ release build
# under ThreadSanitizer on the portable Asio path, every build with warnings as
# errors; fuzzes the decoders, framed reads and TLS handshake briefly;
# checks style and lint, builds the API reference without a warning, runs the
# README's demo, and builds three small programs against an installed copy
# (pkg-config, CMake, Meson). Build folders go under build/ci/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --develop

root=build/ci
jobs=$(nproc)
started=$SECONDS
mkdir -p "$root"
summary_file=$root/summary
: >"$summary_file"

# CPU-seconds used by this shell's children that have ended (a step's compilers and
# tests): with two lanes side by side, wall time alone does not say what a step costs.
# `times` reports for the shell it runs in, so not in a $( ) subshell.
cpu_now=0
read_cpu() {
  times >"$summary_file.times"
  cpu_now=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, "m"); s += t[1] * 60 + t[2] } }
    END { printf "%d", s }' "$summary_file.times")
}
step_started=$SECONDS
step_cpu=0
step() {
  step_started=$SECONDS
  read_cpu
  step_cpu=$cpu_now
  echo
  echo "=== $* (at $((SECONDS - started)) s)"
}
passed() {
  read_cpu
  echo "$1: passed in $((SECONDS - step_started)) s, $((cpu_now - step_cpu)) CPU-s" >>"$summary_file"
}

configure() {  # name, then meson setup arguments
  local name=$1
  shift
  meson setup --wipe "$root/$name" "$@" >/dev/null 2>&1 || meson setup "$root/$name" "$@" >/dev/null
}
compile() {  # name, jobs
  step "$1: compile"
  meson compile -C "$root/$1" -j "$2"
  passed "$1 compile"
}
run_tests() {  # name
  step "$1: tests"
  meson test -C "$root/$1" --print-errorlogs --num-processes "$jobs"
  passed "$1 tests"
}

step "lint: clang-format and clang-tidy"
bash scripts/lint.sh
passed lint

step "API reference: Doxygen, no warnings"
bash scripts/docs.sh "$root/docs"
passed docs

# Three builds, each covering what the others do not:
#   gcc   g++ --buildtype=release (-O3, what a user or packager builds, and where
#         g++'s optimiser-only warnings appear): every header alone, the tests,
#         the examples and their tests, the allocation count (which needs no
#         sanitizer); installed for the consumers;
#   asan  g++ -O0 with AddressSanitizer+UBSan: the tests (faults, load and all);
#   tsan  clang++ --buildtype=release with ThreadSanitizer: clang's release build of
#         the tests, every test and example (their stdin threads, echo_server
#         --threads) under TSan.
# clang 14 cannot build coroutines under its UBSan's function check ("Cannot represent
# a difference across sections"), so ASan+UBSan uses g++.
# And a fourth, small: the unity test program at -O0 on Asio's io_uring backend with
# -DCORONET_PORTABLE_ASIO (config.hpp's public-API path), 52 CPU-s. It is not folded
# into the ASan build: ASan there reports a heap-use-after-free when an io_context is
# destroyed with a coroutine still queued (test_timeout.cpp's black-holed connect:
# Asio's deadline_timer_service is gone before the scheduler's queue frees the
# frame that holds a timer), an open defect that would fail every run.
#
# Only compiling checks nothing under a sanitizer, so each compile-only check runs
# once per compiler: every header alone with g++; the README's and guide's code
# with g++ and clang++ at -O0 (compiling is the check); the examples with g++ -O3
# (run there) and with clang++ at -O0 under TSan (run there too; -O3 added 35
# CPU-s and nothing TSan sees: the library is clang-optimised in the tests).
#
# Why the schedule. Each build's unity test program is one translation unit of
# about two CPU-minutes, which one core compiles while the other runs out of work.
# So two lanes run side by side: the asan build (compiled -j1), the io_uring one,
# then the fuzzing and the demo, in the background; the gcc build, the consumers
# and the tsan build in front. Idle, two cores then stay busy to the end. The side lane's output is
# in build/ci/side.log, printed when it is collected.
# One run from a fresh clone (the summary's CPU-seconds, from bash's `times`; the VM
# was shared, load 4-9, which costs some CPU-seconds too and most wall time):
#   gcc compile 330, tests 15;  asan compile 151, tests 36;  tsan compile ~175 (the
#   summary's 570 holds the side lane, which ended then and was reaped), tests 42;
#   io_uring 71;  fuzz 67;  demo 42;  consumers 36;  lint 10;  1008 in all
#   (1059 s wall under that load). Before this layout the same run took 664 s idle.
# Measured on the way (CPU-s, one file): ASan+UBSan's unity compile -g 143, -g1 132,
# -O1 -g1 over 207; ASan alone 75, UBSan alone 115, neither 57. proxy.cpp under
# clang TSan -O3 18, -O0 9. A precompiled header saves 0.8 of g++'s 10 per file and
# costs 6.4 to build, once per Meson target: a loss for one-file targets.
# The longest tests were a slow drain, not work: a stalled writer's 4 KB send
# buffer paced 8 MB by the reader's delayed ACKs (deadline: 10 s in every build);
# 48-64 MB payloads (cancel, pipe) cost seconds each under the sanitizers.
step "configure gcc, asan and tsan"
CXX=g++ configure gcc --buildtype=release -Dwerror=true -Dtests=enabled
CXX=g++ configure asan -Doptimization=0 -Ddebug=false -Dcpp_args=-g1 -Dwerror=true \
  -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false -Dexamples=disabled \
  -Dheader_checks=false -Dsnippet_checks=false
CXX=clang++ configure tsan --buildtype=release -Dwerror=true -Dtests=enabled \
  -Db_sanitize=thread -Db_lundef=false -Dheader_checks=false -Dexamples_optimization=0
passed configure

# Asio's io_uring backend (-Dio_uring=enabled): the unity test program alone, at -O0,
# with -DCORONET_PORTABLE_ASIO. Where the kernel or a seccomp filter refuses
# io_uring_setup (containers often do) the step is skipped, saying why.
io_uring_step() {
  step "io_uring: the tests on Asio's io_uring backend, the portable Asio path"
  local refusal areas
  if ! refusal=$(python3 scripts/io_uring_probe.py); then
    echo "io_uring: SKIPPED: $refusal"
    echo "io_uring: SKIPPED ($refusal)" >>"$summary_file"
    return 0
  fi
  CXX=g++ configure io_uring -Doptimization=0 -Ddebug=false -Dwerror=true -Dtests=enabled \
    -Dexamples=disabled -Dheader_checks=false -Dsnippet_checks=false -Dio_uring=enabled \
    -Dcpp_args=-DCORONET_PORTABLE_ASIO
  meson compile -C "$root/io_uring" -j 1 tests/coronet_tests
  # The unity program's areas only (tls too, where OpenSSL made it one).
  areas=$(meson test -C "$root/io_uring" --list 2>/dev/null | sed -n 's|^coronet:coronet / ||p')
  # shellcheck disable=SC2086,SC2046
  meson test -C "$root/io_uring" --no-rebuild --print-errorlogs --num-processes "$jobs" \
    $(printf '%s\n' $areas | grep -x -F "$(sed -n "s/^ *'\([a-z_]*\)',\{0,1\}$/\1/p;s/^ *suites += '\([a-z_]*\)'$/\1/p" tests/meson.build)")
  passed io_uring
}

# The side lane: its steps write their own summary lines; a failure ends the lane.
side_lane() {
  summary_file=$root/summary.side
  : >"$summary_file"
  compile asan 1
  run_tests asan
  io_uring_step
  step "fuzz: the decoders, the framed reads and the TLS handshake, 10 s per target (libFuzzer)"
  bash scripts/fuzz.sh --short
  passed fuzz
  step "demo: the README's main command, built as a user builds it (Meson's default -O2)"
  # CI's own builds are -O0 and -O3; the demo's is the default buildtype, which is where
  # g++ 12 once miscompiled serve() (the server stopped accepting after one client).
  bash scripts/demo.sh
  passed demo
}
side_lane >"$root/side.log" 2>&1 &
side_pid=$!
# Should the front lane fail, the side lane goes too (its processes, by parent id).
end_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do end_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
trap 'end_tree "$side_pid"' EXIT
echo "(the asan and io_uring builds, fuzz and demo run beside the rest: $root/side.log)"

compile gcc "$jobs"
run_tests gcc

step "consumers: pkg-config, CMake find_package, Meson subproject and installed package"
bash tests/consumers/run.sh "$root/gcc"
passed consumers

compile tsan "$jobs"
TSAN_OPTIONS=halt_on_error=1 run_tests tsan

echo
echo "=== the side lane: asan, io_uring, fuzz, demo (at $((SECONDS - started)) s)"
side_status=0
wait "$side_pid" || side_status=$?
trap - EXIT
cat "$root/side.log"
cat "$root/summary.side" >>"$summary_file"
if ((side_status != 0)); then
  echo "the side lane (asan, io_uring, fuzz, demo) FAILED: its log is above and in $root/side.log" >&2
  exit 1
fi

echo
echo "=== summary"
cat "$summary_file"
read_cpu
echo "all passed in $((SECONDS - started)) s, $cpu_now CPU-s in all"
