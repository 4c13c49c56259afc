// Socket and server options as the kernel sees them, server limits, and the
// connect options (local address and port, family, Happy Eyeballs).
#include "support.hpp"

using namespace std::chrono_literals;
using coronet::Server;
using coronet::Socket;

namespace {

int get_option(Socket& s, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  ::getsockopt(s.native().native_handle(), level, name, &v, &len);
  return v;
}

/// A name that resolves to both loopback addresses, whatever /etc/hosts says.
std::vector<asio::ip::address> both_loopbacks(std::string_view) {
  return {asio::ip::make_address("::1"), asio::ip::make_address("127.0.0.1")};
}

}  // namespace

TEST_CASE("server no_delay and keep_alive reach every accepted socket") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(
        p, {.no_delay = true, .keep_alive = true, .keep_alive_initial_delay = 5s});
    CHECK(get_option(p.accepted, IPPROTO_TCP, TCP_NODELAY) == 1);
    CHECK(get_option(p.accepted, SOL_SOCKET, SO_KEEPALIVE) == 1);
    CHECK(get_option(p.accepted, IPPROTO_TCP, TCP_KEEPIDLE) == 5);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_NODELAY) == 0);  // the client chose nothing
  });
}

TEST_CASE("connect options no_delay and keep_alive apply at connect") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(
        p, {}, {.no_delay = true, .keep_alive = true, .keep_alive_initial_delay = 9s});
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_NODELAY) == 1);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPIDLE) == 9);
  });
}

TEST_CASE("keep-alive interval and count, and TCP_USER_TIMEOUT") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    p.client.set_keep_alive(true, 30s, 3s, 4).set_user_timeout(2500ms);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPIDLE) == 30);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPINTVL) == 3);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPCNT) == 4);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_USER_TIMEOUT) == 2500);
    p.client.set_keep_alive(false);
    CHECK(get_option(p.client, SOL_SOCKET, SO_KEEPALIVE) == 0);
    CHECK_THROWS_AS(p.client.set_keep_alive(true, 1s, 0s, 3), coronet::error);
  });
}

TEST_CASE("max_connections drops the extra connection and reports both ends") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server{{.max_connections = 1}};
    std::vector<coronet::DropInfo> drops;
    server.on_drop([&](const coronet::DropInfo& d) { drops.push_back(d); });
    const int port = co_await test::listen_loopback(server);
    Socket first = co_await coronet::connect(port, "127.0.0.1");
    Socket kept = co_await server.accept();

    bool second_accepted = false;
    Socket third_accepted;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          third_accepted = co_await server.accept();
          second_accepted = true;
        },
        asio::detached);
    Socket second = co_await coronet::connect(port, "127.0.0.1");
    const int second_port = second.local_port();  // read while open (Node forgets it after close)
    // The client's connect succeeds, then it sees FIN with no data, as with Node.
    CHECK(co_await test::read_all(second) == "");
    REQUIRE(drops.size() == 1);
    CHECK(drops[0].local.port == port);
    CHECK(drops[0].remote.port == second_port);
    CHECK(drops[0].remote.address == "127.0.0.1");
    CHECK_FALSE(second_accepted);

    // Closing one connection frees a slot.
    kept.destroy();
    Socket third = co_await coronet::connect(port, "127.0.0.1");
    co_await test::settle([&] { return second_accepted; });
    CHECK(second_accepted);
    CHECK(third_accepted.remote_port() == third.local_port());
  });
}

TEST_CASE("local_address and local_port choose the source of a connection") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server, "127.0.0.1");
    // A free port to bind the client to: ask the kernel for one.
    asio::ip::tcp::acceptor probe(co_await asio::this_coro::executor,
                                  {asio::ip::make_address("127.0.0.2"), 0});
    const int local_port = probe.local_endpoint().port();
    probe.close();
    Socket c = co_await coronet::connect({.host = "127.0.0.1",
                                          .port = port,
                                          .local_address = "127.0.0.2",
                                          .local_port = local_port});
    Socket s = co_await server.accept();
    CHECK(s.remote_address() == "127.0.0.2");
    CHECK(s.remote_port() == local_port);
    auto e = co_await test::expect_error(
        coronet::connect({.host = "127.0.0.1", .port = port, .local_address = "not-an-ip"}));
    CHECK(e.code() == coronet::errc::bad_address);
  });
}

TEST_CASE("family 4 or 6 picks which of a name's addresses to use") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server, "::");  // dual-stack
    Socket v4 = co_await coronet::connect(
        {.host = "dual.test", .port = port, .family = 4, .lookup = both_loopbacks});
    CHECK(v4.remote_family() == "IPv4");
    Socket v6 = co_await coronet::connect(
        {.host = "dual.test", .port = port, .family = 6, .lookup = both_loopbacks});
    CHECK(v6.remote_family() == "IPv6");
  });
}

