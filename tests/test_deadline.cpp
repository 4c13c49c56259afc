// Deadlines: coronet::timeout(limit, op) bounds one operation. When it passes, the
// operation is cancelled as any cancellation does it (no byte lost, bytes handed to
// a write still go out, no descriptor left), and timeout() throws errc::timeout with
// the operation's name and the limit. Only what is meant to time out has a short
// deadline; nothing sleeps to synchronise.
#include "support.hpp"

using coronet::Socket;
using namespace std::chrono_literals;

namespace {

/// A pair whose accepted side has a small send buffer and a peer that does not
/// read yet: a large write stalls on it.
coronet::awaitable<void> stalled_pair(test::pair& p) {
  co_await test::make_pair(p);
  p.accepted.native().set_option(asio::socket_base::send_buffer_size(4096));
}

/// Once the deadline has passed the stall has done its part. Through a 4 KB send
/// buffer loopback paces the rest by the reader's delayed ACKs (8 MB took 5 s),
/// so the bytes still queued go out through an ordinary one.
void end_stall(test::pair& p) {
  p.accepted.native().set_option(asio::socket_base::send_buffer_size(1 << 20));
}

}  // namespace

TEST_CASE("timeout() returns what the operation returns when it completes first") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await coronet::timeout(5s, p.client.write("first\nsecond\n"));  // the void form
    auto line = co_await coronet::timeout(5s, p.accepted.read_line(1024));
    REQUIRE(line);
    CHECK(*line == "first");
    // Already there: even a zero limit gets it, since no wait is needed.
    line = co_await coronet::timeout(0ms, p.accepted.read_line(1024));
    REQUIRE(line);
    CHECK(*line == "second");
    // Arriving while it waits, well within the limit.
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, p.client.write("third\n"), asio::detached);
    line = co_await coronet::timeout(5s, p.accepted.read_line(1024));
    REQUIRE(line);
    CHECK(*line == "third");
    // Any awaitable, not only coronet's.
    auto answer = []() -> coronet::awaitable<int> { co_return 42; };
    CHECK(co_await coronet::timeout(1s, answer()) == 42);
  });
}

TEST_CASE("a read_line that times out on a silent peer loses no byte; the socket reads on") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    co_await p.client.write("hel");  // half a line: it must not be lost
    auto e = co_await test::expect_error(coronet::timeout(30ms, p.accepted.read_line(1024)));
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "read_line timed out after 30 ms");
    CHECK_FALSE(p.accepted.destroyed());  // a notice, as in Go: the socket stays open
    co_await p.client.write("lo\nworld\n");
    auto line = co_await p.accepted.read_line(1024);
    REQUIRE(line);
    CHECK(*line == "hello");
    line = co_await p.accepted.read_line(1024);
    REQUIRE(line);
    CHECK(*line == "world");
  });
}

TEST_CASE("every read form times out with its own name and reads on afterwards") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    char buffer[16];
    auto name = [](const coronet::error& e) { return std::string(e.what()); };
    CHECK(name(co_await test::expect_error(coronet::timeout(20ms, p.accepted.read()))) ==
          "read timed out after 20 ms");
    // read_some() reports under read()'s name, as its other errors do ("read ECONNRESET").
    CHECK(name(co_await test::expect_error(
              coronet::timeout(20ms, p.accepted.read_some(std::span<char>(buffer))))) ==
          "read timed out after 20 ms");
    CHECK(name(co_await test::expect_error(coronet::timeout(
              20ms, p.accepted.read_until(";", 64)))) == "read_until timed out after 20 ms");
    CHECK(name(co_await test::expect_error(coronet::timeout(20ms, p.accepted.read_exactly(4)))) ==
          "read_exactly timed out after 20 ms");
    co_await p.client.write("abcd");
    auto chunk = co_await p.accepted.read_exactly(4);
    REQUIRE(chunk);
    CHECK(*chunk == "abcd");
  });
}

TEST_CASE("a write that times out on a stalled peer still delivers every byte, in order") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await stalled_pair(p);
    const std::string big = test::random_bytes(8 << 20, 21);  // far more than the kernel holds
    auto buffer = std::make_unique<std::string>(big);
    auto e = co_await test::expect_error(coronet::timeout(50ms, p.accepted.write(*buffer)));
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "write timed out after 50 ms");
    CHECK_FALSE(p.accepted.destroyed());
    // The caller's buffer is no longer used: scribble over it and free it.
    std::fill(buffer->begin(), buffer->end(), 'X');
    buffer.reset();
    end_stall(p);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, p.accepted.end("tail"), asio::detached);  // after the timed-out bytes
    const std::string got = co_await test::read_all(p.client);
    CHECK(got.size() == big.size() + 4);
    CHECK(test::checksum(got) == test::checksum(big + "tail"));
  });
}

TEST_CASE("drain() and end(data) time out on a stalled peer; their bytes and FIN still go") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await stalled_pair(p);
    const std::string big = test::random_bytes(8 << 20, 22);
    CHECK_FALSE(p.accepted.write_nowait(big));
    auto drained = co_await test::expect_error(coronet::timeout(20ms, p.accepted.drain()));
    CHECK(std::string(drained.what()) == "drain timed out after 20 ms");
    auto ended = co_await test::expect_error(coronet::timeout(20ms, p.accepted.end("tail")));
    CHECK(std::string(ended.what()) == "end timed out after 20 ms");
    end_stall(p);
    const std::string got = co_await test::read_all(p.client);
    CHECK(got.size() == big.size() + 4);
    CHECK(test::checksum(got) == test::checksum(big + "tail"));
  });
}

