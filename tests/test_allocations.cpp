// The hot path allocates nothing: once a connection is running, a read, a write
// and the wait between them reuse what they had. Counted, not timed.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <new>
#include <vector>

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

namespace {
/// A client that costs the server's process no heap: a blocking descriptor that
/// connects, sends one byte and waits (yielding to the server) for its echo.
coronet::awaitable<int> raw_echoed_client(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  const char byte = 'x';
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
      ::write(fd, &byte, 1) != 1) {
    ::close(fd);
    co_return -1;
  }
  auto ex = co_await asio::this_coro::executor;
  for (int turn = 0; turn < 100000; ++turn) {
    char echoed = 0;
    if (::recv(fd, &echoed, 1, MSG_DONTWAIT) == 1) co_return fd;
    co_await asio::post(ex, asio::use_awaitable);
  }
  ::close(fd);
  co_return -1;
}
}  // namespace

TEST_CASE("an idle connection costs its server at most 1,792 bytes of heap") {
  // What a server holding 10,000 idle clients pays per client, counted as the heap
  // in use while each handler waits in read(); docs/design.md says what it is made of.
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);
    constexpr int connections = 500;
    std::vector<int> clients;
    clients.reserve(connections + 1);
    clients.push_back(co_await raw_echoed_client(port));  // warm-up: pools and caches fill
    REQUIRE(clients.back() >= 0);
    const std::size_t before = mallinfo2().uordblks;
    for (int i = 0; i < connections; ++i) {
      clients.push_back(co_await raw_echoed_client(port));
      REQUIRE(clients.back() >= 0);
    }
    const double per_connection = double(mallinfo2().uordblks - before) / connections;
    MESSAGE("heap per idle connection: " << per_connection << " bytes");
    CHECK(per_connection <= 1792);
    for (int fd : clients) ::close(fd);
    server.close();
  });
}

TEST_CASE("a write burst's queued copy is given back once the peer has read it") {
  // write_nowait() copies what the kernel does not take; a connection that once
  // queued megabytes must not keep holding them while it sits idle.
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket accepted = co_await server.accept();
    // Large blocks come from mmap, which uordblks leaves out and hblkhd counts.
    auto heap_in_use = [] { return mallinfo2().uordblks + mallinfo2().hblkhd; };
    constexpr std::size_t burst = 8 * 1024 * 1024;
    const std::string payload(burst, 'b');
    const std::size_t before = heap_in_use();
    for (int i = 0; i < 4; ++i) accepted.write_nowait(payload);  // far more than the kernel takes
    CHECK(accepted.writable_length() > burst);
    std::size_t got = 0;
    std::vector<char> sink(1 << 16);
    for (int reads = 0; got < 4 * burst && reads < 1'000'000; ++reads)
      got += co_await client.read_some(std::span<char>(sink));
    REQUIRE(got == 4 * burst);
    co_await accepted.drain();
    const std::size_t after = heap_in_use();
    MESSAGE("heap kept after a 32 MiB burst drained: " << (after > before ? after - before : 0));
    CHECK(after < before + 256 * 1024);
  });
}
