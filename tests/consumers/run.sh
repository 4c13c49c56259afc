#!/usr/bin/env bash
# Consumer tests: builds three tiny programs outside the source tree against an
# installed coronet, the three ways a user would, then makes them talk over
# 127.0.0.1 and checks that every exchange was right:
#   server        c++ server.cpp $(pkg-config --cflags --libs coronet)
#   client cmake  find_package(coronet) and coronet::coronet        (cmake/)
#   client meson  dependency('coronet'), coronet as a subproject      (meson/)
#   client meson  dependency('coronet'), the installed coronet.pc     (meson/ again)
# The server prints its port as its first line; the clients start once it has.
#
#   tests/consumers/run.sh PREFIX     a coronet installed under PREFIX
#   tests/consumers/run.sh BUILDDIR   a configured Meson build of coronet: it is
#                                     installed with DESTDIR into a temporary folder
# Needs pkg-config, cmake, meson, ninja and a C++20 compiler (CXX, default c++).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_root=$(cd "$here/../.." && pwd)
target=${1:?usage: tests/consumers/run.sh PREFIX_OR_BUILDDIR}
cxx=${CXX:-c++}

work=$(mktemp -d "${TMPDIR:-/tmp}/coronet-consumers.XXXXXX")
server_pid=
cleanup() {
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo "--- $*"; }
fail() {
  echo "consumers: FAILED: $*" >&2
  exit 1
}

# --- the installed copy
if [[ -f "$target/meson-info/meson-info.json" ]]; then
  step "installing $target into a staging folder"
  stage="$work/stage"
  meson install -C "$target" --destdir "$stage" >"$work/install.log" || {
    cat "$work/install.log"
    fail "meson install"
  }
  configured_prefix=$(meson introspect "$target" --buildoptions | python3 -c \
    'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
  prefix="$stage$configured_prefix"
  # coronet.pc names the configured prefix; pkg-config (and Meson through it) puts
  # the staging folder in front of its paths.
  export PKG_CONFIG_SYSROOT_DIR="$stage"
else
  prefix=$(cd "$target" && pwd)
fi
[[ -f "$prefix/include/coronet/coronet.hpp" ]] || fail "no include/coronet/coronet.hpp under $prefix"
pc=$(find "$prefix" -name coronet.pc -print -quit)
[[ -n "$pc" ]] || fail "no coronet.pc under $prefix"
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
echo "prefix $prefix, coronet $(pkg-config --modversion coronet)"

for dir in cmake meson; do
  mkdir -p "$work/$dir"
  cp "$here/$dir"/* "$here/client.cpp" "$here/exchange.hpp" "$work/$dir/"
done
cp "$here/server.cpp" "$here/exchange.hpp" "$work/"

# The four builds run two at a time (each compiles Asio once, ~15 s); a failed one
# prints its log.
build_pkg_config() {
  # shellcheck disable=SC2046
  "$cxx" -Wall -Wextra -Werror "$work/server.cpp" -o "$work/server" \
    $(pkg-config --cflags --libs coronet)
}
build_cmake() {
  cmake -S "$work/cmake" -B "$work/cmake/build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_COMPILE_WARNING_AS_ERROR=ON &&
    cmake --build "$work/cmake/build"
}
build_meson_subproject() {
  mkdir -p "$work/meson-sub/subprojects"
  cp "$work/meson"/* "$work/meson-sub/" 2>/dev/null || true
  ln -s "$source_root" "$work/meson-sub/subprojects/coronet"
  (cd "$work/meson-sub" && CXX="$cxx" meson setup build --force-fallback-for=coronet &&
    ninja -C build) &&
    grep -q "Subproject coronet finished" "$work/meson-sub/build/meson-logs/meson-log.txt"
}
build_meson_installed() {
  (cd "$work/meson" && CXX="$cxx" meson setup build --wrap-mode=nofallback && ninja -C build) &&
    grep -q "Run-time dependency coronet found: YES" "$work/meson/build/meson-logs/meson-log.txt"
}
build_pair() {  # two of the builds above, side by side
  local a=$1 b=$2 pa pb status=0
  "$a" >"$work/$a.log" 2>&1 &
  pa=$!
  "$b" >"$work/$b.log" 2>&1 &
  pb=$!
  wait "$pa" || { cat "$work/$a.log"; echo "consumers: $a failed" >&2; status=1; }
  wait "$pb" || { cat "$work/$b.log"; echo "consumers: $b failed" >&2; status=1; }
  ((status == 0)) || fail "a build"
}
step "server: $cxx server.cpp \$(pkg-config --cflags --libs coronet)"
step "client cmake: find_package(coronet) with CMAKE_PREFIX_PATH=$prefix"
build_pair build_pkg_config build_cmake
grep 'coronet .* from' "$work/build_cmake.log" || true
step "client meson-subproject: dependency('coronet') from subprojects/coronet"
step "client meson-installed: dependency('coronet') from the installed coronet.pc"
build_pair build_meson_subproject build_meson_installed

# --- the exchange
step "exchange over 127.0.0.1"
mkfifo "$work/server.out"
timeout 60 "$work/server" cmake meson-subproject meson-installed >"$work/server.out" \
  2>"$work/server.err" &
server_pid=$!
exec 3<"$work/server.out"
read -r port <&3 || {
  cat "$work/server.err"
  fail "the server printed no port"
}
echo "server listening on 127.0.0.1:$port"
timeout 60 "$work/cmake/build/client" "$port" cmake &
client_cmake=$!
timeout 60 "$work/meson-sub/build/client" "$port" meson-subproject &
client_sub=$!
timeout 60 "$work/meson/build/client" "$port" meson-installed &
client_pc=$!
status=0
wait "$client_cmake" || { echo "client cmake failed"; status=1; }
wait "$client_sub" || { echo "client meson-subproject failed"; status=1; }
wait "$client_pc" || { echo "client meson-installed failed"; status=1; }
cat <&3
exec 3<&-
wait "$server_pid" || { echo "server failed"; status=1; }
server_pid=
cat "$work/server.err" >&2
((status == 0)) || fail "the exchange"
echo "consumers: passed (pkg-config server, CMake client, Meson subproject and installed-package clients)"
