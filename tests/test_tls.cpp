// TLS: coronet's tls::Server and tls::connect() against each other, against Node's
// tls module and against openssl s_server / s_client, with certificates the
// fixture makes at test time (valid, expired, self-signed, untrusted, another name).
#include <coronet/tls.hpp>

#include "child_process.hpp"
#include "support.hpp"
#include "tls_fixture.hpp"

using coronet::Socket;
using test::certificates;
using test::child_process;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

const certificates& certs() { return certificates::get(); }

/// An operation started now, whose result is awaited later (co_spawn with
/// use_awaitable would not start it before it is awaited, and a handshake needs
/// both ends running).
template <typename T>
class started {
 public:
  started(asio::any_io_executor ex, coronet::awaitable<T> op)
      : state_(std::make_shared<state>(ex)) {
    asio::co_spawn(ex, std::move(op), [s = state_](std::exception_ptr e, T value) {
      s->failure = e;
      if (!e) s->value.emplace(std::move(value));
      s->done = true;
      s->signal.cancel();
    });
  }
  coronet::awaitable<T> get() {
    auto s = state_;
    while (!s->done) {
      s->signal.expires_at(asio::steady_timer::time_point::max());
      co_await s->signal.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    if (s->failure) std::rethrow_exception(s->failure);
    co_return std::move(*s->value);
  }
  bool done() const { return state_->done; }

 private:
  struct state {
    explicit state(asio::any_io_executor ex) : signal(ex) {}
    asio::steady_timer signal;
    std::optional<T> value;
    std::exception_ptr failure;
    bool done = false;
  };
  std::shared_ptr<state> state_;
};

template <typename T>
started<T> start(asio::any_io_executor ex, coronet::awaitable<T> op) {
  return started<T>(std::move(ex), std::move(op));
}

/// Accepts (and so hand-shakes) every connection in the background, dropping them.
void accept_forever(asio::any_io_executor ex, coronet::tls::Server& server) {
  asio::co_spawn(ex, server.serve([](Socket s) -> coronet::awaitable<void> { co_await s.read(); }),
                 asio::detached);
}

/// The server options every test starts from: localhost's certificate, signed by the test CA.
coronet::tls::Options server_identity() {
  return {.cert_file = certs().path("server.pem"), .key_file = certs().path("server.key")};
}

/// A client that trusts the test CA only. `ca` must outlive the connect() call.
coronet::tls::Options trusting(const std::string& ca) { return {.ca = ca}; }

coronet::awaitable<int> listen_tls(coronet::tls::Server& server) {
  co_await server.listen(0, "127.0.0.1");
  co_return server.address()->port;
}

struct tls_pair {
  coronet::tls::Server server;
  Socket client;
  Socket accepted;
};

/// A TLS connection on loopback between coronet's client and coronet's server.
coronet::awaitable<void> make_tls_pair(tls_pair& p, coronet::ServerOptions options = {},
                                       coronet::tls::Options server_tls = server_identity()) {
  p.server = coronet::tls::Server(options, server_tls);
  const int port = co_await listen_tls(p.server);
  const std::string ca = certs().text("ca.pem");
  auto ex = co_await asio::this_coro::executor;
  // The accept runs beside the connect: the handshake needs both.
  auto accepted = start(ex, p.server.accept());
  p.client = co_await coronet::tls::connect({.host = "localhost", .port = port}, trusting(ca));
  p.accepted = co_await accepted.get();
}

/// Expects connect() to fail; returns what it threw.
coronet::awaitable<coronet::error> connect_error(int port, coronet::tls::Options o,
                                                 std::string_view host = "localhost") {
  co_return co_await test::expect_error(coronet::tls::connect({.host = host, .port = port}, o));
}

#define REQUIRE_NODE()                                           \
  auto node = test::node_path();                                 \
  if (!node) {                                                   \
    MESSAGE("skipped: node not found (apt-get install nodejs)"); \
    return;                                                      \
  }

std::string tls_peer() { return test::source_path("tests/node/tls_peer.js"); }

coronet::awaitable<int> port_line(child_process& peer) {
  auto first = co_await peer.line();
  REQUIRE(first.has_value());
  REQUIRE_MESSAGE(first->starts_with("listening "), *first);
  co_return std::stoi(first->substr(10));
}

}  // namespace

