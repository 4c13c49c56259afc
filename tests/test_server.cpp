// Server: listen, accept, serve, close, wait_closed, addresses and counts.
#include "support.hpp"

using coronet::Server;
using coronet::Socket;
using namespace std::chrono_literals;

TEST_CASE("listen(0) picks a port and address() reports it") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    CHECK_FALSE(server.address().has_value());  // Node: null before listening
    co_await server.listen(0, "127.0.0.1");
    auto addr = server.address();
    REQUIRE(addr.has_value());
    CHECK(addr->address == "127.0.0.1");
    CHECK(addr->family == "IPv4");
    CHECK(addr->port > 0);
    CHECK(server.listening());
    server.close();
    CHECK_FALSE(server.listening());
    CHECK_FALSE(server.address().has_value());  // Node: null after close()
  });
}

TEST_CASE("no host means :: dual-stack, reachable over IPv4 and IPv6") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await server.listen(0);
    auto addr = *server.address();
    CHECK(addr.address == "::");
    CHECK(addr.family == "IPv6");

    auto accept_two = [&]() -> coronet::awaitable<std::vector<std::string>> {
      std::vector<std::string> remotes;
      for (int i = 0; i < 2; ++i) {
        Socket s = co_await server.accept();
        remotes.push_back(s.remote_address() + "/" + s.remote_family());
        CHECK(s.local_port() == addr.port);  // Node: accepted localPort == server port
      }
      co_return remotes;
    };
    auto remotes_task =
        asio::co_spawn(co_await asio::this_coro::executor, accept_two(), asio::use_awaitable);
    Socket v4 = co_await coronet::connect(addr.port, "127.0.0.1");
    Socket v6 = co_await coronet::connect(addr.port, "::1");
    auto remotes = co_await std::move(remotes_task);
    // Node shows an IPv4 client of a dual-stack server as IPv4-mapped IPv6.
    CHECK(remotes[0] == "::ffff:127.0.0.1/IPv6");
    CHECK(remotes[1] == "::1/IPv6");
    CHECK(v4.remote_address() == "127.0.0.1");
    CHECK(v4.remote_family() == "IPv4");
    CHECK(v6.remote_address() == "::1");
    CHECK(v6.remote_port() == addr.port);
  });
}

TEST_CASE("ipv6_only refuses IPv4 clients") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await server.listen({.port = 0, .host = "", .ipv6_only = true});
    const int port = server.address()->port;
    auto e = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
    CHECK(e.code() == std::errc::connection_refused);
    Socket ok = co_await coronet::connect(port, "::1");
    CHECK(ok.ready_state() == "open");
  });
}

TEST_CASE("listen on ::1 reports IPv6 and the chosen port") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await server.listen(0, "::1");
    CHECK(server.address()->address == "::1");
    CHECK(server.address()->family == "IPv6");
  });
}

TEST_CASE("listen with a host name resolves it") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await server.listen(0, "localhost");
    auto addr = *server.address();
    CHECK((addr.address == "127.0.0.1" || addr.address == "::1"));
  });
}

TEST_CASE("the explicit-executor listen works outside a coroutine") {
  asio::io_context io{1};
  Server server;
  server.listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
  CHECK(server.address()->port > 0);
  server.close();
}

TEST_CASE("accept hands out open sockets; connections() counts them until they close") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    CHECK(server.connections() == 0);
    Socket c1 = co_await coronet::connect(port, "127.0.0.1");
    Socket s1 = co_await server.accept();
    Socket c2 = co_await coronet::connect(port, "127.0.0.1");
    Socket s2 = co_await server.accept();
    CHECK(server.connections() == 2);
    CHECK(s1.ready_state() == "open");
    s1.destroy();
    CHECK(server.connections() == 1);
    {
      Socket gone = std::move(s2);  // dropping the handle closes the connection
    }
    CHECK(server.connections() == 0);
    server.close();
    CHECK(server.connections() == 0);
  });
}

TEST_CASE("serve() runs a handler per connection") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);
    for (int i = 0; i < 5; ++i) {
      Socket c = co_await coronet::connect(port, "127.0.0.1");
      std::string msg = "hello " + std::to_string(i);
      co_await c.end(msg);
      CHECK(co_await test::read_all(c) == msg);
    }
    server.close();
    co_await server.wait_closed();
    CHECK(server.connections() == 0);
  });
}

