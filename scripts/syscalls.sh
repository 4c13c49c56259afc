#!/usr/bin/env bash
# System calls per request: coronet's RESP server (benchmarks/coronet/resp_server.cpp)
# against redis-server, both driven by the same redis-benchmark runs (issue 12,
# part 3). Builds coronet_resp_server (release), starts it and redis-server on
# free loopback ports, and for each server and each case (unpipelined, then -P 16)
# runs redis-benchmark twice, counting the server's system calls each time:
#   1. with `perf stat` counting the syscalls tracepoints of the server's PID, which
#      barely slows it (skipped, with a note, where perf cannot count them);
#   2. with `strace -f -c` attached to the server's PID, which slows every call.
# Then prints, per request, the receives (read/recvfrom/recvmsg, and how many of
# them failed with EAGAIN), the sends (write/sendto/sendmsg), epoll_wait and
# epoll_ctl, and the requests/s redis-benchmark reported in that run.
#
#   bash scripts/syscalls.sh [--requests N] [--clients C] [--pipeline P]
#                            [--build-dir DIR] [--keep DIR]
#
#   --requests N     redis-benchmark -n, per test (default 100000; two tests run)
#   --clients C      redis-benchmark -c (default 50)
#   --pipeline P     the pipelined case's -P (default 16)
#   --build-dir DIR  Meson build directory (default build/bench, as scripts/bench.sh)
#   --keep DIR       keep perf's and strace's counts and redis-benchmark's output in DIR
#   --help           this text
#
# Needs strace, redis-server and redis-benchmark (Debian: strace, redis-server,
# redis-tools) and, for the first count, perf (linux-perf); the redis-server
# service is not used, the script runs its own. The two counts differ: how many
# receives find nothing (EAGAIN) depends on how fast the server runs against the
# client, and strace makes the server several times slower.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=100000
clients=50
pipeline=16
build_dir=build/bench
keep=""
while (($#)); do
  case "$1" in
    --requests) requests="${2:?--requests needs a number}"; shift 2 ;;
    --clients) clients="${2:?--clients needs a number}"; shift 2 ;;
    --pipeline) pipeline="${2:?--pipeline needs a number}"; shift 2 ;;
    --build-dir) build_dir="${2:?--build-dir needs a path}"; shift 2 ;;
    --keep) keep="${2:?--keep needs a path}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "syscalls: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$requests" "$clients" "$pipeline"; do
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "syscalls: --requests, --clients and --pipeline take positive whole numbers, not '$n'" >&2
    exit 2
  fi
done
missing=()
for tool in strace redis-server redis-benchmark redis-cli meson ninja python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "syscalls: missing ${missing[*]} (apt-get install strace redis-server redis-tools;" \
    "bash scripts/setup.sh --develop for the build)" >&2
  exit 1
fi

