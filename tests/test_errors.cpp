// Errors a person can act on: each message as Node words it, each raised where
// Node raises it, none of them a crash, a hang or a SIGPIPE.
#include "support.hpp"

using coronet::Server;
using coronet::Socket;

namespace {

/// A loopback port with nothing listening on it.
coronet::awaitable<int> closed_port() {
  Server server;
  const int port = co_await test::listen_loopback(server);
  server.close();
  co_return port;
}

std::string what(const coronet::error& e) { return e.what(); }

}  // namespace

TEST_CASE("connect to a closed port: connect ECONNREFUSED host:port") {
  test::run([]() -> coronet::awaitable<void> {
    const int port = co_await closed_port();
    auto e = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
    CHECK(e.code() == std::errc::connection_refused);
    CHECK(what(e) == "connect ECONNREFUSED 127.0.0.1:" + std::to_string(port));
  });
}

TEST_CASE("connect to localhost resolves the name and reports the address it tried") {
  test::run([]() -> coronet::awaitable<void> {
    const int port = co_await closed_port();
    auto e = co_await test::expect_error(coronet::connect(port));  // host "localhost"
    CHECK(e.code() == std::errc::connection_refused);
    const std::string p = std::to_string(port);
    CHECK(what(e).find("connect ECONNREFUSED 127.0.0.1:" + p) != std::string::npos);
  });
}

TEST_CASE("listen on a port in use: listen EADDRINUSE: address already in use") {
  test::run([]() -> coronet::awaitable<void> {
    Server first;
    const int port = co_await test::listen_loopback(first);
    Server second;
    auto e = co_await test::expect_error(second.listen(port, "127.0.0.1"));
    CHECK(e.code() == std::errc::address_in_use);
    CHECK(what(e) == "listen EADDRINUSE: address already in use 127.0.0.1:" + std::to_string(port));
    CHECK_FALSE(second.listening());
    CHECK_FALSE(second.address().has_value());  // Node: null after EADDRINUSE
  });
}

TEST_CASE("ports outside 0..65535 are refused before any system call, naming the value") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    auto e = co_await test::expect_error(server.listen(65536));
    CHECK(e.code() == coronet::errc::bad_port);
    CHECK(what(e) == "options.port should be >= 0 and < 65536. Received 65536.");
    e = co_await test::expect_error(server.listen(-1));
    CHECK(what(e) == "options.port should be >= 0 and < 65536. Received -1.");
    CHECK_FALSE(server.listening());

    e = co_await test::expect_error(coronet::connect(70000, "127.0.0.1"));
    CHECK(e.code() == coronet::errc::bad_port);
    CHECK(what(e) == "Port should be >= 0 and < 65536. Received 70000.");
    // -1 is a port like any other, not "no port".
    e = co_await test::expect_error(coronet::connect({.host = "127.0.0.1", .port = -1}));
    CHECK(e.code() == coronet::errc::bad_port);
    CHECK(what(e) == "Port should be >= 0 and < 65536. Received -1.");
    e = co_await test::expect_error(coronet::connect(coronet::ConnectOptions{.host = "127.0.0.1"}));
    CHECK(e.code() == coronet::errc::invalid_argument);
    CHECK(what(e) == "The \"options\" or \"port\" or \"path\" argument must be specified");
    e = co_await test::expect_error(
        coronet::connect({.host = "127.0.0.1", .port = 80, .family = 5}));
    CHECK(e.code() == coronet::errc::bad_family);
    CHECK(what(e) == "The property 'options.family' must be one of: 0, 4, 6. Received 5");
  });
}

TEST_CASE("a peer reset: read ECONNRESET on that socket only") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);

    Socket victim = co_await coronet::connect(port, "127.0.0.1");
    Socket bystander = co_await coronet::connect(port, "127.0.0.1");
    co_await victim.write("hello");
    CHECK(*(co_await victim.read()) == "hello");
    victim.reset_and_destroy();  // the echo handler's read fails; the server goes on

    Server direct;
    const int direct_port = co_await test::listen_loopback(direct);
    Socket client = co_await coronet::connect(direct_port, "127.0.0.1");
    Socket accepted = co_await direct.accept();
    client.reset_and_destroy();  // SO_LINGER 0: the peer gets RST
    auto e = co_await test::expect_error(accepted.read());
    CHECK(e.code() == std::errc::connection_reset);
    CHECK(what(e) == "read ECONNRESET");
    CHECK(accepted.destroyed());

    // The echo server's other connections are untouched.
    co_await bystander.end("still fine");
    CHECK(co_await test::read_all(bystander) == "still fine");
  });
}

