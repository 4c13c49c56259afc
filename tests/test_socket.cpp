// Socket: data in both directions, byte counters, addresses, queued writes,
// read_some, write_nowait/drain, destroy, and the multi-threaded read path.
#include "support.hpp"

using coronet::Server;
using coronet::Socket;
using namespace std::chrono_literals;

namespace {

/// Sends `payload` from a client through an echo server and returns what came back.
coronet::awaitable<std::string> echo_through_server(const std::string& payload) {
  auto ex = co_await asio::this_coro::executor;
  Server server;
  const int port = co_await test::listen_loopback(server);
  asio::co_spawn(ex, server.serve(test::echo), asio::detached);
  Socket client = co_await coronet::connect(port, "127.0.0.1");
  // Write and read at once: an echo of 10 MiB does not fit in the kernel's buffers.
  asio::co_spawn(
      ex,
      [&client, &payload]() -> coronet::awaitable<void> {
        co_await client.write(payload);
        co_await client.end();
      },
      asio::detached);
  std::string back = co_await test::read_all(client);
  CHECK(client.bytes_written() == payload.size());
  CHECK(client.bytes_read() == payload.size());
  server.close();
  co_return back;
}

}  // namespace

TEST_CASE("10 MiB of random bytes echo back intact") {
  test::run([]() -> coronet::awaitable<void> {
    const std::string payload = test::random_bytes(10 << 20);
    std::string back = co_await echo_through_server(payload);
    REQUIRE(back.size() == payload.size());
    CHECK(test::checksum(back) == test::checksum(payload));
  });
}

TEST_CASE("10 MiB echo on an io_context run by two threads (the peek read path)") {
  test::run(
      []() -> coronet::awaitable<void> {
        const std::string payload = test::random_bytes(10 << 20, 7);
        std::string back = co_await echo_through_server(payload);
        REQUIRE(back.size() == payload.size());
        CHECK(test::checksum(back) == test::checksum(payload));
      },
      60s, ASIO_CONCURRENCY_HINT_DEFAULT, 2);
}

TEST_CASE("byte counters and addresses on both ends") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    CHECK(client.remote_port() == port);
    CHECK(client.remote_address() == "127.0.0.1");
    CHECK(client.address().family == "IPv4");
    CHECK(accepted.remote_port() == client.local_port());
    CHECK(accepted.local_port() == port);
    CHECK(accepted.remote_address() == "127.0.0.1");

    co_await client.write("hello");
    co_await client.write(std::string(1000, 'x'));
    CHECK(client.bytes_written() == 1005);
    std::size_t got = 0;
    while (got < 1005) got += (co_await accepted.read())->size();
    CHECK(accepted.bytes_read() == 1005);

    // Counters and the peer's address survive the close, as Node keeps them.
    client.destroy();
    CHECK(client.bytes_written() == 1005);
    CHECK(client.remote_port() == port);
    CHECK(client.ready_state() == "closed");
  });
}

TEST_CASE("read_some fills the caller's buffer and returns 0 at FIN") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    co_await client.end("abcdefgh");
    char buf[3];
    std::string got;
    for (int i = 0; i < 20; ++i) {
      std::size_t n = co_await accepted.read_some(std::span<char>(buf));
      if (n == 0) break;
      CHECK(n <= 3);
      got.append(buf, n);
    }
    CHECK(got == "abcdefgh");
    CHECK(co_await accepted.read_some(std::span<char>(buf)) == 0);  // FIN is sticky
  });
}

TEST_CASE("writes from several coroutines never interleave") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    // Four writers, each sending 40 blocks of 64 KiB filled with its own letter:
    // far more than the kernel buffers, so writes queue behind each other.
    constexpr int writers = 4, blocks = 40;
    constexpr std::size_t block = 64 * 1024;
    int finished = 0;
    for (int w = 0; w < writers; ++w) {
      asio::co_spawn(
          ex,
          [&, w]() -> coronet::awaitable<void> {
            std::string data(block, static_cast<char>('a' + w));
            for (int b = 0; b < blocks; ++b) co_await client.write(data);
            if (++finished == writers) co_await client.end();
          },
          asio::detached);
    }
    std::string all = co_await test::read_all(accepted);
    REQUIRE(all.size() == writers * blocks * block);
    int counts[writers] = {};
    for (std::size_t i = 0; i < all.size(); i += block) {
      const char letter = all[i];
      REQUIRE(letter >= 'a');
      REQUIRE(letter < 'a' + writers);
      // Every 64 KiB block arrives whole: one letter from start to end.
      CHECK(all.find_first_not_of(letter, i) >= i + block);
      ++counts[letter - 'a'];
    }
    for (int c : counts) CHECK(c == blocks);
  });
}

TEST_CASE("write_nowait returns false past the high-water mark; drain() waits for the queue") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    accepted.pause();  // the reader stops: the kernel buffers fill, then our queue

    const std::string block(64 * 1024, 'z');
    std::size_t queued = 0;
    bool accepting = true;
    for (int i = 0; i < 1000 && accepting; ++i) {
      accepting = client.write_nowait(block);
      queued += block.size();
    }
    CHECK_FALSE(accepting);  // bounded: Node's write() returning false
    CHECK(client.writable_length() >= client.high_water_mark());

    accepted.resume();
    auto ex = co_await asio::this_coro::executor;
    std::size_t received = 0;
    bool reader_done = false;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          while (auto c = co_await accepted.read()) received += c->size();
          reader_done = true;
        },
        asio::detached);
    co_await client.drain();
    CHECK(client.writable_length() == 0);
    co_await client.end();
    for (int i = 0; i < 10000 && !reader_done; ++i) co_await asio::post(ex, asio::use_awaitable);
    CHECK(received == queued);
    CHECK(client.bytes_written() == queued);
  });
}