// ------------------------------------------------------------ coronet with itself

TEST_CASE("tls: an echo over TLS, with what was negotiated on both sides") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p);
    co_await p.client.write("hello over tls");
    auto got = co_await p.accepted.read();
    REQUIRE(got);
    CHECK(*got == "hello over tls");
    co_await p.accepted.write("and back");
    CHECK(co_await p.client.read() == std::optional<std::string_view>("and back"));

    const coronet::TlsInfo* info = p.client.tls();
    REQUIRE(info != nullptr);
    CHECK(info->protocol == "TLSv1.3");
    CHECK(!info->cipher.empty());
    CHECK(info->authorized);
    CHECK(info->authorization_error.empty());
    CHECK(info->peer_subject == "CN=localhost");
    CHECK(info->peer_issuer == "CN=coronet test CA");
    CHECK(info->servername == "localhost");  // sent by default from a host name
    REQUIRE(p.accepted.tls() != nullptr);
    CHECK(p.accepted.tls()->servername == "localhost");
    CHECK(p.accepted.tls()->protocol == "TLSv1.3");
    // Counters count what the application moved, not the records.
    CHECK(p.client.bytes_written() == 14);
    CHECK(p.accepted.bytes_read() == 14);
  });
}

TEST_CASE("tls: a plain TCP socket has no TLS information") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    CHECK(p.client.tls() == nullptr);
    CHECK(p.accepted.tls() == nullptr);
  });
}

TEST_CASE("tls: end() sends close_notify, which the peer reads as the end of the stream") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p, {.allow_half_open = true});
    co_await p.client.end("last words");
    CHECK(co_await test::read_all(p.accepted) == "last words");
    // Half-closed: the other direction still works, and ends the same way.
    co_await p.accepted.write("reply after your end");
    co_await p.accepted.end();
    CHECK(co_await test::read_all(p.client) == "reply after your end");
    CHECK(p.client.ready_state() == "closed");
  });
}

TEST_CASE("tls: a FIN without close_notify after a whole record is the end, as in Node") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p);
    co_await p.client.write("whole record");
    // Below TLS: a FIN the TLS layer never announced (Node's TLSSocket emits 'end').
    p.client.native().shutdown(asio::socket_base::shutdown_send);
    CHECK(co_await test::read_all(p.accepted) == "whole record");
  });
}

TEST_CASE("tls: with require_close_notify, a FIN without close_notify is errc::tls_truncated") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    auto strict = server_identity();
    strict.require_close_notify = true;
    co_await make_tls_pair(p, {}, strict);
    co_await p.client.write("partial");
    p.client.native().shutdown(asio::socket_base::shutdown_send);
    CHECK(co_await p.accepted.read() == std::optional<std::string_view>("partial"));
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::tls_truncated);
    CHECK(std::string(e.what()).find("close_notify") != std::string::npos);
  });
}

TEST_CASE("tls: a FIN in the middle of a record is errc::tls_truncated, whatever the option") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p);
    co_await p.client.write("whole");
    // An application-data record header that promises 64 bytes, then 3 of them and FIN.
    const std::string_view cut(
        "\x17\x03\x03\x00\x40"
        "abc",
        8);
    asio::write(p.client.native(), asio::buffer(cut.data(), cut.size()));
    p.client.native().shutdown(asio::socket_base::shutdown_send);
    CHECK(co_await p.accepted.read() == std::optional<std::string_view>("whole"));
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::tls_truncated);
  });
}