TEST_CASE("close() stops accepting at once; wait_closed() waits for every connection") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    server.close();
    auto refused = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
    CHECK(refused.code() == std::errc::connection_refused);

    bool closed = false;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          co_await server.wait_closed();
          closed = true;
        },
        asio::detached);
    // The accepted connection is still alive and useful after close().
    co_await client.write("still here");
    auto chunk = co_await accepted.read();
    REQUIRE(chunk);
    CHECK(*chunk == "still here");
    CHECK_FALSE(closed);

    // Ending both ways closes the accepted socket, and that completes wait_closed().
    co_await client.end();
    CHECK_FALSE(co_await accepted.read());
    co_await accepted.end();
    co_await server.wait_closed();
    for (int i = 0; i < 10 && !closed; ++i) co_await asio::post(ex, asio::use_awaitable);
    CHECK(closed == true);  // the other waiter was woken too
    CHECK(server.connections() == 0);
  });
}

TEST_CASE("a pending accept() finishes with operation_aborted when the server closes") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    co_await test::listen_loopback(server);
    asio::post(ex, [&] { server.close(); });
    auto e = co_await test::expect_error(server.accept());
    CHECK(e.code() == std::errc::operation_canceled);
    CHECK(std::string(e.what()) == "accept aborted: the server was closed");
  });
}

TEST_CASE("serve() returns after close()") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    co_await test::listen_loopback(server);
    asio::post(ex, [&] { server.close(); });
    co_await server.serve(test::echo);
    CHECK_FALSE(server.listening());
  });
}

TEST_CASE("a server may listen again after close()") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await test::listen_loopback(server);
    server.close();
    const int port = co_await test::listen_loopback(server);
    Socket c = co_await coronet::connect(port, "127.0.0.1");
    Socket s = co_await server.accept();
    CHECK(server.connections() == 1);
  });
}

TEST_CASE("pause_on_connect: accepted sockets start paused and read nothing until resume()") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server{{.pause_on_connect = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    CHECK(accepted.is_paused());
    co_await client.write("early bytes");

    bool got = false;
    std::string seen;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          auto chunk = co_await accepted.read();
          seen = std::string(*chunk);
          got = true;
        },
        asio::detached);
    // Let the reader run as far as it can: it must stay parked.
    for (int i = 0; i < 10; ++i) co_await asio::post(ex, asio::use_awaitable);
    CHECK_FALSE(got);
    CHECK(accepted.bytes_read() == 0);

    accepted.resume();
    for (int i = 0; i < 100 && !got; ++i) co_await asio::post(ex, asio::use_awaitable);
    CHECK(got);
    CHECK(seen == "early bytes");
    CHECK(accepted.bytes_read() == 11);
  });
}

TEST_CASE("reuse_port: two servers on two threads share one port") {
  // One io_context per thread, each with its own server on the same port: the
  // multi-core layout coronet recommends. The kernel spreads connections between them.
  asio::io_context first_io{1}, second_io{1};
  Server first, second;
  first.listen(first_io.get_executor(), {.port = 0, .host = "127.0.0.1", .reuse_port = true});
  const int port = first.address()->port;
  second.listen(second_io.get_executor(), {.port = port, .host = "127.0.0.1", .reuse_port = true});
  std::atomic<int> served_first{0}, served_second{0};
  auto counting_echo = [](std::atomic<int>& served) {
    return [&served](Socket s) -> coronet::awaitable<void> {
      ++served;
      co_await test::echo(std::move(s));
    };
  };
  asio::co_spawn(first_io, first.serve(counting_echo(served_first)), asio::detached);
  asio::co_spawn(second_io, second.serve(counting_echo(served_second)), asio::detached);
  std::thread t1([&] { first_io.run_for(30s); });
  std::thread t2([&] { second_io.run_for(30s); });

  constexpr int clients = 32;
  test::run([&]() -> coronet::awaitable<void> {
    for (int i = 0; i < clients; ++i) {
      Socket c = co_await coronet::connect(port, "127.0.0.1");
      co_await c.end("ping " + std::to_string(i));
      CHECK(co_await test::read_all(c) == "ping " + std::to_string(i));
    }
  });
  asio::post(first_io, [&] { first.close(); });
  asio::post(second_io, [&] { second.close(); });
  t1.join();
  t2.join();
  CHECK(served_first + served_second == clients);
  // With 32 connections hashed over two listeners, one of them getting none would
  // mean SO_REUSEPORT was not in effect (odds 1 in 2^31 otherwise).
  CHECK(served_first > 0);
  CHECK(served_second > 0);
}