TEST_CASE("destroy() finishes a pending read with operation_aborted") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    asio::post(ex, [&] { accepted.destroy(); });
    auto e = co_await test::expect_error(accepted.read());
    CHECK(e.code() == std::errc::operation_canceled);
    CHECK(std::string(e.what()) == "read aborted: the socket was destroyed");
    CHECK(accepted.destroyed());
    // The peer sees the connection end.
    CHECK_FALSE(co_await client.read());
  });
}

TEST_CASE("destroy() finishes a write waiting on a full kernel with operation_aborted") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    const std::string big(32 << 20, 'q');  // more than loopback buffers hold
    asio::post(ex, [&] { client.destroy(); });
    auto e = co_await test::expect_error(client.write(big));
    CHECK(e.code() == std::errc::operation_canceled);
    CHECK(client.bytes_written() < big.size());
  });
}

TEST_CASE("a cancelled write keeps its bytes queued, copied: the caller's buffer may go") {
  using namespace asio::experimental::awaitable_operators;
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    const std::string expected = test::random_bytes(64 << 20, 7);  // beyond loopback buffers
    {
      std::string big = expected;
      asio::steady_timer deadline(ex, std::chrono::milliseconds(20));
      auto winner = co_await (client.write(big) || deadline.async_wait(asio::use_awaitable));
      CHECK(winner.index() == 1);  // the deadline won: the write was cancelled
      CHECK(client.writable_length() > 0);
      big.assign(big.size(), 'x');  // the caller reuses its buffer, then frees it
    }
    // end() sends FIN after the queued bytes, once the peer has read them.
    std::string got = co_await (client.end() && test::read_all(accepted));
    CHECK(got.size() == expected.size());
    CHECK(test::checksum(got) == test::checksum(expected));
  });
}

TEST_CASE("pause() while a read waits: bytes, then FIN, are held until resume()") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    std::vector<std::optional<std::string>> seen;
    bool reader_done = false;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          for (int i = 0; i < 2; ++i) {
            auto chunk = co_await p.accepted.read();
            seen.emplace_back(chunk ? std::optional<std::string>(*chunk) : std::nullopt);
          }
          reader_done = true;
        },
        asio::detached);
    co_await test::settle([] { return false; }, 10);  // the read is waiting now
    p.accepted.pause();
    co_await p.client.write("held");
    co_await test::settle([&] { return p.accepted.bytes_read() == 4; });
    CHECK(p.accepted.bytes_read() == 4);  // the kernel's bytes were taken...
    CHECK(seen.empty());                  // ...but not handed out while paused

    p.accepted.resume();
    co_await test::settle([&] { return seen.size() == 1; });
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == "held");

    // The second read waits; pause again, then the peer ends: no FIN while paused.
    co_await test::settle([] { return false; }, 10);
    p.accepted.pause();
    co_await p.client.end();
    co_await test::settle([] { return false; }, 200);
    CHECK(seen.size() == 1);
    CHECK(p.accepted.ready_state() == "open");
    p.accepted.resume();
    co_await test::settle([&] { return reader_done; });
    REQUIRE(reader_done);
    CHECK(seen[1] == std::nullopt);
  });
}

TEST_CASE("a second concurrent read is refused clearly") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    std::string first_reader_got;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          first_reader_got = std::string(*co_await accepted.read());
        },
        asio::detached);
    for (int i = 0; i < 10; ++i) co_await asio::post(ex, asio::use_awaitable);
    auto e = co_await test::expect_error(accepted.read());
    CHECK(e.code() == coronet::errc::read_in_progress);
    co_await client.write("done");
    for (int i = 0; i < 100 && first_reader_got.empty(); ++i) {
      co_await asio::post(ex, asio::use_awaitable);
    }
    CHECK(first_reader_got == "done");  // the first reader was not disturbed
  });
}

TEST_CASE("a moved-from or default socket says it is not connected") {
  Socket none;
  CHECK(none.destroyed());
  CHECK(none.ready_state() == "closed");
  CHECK_THROWS_WITH_AS(none.pause(),
                       "the socket is not connected (default-constructed or moved from)",
                       coronet::error);
}

TEST_CASE("keep-alive and no-delay reach the kernel") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    client.set_no_delay(true).set_keep_alive(true, 7s);
    auto get = [&](int level, int name) {
      int v = -1;
      socklen_t len = sizeof v;
      ::getsockopt(client.native().native_handle(), level, name, &v, &len);
      return v;
    };
    CHECK(get(IPPROTO_TCP, TCP_NODELAY) == 1);
    CHECK(get(SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(get(IPPROTO_TCP, TCP_KEEPIDLE) == 7);
    CHECK(get(IPPROTO_TCP, TCP_KEEPINTVL) == 1);  // Node's probe interval
    CHECK(get(IPPROTO_TCP, TCP_KEEPCNT) == 10);   // Node's probe count
    client.set_no_delay(false);
    CHECK(get(IPPROTO_TCP, TCP_NODELAY) == 0);
    client.destroy();
    client.set_no_delay(true);  // harmless after destroy
  });
}