TEST_CASE("tls: 8 MiB each way at once, read_some/read_exactly/read_line and byte counters") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p, {.allow_half_open = true});
    auto ex = co_await asio::this_coro::executor;
    const std::string data = test::random_bytes(8 << 20);
    // Both sides write before either reads: each write waits on the other's reads.
    // Named: the coroutines refer to their captures through these closures.
    auto client_sends = [&]() -> coronet::awaitable<bool> {
      co_await p.client.write(data);
      co_await p.client.end();
      co_return true;
    };
    auto server_sends = [&]() -> coronet::awaitable<bool> {
      for (std::size_t at = 0; at < data.size(); at += 100'000)
        p.accepted.write_nowait(std::string_view(data).substr(at, 100'000));
      co_await p.accepted.drain();
      co_await p.accepted.end("tail\nline two\n");
      co_return true;
    };
    auto send_client = start(ex, client_sends());
    auto send_server = start(ex, server_sends());
    std::string at_server;
    std::array<char, 70'000> buffer;
    while (std::size_t n = co_await p.accepted.read_some(asio::buffer(buffer)))
      at_server.append(buffer.data(), n);
    auto head = co_await p.client.read_exactly(data.size());
    REQUIRE(head);
    CHECK(test::checksum(*head) == test::checksum(data));
    CHECK(co_await p.client.read_line() == std::optional<std::string_view>("tail"));
    CHECK(co_await p.client.read_line() == std::optional<std::string_view>("line two"));
    CHECK(co_await p.client.read_line() == std::nullopt);
    CHECK(co_await send_client.get());
    CHECK(co_await send_server.get());
    CHECK(at_server.size() == data.size());
    CHECK(test::checksum(at_server) == test::checksum(data));
    CHECK(p.client.bytes_written() == data.size());
    CHECK(p.accepted.bytes_read() == data.size());
    CHECK(p.client.bytes_read() == data.size() + 14);
  });
}

TEST_CASE(
    "tls: pause() holds data back until resume(); an idle timeout fires and the socket stays") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p);
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    p.accepted.set_timeout(50ms);
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::timeout);
    p.accepted.set_timeout(0ms);
    p.accepted.pause();
    co_await p.client.write("held");
    asio::steady_timer t(ex, 50ms);
    auto first = co_await (p.accepted.read() || t.async_wait(asio::use_awaitable));
    CHECK(first.index() == 1);  // paused: the deadline won; nothing was lost
    p.accepted.resume();
    CHECK(co_await p.accepted.read() == std::optional<std::string_view>("held"));
  });
}

TEST_CASE("tls: a cancelled read loses no bytes; destroy() ends a waiting read") {
  test::run([]() -> coronet::awaitable<void> {
    tls_pair p;
    co_await make_tls_pair(p);
    using namespace asio::experimental::awaitable_operators;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer t(ex, 20ms);
    auto r = co_await (p.accepted.read() || t.async_wait(asio::use_awaitable));
    CHECK(r.index() == 1);
    co_await p.client.write("after the cancel");
    CHECK(co_await p.accepted.read() == std::optional<std::string_view>("after the cancel"));
    auto read_error = [&]() -> coronet::awaitable<std::error_code> {
      try {
        co_await p.accepted.read();
      } catch (const coronet::error& e) {
        co_return e.code();
      }
      co_return std::error_code();
    };
    auto waiting = start(ex, read_error());
    co_await asio::post(ex, asio::use_awaitable);
    p.accepted.destroy();
    CHECK(co_await waiting.get() == std::errc::operation_canceled);
  });
}

// ------------------------------------------------------------ verification

TEST_CASE("tls: verification failures read like Node's, and nothing is handed out") {
  test::run([]() -> coronet::awaitable<void> {
    const std::string ca = certs().text("ca.pem");
    struct failing_case {
      const char* cert;
      const char* expected;
    };
    for (const failing_case c :
         {failing_case{"self", "self-signed certificate"},
          failing_case{"untrusted", "unable to verify the first certificate"},
          failing_case{"expired", "certificate has expired"}}) {
      CAPTURE(c.cert);
      coronet::tls::Server server({}, {.cert_file = certs().path(std::string(c.cert) + ".pem"),
                                       .key_file = certs().path(std::string(c.cert) + ".key")});
      const int port = co_await listen_tls(server);
      accept_forever(co_await asio::this_coro::executor, server);
      auto e = co_await connect_error(port, trusting(ca));
      CHECK(e.code() == coronet::errc::tls_unauthorized);
      CHECK(std::string(e.what()) == c.expected);
    }
  });
}

