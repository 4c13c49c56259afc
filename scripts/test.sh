#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing, then
# builds and tests with g++ and with clang++, again under AddressSanitizer+UBSan
# and ThreadSanitizer; fuzzes the decoders and framed reads briefly; checks style and lint, builds the API reference without a
# warning, and builds three small programs against an installed copy (pkg-config,
# CMake, Meson). Build folders go under build/ci/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --develop

root=build/ci
jobs=$(nproc)
summary=()
started=$SECONDS

step() {
  echo
  echo "=== $* (at $((SECONDS - started)) s)"
}

run_suite() {  # name, then meson setup arguments
  local name=$1; shift
  step "$name"
  meson setup --wipe "$root/$name" "$@" >/dev/null 2>&1 || meson setup "$root/$name" "$@" >/dev/null
  meson compile -C "$root/$name" -j "$jobs"
  meson test -C "$root/$name" --print-errorlogs --num-processes "$jobs"
  summary+=("$name: passed")
}

step "lint: clang-format and clang-tidy"
bash scripts/lint.sh
summary+=("lint: passed")

step "API reference: Doxygen, no warnings"
bash scripts/docs.sh "$root/docs"
summary+=("docs: passed")

# Every build is -O0 (buildtype debug): the suite is about behaviour, -O0 compiles
# several times faster, and the benchmarks exercise the optimised code. Each build
# covers what the others do not, so that the whole run stays well under 10 minutes
# on two cores:
#   gcc   g++, every header alone, the tests, the examples and their tests, and the
#         allocation count (which needs no sanitizer); installed for the consumers;
#   asan  g++ with AddressSanitizer+UBSan, the tests (faults, load and all);
#   tsan  clang++ with ThreadSanitizer: the clang build of the tests and the
#         examples, warning-free, and every test under TSan.
# clang 14 cannot build coroutines under its UBSan's function check ("Cannot represent
# a difference across sections"), so ASan+UBSan uses g++.
CXX=g++ run_suite gcc -Dbuildtype=debug -Dwerror=true -Dtests=enabled
CXX=g++ run_suite asan -Dbuildtype=debug -Dwerror=true -Dtests=enabled -Db_sanitize=address,undefined -Db_lundef=false \
  -Dexamples=disabled
CXX=clang++ TSAN_OPTIONS=halt_on_error=1 run_suite tsan -Dbuildtype=debug -Dwerror=true -Dtests=enabled -Db_sanitize=thread \
  -Db_lundef=false -Dheader_checks=false
step "fuzz: the decoders and the framed reads, 10 s per target (libFuzzer)"
bash scripts/fuzz.sh --short
summary+=("fuzz: passed")

step "consumers: pkg-config, CMake find_package, Meson subproject and installed package"
bash tests/consumers/run.sh "$root/gcc"
summary+=("consumers: passed")

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
echo "all passed in $((SECONDS - started)) s"
