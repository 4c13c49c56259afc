#!/usr/bin/env bash
# Builds coronet's libFuzzer targets (fuzz/*.cpp) with clang++ and runs each for a
# while, seeded with its checked-in corpus (fuzz/corpus/<name>/, never written to:
# new inputs go to a temporary directory). Prints one summary line per target and
# exits non-zero if any target crashed, hung, leaked or broke a property.
#   bash scripts/fuzz.sh                  30 s per target
#   bash scripts/fuzz.sh --short          10 s per target (what CI runs)
#   bash scripts/fuzz.sh --time 600       10 minutes per target
#   bash scripts/fuzz.sh framing          only the targets named (decoder, framing,
#                                         tls_handshake)
# Binaries, logs and crash inputs go to build/fuzz/. fuzz/README.md says how to
# reproduce a crash and how to add to the corpus. Needs clang++ (14) with
# libFuzzer's runtime (Debian: clang and libclang-rt-14-dev); tls_handshake needs
# OpenSSL 3 (libssl-dev) and is left out, with a note, where pkg-config cannot find it.
set -euo pipefail
cd "$(dirname "$0")/.."
self=scripts/fuzz.sh

usage() { sed -n '2,14p' "$self" | sed 's/^# \{0,1\}//'; }

seconds=30
targets=()
while (($#)); do
  case "$1" in
    --short) seconds=10 ;;
    --time)
      [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: --time needs whole seconds" >&2; exit 2; }
      seconds=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    decoder | framing | tls_handshake) targets+=("$1") ;;
    *) echo "fuzz: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((${#targets[@]} == 0)); then
  targets=(decoder framing)
  if pkg-config --exists openssl; then
    targets+=(tls_handshake)
  else
    echo "fuzz: OpenSSL not found by pkg-config: tls_handshake left out (apt-get install libssl-dev)" >&2
  fi
fi

cxx=${CXX_FUZZ:-clang++}
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found; install clang and libclang-rt-14-dev (or set CXX_FUZZ)" >&2
  exit 2
fi
# -fno-sanitize=function: clang 14's UBSan function check cannot compile coroutines
# ("Cannot represent a difference across sections", llvm/llvm-project#49689).
flags=(-std=c++20 -O1 -g -Wall -Wextra
  "-fsanitize=fuzzer,address,undefined" -fno-sanitize=function -fno-sanitize-recover=undefined
  -DASIO_HAS_CO_AWAIT -DASIO_HAS_STD_COROUTINE -Iinclude -pthread)

out=build/fuzz
mkdir -p "$out/artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Builds fuzz/<name>_fuzzer.cpp unless the binary is newer than it, every header and
# this script (which holds the flags).
build() {
  local name=$1 binary="$out/$1_fuzzer" source="fuzz/$1_fuzzer.cpp"
  if [[ -x "$binary" && -z "$(find "$source" include "$self" -newer "$binary" -print -quit)" ]]; then
    return 0
  fi
  local libraries=()
  [[ $name == tls_handshake ]] && read -ra libraries <<<"$(pkg-config --libs openssl)"
  if ! "$cxx" "${flags[@]}" "$source" -o "$binary.tmp" "${libraries[@]}" >"$out/$name.build.log" 2>&1; then
    cat "$out/$name.build.log" >&2
    echo "fuzz: building $name failed: $cxx ${flags[*]} $source" >&2
    if grep -q "fuzzer" "$out/$name.build.log"; then
      echo "fuzz: is libFuzzer's runtime installed? (Debian: libclang-rt-14-dev)" >&2
    fi
    return 1
  fi
  mv "$binary.tmp" "$binary"
}

echo "=== fuzz: building ${targets[*]} into $out"
pids=()
for t in "${targets[@]}"; do
  build "$t" &
  pids+=($!)
done
built=0
for pid in "${pids[@]}"; do wait "$pid" || built=1; done
((built == 0)) || exit 1

failed=()
summary=()
for t in "${targets[@]}"; do
  binary="$out/${t}_fuzzer"
  corpus="fuzz/corpus/$t"
  log="$out/$t.log"
  mkdir -p "$work/$t"
  echo "=== fuzz: $t for $seconds s (seeds: $corpus, $(find "$corpus" -type f | wc -l) files)"
  status=0
  # timeout: a last resort should libFuzzer itself get stuck (its -timeout catches a slow input).
  timeout -k 10 $((seconds + 120)) "$binary" "$work/$t" "$corpus" -max_total_time="$seconds" \
    -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
    >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  added=$(find "$work/$t" -type f | wc -l)
  if ((status == 0)); then
    line="$t: ${runs:-?} executions in $seconds s (${rate:-?}/s), $added new inputs, no crash"
  else
    failed+=("$t")
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    line="$t: FAILED (exit $status) after ${runs:-?} executions${crash:+; input: $crash}"
    echo "--- from $log (the whole log, with the stack, is there):" >&2
    grep -E '^(decoder|framing|tls_handshake)_fuzzer: |ERROR: |SUMMARY: |^==[0-9]+==' "$log" | head -n 20 >&2
    if [[ -n "$crash" ]]; then
      echo "--- reproduce: $binary $crash" >&2
      echo "--- (framing: FRAMING_FUZZER_TRACE=1 $binary $crash shows each write and read)" >&2
    fi
  fi
  summary+=("$line")
  echo "$line"
done

echo "=== fuzz: summary"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: ${failed[*]} failed" >&2
  exit 1
fi
