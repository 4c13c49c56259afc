// Idle timeouts as Node has them (socket.setTimeout), and the connect timeout.
// The timers here are short and the assertions are about what happens, never
// about how fast: a slow machine makes these tests slower, not red.
#include "support.hpp"

using namespace std::chrono_literals;
using coronet::Socket;

namespace {

using clock_type = std::chrono::steady_clock;

/// Waits `d` on a timer: the idle period the test wants the socket to see.
coronet::awaitable<void> idle_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

}  // namespace

TEST_CASE("an idle socket's pending read reports errc::timeout and the socket stays open") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    const auto start = clock_type::now();  // before arming: see the stalled-write case
    p.accepted.set_timeout(50ms);
    CHECK(p.accepted.timeout() == 50ms);
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "read timed out: no activity for 50 ms");
    CHECK(clock_type::now() - start >= 50ms);
    CHECK(p.accepted.ready_state() == "open");  // a notification, not a close

    // Still fully usable both ways.
    co_await p.client.write("after the timeout");
    CHECK(*(co_await p.accepted.read()) == "after the timeout");
    co_await p.accepted.write("reply");
    CHECK(*(co_await p.client.read()) == "reply");
  });
}

TEST_CASE("the timeout fires once per idle period; I/O re-arms it") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    p.accepted.set_timeout(40ms);
    auto first = co_await test::expect_error(p.accepted.read());
    CHECK(first.code() == coronet::errc::timeout);

    // No I/O since it fired: a second read waits for data instead of timing out again.
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          co_await idle_for(150ms);  // well past another 40 ms period
          co_await p.client.write("data");
        },
        asio::detached);
    CHECK(*(co_await p.accepted.read()) == "data");

    // The data re-armed it: the next idle period is reported again.
    auto again = co_await test::expect_error(p.accepted.read());
    CHECK(again.code() == coronet::errc::timeout);
  });
}

TEST_CASE("set_timeout(0) disables the idle timeout") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    p.accepted.set_timeout(30ms);
    p.accepted.set_timeout(0ms);
    CHECK(p.accepted.timeout() == 0ms);
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          co_await idle_for(120ms);
          co_await p.client.write("late but fine");
        },
        asio::detached);
    CHECK(*(co_await p.accepted.read()) == "late but fine");
  });
}

TEST_CASE("a write stalled on a full kernel does not count as idle the first time") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    p.client.pause();  // the peer stops reading: the server's write stalls
    const std::string big(16 << 20, 'w');
    bool write_finished = false;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          co_await p.accepted.write(big);
          write_finished = true;
        },
        asio::detached);
    co_await test::settle([&] { return p.accepted.writable_length() > 0; });
    REQUIRE(p.accepted.writable_length() > 0);

    // Before set_timeout(): a thread preempted between the two would otherwise
    // measure less than the timer waited (seen under ASan on a loaded machine).
    const auto start = clock_type::now();
    p.accepted.set_timeout(60ms);
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(clock_type::now() - start >= 120ms);  // the first expiry was skipped
    CHECK_FALSE(write_finished);

    // The stalled write was not disturbed: it completes once the peer reads.
    p.client.resume();
    std::size_t got = 0;
    while (got < big.size()) got += (co_await p.client.read())->size();
    co_await test::settle([&] { return write_finished; });
    CHECK(write_finished);
  });
}

TEST_CASE("negative timeouts are refused") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    CHECK_THROWS_AS(p.accepted.set_timeout(-1ms), coronet::error);
  });
}

TEST_CASE("connect timeout: a black-holed address gives errc::timeout in bounded time") {
  test::blackhole hole;
  test::run([&]() -> coronet::awaitable<void> {
    auto e = co_await test::expect_error(
        coronet::connect({.host = "127.0.0.1", .port = hole.port(), .timeout = 100ms}));
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "connect ETIMEDOUT 127.0.0.1:" + std::to_string(hole.port()) +
                                       " (no connection within 100 ms)");
  });
}

TEST_CASE("connect timeout: a refused connection fails at once with its own error, not ETIMEDOUT") {
  // Asio's || waits for the first operand that *succeeds*: a refused attempt used to
  // sit out the whole timeout and then report ETIMEDOUT.
  int closed_port = 0;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = a.local_endpoint().port();
  }  // nothing listens there now
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto e = co_await test::expect_error(
            coronet::connect({.host = "127.0.0.1", .port = closed_port, .timeout = 60s}));
        CHECK(e.code() == std::errc::connection_refused);
        auto u = co_await test::expect_error(
            coronet::connect({.path = "/nonexistent/coronet.sock", .timeout = 60s}));
        CHECK(u.code() == std::errc::no_such_file_or_directory);
      },
      10s);
}

TEST_CASE("the connect timeout becomes the idle timeout, as in Node") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    Socket s = co_await coronet::connect({.host = "127.0.0.1", .port = port, .timeout = 40ms});
    CHECK(s.timeout() == 40ms);
    auto e = co_await test::expect_error(s.read());
    CHECK(e.code() == coronet::errc::timeout);
  });
}
