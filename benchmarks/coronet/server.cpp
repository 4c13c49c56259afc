// The benchmark server on coronet: the protocol every peer in benchmarks/peers/
// speaks (see benchmarks/README.md), written the way the README teaches.
//   coronet_server --mode echo|sink|mixed|http --port PORT | --unix PATH
//                  [--sink-reader R] [--count-allocations]
//
// --unix listens on a Unix-domain socket file instead of 127.0.0.1; the handlers
// are the same (set_no_delay() does nothing there, as in Node).
//
// --sink-reader picks the read the sink drains with, so the fairness row can
// flood each of them: read (the default), read_some, or, on the flood's
// 100-byte lines, read_line, read_until or read_exactly.
//
// --count-allocations replaces operator new with a counting one and, at the end
// of each connection, prints "allocations A reads R" for the steady state: the
// reads after the first 1,000 (by then buffers and coroutine frames are warm).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/coronet.hpp>

namespace {

std::atomic<std::uint64_t> allocations{0};
bool counting = false;

constexpr std::string_view usage =
    "usage: coronet_server --mode echo|sink|mixed|http --port PORT | --unix PATH\n"
    "                      [--sink-reader R] [--count-allocations]\n"
    "  echo:  every byte back, FIN mirrored once flushed.\n"
    "  sink:  discard until FIN, then reply with the byte count and a newline.\n"
    "  mixed: a connection whose first byte is 'F' is a sink, any other an echo.\n"
    "  http:  one fixed HTTP/1.1 response per request head, keep-alive.\n"
    "  --sink-reader read|read_some|read_line|read_until|read_exactly: how the sink\n"
    "         reads (framed readers expect lines of 100 bytes; default read).\n"
    "  --unix PATH: a Unix-domain socket (the file must not exist) instead of\n"
    "         127.0.0.1; it is removed when the server stops.\n"
    "  Prints 'listening on 127.0.0.1:PORT' (or 'listening on unix:PATH') first;\n"
    "  SIGTERM or SIGINT stops it.\n";

constexpr std::uint64_t warm_up_reads = 1000;

enum class SinkReader { read, read_some, read_line, read_until, read_exactly };
SinkReader sink_reader = SinkReader::read;

// The fairness flood's line, newline included (bench_client's FLOOD_LINE).
constexpr std::size_t flood_line = 100;

coronet::awaitable<void> echo(coronet::Socket socket) {
  socket.set_no_delay(true);
  std::uint64_t reads = 0, at_warm = 0;
  while (auto chunk = co_await socket.read()) {
    if (++reads == warm_up_reads) at_warm = allocations.load(std::memory_order_relaxed);
    co_await socket.write(*chunk);
  }
  if (counting && reads > warm_up_reads) {
    const auto steady = allocations.load(std::memory_order_relaxed) - at_warm;
    std::cout << "allocations " << steady << " reads " << reads - warm_up_reads << std::endl;
  }
  co_await socket.end();
}

// Reads until FIN with the reader --sink-reader names; returns the bytes read.
// `total` counts what the caller already read from this stream.
coronet::awaitable<std::uint64_t> drain_with_reader(coronet::Socket& socket, std::uint64_t total) {
  switch (sink_reader) {
    case SinkReader::read:
      while (auto chunk = co_await socket.read()) total += chunk->size();
      break;
    case SinkReader::read_some: {
      std::vector<char> buffer(64 * 1024);
      while (auto n = co_await socket.read_some(std::span<char>(buffer))) total += n;
      break;
    }
    case SinkReader::read_line:
      while (auto line = co_await socket.read_line()) total += line->size() + 1;
      break;
    case SinkReader::read_until:
      while (auto line = co_await socket.read_until("\n", 64 * 1024)) total += line->size();
      break;
    case SinkReader::read_exactly:
      // Frames line up with the flood's lines, whatever the first read took.
      if (total % flood_line != 0) {
        if (auto rest = co_await socket.read_exactly(flood_line - total % flood_line)) {
          total += rest->size();
        }
      }
      while (auto line = co_await socket.read_exactly(flood_line)) total += line->size();
      break;
  }
  co_return total;
}

coronet::awaitable<void> sink(coronet::Socket socket) {
  socket.set_no_delay(true);
  const std::uint64_t total = co_await drain_with_reader(socket, 0);
  co_await socket.end(std::to_string(total) + "\n");
}

// The fairness row's server: the flood ('F' first) is discarded, the ping-pong
// beside it is echoed, on the same thread.
coronet::awaitable<void> mixed(coronet::Socket socket) {
  socket.set_no_delay(true);
  auto first = co_await socket.read();
  if (first && first->starts_with('F')) {
    const std::uint64_t total = co_await drain_with_reader(socket, first->size());
    co_return co_await socket.end(std::to_string(total) + "\n");
  }
  if (first) {
    co_await socket.write(*first);
    while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
  }
  co_await socket.end();
}

constexpr std::string_view http_response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
constexpr std::size_t max_request_head = 8192;

// A keep-alive HTTP/1.1 server as a user writes it: one read_until() per
// request head, one write per response. A template so that the batched form
// compiles only once the socket has cork()/uncork() and readable_length():
// then responses to requests that arrived together leave in one send.
template <typename Socket>
coronet::awaitable<void> http(Socket socket) {
  socket.set_no_delay(true);
  [[maybe_unused]] bool corked = false;
  while (co_await socket.read_until("\r\n\r\n", max_request_head)) {
    if constexpr (requires {
                    socket.cork();
                    socket.uncork();
                    socket.readable_length();
                  }) {
      // Node's cork() nests, so once per batch; the batch ends when no request
      // is left unread, or when the queue passes its high-water mark.
      if (!corked) socket.cork();
      corked = true;
      const bool below_mark = socket.write_nowait(http_response);
      if (socket.readable_length() == 0 || !below_mark) {
        socket.uncork();
        corked = false;
        if (!below_mark) co_await socket.drain();
      }
    } else {
      co_await socket.write(http_response);
    }
  }
  co_await socket.end();
}

[[noreturn]] void bad_usage(std::string_view why) {
  std::cerr << "coronet_server: " << why << '\n' << usage;
  std::exit(2);
}

}  // namespace

