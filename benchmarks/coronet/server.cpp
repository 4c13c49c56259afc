// The benchmark server on coronet: the protocol every peer in benchmarks/peers/
// speaks (see benchmarks/README.md), written the way the README teaches.
//   coronet_server --mode echo|sink --port PORT [--count-allocations]
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

#include <coronet/coronet.hpp>

namespace {

std::atomic<std::uint64_t> allocations{0};
bool counting = false;

constexpr std::string_view usage =
    "usage: coronet_server --mode echo|sink --port PORT [--count-allocations]\n"
    "  echo: every byte back, FIN mirrored once flushed.\n"
    "  sink: discard until FIN, then reply with the byte count and a newline.\n"
    "  Prints 'listening on 127.0.0.1:PORT' first; SIGTERM or SIGINT stops it.\n";

constexpr std::uint64_t warm_up_reads = 1000;

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

coronet::awaitable<void> sink(coronet::Socket socket) {
  socket.set_no_delay(true);
  std::uint64_t total = 0;
  while (auto chunk = co_await socket.read()) total += chunk->size();
  co_await socket.end(std::to_string(total) + "\n");
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
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help") {
      std::cout << usage;
      return 0;
    } else if (a == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--count-allocations") {
      counting = true;
    } else {
      bad_usage("unknown argument " + std::string(a));
    }
  }
  if (mode != "echo" && mode != "sink") bad_usage("--mode must be echo or sink");
  if (port < 0) bad_usage("--port is required");

  asio::io_context io{1};
  coronet::Server server({.allow_half_open = true});
  server.listen(io.get_executor(), {.port = port, .host = "127.0.0.1", .backlog = 4096});
  std::cout << "listening on 127.0.0.1:" << server.address()->port << std::endl;
  asio::co_spawn(io, server.serve(mode == "echo" ? echo : sink), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
  return 0;
}
