#!/usr/bin/env bash
# System calls per request: coronet's RESP server (benchmarks/coronet/resp_server.cpp)
# against redis-server, both driven by the same redis-benchmark runs (issue 12,
# part 3). Builds coronet_resp_server (release), starts it and redis-server on
# free loopback ports, and for each server and each case (unpipelined, then -P 16):
#   1. runs redis-benchmark once untraced, for its requests/s;
#   2. attaches `strace -f -c` to the server's PID and runs redis-benchmark again;
# then prints, per request, the receives (read/recvfrom/recvmsg, and how many of
# them failed, which on these sockets is EAGAIN), the sends (write/sendto/sendmsg),
# epoll_wait and epoll_ctl, and the requests/s redis-benchmark reported with and
# without strace attached.
#
#   bash scripts/syscalls.sh [--requests N] [--clients C] [--pipeline P]
#                            [--build-dir DIR] [--keep DIR]
#
#   --requests N     redis-benchmark -n, per test (default 100000; two tests run)
#   --clients C      redis-benchmark -c (default 50)
#   --pipeline P     the pipelined case's -P (default 16)
#   --build-dir DIR  Meson build directory (default build/bench, as scripts/bench.sh)
#   --keep DIR       keep strace's summaries and redis-benchmark's output in DIR
#   --help           this text
#
# Needs strace, redis-server and redis-benchmark (Debian: strace, redis-server,
# redis-tools); the redis-server service is not used, the script runs its own.
# strace slows every system call, so the traced requests/s are far below the
# untraced ones; the counts per request are what this measures.
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
    cp "$scratch"/*.strace "$scratch"/*.bench "$keep"/ 2>/dev/null || true
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
bench() {
  local port=$1 out=$2
  shift 2
  redis-benchmark -p "$port" -t "$tests" -n "$requests" -c "$clients" -q "$@" >"$out" 2>&1
  tr '\r' '\n' <"$out" | awk '
    /^PING_MBULK: [0-9.]+ requests per second/ { ping = $2 }
    /^SET: [0-9.]+ requests per second/ { set = $2 }
    END { if (ping == "" || set == "") exit 1; print ping, set }' ||
    { echo "syscalls: redis-benchmark reported no rate:" >&2; cat "$out" >&2; exit 1; }
}

# strace -f -c attached to PID while redis-benchmark runs; prints its rates and
# leaves strace's summary in NAME.strace.
traced_bench() {
  local name=$1 pid=$2 port=$3
  shift 3
  strace -f -c -e trace=read,recvfrom,recvmsg,write,sendto,sendmsg,epoll_wait,epoll_ctl \
    -o "$scratch/$name.strace" -p "$pid" 2>"$scratch/$name.strace.log" &
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
}

# Calls per request from strace's summary: "recv eagain send epoll_wait epoll_ctl total".
per_request() {
  awk -v requests=$((requests * test_count)) '
    $1 ~ /^[0-9.]+$/ && (NF == 5 || NF == 6) && $NF != "total" {
      calls = $4; errors = (NF == 6) ? $5 : 0
      if ($NF ~ /^(read|recvfrom|recvmsg)$/) { recv += calls; eagain += errors }
      else if ($NF ~ /^(write|sendto|sendmsg)$/) send += calls
      else if ($NF == "epoll_wait") wait += calls
      else if ($NF == "epoll_ctl") ctl += calls
    }
    END {
      r = requests
      printf "%.3f %.3f %.3f %.3f %.3f %.3f\n", recv / r, eagain / r, send / r, wait / r, ctl / r,
        (recv + send + wait + ctl) / r
    }' "$1"
}

# Each syscall's calls (and errors) per request, for the detail lines.
by_syscall() {
  awk -v requests=$((requests * test_count)) '
    $1 ~ /^[0-9.]+$/ && (NF == 5 || NF == 6) && $NF != "total" {
      printf "%s %.3f", $NF, $4 / requests
      if (NF == 6) printf " (%.3f failed)", $5 / requests
      printf "; "
    }' "$1"
}

start_coronet
start_redis
echo "syscalls: coronet on 127.0.0.1:$coronet_port (pid $coronet_pid)," \
  "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
  "on 127.0.0.1:$redis_port (pid $redis_pid)" >&2

cases=(unpipelined "pipelined_$pipeline")
declare -A plain traced counts detail
for c in "${cases[@]}"; do
  flags=()
  [[ "$c" == unpipelined ]] || flags=(-P "$pipeline")
  for server in coronet redis; do
    if [[ $server == coronet ]]; then pid=$coronet_pid port=$coronet_port; else pid=$redis_pid port=$redis_port; fi
    echo "syscalls: $c, $server: untraced run, then traced run" >&2
    plain[$c.$server]=$(bench "$port" "$scratch/$c.$server.plain.bench" "${flags[@]}")
    traced[$c.$server]=$(traced_bench "$c.$server" "$pid" "$port" "${flags[@]}")
    counts[$c.$server]=$(per_request "$scratch/$c.$server.strace")
    detail[$c.$server]=$(by_syscall "$scratch/$c.$server.strace")
  done
done

echo "system calls per request, redis-benchmark -t $tests -n $requests -c $clients" \
  "($((requests * test_count)) requests per run), $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(nproc) CPUs, Linux $(uname -r), $(date -u +%Y-%m-%d)"
printf '%-14s %-8s %7s %8s %7s %11s %10s %7s %13s %13s\n' case server recv '(EAGAIN)' send \
  epoll_wait epoll_ctl total 'req/s traced' 'req/s plain'
for c in "${cases[@]}"; do
  for server in coronet redis; do
    read -r recv eagain send wait ctl total <<<"${counts[$c.$server]}"
    read -r tping tset <<<"${traced[$c.$server]}"
    read -r pping pset <<<"${plain[$c.$server]}"
    printf '%-14s %-8s %7s %8s %7s %11s %10s %7s %13s %13s\n' "$c" "$server" "$recv" "($eagain)" \
      "$send" "$wait" "$ctl" "$total" "$(awk -v a="$tping" -v b="$tset" 'BEGIN { printf "%.0f/%.0f", a, b }')" \
      "$(awk -v a="$pping" -v b="$pset" 'BEGIN { printf "%.0f/%.0f", a, b }')"
  done
done
echo
echo "req/s: PING_MBULK/SET as redis-benchmark reported them, with strace attached and without."
echo "recv: read+recvfrom+recvmsg; (EAGAIN): those that failed; send: write+sendto+sendmsg."
echo
echo "by system call, per request:"
for c in "${cases[@]}"; do
  for server in coronet redis; do
    printf '  %-14s %-8s %s\n' "$c" "$server" "${detail[$c.$server]}"
  done
done
