#!/usr/bin/env bash
# The benchmark, side by side with its peers: installs what is missing (the peers'
# toolchains included), builds everything in build/bench (release), runs the lot,
# prints the table and the goals, and writes build/bench/results.json and .svg.
# Arguments go to benchmarks/run.py: --short, --duration S, --runs N, --only LIST, --json PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --bench
exec python3 benchmarks/run.py "$@"
