#!/usr/bin/env bash
# The README's main job: installs what is missing, builds, and runs the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
build=build/demo
[ -d "$build" ] || meson setup "$build" -Dtests=disabled >/dev/null
meson compile -C "$build" hello >/dev/null
echo "=== an echo server and a client talking (examples/hello.cpp)"
"$build/examples/hello" "$@"
