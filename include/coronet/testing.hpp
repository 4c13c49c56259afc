// coronet/testing.hpp - helpers for testing your own protocol handlers on real
// loopback sockets: a connected pair in one call, and a scripted peer that
// misbehaves on command (stalls, resets, trickles bytes, half-closes).
//
//     auto [client, accepted] = co_await coronet::testing::socket_pair();
//
//     auto [socket, peer] = co_await coronet::testing::peer_pair();
//     asio::co_spawn(executor, my_handler(std::move(socket)), asio::detached);
//     co_await peer.trickle("GET / HTTP/1.1\r\n\r\n");   // one byte per segment
//     peer.reset();                                      // then RST
//
// Not part of <coronet/coronet.hpp>: include it in test programs only.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "coronet.hpp"

// After coronet.hpp, whose config.hpp must come first for Asio.
#include <asio/write.hpp>

namespace coronet::testing {

/// The two ends of a connection, in the order `auto [client, accepted] =
/// co_await socket_pair();` names them.
struct SocketPair {
  Socket client;    ///< the end that connected
  Socket accepted;  ///< the end a server accepted (what a handler gets)
};

/// How socket_pair() and unix_socket_pair() set up both ends.
struct PairOptions {
  bool allow_half_open = false;  ///< both ends stay writable after the other's FIN
  bool no_delay = true;          ///< TCP_NODELAY on both (no effect on Unix-domain)
};

namespace detail {

/// A fresh abstract Unix-domain name: no file to clean up, no clash between
/// pairs or between test processes running side by side.
inline std::string unique_abstract_name() {
  static std::atomic<std::uint64_t> next{0};
  return "@coronet-testing-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
}

/// Connects to `server` (already listening) and accepts: the server is closed
/// afterwards, so the pair is all that is left.
inline awaitable<SocketPair> connect_and_accept(Server server, ConnectOptions to) {
  Socket client = co_await connect(to);
  Socket accepted = co_await server.accept();
  server.close();
  if (!accepted.is_unix_domain() && to.no_delay) accepted.set_no_delay(true);
  co_return SocketPair{std::move(client), std::move(accepted)};
}

}  // namespace detail

/// A connected TCP pair over 127.0.0.1 on the awaiting coroutine's executor.
/// Completes once both ends are open. Throws what listen(), connect() and accept()
/// throw (a machine without IPv4 loopback: "listen EADDRNOTAVAIL"). Cancelled, it
/// leaves nothing open.
inline awaitable<SocketPair> socket_pair(PairOptions options = {}) {
  Server server{ServerOptions{.allow_half_open = options.allow_half_open}};
  co_await server.listen(0, "127.0.0.1");
  ConnectOptions to;
  to.host = "127.0.0.1";
  to.port = server.address()->port;
  to.allow_half_open = options.allow_half_open;
  to.no_delay = options.no_delay;
  co_return co_await detail::connect_and_accept(std::move(server), to);
}

/// The same over a Unix-domain socket in Linux's abstract namespace (no file).
inline awaitable<SocketPair> unix_socket_pair(PairOptions options = {}) {
  Server server{ServerOptions{.allow_half_open = options.allow_half_open}};
  const std::string name = detail::unique_abstract_name();
  ListenOptions where;
  where.path = name;
  co_await server.listen(where);
  ConnectOptions to;
  to.path = name;
  to.allow_half_open = options.allow_half_open;
  co_return co_await detail::connect_and_accept(std::move(server), to);
}

/// How a Peer's socket is set up before it connects.
struct PeerOptions {
  /// SO_RCVBUF in bytes (0: the system's). Small makes a stall() fill the kernel's
  /// buffers after a few KiB instead of megabytes. Linux doubles it and has a floor.
  int receive_buffer = 0;
  bool unix_domain = false;      ///< peer_pair(): over a Unix-domain socket instead of TCP
  bool allow_half_open = false;  ///< peer_pair(): the Socket stays writable after the peer's FIN
};

/// A scripted peer: the other end of a connection, driven step by step by a test,
/// which misbehaves when told. It reads only when asked (receive...), or drains in
/// the background between drain() and stall(). Move-only; dropping it closes the
/// connection (FIN). Its operations run on the executor of the coroutine that made it.
class Peer {
 public:
  /// The Asio socket underneath, for faults this class does not script.
  using native_socket_type = asio::generic::stream_protocol::socket;

