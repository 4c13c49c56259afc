// coronet::testing: the helpers users test their own handlers with. A pair in one
// call (TCP and Unix-domain), and a Peer that trickles, half-closes, resets and
// stalls on command, each checked by what a handler on the other end sees.
#include "support.hpp"

#include <coronet/testing.hpp>

#include <string>

namespace testing_test {

using coronet::Socket;

/// What a handler under test saw: the bytes, in how many reads, and how it ended.
struct seen {
  std::string bytes;
  int reads = 0;
  bool fin = false;
  std::string failure;
  bool done = false;
};

/// Reads until FIN or an error, recording each step.
inline coronet::awaitable<void> record(Socket& socket, seen& log) {
  try {
    while (auto chunk = co_await socket.read()) {
      log.bytes += *chunk;
      ++log.reads;
    }
    log.fin = true;
  } catch (const coronet::error& e) {
    log.failure = e.what();
  }
  log.done = true;
}

/// A 64 KiB piece of a stream whose bytes say where they are, so a lost or
/// repeated piece shows.
inline std::string piece(std::size_t index) {
  return std::string(64 * 1024, static_cast<char>('a' + index % 26));
}

/// write_nowait() until the socket reports backpressure (at most `limit` pieces);
/// returns how many pieces it queued, or -1 if it never pushed back.
inline int fill_until_refused(Socket& socket, std::string& sent, int limit = 1024) {
  for (int i = 0; i < limit; ++i) {
    const std::string p = piece(sent.size() / (64 * 1024));
    sent += p;
    if (!socket.write_nowait(p)) return i + 1;
  }
  return -1;
}

}  // namespace testing_test

using namespace std::chrono_literals;

TEST_CASE("testing: socket_pair() connects two TCP ends over 127.0.0.1 in one call") {
  test::run([]() -> coronet::awaitable<void> {
    auto [a, b] = co_await coronet::testing::socket_pair();
    CHECK(a.remote_address() == "127.0.0.1");
    CHECK(a.remote_port() == b.local_port());
    CHECK(b.remote_port() == a.local_port());
    CHECK_FALSE(a.is_unix_domain());
    co_await a.write("to b");
    CHECK(co_await b.read_exactly(4) == "to b");
    co_await b.write("to a");
    CHECK(co_await a.read_exactly(4) == "to a");

    // Node's default: the end that receives FIN ends too.
    co_await a.end();
    CHECK_FALSE(co_await b.read());
    CHECK_FALSE(co_await a.read());
  });
}

TEST_CASE("testing: unix_socket_pair() gives Unix-domain ends; pairs never clash") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::testing::PairOptions half_open;
    half_open.allow_half_open = true;
    auto [a, b] = co_await coronet::testing::unix_socket_pair(half_open);
    auto [c, d] = co_await coronet::testing::unix_socket_pair();
    CHECK(a.is_unix_domain());
    CHECK(d.is_unix_domain());
    co_await a.write("one");
    co_await c.write("two");
    CHECK(co_await b.read_exactly(3) == "one");
    CHECK(co_await d.read_exactly(3) == "two");

    co_await a.end();  // half-open: b reads the end, then still writes
    CHECK_FALSE(co_await b.read());
    co_await b.write("after FIN");
    CHECK(co_await a.read_exactly(9) == "after FIN");
  });
}

TEST_CASE("testing: a trickling peer sends one byte per segment; the handler still frames lines") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto [socket, peer] = co_await coronet::testing::peer_pair();
    testing_test::seen log;
    asio::co_spawn(ex, testing_test::record(socket, log), asio::detached);
    co_await peer.trickle("hello, world\n");
    peer.half_close();
    co_await test::settle([&] { return log.done; });
    REQUIRE(log.done);
    CHECK(log.bytes == "hello, world\n");
    CHECK(log.fin);
    CHECK(log.reads > 1);  // split reads, which a handler that assumes whole lines fails on
  });
}