TEST_CASE("tls: a certificate for another name is refused with Node's altnames message") {
  test::run([]() -> coronet::awaitable<void> {
    const std::string ca = certs().text("ca.pem");
    coronet::tls::Server server({}, server_identity());
    const int port = co_await listen_tls(server);
    accept_forever(co_await asio::this_coro::executor, server);
    auto e = co_await connect_error(port, {.ca = ca, .servername = "wrong.test"});
    CHECK(e.code() == coronet::errc::tls_unauthorized);
    CHECK(std::string(e.what()) ==
          "Hostname/IP does not match certificate's altnames: Host: wrong.test. is not in the "
          "cert's altnames: DNS:localhost, IP Address:127.0.0.1");
    // An IP host is checked against the certificate's IP addresses.
    auto ok = co_await coronet::tls::connect({.host = "127.0.0.1", .port = port}, trusting(ca));
    CHECK(ok.tls()->authorized);
    CHECK(ok.tls()->servername.empty());  // no SNI for an address, as in Node
  });
}

TEST_CASE("tls: reject_unauthorized false connects and says why the peer is not authorized") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::tls::Server server(
        {}, {.cert_file = certs().path("self.pem"), .key_file = certs().path("self.key")});
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    auto accepted = start(ex, server.accept());
    const std::string ca = certs().text("ca.pem");
    Socket s = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                              {.ca = ca, .reject_unauthorized = false});
    Socket peer = co_await accepted.get();
    CHECK_FALSE(s.tls()->authorized);
    CHECK(s.tls()->authorization_error == "self-signed certificate");
    co_await peer.write("still works");
    CHECK(co_await s.read() == std::optional<std::string_view>("still works"));
  });
}

TEST_CASE("tls: a bad certificate file is a clear error before any connection") {
  CHECK_THROWS_WITH_AS(
      coronet::tls::Server({}, {.cert_file = "/nonexistent.pem", .key_file = "/nonexistent.key"}),
      doctest::Contains("cannot load cert_file '/nonexistent.pem'"), coronet::error);
  const std::string other_key = certs().path("other.key");
  CHECK_THROWS_WITH_AS(
      coronet::tls::Server({}, {.cert_file = certs().path("server.pem"), .key_file = other_key}),
      doctest::Contains("key values mismatch"), coronet::error);
  CHECK_THROWS_WITH_AS(coronet::tls::Context({.min_version = "TLSv1.4"}, false),
                       doctest::Contains("'TLSv1.4' is not a valid TLS protocol version"),
                       coronet::error);
}

TEST_CASE("tls: in-memory PEM with a chain: a client that trusts only the root verifies it") {
  test::run([]() -> coronet::awaitable<void> {
    const std::string chain = certs().text("server-chain.pem");
    const std::string key = certs().text("server.key");
    coronet::tls::Server server({}, {.cert = chain, .key = key});
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    auto accepted = start(ex, server.accept());
    Socket s = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                              {.ca_file = certs().path("ca.pem")});
    (void)co_await accepted.get();
    CHECK(s.tls()->authorized);
  });
}

// ------------------------------------------------------------ negotiation

TEST_CASE("tls: SNI picks the certificate for the name the client asks for") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::tls::Server server({}, server_identity());
    server.add_context(
        "*.test", {.cert_file = certs().path("other.pem"), .key_file = certs().path("other.key")});
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    const std::string ca = certs().text("ca.pem");
    for (std::string_view name : {"localhost", "other.test"}) {
      CAPTURE(name);
      auto accepted = start(ex, server.accept());
      Socket s = co_await coronet::tls::connect({.host = "127.0.0.1", .port = port},
                                                {.ca = ca, .servername = name});
      Socket peer = co_await accepted.get();
      CHECK(s.tls()->authorized);
      CHECK(s.tls()->peer_subject == "CN=" + std::string(name));
      CHECK(peer.tls()->servername == name);
    }
  });
}