// Counting allocations needs the global operators; they only count when asked.
void* operator new(std::size_t n) {
  if (counting) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

int main(int argc, char** argv) {
  std::string mode;
  int port = -1;
  std::string_view unix_path;
  std::string_view reader = "read";
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--unix" && i + 1 < argc) {
      unix_path = argv[++i];
    } else if (a == "--sink-reader" && i + 1 < argc) {
      reader = argv[++i];
    } else if (a == "--count-allocations") {
      counting = true;
    } else {
      bad_usage("unknown argument " + std::string(a));
    }
  }
  if (mode != "echo" && mode != "sink" && mode != "mixed" && mode != "http") {
    bad_usage("--mode must be echo, sink, mixed or http");
  }
  if ((port >= 0) == !unix_path.empty()) bad_usage("give either --port or --unix");
  if (reader == "read")
    sink_reader = SinkReader::read;
  else if (reader == "read_some")
    sink_reader = SinkReader::read_some;
  else if (reader == "read_line")
    sink_reader = SinkReader::read_line;
  else if (reader == "read_until")
    sink_reader = SinkReader::read_until;
  else if (reader == "read_exactly")
    sink_reader = SinkReader::read_exactly;
  else
    bad_usage("--sink-reader must be read, read_some, read_line, read_until or read_exactly");

  asio::io_context io{1};
  coronet::Server server({.allow_half_open = true});
  if (unix_path.empty()) {
    server.listen(io.get_executor(), {.port = port, .host = "127.0.0.1", .backlog = 4096});
    std::cout << "listening on 127.0.0.1:" << server.address()->port << std::endl;
  } else {
    server.listen(io.get_executor(), {.backlog = 4096, .path = unix_path});
    std::cout << "listening on unix:" << server.address()->address << std::endl;
  }
  auto handler = mode == "echo"    ? echo
                 : mode == "sink"  ? sink
                 : mode == "mixed" ? mixed
                                   : http<coronet::Socket>;
  asio::co_spawn(io, server.serve(handler), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
  return 0;
}
