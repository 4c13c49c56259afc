#!/usr/bin/env bash
# Builds the API reference (Doxygen, from docs/Doxyfile) into build/docs/html and
# fails on any Doxygen warning, an undocumented public name included.
#   bash scripts/docs.sh [OUTPUT_DIR]     default: build/docs
# Needs doxygen (bash scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v doxygen >/dev/null || { echo "docs: doxygen not found: apt-get install doxygen" >&2; exit 1; }

out=${1:-build/docs}
mkdir -p "$out"
CORONET_SOURCE_ROOT=$(pwd)
CORONET_DOCS_OUT=$(cd "$out" && pwd)
# The version comes from meson.build, the one place it is written.
CORONET_VERSION=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n 1)
export CORONET_SOURCE_ROOT CORONET_DOCS_OUT CORONET_VERSION

rm -f "$CORONET_DOCS_OUT/warnings.log"
status=0
doxygen docs/Doxyfile || status=$?
if [[ -s "$CORONET_DOCS_OUT/warnings.log" ]]; then
  cat "$CORONET_DOCS_OUT/warnings.log" >&2
  echo "docs: $(wc -l <"$CORONET_DOCS_OUT/warnings.log") Doxygen warning line(s)" >&2
  status=1
fi
((status == 0)) || exit "$status"
echo "docs: $CORONET_DOCS_OUT/html/index.html (coronet $CORONET_VERSION, no warnings)"