TEST_CASE("testing: a peer's half_close() is the end of the stream; it still receives") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::testing::PeerOptions options;
    options.allow_half_open = true;
    auto [socket, peer] = co_await coronet::testing::peer_pair(options);
    co_await peer.send("request");
    peer.half_close();
    CHECK(co_await test::read_all(socket) == "request");
    co_await socket.write("reply after your FIN");
    co_await socket.end();
    CHECK(co_await peer.receive_all() == "reply after your FIN");
  });
}

TEST_CASE("testing: a peer's reset() fails the handler's read with ECONNRESET") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto [socket, peer] = co_await coronet::testing::peer_pair();
    testing_test::seen log;
    asio::co_spawn(ex, testing_test::record(socket, log), asio::detached);
    co_await peer.send("partial req");
    co_await test::settle([&] { return log.bytes.size() == 11; });
    peer.reset();
    co_await test::settle([&] { return log.done; });
    REQUIRE(log.done);
    CHECK(log.bytes == "partial req");
    CHECK_FALSE(log.fin);
    CHECK(log.failure == "read ECONNRESET");
    CHECK(socket.destroyed());
  });
}

TEST_CASE("testing: reset() on a Unix-domain peer is a clear error (no RST there)") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::testing::PeerOptions options;
    options.unix_domain = true;
    auto [socket, peer] = co_await coronet::testing::peer_pair(options);
    CHECK(socket.is_unix_domain());
    CHECK_THROWS_AS(peer.reset(), coronet::error);
    co_await peer.send("still connected");
    CHECK(co_await socket.read_exactly(15) == "still connected");
  });
}

TEST_CASE("testing: a stalled peer pushes back on writes; drain() and stall() switch it") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::testing::PeerOptions options;
    options.receive_buffer = 4096;  // the stall shows after a few hundred KiB, not megabytes
    // Named members, not a structured binding: clang 14 cannot capture one in a lambda.
    auto pair = co_await coronet::testing::peer_pair(options);
    auto& socket = pair.socket;
    auto& peer = pair.peer;
    std::string sent;

    // Stalled (a new peer reads nothing): the kernel's buffers fill, then the queue.
    REQUIRE(testing_test::fill_until_refused(socket, sent) > 0);
    CHECK(socket.writable_length() > 0);
    CHECK(peer.received() == 0);

    // Draining in the background, the queue empties.
    peer.drain();
    co_await socket.drain();
    CHECK(socket.writable_length() == 0);

    // Stalled again: writes push back again.
    peer.stall();
    REQUIRE(testing_test::fill_until_refused(socket, sent) > 0);
    asio::co_spawn(
        ex,
        [&socket]() -> coronet::awaitable<void> {
          co_await socket.drain();
          co_await socket.end();
        },
        asio::detached);
    const std::string rest = co_await peer.receive_all();
    CHECK(peer.received() == sent.size());  // drained and received: every byte once
    CHECK(peer.received() == socket.bytes_written());
    REQUIRE(rest.size() <= sent.size());
    const bool in_order = rest == std::string_view(sent).substr(sent.size() - rest.size());
    CHECK(in_order);
  });
}

TEST_CASE("testing: Peer::connect() aims a scripted client at your own server") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);
    auto peer = co_await coronet::testing::Peer::connect(port);
    co_await peer.trickle("abc");
    CHECK(co_await peer.receive_exactly(3) == "abc");
    peer.half_close();
    CHECK_FALSE(co_await peer.receive());  // the echo ended after our FIN
    server.close();
    co_await server.wait_closed();
  });
}

TEST_CASE("testing: Peer::connect() to a closed port names it; drain() meets the end") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    server.close();
    auto failed = co_await test::expect_error(coronet::testing::Peer::connect(port));
    CHECK(failed.code() == std::errc::connection_refused);

    // Named members, not a structured binding: clang 14 cannot capture one in a lambda.
    auto pair = co_await coronet::testing::peer_pair();
    auto& socket = pair.socket;
    auto& peer = pair.peer;
    peer.drain();
    co_await socket.write("bye");
    co_await socket.end();
    co_await test::settle([&] { return peer.saw_end(); });
    CHECK(peer.saw_end());
    CHECK(peer.received() == 3);
  });
}
