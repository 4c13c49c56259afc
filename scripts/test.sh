#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing, then
# builds and tests with g++ and with clang++, again under AddressSanitizer+UBSan
# and ThreadSanitizer, and checks that an installed copy is usable through
# pkg-config. Build folders go under build/ci/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

root=build/ci
jobs=$(nproc)
summary=()

step() { echo; echo "=== $*"; }

run_suite() {  # name, then meson setup arguments
  local name=$1; shift
  step "$name"
  meson setup --wipe "$root/$name" "$@" >/dev/null 2>&1 || meson setup "$root/$name" "$@" >/dev/null
  meson compile -C "$root/$name" -j "$jobs"
  meson test -C "$root/$name" --print-errorlogs --num-processes "$jobs"
  summary+=("$name: passed")
}

CXX=g++ run_suite gcc
CXX=clang++ run_suite clang
# clang 14 cannot build coroutines at -O0 under ASan ("Cannot represent a difference
# across sections"), so the ASan+UBSan build uses g++.
CXX=g++ run_suite asan -Db_sanitize=address,undefined -Db_lundef=false
CXX=clang++ TSAN_OPTIONS=halt_on_error=1 run_suite tsan -Db_sanitize=thread -Db_lundef=false

step "installed copy through pkg-config"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
meson install -C "$root/gcc" --destdir "$prefix" >/dev/null
usr=$(meson introspect "$root/gcc" --buildoptions | python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
pcdir=$(dirname "$(find "$prefix" -name coronet.pc | head -n 1)")
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$prefix"
cat > "$prefix/hello.cpp" <<'CPP'
#include <coronet/coronet.hpp>
#include <iostream>
int main() {
  asio::io_context io{1};
  asio::co_spawn(io, []() -> coronet::awaitable<void> {
    coronet::Server server;
    co_await server.listen(0, "127.0.0.1");
    auto client = co_await coronet::connect(server.address()->port, "127.0.0.1");
    auto peer = co_await server.accept();
    co_await client.end("hello from an installed coronet");
    while (auto chunk = co_await peer.read()) std::cout << *chunk << '\n';
  }, asio::detached);
  io.run();
}
CPP
# shellcheck disable=SC2046
g++ "$prefix/hello.cpp" -o "$prefix/hello" $(pkg-config --cflags --libs coronet)
out=$("$prefix/hello")
echo "$out"
[[ "$out" == "hello from an installed coronet" ]]
summary+=("pkg-config consumer: passed (prefix $usr)")

echo
echo "=== summary"
printf '%s\n' "${summary[@]}"