TEST_CASE("tls: ALPN picks the server's preference; no protocol in common fails the handshake") {
  test::run([]() -> coronet::awaitable<void> {
    const std::array<std::string_view, 2> served{"h2", "http/1.1"};
    auto identity = server_identity();
    identity.alpn_protocols = served;
    coronet::tls::Server server({}, identity);
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    const std::string ca = certs().text("ca.pem");
    const std::array<std::string_view, 2> offered{"http/1.1", "h2"};
    auto accepted = start(ex, server.accept());
    Socket s = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                              {.ca = ca, .alpn_protocols = offered});
    Socket peer = co_await accepted.get();
    CHECK(s.tls()->alpn_protocol == "h2");
    CHECK(peer.tls()->alpn_protocol == "h2");
    accept_forever(ex, server);
    const std::array<std::string_view, 1> unknown{"spdy/1"};
    auto e = co_await connect_error(port, {.ca = ca, .alpn_protocols = unknown});
    CHECK(e.code() == coronet::errc::tls_handshake);
    CHECK(std::string(e.what()).find("no application protocol") != std::string::npos);
  });
}

TEST_CASE("tls: min_version the peer cannot meet fails the handshake") {
  test::run([]() -> coronet::awaitable<void> {
    auto identity = server_identity();
    identity.min_version = "TLSv1.3";
    coronet::tls::Server server({}, identity);
    const int port = co_await listen_tls(server);
    accept_forever(co_await asio::this_coro::executor, server);
    const std::string ca = certs().text("ca.pem");
    auto e = co_await connect_error(port, {.ca = ca, .max_version = "TLSv1.2"});
    CHECK(e.code() == coronet::errc::tls_handshake);
    // And TLS 1.2 where both allow it.
    coronet::tls::Server old({}, server_identity());
    const int old_port = co_await listen_tls(old);
    auto ex = co_await asio::this_coro::executor;
    auto accepted = start(ex, old.accept());
    Socket s = co_await coronet::tls::connect({.host = "localhost", .port = old_port},
                                              {.ca = ca, .max_version = "TLSv1.2"});
    (void)co_await accepted.get();
    CHECK(s.tls()->protocol == "TLSv1.2");
  });
}

TEST_CASE("tls: client certificates: authorized with one, refused without") {
  test::run([]() -> coronet::awaitable<void> {
    const std::string ca = certs().text("ca.pem");
    auto identity = server_identity();
    identity.ca = ca;
    identity.request_cert = true;
    coronet::tls::Server server({}, identity);
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    auto accepted = start(ex, server.accept());
    Socket s = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                              {.cert_file = certs().path("client.pem"),
                                               .key_file = certs().path("client.key"),
                                               .ca = ca});
    Socket peer = co_await accepted.get();
    REQUIRE(peer.tls() != nullptr);
    CHECK(peer.tls()->authorized);
    CHECK(peer.tls()->peer_subject == "CN=coronet client");
    co_await s.write("with a certificate");
    CHECK(co_await peer.read() == std::optional<std::string_view>("with a certificate"));

    // Without one: TLS 1.3 lets the client finish first; the server's alert then
    // ends the client's first read, and the server never hands the socket out.
    auto refused = start(ex, server.accept());
    Socket anonymous =
        co_await coronet::tls::connect({.host = "localhost", .port = port}, trusting(ca));
    auto e = co_await test::expect_error(anonymous.read());
    CHECK(e.code() == coronet::errc::tls_protocol);
    CHECK(std::string(e.what()).find("certificate required") != std::string::npos);
    // A good client afterwards is the next socket accept() hands out.
    Socket good = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                                 {.cert_file = certs().path("client.pem"),
                                                  .key_file = certs().path("client.key"),
                                                  .ca = ca});
    Socket next = co_await refused.get();
    CHECK(next.tls()->peer_subject == "CN=coronet client");
  });
}