tests=set,ping_mbulk
test_count=2
scratch=$(mktemp -d)
server_pids=()
cleanup() {
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n "$keep" ]]; then
    mkdir -p "$keep"
    cp "$scratch"/*.strace "$scratch"/*.perf "$scratch"/*.counts "$scratch"/*.bench "$keep"/ \
      2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "syscalls: building coronet_resp_server in $build_dir" >&2
if [[ ! -f "$build_dir/build.ninja" ]]; then
  meson setup "$build_dir" -Dbenchmarks=enabled -Dtests=disabled -Dexamples=disabled \
    -Dbuildtype=release -Db_ndebug=true >"$scratch/setup.log" 2>&1 ||
    { cat "$scratch/setup.log" >&2; exit 1; }
fi
ninja -C "$build_dir" -j 2 benchmarks/coronet_resp_server >"$scratch/build.log" 2>&1 ||
  { cat "$scratch/build.log" >&2; exit 1; }

# Waits (bounded) until `redis-cli -p PORT ping` answers.
wait_for_ping() {
  local port=$1 pid=$2
  for _ in $(seq 100); do
    [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

start_coronet() {
  local out="$scratch/coronet.out"
  "$build_dir/benchmarks/coronet_resp_server" --port 0 >"$out" 2>&1 &
  coronet_pid=$!
  server_pids+=("$coronet_pid")
  for _ in $(seq 100); do
    grep -q '^listening on' "$out" && break
    sleep 0.1
  done
  coronet_port=$(sed -n 's/^listening on 127\.0\.0\.1://p' "$out")
  if [[ -z "$coronet_port" ]] || ! wait_for_ping "$coronet_port" "$coronet_pid"; then
    echo "syscalls: coronet_resp_server did not start:" >&2
    cat "$out" >&2
    exit 1
  fi
}

# redis-server cannot take port 0 (that turns TCP off), so it gets one the kernel
# just handed out; another program may take it in between, so try a few.
start_redis() {
  for _ in 1 2 3; do
    redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$scratch" --logfile "$scratch/redis.log" >/dev/null 2>&1 &
    redis_pid=$!
    if wait_for_ping "$redis_port" "$redis_pid"; then
      server_pids+=("$redis_pid")
      return 0
    fi
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  done
  echo "syscalls: redis-server did not start:" >&2
  cat "$scratch/redis.log" >&2 || true
  exit 1
}

# redis-benchmark on PORT with extra flags; prints "ping_mbulk_rps set_rps".
# `runner` (a global, empty or a command prefix) is what the benchmark runs under.
bench() {
  local port=$1 out=$2
  shift 2
  "${runner[@]}" redis-benchmark -p "$port" -t "$tests" -n "$requests" -c "$clients" -q "$@" \
    >"$out" 2>&1
  tr '\r' '\n' <"$out" | awk '
    /^PING_MBULK: ([0-9.]+|inf) requests per second/ { ping = $2 }
    /^SET: ([0-9.]+|inf) requests per second/ { set = $2 }
    END { if (ping == "" || set == "") exit 1; print ping, set }' ||
    { echo "syscalls: redis-benchmark reported no rate:" >&2; cat "$out" >&2; exit 1; }
}

traced_calls=read,recvfrom,recvmsg,write,sendto,sendmsg,epoll_wait,epoll_ctl
receives=(read recvfrom recvmsg)

# perf stat counts PID's system calls in the kernel while redis-benchmark runs
# (perf starts the command once its counters are on); prints the rates and
# leaves "syscall calls failed" lines in NAME.counts. EAGAIN is errno 11.
perf_bench() {
  local name=$1 pid=$2 port=$3
  shift 3
  local events=() call
  for call in ${traced_calls//,/ }; do events+=(-e "syscalls:sys_enter_$call"); done
  for call in "${receives[@]}"; do
    events+=(-e "syscalls:sys_exit_$call" --filter 'ret == -11')
  done
  runner=(perf stat -x ',' -o "$scratch/$name.perf" "${events[@]}" -p "$pid" --)
  bench "$port" "$scratch/$name.bench" "$@"
  runner=()
  awk -F, '$3 ~ /^syscalls:sys_(enter|exit)_/ {
      call = $3; sub(/^syscalls:sys_(enter|exit)_/, "", call)
      if ($3 ~ /enter/) calls[call] = $1 + 0; else failed[call] = $1 + 0
    }
    END { for (c in calls) print c, calls[c], failed[c] + 0 }' "$scratch/$name.perf" \
    >"$scratch/$name.counts"
}

# strace -f -c attached to PID while redis-benchmark runs; prints the rates and
# leaves "syscall calls failed" lines in NAME.counts (strace counts every error;
# on these non-blocking sockets they are EAGAIN).
strace_bench() {
  local name=$1 pid=$2 port=$3
  shift 3
  strace -f -c -e trace="$traced_calls" -o "$scratch/$name.strace" -p "$pid" \
    2>"$scratch/$name.strace.log" &
  local tracer=$!
  for _ in $(seq 100); do
    grep -qs 'attached' "$scratch/$name.strace.log" && break
    sleep 0.1
  done
  grep -qs 'attached' "$scratch/$name.strace.log" ||
    { echo "syscalls: strace did not attach:" >&2; cat "$scratch/$name.strace.log" >&2; exit 1; }
  bench "$port" "$scratch/$name.bench" "$@"
  kill -INT "$tracer"
  wait "$tracer" || true
  awk '$1 ~ /^[0-9.]+$/ && (NF == 5 || NF == 6) && $NF != "total" {
      print $NF, $4, (NF == 6) ? $5 : 0
    }' "$scratch/$name.strace" >"$scratch/$name.counts"
}

# Per request from a .counts file: "recv eagain send epoll_wait epoll_ctl total".
per_request() {
  awk -v requests=$((requests * test_count)) '
    $1 ~ /^(read|recvfrom|recvmsg)$/ { recv += $2; eagain += $3 }
    $1 ~ /^(write|sendto|sendmsg)$/ { send += $2 }
    $1 == "epoll_wait" { wait += $2 }
    $1 == "epoll_ctl" { ctl += $2 }
    END {
      r = requests
      printf "%.3f %.3f %.3f %.3f %.3f %.3f\n", recv / r, eagain / r, send / r, wait / r, ctl / r,
        (recv + send + wait + ctl) / r
    }' "$1"
}

# Each system call made, per request, for the detail lines.
by_syscall() {
  sort -k2,2nr "$1" | awk -v requests=$((requests * test_count)) '$2 > 0 {
      printf "%s%s %.3f", sep, $1, $2 / requests
      if ($3 > 0) printf " (%.3f EAGAIN)", $3 / requests
      sep = "; "
    }'
}

rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f/%.0f", a, b }'; }

# perf stat needs the syscalls tracepoints (tracefs, and root or a low perf_event_paranoid).
counters=(strace)
if command -v perf >/dev/null &&
  perf stat -x, -o /dev/null -e syscalls:sys_enter_recvfrom -- true 2>/dev/null; then
  counters=(perf strace)
else
  echo "syscalls: perf stat cannot count system calls here; strace's counts only" >&2
fi

start_coronet
start_redis
echo "syscalls: coronet on 127.0.0.1:$coronet_port (pid $coronet_pid)," \
  "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
  "on 127.0.0.1:$redis_port (pid $redis_pid)" >&2

runner=()
cases=(unpipelined "pipelined_$pipeline")
declare -A rates counts detail
for c in "${cases[@]}"; do
  flags=()
  [[ "$c" == unpipelined ]] || flags=(-P "$pipeline")
  for server in coronet redis; do
    if [[ $server == coronet ]]; then pid=$coronet_pid port=$coronet_port; else pid=$redis_pid port=$redis_port; fi
    for counter in "${counters[@]}"; do
      echo "syscalls: $c, $server, counted by $counter" >&2
      key=$counter.$c.$server
      rates[$key]=$("${counter}_bench" "$key" "$pid" "$port" "${flags[@]}")
      counts[$key]=$(per_request "$scratch/$key.counts")
      detail[$key]=$(by_syscall "$scratch/$key.counts")
    done
  done
done

echo "system calls per request: redis-benchmark -t $tests -n $requests -c $clients" \
  "($((requests * test_count)) requests per run); $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%d)"
for counter in "${counters[@]}"; do
  echo
  if [[ $counter == perf ]]; then
    echo "counted by perf stat (in-kernel tracepoint counters; the server runs at nearly full speed)"
  else
    echo "counted by strace -f -c (every system call stops the server; it runs several times slower)"
  fi
  printf '%-14s %-8s %7s %8s %7s %11s %10s %7s %15s\n' case server recv '(EAGAIN)' send \
    epoll_wait epoll_ctl total 'req/s ping/set'
  for c in "${cases[@]}"; do
    for server in coronet redis; do
      key=$counter.$c.$server
      read -r recv eagain send wait ctl total <<<"${counts[$key]}"
      read -r ping set <<<"${rates[$key]}"
      printf '%-14s %-8s %7s %8s %7s %11s %10s %7s %15s\n' "$c" "$server" "$recv" "($eagain)" \
        "$send" "$wait" "$ctl" "$total" "$(rate "$ping" "$set")"
    done
  done
done
echo
echo "recv: read+recvfrom+recvmsg, (EAGAIN) those of them that failed with EAGAIN;"
echo "send: write+sendto+sendmsg. req/s: PING_MBULK/SET as redis-benchmark reported them"
echo "in that run, with the counter attached (not the benchmark's figures)."
echo
echo "by system call, per request:"
for counter in "${counters[@]}"; do
  for c in "${cases[@]}"; do
    for server in coronet redis; do
      printf '  %-6s %-14s %-8s %s\n' "$counter" "$c" "$server" "${detail[$counter.$c.$server]}"
    done
  done
done
