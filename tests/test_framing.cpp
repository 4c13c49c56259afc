// Framed reads: read_line, read_until, read_exactly, with their bounds.
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