TEST_CASE("tls: a client resumes the session an earlier connection received") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::tls::Server server({}, server_identity());
    const int port = co_await listen_tls(server);
    auto ex = co_await asio::this_coro::executor;
    const std::string ca = certs().text("ca.pem");
    std::string session;
    {
      auto accepted = start(ex, server.accept());
      Socket first =
          co_await coronet::tls::connect({.host = "localhost", .port = port}, trusting(ca));
      Socket peer = co_await accepted.get();
      co_await peer.write("ticket arrives before this");
      CHECK(co_await first.read());
      CHECK_FALSE(first.tls()->session_reused);
      session = first.tls()->session;
    }
    REQUIRE(!session.empty());
    auto accepted = start(ex, server.accept());
    Socket second = co_await coronet::tls::connect({.host = "localhost", .port = port},
                                                   {.ca = ca, .session = session});
    (void)co_await accepted.get();
    CHECK(second.tls()->session_reused);
    CHECK(second.tls()->authorized);
  });
}

// ------------------------------------------------------------ failed handshakes

TEST_CASE("tls: a server that closes during the handshake reads like Node's") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server plain;
    const int port = co_await test::listen_loopback(plain);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          Socket s = co_await plain.accept();
          s.destroy();
        },
        asio::detached);
    auto e = co_await connect_error(port, {});
    CHECK(e.code() == std::errc::connection_reset);
    CHECK(std::string(e.what()) ==
          "Client network socket disconnected before secure TLS connection was established");
  });
}

TEST_CASE("tls: a plain-text server fails the handshake; a plain client is skipped by accept()") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server plain;
    const int port = co_await test::listen_loopback(plain);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          Socket s = co_await plain.accept();
          co_await s.write("HTTP/1.1 400 Bad Request\r\n\r\nnot tls at all, not at all\r\n");
          co_await test::read_all(s);
        },
        asio::detached);
    auto e = co_await connect_error(port, {});
    CHECK(e.code() == coronet::errc::tls_handshake);

    // The other way round: a TLS server's accept() skips a client that speaks plain
    // text and hands out the next, good one.
    coronet::tls::Server server({}, server_identity());
    const int tls_port = co_await listen_tls(server);
    auto accepted = start(ex, server.accept());
    Socket rude = co_await coronet::connect({.host = "127.0.0.1", .port = tls_port});
    co_await rude.write("GET / HTTP/1.1\r\n\r\n");
    const std::string ca = certs().text("ca.pem");
    Socket good =
        co_await coronet::tls::connect({.host = "localhost", .port = tls_port}, trusting(ca));
    Socket peer = co_await accepted.get();
    co_await good.write("me");
    CHECK(co_await peer.read() == std::optional<std::string_view>("me"));
  });
}

TEST_CASE("tls: handshake_timeout bounds a server that never answers") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server silent;
    const int port = co_await test::listen_loopback(silent);
    auto ex = co_await asio::this_coro::executor;
    std::optional<Socket> held;
    asio::co_spawn(
        ex, [&]() -> coronet::awaitable<void> { held.emplace(co_await silent.accept()); },
        asio::detached);
    const auto start = std::chrono::steady_clock::now();
    auto e = co_await connect_error(port, {.handshake_timeout = 100ms});
    CHECK(e.code() == coronet::errc::timeout);
    CHECK(std::string(e.what()) == "TLS handshake timeout (100 ms)");
    CHECK(std::chrono::steady_clock::now() - start >= 100ms);
  });
}

TEST_CASE("tls: cancelling connect() during the handshake closes the connection") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server silent;
    const int port = co_await test::listen_loopback(silent);
    auto ex = co_await asio::this_coro::executor;
    auto accepted = start(ex, silent.accept());
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer t(ex, 50ms);
    auto r = co_await (coronet::tls::connect({.host = "127.0.0.1", .port = port}, {}) ||
                       t.async_wait(asio::use_awaitable));
    CHECK(r.index() == 1);
    Socket s = co_await accepted.get();
    // The client's side is gone: the server sees its FIN (or reset), never a hang.
    coronet::failure failed;
    while (!failed && co_await s.read(failed)) {
    }
    CHECK(s.ready_state() != "open");
  });
}

// ------------------------------------------------------------ real peers