TEST_CASE("Happy Eyeballs: a black-holed IPv6 address does not stall the IPv4 one") {
  // ::1 swallows SYNs on this port; 127.0.0.1 has a real server on the same port.
  test::blackhole hole("::1");
  test::run(
      [&]() -> coronet::awaitable<void> {
        Server server;
        co_await server.listen(hole.port(), "127.0.0.1");
        // A serial connect (Node without its 250 ms abort) would wait minutes on ::1.
        Socket s = co_await coronet::connect({.host = "dual.test",
                                              .port = hole.port(),
                                              .attempt_delay = 50ms,
                                              .lookup = both_loopbacks});
        CHECK(s.remote_address() == "127.0.0.1");
        Socket accepted = co_await server.accept();
        co_await s.end("through IPv4");
        CHECK(co_await test::read_all(accepted) == "through IPv4");
      },
      20s);
}

TEST_CASE("when every address fails, the error lists every attempt") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    server.close();
    auto e = co_await test::expect_error(
        coronet::connect({.host = "dual.test", .port = port, .lookup = both_loopbacks}));
    const std::string p = std::to_string(port);
    CHECK(e.code() == std::errc::connection_refused);
    CHECK(std::string(e.what()) ==
          "connect ECONNREFUSED ::1:" + p + "; connect ECONNREFUSED 127.0.0.1:" + p);
  });
}

namespace {

/// A name whose two addresses are both 127.0.0.1: two attempts race for one target.
std::vector<asio::ip::address> loopback_twice(std::string_view) {
  return {asio::ip::make_address("127.0.0.1"), asio::ip::make_address("127.0.0.1")};
}

}  // namespace

TEST_CASE("destroying the io_context while connect() waits frees nothing twice and leaks nothing") {
  // A program stopped with Ctrl-C while it connects to a black hole: its io_context
  // goes away with every connect() still waiting on the kernel, and the coroutine
  // frames go in whatever order Asio destroys them. (ASan reported a heap use after
  // free here when the race pointed into its attempts' frames.)
  test::blackhole hole;
  const int descriptors_before = test::open_descriptors();
  int finished = 0;
  {
    asio::io_context io{1};
    auto count_finished = [&](std::exception_ptr, Socket) { ++finished; };
    asio::co_spawn(io, coronet::connect(hole.port(), "127.0.0.1"), count_finished);
    asio::co_spawn(io, coronet::connect({.host = "127.0.0.1", .port = hole.port(), .timeout = 1h}),
                   count_finished);
    asio::co_spawn(io,
                   coronet::connect({.host = "twice.test",
                                     .port = hole.port(),
                                     .attempt_delay = 0ms,
                                     .lookup = loopback_twice}),
                   count_finished);
    // Run what is ready until nothing is: then every attempt waits on a SYN that
    // the full backlog drops.
    for (int i = 0; i < 1000 && io.poll() > 0; ++i) {
    }
    CHECK(finished == 0);
    // Four attempts (the last connect races two), plus the io_context's own three.
    CHECK(test::open_descriptors() >= descriptors_before + 4);
  }
  CHECK(finished == 0);
  CHECK(test::open_descriptors() == descriptors_before);  // every attempt's socket was closed
}

namespace {

/// What `set` threw; fails the test when it threw nothing.
template <typename Setter>
coronet::error thrown_by(Setter set) {
  try {
    set();
  } catch (const coronet::error& e) {
    return e;
  }
  FAIL("expected a coronet::error");
  return coronet::error(coronet::errc::invalid_argument);
}

}  // namespace

TEST_CASE("option setters refuse what the kernel would truncate, naming the value") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    p.client.set_keep_alive(true, 30s).set_user_timeout(2500ms);

    // 2^32 + 100 ms once reached the kernel as 100 ms, and 2^32 + 10 s as 10 s.
    auto e = thrown_by([&] { p.client.set_user_timeout(4294967396ms); });
    CHECK(e.code() == coronet::errc::out_of_range);
    CHECK(std::string(e.what()) ==
          "The value of \"user_timeout\" is out of range. It must be >= 0 && <= 2147483647 "
          "(milliseconds). Received 4_294_967_396");
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_USER_TIMEOUT) == 2500);  // untouched
    e = thrown_by([&] { p.client.set_keep_alive(true, 4294967306s); });
    CHECK(e.code() == coronet::errc::out_of_range);
    CHECK(std::string(e.what()) ==
          "The value of \"initial_delay\" is out of range. It must be >= 0 && <= 32767 "
          "(seconds). Received 4_294_967_306");
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPIDLE) == 30);

    CHECK(std::string(thrown_by([&] { p.client.set_keep_alive(true, 40000s); }).what()) ==
          "The value of \"initial_delay\" is out of range. It must be >= 0 && <= 32767 "
          "(seconds). Received 40000");
    CHECK(std::string(thrown_by([&] { p.client.set_keep_alive(true, -1s); }).what())
              .ends_with("Received -1"));
    CHECK(std::string(thrown_by([&] { p.client.set_keep_alive(true, 1s, 0s, 3); }).what()) ==
          "The value of \"interval\" is out of range. It must be >= 1 && <= 32767 (seconds). "
          "Received 0");
    CHECK(std::string(thrown_by([&] { p.client.set_keep_alive(true, 1s, 1s, 128); }).what()) ==
          "The value of \"count\" is out of range. It must be >= 1 && <= 127 (probes). "
          "Received 128");
    CHECK(std::string(thrown_by([&] { p.client.set_user_timeout(-1ms); }).what())
              .ends_with("Received -1"));
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPIDLE) == 30);  // nothing half-set

    // The limits themselves are what the kernel keeps.
    p.client.set_keep_alive(true, Socket::max_keep_alive_delay, Socket::max_keep_alive_delay,
                            Socket::max_keep_alive_probes);
    p.client.set_user_timeout(Socket::max_user_timeout);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPIDLE) == 32767);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPINTVL) == 32767);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_KEEPCNT) == 127);
    CHECK(get_option(p.client, IPPROTO_TCP, TCP_USER_TIMEOUT) == 2147483647);
  });
}

