// Node.js as the real peer: a Node client against a coronet server, and a coronet
// client against a Node server. If these pass, coronet speaks TCP the way Node does.
#include "child_process.hpp"
#include "support.hpp"

using coronet::Server;
using coronet::Socket;
using test::child_process;

namespace {

/// Skips (with the reason printed) when the build found no node.
#define REQUIRE_NODE()                                           \
  auto node = test::node_path();                                 \
  if (!node) {                                                   \
    MESSAGE("skipped: node not found (apt-get install nodejs)"); \
    return;                                                      \
  }

std::string peer_script() { return test::source_path("tests/node/peer.js"); }

/// The bytes peer.js sends in bulk mode.
std::string node_bulk(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((static_cast<std::uint32_t>(i) * 2654435761u) >> 24);
  }
  return s;
}

/// Starts `node peer.js server MODE` and returns the port it listens on.
coronet::awaitable<int> start_node_server(child_process& node) {
  auto first = co_await node.line();
  REQUIRE(first.has_value());
  REQUIRE(first->starts_with("listening "));
  co_return std::stoi(first->substr(10));
}

}  // namespace

TEST_CASE("a Node client half-closes; the coronet server answers after its FIN") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server{{.allow_half_open = true}};
    const int port = co_await test::listen_loopback(server);
    child_process client(ex, {*node, peer_script(), "client", std::to_string(port), "half-close"});
    Socket s = co_await server.accept();
    std::string request = co_await test::read_all(s);  // until Node's end()
    CHECK(request == "ping");
    CHECK(s.ready_state() == "writeOnly");
    co_await s.end("pong:" + request);
    auto lines = co_await client.all_lines();
    CHECK(lines == std::vector<std::string>{"data: pong:ping", "end", "close"});
    CHECK(client.wait() == 0);
  });
}

TEST_CASE("a Node client's FIN ends a default coronet socket automatically") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;  // allow_half_open false
    const int port = co_await test::listen_loopback(server);
    child_process client(ex, {*node, peer_script(), "client", std::to_string(port), "half-close"});
    Socket s = co_await server.accept();
    CHECK(co_await test::read_all(s) == "ping");
    // Nothing more from us: the automatic end() is what Node sees.
    auto lines = co_await client.all_lines();
    CHECK(lines == std::vector<std::string>{"data: ", "end", "close"});
  });
}

TEST_CASE("10 MiB from a Node client through a coronet echo server, checksummed by Node") {
  REQUIRE_NODE();
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        Server server{{.allow_half_open = true}};
        const int port = co_await test::listen_loopback(server);
        asio::co_spawn(ex, server.serve(test::echo), asio::detached);
        child_process client(ex, {*node, peer_script(), "client", std::to_string(port), "bulk"});
        auto lines = co_await client.all_lines();
        REQUIRE(lines.size() == 4);
        CHECK(lines[0].starts_with("sent 10485760 "));
        CHECK(lines[1] == "echoed " + lines[0].substr(5));  // same length, same sha256
        CHECK(lines[2] == "end");
      },
      std::chrono::seconds(60));
}

TEST_CASE("a coronet client sends 10 MiB through a Node echo server") {
  REQUIRE_NODE();
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        child_process server(ex, {*node, peer_script(), "server", "echo"});
        const int port = co_await start_node_server(server);
        Socket s =
            co_await coronet::connect({.host = "127.0.0.1", .port = port, .allow_half_open = true});
        const std::string payload = test::random_bytes(10 << 20, 42);
        asio::co_spawn(
            ex, [&]() -> coronet::awaitable<void> { co_await s.end(payload); }, asio::detached);
        std::string back = co_await test::read_all(s);
        CHECK(back.size() == payload.size());
        CHECK(test::checksum(back) == test::checksum(payload));
        CHECK(co_await server.line() == std::optional<std::string>("closed"));
      },
      std::chrono::seconds(60));
}

TEST_CASE("a Node server ends first; the coronet client reads, then answers and ends") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    child_process server(ex, {*node, peer_script(), "server", "end-first"});
    const int port = co_await start_node_server(server);
    Socket s =
        co_await coronet::connect({.host = "127.0.0.1", .port = port, .allow_half_open = true});
    CHECK(co_await test::read_all(s) == "hello from node");
    CHECK(s.ready_state() == "writeOnly");
    co_await s.end("bye from coronet");
    auto lines = co_await server.all_lines();
    CHECK(lines == std::vector<std::string>{"received: bye from coronet", "closed"});
  });
}

TEST_CASE("pause_on_connect with a Node client: nothing is read until resume()") {
  REQUIRE_NODE();
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        Server server{{.pause_on_connect = true}};
        const int port = co_await test::listen_loopback(server);
        child_process client(
            ex, {*node, peer_script(), "client", std::to_string(port), "send-and-wait"});
        Socket s = co_await server.accept();
        // Node's write callback fires once the kernel holds all 1 MiB; we have read nothing.
        auto written = co_await client.line();
        REQUIRE(written.has_value());
        CHECK(written->starts_with("written 1048576 "));
        CHECK(s.is_paused());
        CHECK(s.bytes_read() == 0);
        s.resume();
        std::string got = co_await test::read_all(s);
        CHECK(got == node_bulk(1 << 20));
        CHECK(s.bytes_read() == 1u << 20);
      },
      std::chrono::seconds(60));
}