TEST_CASE("tls: a Node tls client half-closes; the coronet server answers after close_notify") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::tls::Server server({.allow_half_open = true}, server_identity());
    const int port = co_await listen_tls(server);
    child_process client(
        ex, {*node, tls_peer(), "client",
             R"({"mode":"half-close","servername":"localhost","port":)" + std::to_string(port) +
                 R"(,"ca":")" + certs().path("ca.pem") + "\"}"});
    Socket s = co_await server.accept();
    std::string request = co_await test::read_all(s);
    CHECK(request == "ping");
    co_await s.end("pong:" + request);
    auto lines = co_await client.all_lines();
    CHECK(lines == std::vector<std::string>{"secure TLSv1.3 alpn=false authorized=true",
                                            "data: pong:ping", "end", "close"});
  });
}

TEST_CASE("tls: 10 MiB from a Node tls client through a coronet echo server, checksummed") {
  REQUIRE_NODE();
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        coronet::tls::Server server({.allow_half_open = true}, server_identity());
        const int port = co_await listen_tls(server);
        child_process client(
            ex, {*node, tls_peer(), "client",
                 R"({"mode":"bulk","servername":"localhost","port":)" + std::to_string(port) +
                     R"(,"ca":")" + certs().path("ca.pem") + "\"}"});
        Socket s = co_await server.accept();
        co_await test::echo(std::move(s));
        auto lines = co_await client.all_lines();
        REQUIRE(lines.size() == 5);
        CHECK(lines[1].starts_with("sent 10485760 "));
        CHECK(lines[2] == "echoed 10485760 " + lines[1].substr(14));
      },
      60s);
}

TEST_CASE("tls: a coronet client against a Node tls server: ALPN, reply, close_notify") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    child_process server(
        ex, {*node, tls_peer(), "server",
             R"({"mode":"reply","ALPNProtocols":["h2","http/1.1"],"cert":")" +
                 certs().path("server.pem") + R"(","key":")" + certs().path("server.key") + "\"}"});
    const int port = co_await port_line(server);
    const std::string ca = certs().text("ca.pem");
    const std::array<std::string_view, 1> offered{"http/1.1"};
    Socket s =
        co_await coronet::tls::connect({.host = "localhost", .port = port, .allow_half_open = true},
                                       {.ca = ca, .alpn_protocols = offered});
    CHECK(s.tls()->alpn_protocol == "http/1.1");
    co_await s.write("coronet");
    CHECK(co_await test::read_all(s) == "hello from node to coronet");  // then close_notify
    co_await s.end();
    auto lines = co_await server.all_lines();
    CHECK(lines ==
          std::vector<std::string>{"secure TLSv1.3 alpn=http/1.1 authorized=false", "closed"});
  });
}

TEST_CASE("tls: a Node server that requests a client certificate authorizes coronet's") {
  REQUIRE_NODE();
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    child_process server(
        ex, {*node, tls_peer(), "server",
             R"({"mode":"echo","requestCert":true,"rejectUnauthorized":true,"cert":")" +
                 certs().path("server.pem") + R"(","key":")" + certs().path("server.key") +
                 R"(","ca":")" + certs().path("ca.pem") + "\"}"});
    const int port = co_await port_line(server);
    Socket s =
        co_await coronet::tls::connect({.host = "localhost", .port = port, .allow_half_open = true},
                                       {.cert_file = certs().path("client.pem"),
                                        .key_file = certs().path("client.key"),
                                        .ca_file = certs().path("ca.pem")});
    co_await s.end("echo me");
    CHECK(co_await test::read_all(s) == "echo me");
    auto lines = co_await server.all_lines();
    CHECK(lines.front() == "secure TLSv1.3 alpn=false authorized=true");
  });
}

