// Framed reads: read_line, read_until, read_exactly, with their bounds.
#include <malloc.h>

#include "support.hpp"

using namespace std::chrono_literals;

TEST_CASE("read_line splits lines however they arrive, and strips \\n and \\r\\n") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.write("first li");
    co_await p.client.write("ne\r\nsecond\nthi");
    co_await p.client.end("rd\n");
    CHECK(*(co_await p.accepted.read_line()) == "first line");
    CHECK(*(co_await p.accepted.read_line()) == "second");
    CHECK(*(co_await p.accepted.read_line()) == "third");
    CHECK_FALSE(co_await p.accepted.read_line());  // FIN between lines: clean end
  });
}

TEST_CASE("an over-long line is a clear error, and its bytes stay readable") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.write(std::string(100, 'x'));
    auto e = co_await test::expect_error(p.accepted.read_line(64));
    CHECK(e.code() == coronet::errc::frame_too_long);
    CHECK(std::string(e.what()) ==
          "read_line: no delimiter within 64 bytes (they stay buffered for read())");
    auto rest = co_await p.accepted.read();
    CHECK(rest->size() == 100);
  });
}

TEST_CASE("memory stays bounded: a peer that never sends a newline cannot grow the buffer") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          const std::string block(64 * 1024, 'y');
          for (int i = 0; i < 64; ++i) co_await p.client.write(block);  // 4 MiB, no newline
        },
        asio::detached);
    auto e = co_await test::expect_error(p.accepted.read_line(1024));
    CHECK(e.code() == coronet::errc::frame_too_long);
  });
}

TEST_CASE("FIN in the middle of a line says how many bytes were lost") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.end("complete\nincomple");
    CHECK(*(co_await p.accepted.read_line()) == "complete");
    auto e = co_await test::expect_error(p.accepted.read_line());
    CHECK(e.code() == coronet::errc::truncated_frame);
    CHECK(std::string(e.what()) ==
          "read_line: the peer ended the stream in the middle of a frame; 8 bytes of it are lost");
  });
}

TEST_CASE("read_until keeps the delimiter and finds one split across writes") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.write("GET / HTTP/1.1\r\nHost: x\r");
    co_await p.client.write("\n\r");
    co_await p.client.end("\nbody");
    auto head = co_await p.accepted.read_until("\r\n\r\n", 1024);
    CHECK(*head == "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(*(co_await p.accepted.read()) == "body");  // what followed the frame
  });
}

TEST_CASE("read_until refuses an empty delimiter and a max smaller than the delimiter") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    auto e = co_await test::expect_error(p.accepted.read_until("", 100));
    CHECK(e.code() == coronet::errc::invalid_argument);
    CHECK(std::string(e.what()) == "invalid argument: read_until needs a delimiter");
    e = co_await test::expect_error(p.accepted.read_line(0));
    CHECK(e.code() == coronet::errc::invalid_argument);
    CHECK(std::string(e.what()) ==
          "invalid argument: read_line max (0) is smaller than the delimiter");
    // Nothing was consumed: the socket still reads normally.
    co_await p.client.end("still here\n");
    CHECK(*(co_await p.accepted.read_line()) == "still here");
  });
}

TEST_CASE("read_exactly returns whole frames; FIN inside one is an error") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.write("abc");
    co_await p.client.write("defgh");
    co_await p.client.end("ij");
    CHECK(*(co_await p.accepted.read_exactly(4)) == "abcd");
    CHECK(*(co_await p.accepted.read_exactly(4)) == "efgh");
    auto e = co_await test::expect_error(p.accepted.read_exactly(4));
    CHECK(e.code() == coronet::errc::truncated_frame);
    CHECK(std::string(e.what()).find("2 bytes of it are lost") != std::string::npos);
  });
}

TEST_CASE("read_some takes bytes a framed read left behind first") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.end("line\nrest");
    CHECK(*(co_await p.accepted.read_line()) == "line");
    char buf[16];
    std::size_t n = co_await p.accepted.read_some(std::span<char>(buf));
    CHECK(std::string_view(buf, n) == "rest");
  });
}

namespace {
/// Heap bytes in use, from glibc's own books (0 under a sanitizer's allocator).
std::size_t heap_in_use() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}
}  // namespace

TEST_CASE("framed reads give their buffers back once the socket waits again") {
  if (heap_in_use() == 0) {
    MESSAGE("skipped: this allocator keeps no statistics (a sanitizer build)");
    return;
  }
  // The reviewer's figures: 64 connections after one 4 MiB line each held 520 MiB,
  // and 1,000 idle connections after a 64 KiB burst of lines held 66 MiB.
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    constexpr int connections = 32;
    std::vector<coronet::Socket> clients, accepted;
    for (int i = 0; i < connections; ++i) {
      clients.push_back(co_await coronet::connect(port, "127.0.0.1"));
      accepted.push_back(co_await server.accept());
    }
    const std::string big_line = std::string(1 << 20, 'x') + "\n";
    std::string burst;
    while (burst.size() < 64 * 1024) burst += "a short line of text\n";
    const std::size_t before = heap_in_use();
    for (int i = 0; i < connections; ++i) {
      asio::co_spawn(ex, clients[i].write(big_line + burst), asio::detached);
      auto line = co_await accepted[i].read_line(2 << 20);
      REQUIRE(line);
      CHECK(line->size() == big_line.size() - 1);
      for (std::size_t got = 0; got < burst.size();) {
        auto small = co_await accepted[i].read_line(2 << 20);
        REQUIRE(small);
        got += small->size() + 1;
      }
      // Now idle: a read waits for the next line.
      asio::co_spawn(ex, accepted[i].read_line(2 << 20), asio::detached);
    }
    co_await test::settle([] { return false; }, 50);
    const std::size_t after = heap_in_use();
    const std::size_t grown = after > before ? after - before : 0;
    MESSAGE("heap grown by " << grown / 1024 << " KiB for " << connections
                             << " idle connections after a 1 MiB line and 64 KiB of lines each");
    CHECK(grown < 4u << 20);  // a few pooled buffers at most, not a buffer per connection
  });
}
