#!/usr/bin/env bash
# What coronet costs the compiler, against plain Asio: builds the programs in
# benchmarks/compile/ with g++ (and clang++ with --clang) at -std=c++20 -O2,
# each --runs times, and prints the median wall time, CPU time and peak memory
# of each, then the ratio coronet/Asio for the bare include and for the echo
# server. The goal (issue 12) is an echo server within 1.3x of plain Asio.
#
#   bash scripts/compile_cost.sh [--runs N] [--clang] [--json PATH] [--max-ratio R] [--include DIR]
#
#   --runs N        compile each program N times and keep the median (default 3)
#   --clang         also measure clang++ (which needs Asio told it can do coroutines)
#   --json PATH     write every figure to PATH as JSON
#   --max-ratio R   exit 1 when the echo server's wall-time ratio exceeds R
#   --include DIR   take coronet's headers from DIR instead of include/ (to compare trees)
#   --help          this text
#
# Runs are interleaved (every program once, then again) so that other work on the
# machine lands on all programs alike; on a busy machine, CPU time is the steadier
# figure. Needs GNU time (/usr/bin/time, Debian package `time`).
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")/.."

runs=3
compilers=(g++)
json=""
max_ratio=""
include_dir=include
while (($#)); do
  case "$1" in
    --runs) runs="${2:?--runs needs a number}"; shift 2 ;;
    --clang) compilers+=(clang++); shift ;;
    --json) json="${2:?--json needs a path}"; shift 2 ;;
    --max-ratio) max_ratio="${2:?--max-ratio needs a number}"; shift 2 ;;
    --include)
      include_dir="${2:?--include needs a directory}"
      [[ "$include_dir" == /* ]] || include_dir="$caller_dir/$include_dir"
      shift 2
      ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "compile_cost: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "compile_cost: --runs must be a positive whole number, not '$runs'" >&2
  exit 2
fi
if [[ ! -f "$include_dir/coronet/coronet.hpp" ]]; then
  echo "compile_cost: no coronet/coronet.hpp under $include_dir" >&2
  exit 2
fi
if [[ ! -x /usr/bin/time ]]; then
  echo "compile_cost: needs GNU time at /usr/bin/time (apt-get install time)" >&2
  exit 1
fi

programs=(include_coronet include_asio echo_coronet echo_asio)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

flags_for() {
  local flags=(-std=c++20 -O2 "-I$include_dir" -pthread -c)
  # Asio 1.22 detects coroutines only for g++; coronet's config.hpp tells it for
  # clang, and plain Asio programs must be told on the command line.
  [[ "$1" == clang++ ]] && flags+=(-DASIO_HAS_CO_AWAIT=1 -DASIO_HAS_STD_COROUTINE=1)
  echo "${flags[@]}"
}

# One compile: appends "wall cpu peak_kib" to the program's sample file.
measure() {
  local cxx=$1 program=$2 out="$scratch/$1.$2"
  # shellcheck disable=SC2046
  if ! /usr/bin/time -f '%e %U %S %M' -o "$out.time" \
    "$cxx" $(flags_for "$cxx") "benchmarks/compile/$program.cpp" -o "$out.o" 2>"$out.err"; then
    echo "compile_cost: $cxx failed on benchmarks/compile/$program.cpp:" >&2
    head -n 30 "$out.err" >&2
    exit 1
  fi
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$out.time" >>"$out.samples"
}

median() {  # median of column $2 of file $1
  sort -g -k"$2,$2" "$1" | awk -v k="$2" '{ v[NR] = $k } END {
    if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for cxx in "${compilers[@]}"; do
  command -v "$cxx" >/dev/null || { echo "compile_cost: $cxx not found" >&2; exit 1; }
  for ((r = 1; r <= runs; r++)); do
    for p in "${programs[@]}"; do
      [[ -t 2 ]] && printf '\rcompile_cost: %s run %d/%d %-16s' "$cxx" "$r" "$runs" "$p" >&2
      measure "$cxx" "$p"
    done
  done
done
[[ -t 2 ]] && printf '\r%60s\r' '' >&2

declare -A wall cpu mem
for cxx in "${compilers[@]}"; do
  for p in "${programs[@]}"; do
    f="$scratch/$cxx.$p.samples"
    wall[$cxx.$p]=$(median "$f" 1)
    cpu[$cxx.$p]=$(median "$f" 2)
    mem[$cxx.$p]=$(awk '{ printf "%.0f\n", $1 / 1024 }' <<<"$(median "$f" 3)")
  done
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "compile cost, -std=c++20 -O2 -c, median of $runs run(s), $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-8s %-16s %8s %8s %9s\n' compiler program wall_s cpu_s peak_MiB
for cxx in "${compilers[@]}"; do
  for p in "${programs[@]}"; do
    printf '%-8s %-16s %8s %8s %9s\n' "$cxx" "$p" "${wall[$cxx.$p]}" "${cpu[$cxx.$p]}" "${mem[$cxx.$p]}"
  done
done
echo
printf '%-8s %-16s %8s %8s %9s\n' compiler 'coronet/asio' wall cpu memory
for cxx in "${compilers[@]}"; do
  for what in include echo; do
    c=$cxx.${what}_coronet a=$cxx.${what}_asio
    printf '%-8s %-16s %7sx %7sx %8sx\n' "$cxx" "$what" "$(ratio "${wall[$c]}" "${wall[$a]}")" \
      "$(ratio "${cpu[$c]}" "${cpu[$a]}")" "$(ratio "${mem[$c]}" "${mem[$a]}")"
  done
done
echo_ratio=$(ratio "${wall[g++.echo_coronet]}" "${wall[g++.echo_asio]}")
met=$(awk -v r="$echo_ratio" 'BEGIN { print (r <= 1.3) ? "met" : "not met" }')
echo
echo "goal: echo server within 1.3x of plain Asio (g++ wall time): ${echo_ratio}x, $met" \
  "(CPU time: $(ratio "${cpu[g++.echo_coronet]}" "${cpu[g++.echo_asio]}")x)"

if [[ -n "$json" ]]; then
  {
    printf '{\n  "commit": "%s",\n  "runs": %d,\n  "flags": "-std=c++20 -O2 -c",\n' \
      "$(git rev-parse HEAD 2>/dev/null || echo unknown)" "$runs"
    printf '  "results": [\n'
    sep=""
    for cxx in "${compilers[@]}"; do
      for p in "${programs[@]}"; do
        printf '%s    {"compiler": "%s", "program": "%s", "wall_s": %s, "cpu_s": %s, "peak_mib": %s}' \
          "$sep" "$cxx" "$p" "${wall[$cxx.$p]}" "${cpu[$cxx.$p]}" "${mem[$cxx.$p]}"
        sep=$',\n'
      done
    done
    printf '\n  ],\n  "ratios": [\n'
    sep=""
    for cxx in "${compilers[@]}"; do
      for what in include echo; do
        c=$cxx.${what}_coronet a=$cxx.${what}_asio
        printf '%s    {"compiler": "%s", "program": "%s", "wall": %s, "cpu": %s, "memory": %s}' \
          "$sep" "$cxx" "$what" "$(ratio "${wall[$c]}" "${wall[$a]}")" \
          "$(ratio "${cpu[$c]}" "${cpu[$a]}")" "$(ratio "${mem[$c]}" "${mem[$a]}")"
        sep=$',\n'
      done
    done
    printf '\n  ],\n  "goal": {"echo_wall_ratio": %s, "max": 1.3, "met": %s}\n}\n' \
      "$echo_ratio" "$([[ $met == met ]] && echo true || echo false)"
  } >"$json"
  echo "compile_cost: wrote $json"
fi

if [[ -n "$max_ratio" ]] && awk -v r="$echo_ratio" -v m="$max_ratio" 'BEGIN { exit !(r > m) }'; then
  echo "compile_cost: echo server at ${echo_ratio}x exceeds --max-ratio $max_ratio" >&2
  exit 1
fi
