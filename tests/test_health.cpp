// Connection health: socket.info() from TCP_INFO on real loopback connections, and
// server.stats() over open and closed connections.
#include "support.hpp"

#include <coronet/testing.hpp>

#include <string>

namespace health_test {

using namespace std::chrono_literals;
using coronet::Socket;

/// `bytes` from `from` to `to` and `reply` back, each read whole: after it, the
/// ACK of `bytes` has reached `from` (it rode on the reply).
inline coronet::awaitable<void> exchange(Socket& from, Socket& to, std::string bytes,
                                         std::string reply) {
  co_await from.write(bytes);
  CHECK(co_await to.read_exactly(bytes.size()) == bytes);
  co_await to.write(reply);
  CHECK(co_await from.read_exactly(reply.size()) == reply);
}

}  // namespace health_test

using namespace std::chrono_literals;

TEST_CASE("info(): a loopback connection is ESTABLISHED, with a round trip measured, no loss") {
  test::run([]() -> coronet::awaitable<void> {
    auto [client, server_end] = co_await coronet::testing::socket_pair();
    co_await health_test::exchange(client, server_end, "ping", "pong");

    const auto info = client.info();
    REQUIRE(info.has_value());
    CHECK(info->state == coronet::TcpState::established);
    CHECK(coronet::to_string(info->state) == "ESTABLISHED");
    CHECK(info->rtt > 0us);
    CHECK(info->rtt < 1s);
    CHECK(info->rtt_var < 1s);
    CHECK(info->min_rtt <= info->rtt + info->rtt_var);
    CHECK(info->rto >= info->rtt);
    CHECK(info->congestion_window > 0);
    CHECK(info->mss > 0);
    CHECK(info->retransmits == 0);
    CHECK(info->lost == 0);
    CHECK(info->unacked == 0);  // the pong acknowledged the ping
    CHECK(info->bytes_received == 4);
    CHECK(info->bytes_acked == 1 + 4);  // the kernel counts our SYN as a byte
    CHECK(info->bytes_sent == 4);
    CHECK(info->peer_window > 0);
    CHECK(server_end.info()->bytes_received == 4);
  });
}

TEST_CASE("info(): bytes_acked and the delivery rate follow what the peer acknowledged") {
  test::run([]() -> coronet::awaitable<void> {
    auto [client, server_end] = co_await coronet::testing::socket_pair();
    co_await health_test::exchange(client, server_end, "hello", "ok");
    const auto before = client.info();
    REQUIRE(before.has_value());

    const std::string bulk(100 * 1000, 'x');
    co_await health_test::exchange(client, server_end, bulk, "done");
    const auto after = client.info();
    REQUIRE(after.has_value());
    CHECK(after->bytes_acked == before->bytes_acked + bulk.size());
    CHECK(after->bytes_sent == client.bytes_written());  // nothing sent twice
    CHECK(after->not_sent_bytes == 0);
    CHECK(after->delivery_rate > 0);  // bytes per second
    CHECK(after->retransmits == 0);
    CHECK(server_end.info()->bytes_received == 5 + bulk.size());
  });
}

TEST_CASE("info(): half-closed ends report FIN_WAIT and CLOSE_WAIT, then nullopt once closed") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::testing::PairOptions half_open;
    half_open.allow_half_open = true;
    auto [client, server_end] = co_await coronet::testing::socket_pair(half_open);
    co_await client.end();
    CHECK_FALSE(co_await server_end.read());  // the FIN arrived
    CHECK(coronet::to_string(server_end.info()->state) == "CLOSE_WAIT");
    // FIN_WAIT1 until the peer's ACK of our FIN (which it may delay) arrives.
    CHECK(coronet::to_string(client.info()->state).starts_with("FIN_WAIT"));

    co_await server_end.end();
    CHECK_FALSE(co_await client.read());
    CHECK_FALSE(client.info().has_value());  // ended both ways: closed
    CHECK_FALSE(server_end.info().has_value());
  });
}

TEST_CASE("info() is nullopt on a Unix-domain, destroyed or empty socket, never an error") {
  test::run([]() -> coronet::awaitable<void> {
    auto [a, b] = co_await coronet::testing::unix_socket_pair();
    CHECK(a.is_unix_domain());
    CHECK_FALSE(a.info().has_value());
    CHECK_FALSE(b.info().has_value());

    auto [c, d] = co_await coronet::testing::socket_pair();
    REQUIRE(c.info().has_value());
    c.destroy();
    CHECK_FALSE(c.info().has_value());
    coronet::Socket empty;
    CHECK_FALSE(empty.info().has_value());
    CHECK_FALSE(coronet::read_tcp_info(-1).has_value());
  });
}

TEST_CASE("stats(): accepted, dropped, active and bytes over open and closed connections") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server{{.max_connections = 2}};
    CHECK(server.stats().accepted == 0);  // not listening yet: all zero
    const int port = co_await test::listen_loopback(server);

    coronet::Socket a = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket a_end = co_await server.accept();
    coronet::Socket b = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket b_end = co_await server.accept();
    co_await health_test::exchange(a, a_end, "hello", "hi there");  // server: 5 in, 8 out
    co_await health_test::exchange(b, b_end, "0123456789", "ok");   // server: 10 in, 2 out

    auto stats = server.stats();
    CHECK(stats.accepted == 2);
    CHECK(stats.active == 2);
    CHECK(stats.dropped == 0);
    CHECK(stats.bytes_read == 15);
    CHECK(stats.bytes_written == 10);

    // A third is over max_connections: closed at once (it reads FIN) and counted.
    coronet::Socket c = co_await coronet::connect(port, "127.0.0.1");
    CHECK_FALSE(co_await c.read());
    stats = server.stats();
    CHECK(stats.dropped == 1);
    CHECK(stats.accepted == 2);

    // `a` closes both ways; its bytes stay in the totals.
    co_await a.end();
    CHECK_FALSE(co_await a_end.read());  // and a_end ends itself (allow_half_open false)
    CHECK_FALSE(co_await a.read());
    REQUIRE(a_end.destroyed());
    stats = server.stats();
    CHECK(stats.active == 1);
    CHECK(stats.bytes_read == 15);
    CHECK(stats.bytes_written == 10);

    // Room again: a fourth is accepted, and the live ones keep counting.
    coronet::Socket d = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket d_end = co_await server.accept();
    co_await health_test::exchange(d, d_end, "abc", "defg");
    co_await b_end.write("more");
    stats = server.stats();
    CHECK(stats.accepted == 3);
    CHECK(stats.active == 2);
    CHECK(stats.dropped == 1);
    CHECK(stats.bytes_read == 18);
    CHECK(stats.bytes_written == 18);
    CHECK(stats.active == server.connections());
  });
}

TEST_CASE("stats(): a destroyed connection's bytes are kept, and a socket outliving its server") {
  test::run([]() -> coronet::awaitable<void> {
    auto server = std::make_unique<coronet::Server>();
    const int port = co_await test::listen_loopback(*server);
    coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket accepted = co_await server->accept();
    co_await health_test::exchange(client, accepted, "request", "response!");
    accepted.destroy();
    auto stats = server->stats();
    CHECK(stats.active == 0);
    CHECK(stats.bytes_read == 7);
    CHECK(stats.bytes_written == 9);

    // The server goes first; the sockets it accepted close later, harmlessly.
    coronet::Socket late = co_await coronet::connect(port, "127.0.0.1");
    coronet::Socket late_end = co_await server->accept();
    server.reset();
    co_await late.write("x");
    CHECK(co_await late_end.read_exactly(1) == "x");
    late_end.destroy();
  });
}