TEST_CASE("accept() with a deadline: no descriptor left; the next client is accepted") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    const int before = test::open_descriptors();
    auto e = co_await test::expect_error(coronet::timeout(30ms, server.accept()));
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "accept timed out after 30 ms");
    CHECK(test::open_descriptors() == before);
    CHECK(server.listening());
    auto client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await coronet::timeout(5s, server.accept());
    co_await client.write("hi");
    auto chunk = co_await accepted.read();
    REQUIRE(chunk);
    CHECK(*chunk == "hi");
  });
}

TEST_CASE("connect() to a peer that never answers times out and leaves no descriptor") {
  test::run([]() -> coronet::awaitable<void> {
    test::blackhole silent;  // a full backlog: the kernel drops our SYNs
    // The io_context makes its reactor's descriptors on first use: before counting.
    asio::steady_timer first_use(co_await asio::this_coro::executor);
    const int before = test::open_descriptors();
    auto e = co_await test::expect_error(
        coronet::timeout(50ms, coronet::connect(silent.port(), "127.0.0.1")));
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "connect timed out after 50 ms");
    // (On io_uring the attempt's number is freed once its cancelled operation is
    // back, a turn later: detail/descriptor_hold.hpp.)
    co_await test::settle([&] { return test::open_descriptors() == before; }, 100);
    CHECK(test::open_descriptors() == before);
  });
}

TEST_CASE("wait_closed() with a deadline times out while a connection is open") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    p.server.close();
    auto e = co_await test::expect_error(coronet::timeout(20ms, p.server.wait_closed()));
    CHECK(std::string(e.what()) == "wait_closed timed out after 20 ms");
    p.accepted.destroy();
    co_await coronet::timeout(5s, p.server.wait_closed());
    CHECK(p.server.connections() == 0);
  });
}

TEST_CASE("a failure before the deadline is reported at once, not when the deadline passes") {
  // Asio's `||` holds a failed operand until the other one finishes; timeout() must
  // not: the run's own bound (10 s) is far shorter than the deadline (60 s).
  test::run(
      []() -> coronet::awaitable<void> {
        test::pair p;
        co_await test::make_pair(p);
        p.client.reset_and_destroy();
        auto e = co_await test::expect_error(coronet::timeout(60s, test::read_all(p.accepted)));
        CHECK(e.code() == std::errc::connection_reset);
      },
      10s);
}

TEST_CASE("the non-throwing form reports the timeout in its failure and returns nothing") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    coronet::failure failed;
    auto line = co_await coronet::timeout(20ms, p.accepted.read_line(1024), failed);
    CHECK_FALSE(line);
    CHECK(failed.code() == coronet::errc::timeout);
    CHECK(failed.message() == "read_line timed out after 20 ms");
    failed.clear();
    co_await p.client.write("ok\n");
    line = co_await coronet::timeout(5s, p.accepted.read_line(1024), failed);
    CHECK_FALSE(failed);
    REQUIRE(line);
    CHECK(*line == "ok");
    co_await coronet::timeout(5s, p.accepted.write("void form"), failed);
    CHECK_FALSE(failed);
  });
}

TEST_CASE("cancelling timeout() itself cancels the operation, reported as a cancellation") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal signal;
    std::optional<std::exception_ptr> outcome;
    asio::co_spawn(ex, coronet::timeout(60s, p.accepted.read_line(1024)),
                   asio::bind_cancellation_slot(signal.slot(),
                                                [&](std::exception_ptr e, auto) { outcome = e; }));
    co_await test::settle([] { return false; }, 20);  // it waits now
    signal.emit(asio::cancellation_type::terminal);
    co_await test::settle([&] { return outcome.has_value(); });
    REQUIRE(outcome);
    REQUIRE(*outcome);
    try {
      std::rethrow_exception(*outcome);
    } catch (const coronet::error& e) {
      CHECK(e.code() == std::errc::operation_canceled);
      CHECK(std::string(e.what()) == "read_line cancelled");
    }
    co_await p.client.write("still\n");
    auto line = co_await p.accepted.read_line(1024);
    REQUIRE(line);
    CHECK(*line == "still");
  });
}

TEST_CASE("timeout() refuses a negative limit; a limit too long to count means none") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    auto e = co_await test::expect_error(coronet::timeout(-1ms, p.accepted.read()));
    CHECK(e.code() == coronet::errc::invalid_argument);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, p.client.write("late"), asio::detached);
    auto chunk = co_await coronet::timeout(std::chrono::milliseconds::max(), p.accepted.read());
    REQUIRE(chunk);
    CHECK(*chunk == "late");
  });
}

TEST_CASE("deadlines that race completion lose no byte (a trickling peer, 1 ms each)") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    auto ex = co_await asio::this_coro::executor;
    std::string sent;
    for (int i = 0; i < 2000; ++i) sent += std::to_string(i % 10);
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          for (std::size_t at = 0; at < sent.size(); at += 3) {
            co_await p.client.write(std::string_view(sent).substr(at, 3));
            co_await asio::post(ex, asio::use_awaitable);
          }
          co_await p.client.end();
        },
        asio::detached);
    std::string got;
    int timeouts = 0;
    for (int round = 0; round < 100000; ++round) {
      try {
        auto chunk = co_await coronet::timeout(1ms, p.accepted.read());
        if (!chunk) break;
        got += *chunk;
      } catch (const coronet::error& e) {
        REQUIRE(e.code() == coronet::errc::timeout);
        ++timeouts;
      }
    }
    MESSAGE(timeouts << " reads timed out");
    CHECK(got == sent);
  });
}