  /// Connects to a server under test at host:port (an IP literal), e.g. your own
  /// Server listening on 127.0.0.1. Throws coronet::error when nobody listens there.
  static awaitable<Peer> connect(int port, std::string_view host = "127.0.0.1",
                                 PeerOptions options = {}) {
    const asio::ip::tcp::endpoint ip(asio::ip::make_address(std::string(host)),
                                     static_cast<std::uint16_t>(port));
    co_return co_await connect_to(native_endpoint(ip), options);
  }
  /// Connects to a Unix-domain server at `path` ("@name" for the abstract namespace).
  static awaitable<Peer> connect_path(std::string_view path, PeerOptions options = {}) {
    co_return co_await connect_to(coronet::detail::unix_endpoint(path, "connect"), options);
  }

  ///@{
  /// Moves the connection; the moved-from peer has none.
  Peer(Peer&&) noexcept = default;
  Peer& operator=(Peer&&) noexcept = default;
  ///@}
  ~Peer() {
    if (state_) close();
  }

  // ------------------------------------------------------------------ sending

  /// Sends all of `bytes` as fast as the kernel takes them; completes when they are
  /// in its send buffer. Throws coronet::error ("send EPIPE", "send ECONNRESET").
  awaitable<void> send(std::string_view bytes) {
    auto s = state_;
    auto [ec, n] = co_await asio::async_write(s->socket, asio::buffer(bytes), tuple);
    if (ec) throw coronet::detail::syscall_error("send", ec);
  }

  /// Sends `bytes` one at a time, each in a segment of its own (TCP_NODELAY), to
  /// test framing against the smallest reads TCP can deliver. Between bytes it waits
  /// `gap`, or with no gap lets the executor run once, so a handler on the same
  /// thread usually reads each byte on its own (TCP may still coalesce a few).
  awaitable<void> trickle(std::string_view bytes, std::chrono::milliseconds gap = {}) {
    auto s = state_;
    std::error_code ignored;
    if (!s->unix_domain) s->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    asio::steady_timer pause(s->socket.get_executor());
    for (const char& byte : bytes) {
      auto [ec, n] = co_await asio::async_write(s->socket, asio::buffer(&byte, 1), tuple);
      if (ec) throw coronet::detail::syscall_error("send", ec);
      if (gap.count() > 0) {
        pause.expires_after(gap);
        co_await pause.async_wait(asio::use_awaitable);
      } else {
        co_await asio::post(s->socket.get_executor(), asio::use_awaitable);
      }
    }
  }

  /// Half-close: sends FIN (shutdown(SHUT_WR)); the peer can still receive.
  void half_close() {
    std::error_code ec;
    state_->socket.shutdown(asio::socket_base::shutdown_send, ec);
    if (ec) throw coronet::detail::syscall_error("shutdown", ec);
  }

  /// Aborts the connection with RST (SO_LINGER 0, then close): the other end's next
  /// read or write fails with ECONNRESET. A Unix-domain socket has no RST:
  /// errc::invalid_argument.
  void reset() {
    if (state_->unix_domain) {
      throw error(errc::invalid_argument, ": reset() needs TCP (a Unix-domain socket has no RST)");
    }
    std::error_code ignored;
    state_->socket.set_option(asio::socket_base::linger(true, 0), ignored);
    close();
  }

  /// Closes the socket (FIN, if not sent yet). Idempotent.
  void close() {
    stall();
    std::error_code ignored;
    state_->socket.close(ignored);
  }

  // ------------------------------------------------------------------ receiving

  /// The next bytes that arrive (whatever one read returns); nullopt at FIN.
  /// Throws coronet::error ("receive ECONNRESET"), errc::read_in_progress while
  /// drain() runs.
  awaitable<std::optional<std::string>> receive() {
    auto s = state_;
    check_not_draining(*s);
    std::string chunk(64 * 1024, '\0');
    auto [ec, n] = co_await s->socket.async_read_some(asio::buffer(chunk), tuple);
    s->received += n;
    if (ec == asio::error::eof) co_return std::nullopt;
    if (ec) throw coronet::detail::syscall_error("receive", ec);
    chunk.resize(n);
    co_return chunk;
  }

  /// Exactly `n` bytes, or fewer if FIN comes first.
  awaitable<std::string> receive_exactly(std::size_t n) {
    std::string all;
    while (all.size() < n) {
      auto s = state_;
      check_not_draining(*s);
      std::string chunk(n - all.size(), '\0');
      auto [ec, got] = co_await s->socket.async_read_some(asio::buffer(chunk), tuple);
      s->received += got;
      all.append(chunk.data(), got);
      if (ec == asio::error::eof) break;
      if (ec) throw coronet::detail::syscall_error("receive", ec);
    }
    co_return all;
  }

  /// Everything until FIN.
  awaitable<std::string> receive_all() {
    std::string all;
    while (auto chunk = co_await receive()) all += *chunk;
    co_return all;
  }

