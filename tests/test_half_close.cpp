// Half-close: end() sends FIN and reading goes on; the peer's FIN ends our side
// automatically unless allow_half_open; ready_state follows Node's names.
#include "child_process.hpp"
#include "support.hpp"

using coronet::Server;
using coronet::Socket;

TEST_CASE("allow_half_open: the server keeps writing after the client's FIN") {
  test::run([]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    co_await client.end("request");
    CHECK(client.ready_state() == "readOnly");  // we ended, we still read

    CHECK(co_await test::read_all(accepted) == "request");
    CHECK(accepted.ready_state() == "writeOnly");  // the peer ended, we still write

    // Nothing automatic happened: the server answers after seeing FIN.
    co_await accepted.write("response part 1, ");
    co_await accepted.end("part 2");
    CHECK(accepted.ready_state() == "closed");
    CHECK(co_await test::read_all(client) == "response part 1, part 2");
    CHECK(client.ready_state() == "closed");
    CHECK(server.connections() == 0);  // both directions ended: the descriptor is closed
  });
}

TEST_CASE("allow_half_open false: the peer's FIN ends our side after queued writes") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;  // Node's default
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();

    // Bytes the server queued before seeing FIN still reach the client.
    // More than the kernel takes at once (loopback autotunes up to 4 MiB of send
    // buffer plus 32 MiB of receive buffer here), so some of it is still queued.
    const std::string reply = test::random_bytes(48 << 20, 99);
    CHECK_FALSE(accepted.write_nowait(reply));
    co_await client.end();
    CHECK_FALSE(co_await accepted.read());  // FIN
    // As in Node's 'end' handler, the socket is still writable until the code that
    // saw FIN suspends: a reply written now leaves before the automatic FIN.
    CHECK(accepted.ready_state() == "writeOnly");
    accepted.write_nowait(" and a reply after FIN");
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    CHECK(accepted.ready_state() == "closed");  // the automatic end() is queued now

    auto e = co_await test::expect_error(accepted.write("too late"));
    CHECK(e.code() == coronet::errc::ended_by_peer);
    CHECK(std::string(e.what()) == "This socket has been ended by the other party");

    std::string got = co_await test::read_all(client);  // ends with the server's FIN
    CHECK(got.size() == reply.size() + 22);
    CHECK(test::checksum(got) == test::checksum(reply + " and a reply after FIN"));
    co_await accepted.end();  // a later end() is harmless: it waits for the same FIN
  });
}

TEST_CASE("a client with allow_half_open false answers the server's FIN with its own") {
  test::run([]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect({.host = "127.0.0.1", .port = port});
    Socket accepted = co_await server.accept();
    co_await accepted.end("bye");
    CHECK(co_await test::read_all(client) == "bye");
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    CHECK(client.ready_state() == "closed");         // its automatic end ran when it suspended
    CHECK(co_await test::read_all(accepted) == "");  // the client's automatic FIN
  });
}

TEST_CASE("reading goes on after our own end()") {
  test::run([]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client =
        co_await coronet::connect({.host = "127.0.0.1", .port = port, .allow_half_open = true});
    Socket accepted = co_await server.accept();
    co_await client.end();
    CHECK_FALSE(co_await accepted.read());
    const std::string big = test::random_bytes(1 << 20, 3);
    co_await accepted.write(big);
    co_await accepted.end();
    std::string got = co_await test::read_all(client);
    CHECK(test::checksum(got) == test::checksum(big));
  });
}

TEST_CASE("end() twice waits for the same FIN; end(data) after end is write after end") {
  test::run([]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    Socket client = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    co_await client.end();
    co_await client.end();
    auto e = co_await test::expect_error(client.end("more"));
    CHECK(e.code() == coronet::errc::write_after_end);
    CHECK(co_await test::read_all(accepted) == "");
  });
}

TEST_CASE("a reply written right after the peer's FIN reaches it before our FIN (Node's 'end')") {
  // allow_half_open false, Node's default: Node runs its automatic end() after the
  // 'end' handlers, so a server can still answer a client that half-closed after
  // its request. Ours runs when the code that saw FIN next suspends or returns.
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p, {}, {.allow_half_open = true});
    co_await p.client.end("request");
    std::string request;
    while (auto chunk = co_await p.accepted.read()) request += *chunk;
    CHECK(request == "request");
    co_await p.accepted.write("reply to ");                          // goes straight to the kernel
    p.accepted.write_nowait(request);                                // and so does this
    CHECK(co_await test::read_all(p.client) == "reply to request");  // then our FIN
  });
}

TEST_CASE("nc -N sends a request and half-closes; the reply written after its FIN reaches it") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::Server server;  // allow_half_open false
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          Socket s = co_await server.accept();
          std::string request;
          while (auto chunk = co_await s.read()) request += *chunk;
          co_await s.write("you said: " + request);
        },
        asio::detached);
    test::child_process nc(
        ex, {"/bin/sh", "-c", "printf 'hello\\n' | nc -N 127.0.0.1 " + std::to_string(port)});
    auto lines = co_await nc.all_lines();
    CHECK(nc.wait() == 0);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0] == "you said: hello");
  });
}