TEST_CASE("tls: openssl s_client talks to a coronet server; s_server to a coronet client") {
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    coronet::tls::Server server({}, server_identity());
    const int port = co_await listen_tls(server);
    // s_client sends its stdin (empty here) and, with -ign_eof off, closes at EOF:
    // what it printed must show the verified chain and the line we sent.
    child_process client(ex, {"/bin/sh", "-c",
                              "echo 'from s_client' | openssl s_client -quiet -verify_return_error "
                              "-CAfile " +
                                  certs().path("ca.pem") +
                                  " -servername localhost "
                                  "-connect 127.0.0.1:" +
                                  std::to_string(port) + " 2>&1"});
    Socket s = co_await server.accept();
    CHECK(co_await s.read_line() == std::optional<std::string_view>("from s_client"));
    co_await s.end("from coronet\n");
    auto lines = co_await client.all_lines();
    CHECK(std::find(lines.begin(), lines.end(), "from coronet") != lines.end());

    child_process s_server(
        ex, {"/bin/sh", "-c",
             // -rev: it answers each line reversed and ignores its stdin (whose end
             // would stop it otherwise).
             "exec stdbuf -oL openssl s_server -rev -naccept 1 -accept 127.0.0.1:0 -cert " +
                 certs().path("server.pem") + " -key " + certs().path("server.key") +
                 " </dev/null 2>&1"});
    // s_server prints "ACCEPT 127.0.0.1:PORT" when it listens (loopback only, as every test).
    int server_port = 0;
    while (auto line = co_await s_server.line()) {
      if (line->starts_with("ACCEPT")) {
        server_port = std::stoi(line->substr(line->rfind(':') + 1));
        break;
      }
    }
    REQUIRE(server_port > 0);
    const std::string ca = certs().text("ca.pem");
    Socket c =
        co_await coronet::tls::connect({.host = "localhost", .port = server_port}, trusting(ca));
    CHECK(c.tls()->authorized);
    co_await c.write("to s_server\n");
    CHECK(co_await c.read_line() == std::optional<std::string_view>("revres_s ot"));
    co_await c.end();
  });
}

TEST_CASE(
    "tls: pipe() and send_file() copy through TLS instead of splicing, and the peer decrypts every "
    "byte") {
  const std::string data = test::random_bytes(2 * 1024 * 1024, 21);
  char name[] = "/tmp/coronet-tls-file-XXXXXX";
  const int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  test::run([&]() -> coronet::awaitable<void> {
    tls_pair secure;
    co_await make_tls_pair(secure, {.allow_half_open = true});
    test::pair plain;
    co_await test::make_pair(plain, {.allow_half_open = true});
    // Plain bytes in, TLS out: pipe() must not splice ciphertext-less bytes into TLS.
    std::string got;
    using namespace asio::experimental::awaitable_operators;
    auto into_tls = [&]() -> coronet::awaitable<void> {
      const coronet::PipeResult moved = co_await coronet::pipe(plain.accepted, secure.accepted);
      CHECK(!moved.zero_copy);
      CHECK(moved.bytes == data.size());
    };
    auto reader = [&]() -> coronet::awaitable<void> {
      got = co_await test::read_all(secure.client);
    };
    co_await (into_tls() && plain.client.end(data) && reader());
    CHECK(got == data);
    // send_file() over TLS: the pread + write fallback, encrypted by the layer.
    auto file = [&]() -> coronet::awaitable<void> {
      CHECK(co_await secure.client.send_file(fd, 0) == data.size());
      co_await secure.client.end();
    };
    std::string back;
    auto back_reader = [&]() -> coronet::awaitable<void> {
      back = co_await test::read_all(secure.accepted);
    };
    co_await (file() && back_reader());
    CHECK(back == data);
  });
  ::close(fd);
  ::unlink(name);
}

TEST_CASE("tls::connect() honours block_list before any handshake, as connect() does") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;  // plain TCP: nothing gets far enough to hand-shake
    const int port = co_await test::listen_loopback(server);
    const int descriptors_before = test::open_descriptors();
    // The list only has to live until the call, as the options' strings do.
    auto attempt = [port] {
      coronet::BlockList list;
      list.add_address("127.0.0.1");
      return coronet::tls::connect({.host = "127.0.0.1", .port = port, .block_list = &list});
    }();
    auto e = co_await test::expect_error(std::move(attempt));
    CHECK(std::string(e.what()) == "IP(127.0.0.1) is blocked by net.BlockList");
    CHECK(e.code() == coronet::errc::ip_blocked);
    CHECK(test::open_descriptors() == descriptors_before);
  });
}
