#!/usr/bin/env bash
# Style and lint, as CI runs them:
#   clang-format   every C++ file in include/, tests/, examples/ and benchmarks/
#                  already matches .clang-format (nothing is rewritten; a diff fails);
#   clang-tidy     every header, public and detail, with .clang-tidy's checks; only
#                  what is in include/coronet/ is reported, and each finding fails.
#   bash scripts/lint.sh               check
#   bash scripts/lint.sh --fix         rewrites the files clang-format would change
# Needs clang-format and clang-tidy (bash scripts/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

files=$(git ls-files 'include/*.hpp' 'tests/*.cpp' 'tests/*.hpp' 'examples/*.cpp' \
  'examples/*.hpp' 'benchmarks/*.cpp' 'fuzz/*.cpp' 2>/dev/null || find include tests examples benchmarks \
  -name '*.[ch]pp')

if [[ "${1:-}" == "--fix" ]]; then
  # shellcheck disable=SC2086
  clang-format -i $files
  echo "lint: reformatted $(wc -w <<<"$files") files"
  exit 0
fi

echo "--- clang-format ($(clang-format --version | grep -o 'version [0-9.]*'))"
bad=()
for f in $files; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]})); then
  for f in "${bad[@]}"; do clang-format "$f" | diff -u "$f" - | head -n 20 || true; done
  echo "lint: ${#bad[@]} file(s) differ from .clang-format: ${bad[*]}" >&2
  echo "lint: bash scripts/lint.sh --fix rewrites them" >&2
  exit 1
fi
echo "clang-format: $(wc -w <<<"$files") files match"

echo "--- clang-tidy ($(clang-tidy --version | grep -o 'version [0-9.]*'))"
# One translation unit that includes every header, public and detail, and calls
# the whole API once, so that clang-tidy also checks the templates' bodies. Asio is
# parsed once; HeaderFilterRegex keeps the report to include/coronet/.
unit=$(mktemp --suffix=.cpp)
trap 'rm -f "$unit"' EXIT
for h in $(cd include && ls coronet/*.hpp coronet/detail/*.hpp); do echo "#include <$h>"; done >"$unit"
cat >>"$unit" <<'CPP'
namespace {
coronet::awaitable<void> every_call() {
  coronet::Server server{{.allow_half_open = true}};
  co_await server.listen(0, "127.0.0.1");
  coronet::Socket client = co_await coronet::connect(server.address()->port, "127.0.0.1");
  coronet::Socket peer = co_await server.accept();
  client.set_no_delay(true);
  client.set_timeout(std::chrono::seconds(1));
  co_await client.write("a\nbc");
  (void)client.write_nowait("d");
  co_await client.drain();
  co_await client.end();
  (void)co_await peer.read_line();
  (void)co_await peer.read_exactly(1);
  (void)co_await peer.read();
  peer.pause();
  peer.resume();
  peer.destroy();
  server.close();
  co_await server.wait_closed();
  (void)co_await server.shutdown(std::chrono::seconds(1));
  co_await server.serve([](coronet::Socket) -> coronet::awaitable<void> { co_return; });
}
}  // namespace
int main() {
  asio::io_context io{1};
  asio::co_spawn(io, every_call(), asio::detached);
  io.run();
}
CPP
clang-tidy --quiet "$unit" -- -std=c++20 -Iinclude -pthread -xc++ 2>/dev/null || {
  echo "lint: clang-tidy found problems (above)" >&2
  exit 1
}
echo "clang-tidy: $(grep -c include "$unit") headers clean"