TEST_CASE("writing to a reset peer is an error, never a SIGPIPE") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    accepted.reset_and_destroy();
    // The first write may still be accepted by the kernel; keep writing until the
    // reset surfaces. Without MSG_NOSIGNAL this process would die of SIGPIPE here.
    const std::string block(64 * 1024, 'x');
    std::optional<coronet::error> failure;
    for (int i = 0; i < 100 && !failure; ++i) {
      try {
        co_await client.write(block);
      } catch (const coronet::error& e) {
        failure = e;
      }
    }
    REQUIRE(failure.has_value());
    CHECK((failure->code() == std::errc::broken_pipe ||
           failure->code() == std::errc::connection_reset));
    CHECK((what(*failure) == "write EPIPE" || what(*failure) == "write ECONNRESET"));
    CHECK(client.destroyed());
  });
}

TEST_CASE("write after end, write and read after destroy") {
  test::run([]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    co_await client.end();
    auto e = co_await test::expect_error(client.write("late"));
    CHECK(e.code() == coronet::errc::write_after_end);
    CHECK(what(e) == "write after end");
    CHECK_THROWS_WITH_AS(client.write_nowait("late"), "write after end", coronet::error);

    accepted.destroy();
    e = co_await test::expect_error(accepted.write("gone"));
    CHECK(e.code() == coronet::errc::socket_destroyed);
    CHECK(what(e) == "Cannot call write after the socket was destroyed");
    e = co_await test::expect_error(accepted.read());
    CHECK(what(e) == "Cannot call read after the socket was destroyed");
    e = co_await test::expect_error(accepted.end());
    CHECK(what(e) == "Cannot call end after the socket was destroyed");
    accepted.destroy();  // idempotent
  });
}

TEST_CASE("server misuse: close when not listening, listen twice") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    CHECK_THROWS_WITH_AS(server.close(), "Server is not running.", coronet::error);
    co_await test::listen_loopback(server);
    auto e = co_await test::expect_error(server.listen(0));
    CHECK(e.code() == coronet::errc::server_already_listening);
    CHECK(what(e) == "Listen method has been called more than once without closing.");
    server.close();
    e = co_await test::expect_error(server.accept());
    CHECK(e.code() == coronet::errc::server_not_running);
  });
}

TEST_CASE("the non-throwing forms report what the throwing forms throw, with the same message") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    coronet::failure failed;
    // An over-long line: answer the peer with an error line, then close, with no
    // catch block in sight (C++ allows no co_await inside one).
    co_await p.client.write("this line is far too long for the server\n");
    auto line = co_await p.accepted.read_line(8, failed);
    CHECK_FALSE(line);
    REQUIRE(failed);
    CHECK(failed.code() == coronet::errc::frame_too_long);
    auto thrown = co_await test::expect_error(p.accepted.read_line(8));
    CHECK(failed.message() == thrown.what());
    co_await p.accepted.end("ERR " + failed.message() + "\n", failed);
    std::string got = co_await test::read_all(p.client);
    CHECK(got.starts_with("ERR read_line: no delimiter within 8 bytes"));

    // Write after end: reported, not thrown, by write() and write_nowait().
    failed.clear();
    co_await p.accepted.write("more", failed);
    CHECK(failed.code() == coronet::errc::write_after_end);
    failed.clear();
    CHECK_FALSE(p.accepted.write_nowait("more", failed));
    CHECK(failed.code() == coronet::errc::write_after_end);
    CHECK(failed.message() == "write after end");
    CHECK_THROWS_AS(failed.raise(), coronet::error);

    // Success leaves it alone.
    coronet::failure none;
    co_await p.client.drain(none);
    CHECK_FALSE(none);
    CHECK(none.message().empty());
  });
}