  /// Starts reading in the background and throwing the bytes away (counted in
  /// received()), so the other end's writes always find room, until stall().
  void drain() {
    auto s = state_;
    if (s->draining) return;
    s->draining = true;
    s->stop_draining = std::make_shared<asio::cancellation_signal>();
    asio::co_spawn(s->socket.get_executor(), drain_loop(s, s->stop_draining), asio::detached);
  }

  /// Stops reading: what the other end writes from now on piles up in the kernel's
  /// buffers (both ends'), and once they are full its writes wait (write()) or
  /// queue (write_nowait() returns false): backpressure, as a client that stopped
  /// reading causes. A peer that never drained is stalled already.
  void stall() {
    state_->draining = false;
    if (auto stop = std::exchange(state_->stop_draining, nullptr)) stop->emit(cancel_all);
  }

  /// Bytes received so far (by receive... and drain()).
  std::uint64_t received() const { return state_->received; }
  /// True once drain() met FIN or an error (the other end closed).
  bool saw_end() const { return state_->saw_end; }

  /// The socket underneath, for anything else a test needs.
  native_socket_type& native() { return state_->socket; }

 private:
  struct state {
    explicit state(native_socket_type s, bool unix) : socket(std::move(s)), unix_domain(unix) {}
    native_socket_type socket;
    bool unix_domain;
    bool draining = false;
    std::shared_ptr<asio::cancellation_signal> stop_draining;  // the running drain()'s read
    bool saw_end = false;
    std::uint64_t received = 0;
  };

  explicit Peer(std::shared_ptr<state> s) : state_(std::move(s)) {}

  static constexpr auto tuple = asio::experimental::as_tuple(asio::use_awaitable);
  static constexpr auto cancel_all = asio::cancellation_type::all;

  static asio::generic::stream_protocol::endpoint native_endpoint(
      const asio::ip::tcp::endpoint& ip) {
    return {ip.data(), ip.size()};
  }

  static awaitable<Peer> connect_to(asio::generic::stream_protocol::endpoint where,
                                    PeerOptions options) {
    native_socket_type socket(co_await asio::this_coro::executor);
    socket.open(where.protocol());
    if (options.receive_buffer > 0) {
      socket.set_option(asio::socket_base::receive_buffer_size(options.receive_buffer));
    }
    auto [ec] = co_await socket.async_connect(where, tuple);
    if (ec) throw coronet::detail::syscall_error("connect", ec);
    const bool unix_domain = where.protocol().family() == AF_UNIX;
    co_return Peer(std::make_shared<state>(std::move(socket), unix_domain));
  }

  static void check_not_draining(const state& s) {
    if (s.draining) throw error(errc::read_in_progress, ": the peer is draining; stall() first");
  }

  /// Each drain() runs one of these, stopped through its own signal, so a stall()
  /// cancels this loop's read and nothing else (a send waiting meanwhile goes on).
  static awaitable<void> drain_loop(std::shared_ptr<state> s,
                                    std::shared_ptr<asio::cancellation_signal> stop) {
    std::string sink(64 * 1024, '\0');
    for (;;) {
      auto [ec, n] = co_await s->socket.async_read_some(
          asio::buffer(sink), asio::bind_cancellation_slot(stop->slot(), tuple));
      s->received += n;
      if (ec == asio::error::operation_aborted) co_return;  // stall() or close()
      if (s->stop_draining != stop) co_return;              // stall() came as the read completed
      if (ec) {
        s->saw_end = true;
        s->draining = false;
        co_return;
      }
    }
  }

  std::shared_ptr<state> state_;
};

/// A coronet Socket for the handler under test, and the Peer at its other end.
struct PeerPair {
  Socket socket;  ///< the accepted end: what a server hands its handler
  Peer peer;      ///< the scripted other end
};

/// A Socket (accepted, as a server's handler gets it) connected to a scripted
/// Peer over 127.0.0.1 (or a Unix-domain socket with options.unix_domain), on the
/// awaiting coroutine's executor. Throws what listen() and accept() throw.
inline awaitable<PeerPair> peer_pair(PeerOptions options = {}) {
  Server server{ServerOptions{.allow_half_open = options.allow_half_open}};
  std::optional<Peer> peer;
  if (options.unix_domain) {
    const std::string name = detail::unique_abstract_name();
    ListenOptions where;
    where.path = name;
    co_await server.listen(where);
    peer.emplace(co_await Peer::connect_path(name, options));
  } else {
    co_await server.listen(0, "127.0.0.1");
    peer.emplace(co_await Peer::connect(server.address()->port, "127.0.0.1", options));
  }
  Socket socket = co_await server.accept();
  server.close();
  co_return PeerPair{std::move(socket), std::move(*peer)};
}

}  // namespace coronet::testing