TEST_CASE("connect() refuses a keep-alive delay the kernel would refuse, before connecting") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    auto e = co_await test::expect_error(coronet::connect({.host = "127.0.0.1",
                                                           .port = port,
                                                           .keep_alive = true,
                                                           .keep_alive_initial_delay = 40000s}));
    CHECK(e.code() == coronet::errc::out_of_range);
    CHECK(std::string(e.what()) ==
          "The value of \"options.keep_alive_initial_delay\" is out of range. It must be >= 0 && "
          "<= 32767 (seconds). Received 40000");
  });
}

TEST_CASE("connect() with a timeout longer than the clock counts connects (it never passes)") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    // milliseconds::max() as the timer's nanoseconds wrapped into the past and timed
    // out at once.
    Socket client = co_await coronet::connect(
        {.host = "127.0.0.1", .port = port, .timeout = std::chrono::milliseconds::max()});
    Socket accepted = co_await server.accept();
    CHECK(client.ready_state() == "open");
    CHECK(accepted.remote_port() == client.local_port());
    CHECK(client.timeout() == std::chrono::milliseconds::max());  // then the idle timeout
  });
}

TEST_CASE("max_connections drops at once while nothing waits in accept(), and takes nothing else") {
  test::run([]() -> coronet::awaitable<void> {
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    Server server{{.max_connections = 1}};
    std::vector<coronet::DropInfo> drops;
    server.on_drop([&](const coronet::DropInfo& d) { drops.push_back(d); });
    const int port = co_await test::listen_loopback(server);
    Socket first = co_await coronet::connect(port, "127.0.0.1");
    Socket kept = co_await server.accept();

    // A manual accept loop busy with `kept`: nothing waits in accept(). The extra
    // client used to sit in the backlog, connected and silent, until the next accept().
    Socket second = co_await coronet::connect(port, "127.0.0.1");
    const int second_port = second.local_port();
    second.set_timeout(5s);
    CHECK(co_await test::read_all(second) == "");
    REQUIRE(drops.size() == 1);
    CHECK(drops[0].remote.port == second_port);

    // Below the limit, a new connection waits for the accept() the program calls
    // later, however long the server's loop runs first: nothing takes it to drop it.
    kept.destroy();
    Socket third = co_await coronet::connect(port, "127.0.0.1");
    co_await third.write("hello");
    co_await test::settle([] { return false; }, 200);
    asio::steady_timer deadline(ex, 5s);
    auto accepted = co_await (server.accept() || deadline.async_wait(asio::use_awaitable));
    REQUIRE(accepted.index() == 0);
    Socket& third_accepted = std::get<0>(accepted);
    CHECK(third_accepted.remote_port() == third.local_port());
    CHECK(*(co_await third_accepted.read()) == "hello");
    CHECK(drops.size() == 1);
  });
}

TEST_CASE("max_connections with serve(): the extra client is dropped, the served one goes on") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server{{.max_connections = 1}};
    int drops = 0;
    server.on_drop([&](const coronet::DropInfo&) { ++drops; });
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);

    Socket served = co_await coronet::connect(port, "127.0.0.1");
    co_await served.write("one");
    CHECK(*(co_await served.read()) == "one");
    Socket extra = co_await coronet::connect(port, "127.0.0.1");
    extra.set_timeout(5s);
    CHECK(co_await test::read_all(extra) == "");
    CHECK(drops == 1);
    co_await served.end("two");
    CHECK(co_await test::read_all(served) == "two");

    // Once the served connection has closed, the next one is served.
    co_await test::settle([&] { return server.connections() == 0; });
    Socket next = co_await coronet::connect(port, "127.0.0.1");
    next.set_timeout(5s);
    co_await next.end("three");
    CHECK(co_await test::read_all(next) == "three");
    CHECK(drops == 1);
  });
}
