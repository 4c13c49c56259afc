// The hot path allocates nothing: once a connection is running, a read, a write
// and the wait between them reuse what they had. Counted, not timed.
#include <cstdlib>
#include <new>

#include "support.hpp"

namespace {
long allocations = 0;
}

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("steady-state ping-pong makes no heap allocation on either end") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);
    coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
    const std::string request(64, 'p');
    char reply[64];
    auto round_trip = [&]() -> coronet::awaitable<void> {
      co_await client.write(request);
      std::size_t got = 0;
      while (got < sizeof reply)
        got += co_await client.read_some(std::span<char>(reply + got, sizeof reply - got));
    };
    for (int i = 0; i < 200; ++i) co_await round_trip();  // warm-up: pools and caches fill
    const long before = allocations;
    constexpr int rounds = 2000;
    for (int i = 0; i < rounds; ++i) co_await round_trip();
    const long made = allocations - before;
    MESSAGE("allocations in " << rounds << " round trips: " << made);
    CHECK(made == 0);
    co_await client.end();
    server.close();
  });
}

TEST_CASE("socket.info() and server.stats() make no heap allocation: cheap per request") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket accepted = co_await server.accept();
    const long before = allocations;
    std::uint64_t seen = 0;
    for (int i = 0; i < 1000; ++i) {
      seen += client.info()->congestion_window + accepted.info()->mss;
      seen += server.stats().active;
    }
    CHECK(allocations == before);
    CHECK(seen > 0);
  });
}
