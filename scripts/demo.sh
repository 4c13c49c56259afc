#!/usr/bin/env bash
# The README's main job: installs what is missing, builds the examples, and runs
# the chat demo: examples/chat_server with two examples/chat_client processes
# (ann and bob) whose stdin this script types into and whose stdout it prints.
# Each step waits for the line it expects (at most 10 s), never for a fixed time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
build=build/demo
[ -d "$build" ] || meson setup "$build" -Dtests=disabled >/dev/null
echo "=== building examples/chat_server and examples/chat_client"
ninja -C "$build" examples/chat_server examples/chat_client >/dev/null
bin=$build/examples

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The server; its first line says where it listens.
mkfifo "$work/server"
"$bin/chat_server" --port 0 >"$work/server" &
pids+=($!)
server_pid=$!
exec {server_out}<"$work/server"
read -r -t 10 first <&"$server_out" || { echo "chat_server did not start" >&2; exit 1; }
port=${first##*:}
echo "=== chat_server: $first"

declare -A to from
# join NAME: starts a chat_client for NAME, its stdin and stdout on fifos we hold.
join() {
  mkfifo "$work/$1.in" "$work/$1.out"
  "$bin/chat_client" --port "$port" --name "$1" <"$work/$1.in" >"$work/$1.out" &
  pids+=($!)
  exec {fd}>"$work/$1.in"
  to[$1]=$fd
  exec {fd}<"$work/$1.out"
  from[$1]=$fd
}
# say NAME TEXT: types a line into NAME's chat_client.
say() {
  printf '%-5s> %s\n' "$1" "$2"
  printf '%s\n' "$2" >&"${to[$1]}"
}
# expect NAME TEXT: prints what NAME's client shows until a line starting with TEXT.
expect() {
  local line
  while read -r -t 10 line <&"${from[$1]}"; do
    printf '[%s] %s\n' "$1" "$line"
    [[ $line == "$2"* ]] && return 0
  done
  echo "demo: $1 never saw '$2'" >&2
  exit 1
}

join bob
expect bob "* here:"
join ann
expect ann "* here:"
expect bob "* ann joined"
say ann "hello bob"
expect bob "ann: hello bob"
say bob "hi ann! /who lists who is here"
expect ann "bob: hi ann!"
say ann "/who"
expect ann "* here:"
say ann "/quit"
expect ann "* bye"
expect bob "* ann left"
echo "=== Ctrl-C to the server: it tells bob, ends his socket, and exits once he has gone"
kill -INT "$server_pid"
expect bob "* server shutting down"
wait "$server_pid"
echo "=== chat_server exited with status $?; the demo is over"
