// coronet/server.hpp - a listening TCP server: Node's net.Server as co_await-able calls.
//
//     coronet::Server server{{.allow_half_open = true}};
//     co_await server.listen(3000);                      // host "::", dual-stack
//     co_await server.serve(session);                    // a coroutine per connection
//
// The server is a handle to state that its sockets share, so a socket may outlive
// the Server object and wait_closed() still counts it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "address.hpp"
#include "config.hpp"
#include "detail/connection_tracker.hpp"
#include "error.hpp"
#include "socket.hpp"

namespace coronet {

/// Node's net.createServer() options, applied to every accepted socket.
struct ServerOptions {
  /// false (Node's default): when the peer's FIN arrives, the socket ends its own side
  /// once queued writes have left. true: it stays writable until you call end().
  bool allow_half_open = false;
  /// Accepted sockets start paused: nothing is read until resume().
  bool pause_on_connect = false;
  bool no_delay = false;                             ///< TCP_NODELAY on every accepted socket
  bool keep_alive = false;                           ///< SO_KEEPALIVE on every accepted socket ...
  std::chrono::seconds keep_alive_initial_delay{0};  ///< ... with this first-probe delay
  std::size_t high_water_mark = 64 * 1024;           ///< each socket's write_nowait() bound
  /// Connections beyond this many open ones are closed at once and reported to
  /// on_drop() (Node's maxConnections and 'drop'). 0: no limit (Node 20's meaning).
  std::size_t max_connections = 0;
};

/// What on_drop() learns about a connection refused by max_connections.
struct DropInfo {
  Address local{};   ///< the server's end of the dropped connection
  Address remote{};  ///< the client's end
};

/// Node's server.listen() options. Like every coronet options struct it is
/// trivially destructible (see ConnectOptions): `host` is a view that listen()
/// copies before it returns its awaitable.
struct ListenOptions {
  int port = 0;             ///< 0..65535; 0 lets the kernel pick (see address())
  std::string_view host{};  ///< empty: "::" dual-stack, else "0.0.0.0"; a name is resolved
  int backlog = 511;        ///< Node's default; the kernel caps it at somaxconn
  bool ipv6_only = false;   ///< on "::", refuse IPv4 clients (IPV6_V6ONLY)
  bool reuse_port = false;  ///< SO_REUSEPORT: several servers (one per core) share the port
};
static_assert(std::is_trivially_destructible_v<ListenOptions>);
static_assert(std::is_trivially_destructible_v<ServerOptions>);

/// A TCP server, Node's net.Server, whose acceptor and sockets use `Executor`
/// (Server is the usual one, on asio::any_io_executor). A move-only handle;
/// the sockets it accepted may outlive it.
template <typename Executor = asio::any_io_executor>
class basic_server {
 public:
  /// The executor type of its acceptor and of the sockets it accepts.
  using executor_type = Executor;
  /// What accept() returns and serve() hands to its handler.
  using socket_type = basic_socket<Executor>;

  /// A server that does not listen yet; `options` apply to every accepted socket.
  explicit basic_server(ServerOptions options = {}) : state_(std::make_shared<state>(options)) {}
  ///@{
  /// Moves the handle; a moved-from server may only be destroyed or assigned to.
  /// Assigning over a server does not close() it; a running serve() keeps it listening.
  basic_server(basic_server&&) noexcept = default;
  basic_server& operator=(basic_server&&) noexcept = default;
  ///@}
  /// Stops accepting; accepted sockets live on (they belong to their handlers).
  ~basic_server() {
    if (state_ && state_->acceptor && state_->acceptor->is_open()) close();
  }

  ///@{
  /// Binds and listens on the awaiting coroutine's executor. Completes once the
  /// server accepts connections; address() then reports the port. Throws
  /// coronet::error: a port outside 0..65535 (before any system call);
  /// "listen EADDRINUSE: address already in use 127.0.0.1:3000"; a host that does
  /// not resolve; errc::server_already_listening when listening. Cancelled while
  /// it resolves a host name, it binds nothing.
  awaitable<void> listen(int port = 0, std::string_view host = {}, int backlog = 511) {
    return listen(ListenOptions{.port = port, .host = host, .backlog = backlog});
  }
  awaitable<void> listen(const ListenOptions& options) {
    return listen_here(state_, options, std::string(options.host));
  }
  ///@}
  /// The same without a coroutine, on an explicit executor (a host name is
  /// resolved synchronously). Handy in main() before io_context::run().
  void listen(const executor_type& executor, const ListenOptions& options) {
    bind_and_listen(*state_, executor, options, resolve_now(executor, options));
  }

  /// The next connection. Completes when a peer connects. Throws
  /// errc::server_not_running when not listening, operation_aborted when close()
  /// interrupts it, "accept EMFILE" and the like when the process is out of
  /// resources (serve() rides those out; a bare accept() loop should too).
  awaitable<socket_type> accept() { return accept_on(state_); }

  /// Accepts until close(), running `handler(socket)` (a coroutine returning
  /// awaitable<void>) for each connection on the server's executor. An exception
  /// from a handler ends that connection only. Completes after close(). Out of
  /// descriptors (EMFILE/ENFILE) it pauses accepting briefly instead of spinning.
  template <typename Handler>
  // NOLINTNEXTLINE(performance-unnecessary-value-param): a coroutine must own its arguments
  awaitable<void> serve(Handler handler) {
    auto s = state_;
    for (;;) {
      std::optional<socket_type> socket;
      std::error_code failure;
      try {
        socket.emplace(co_await accept_on(s));
      } catch (const error& e) {
        if (!s->listening()) co_return;
        failure = e.code();
        if (failure != std::errc::connection_aborted && !is_resource_exhaustion(failure)) throw;
      }
      if (failure) {
        // ECONNABORTED: the peer gave up first; try the next one at once.
        if (is_resource_exhaustion(failure)) co_await pause_accepting(s);
        continue;
      }
      asio::co_spawn(s->executor(), run_handler(handler, std::move(*socket)), asio::detached);
    }
  }

  /// Called for each connection closed because of max_connections (Node's 'drop').
  void on_drop(std::function<void(const DropInfo&)> handler) {
    state_->on_drop = std::move(handler);
  }

  /// Stops accepting at once; accepted sockets stay open. Throws
  /// errc::server_not_running when not listening (Node's ERR_SERVER_NOT_RUNNING).
  void close() {
    if (!listening()) throw error(errc::server_not_running);
    std::error_code ignored;
    state_->acceptor->close(ignored);
    state_->tracker->notify();
  }

  /// Completes once the server is closed and every socket it accepted has closed
  /// (Node's 'close' event). Cancelling it changes nothing on the server.
  awaitable<void> wait_closed() {
    auto s = state_;
    while (s->listening() || (s->tracker && s->tracker->count() > 0)) {
      if (!co_await s->tracker->wait_for_change()) {
        throw error(asio::error::operation_aborted, "wait_closed cancelled");
      }
    }
  }

  /// Where it listens ({"::", "IPv6", 3000}); nullopt when not listening.
  std::optional<Address> address() const {
    if (!listening()) return std::nullopt;
    std::error_code ec;
    auto ep = state_->acceptor->local_endpoint(ec);
    if (ec) return std::nullopt;
    return detail::to_address(ep);
  }

  /// True from a successful listen() until close() (or the destructor).
  bool listening() const { return state_ && state_->listening(); }
  /// Accepted sockets not yet closed (Node's getConnections()).
  std::size_t connections() const {
    return state_ && state_->tracker ? state_->tracker->count() : 0;
  }
  /// The options it was constructed with.
  const ServerOptions& options() const { return state_->options; }
  /// The executor it listens on; throws errc::server_not_running before listen().
  executor_type get_executor() const {
    if (!state_ || !state_->acceptor) throw error(errc::server_not_running);
    return state_->acceptor->get_executor();
  }

 private:
  using tcp = asio::ip::tcp;
  using acceptor_type = asio::basic_socket_acceptor<tcp, Executor>;

  struct state {
    explicit state(ServerOptions o) : options(o) {}
    ServerOptions options;
    std::optional<acceptor_type> acceptor;
    std::shared_ptr<detail::connection_tracker> tracker;
    std::function<void(const DropInfo&)> on_drop;
    bool listening() const { return acceptor && acceptor->is_open(); }
    executor_type executor() { return acceptor->get_executor(); }
  };
  using state_ptr = std::shared_ptr<state>;

  /// Where to bind; nullopt means "no host": "::" dual-stack, else "0.0.0.0".
  using bind_target = std::optional<tcp::endpoint>;

  static void check_can_listen(const state& s, const ListenOptions& o) {
    if (s.listening()) throw error(errc::server_already_listening);
    detail::checked_port(o.port, "options.port");
    if (o.backlog < 0) throw error(errc::invalid_argument, ": backlog must not be negative");
  }

  /// The coroutine behind listen(): `host` is this frame's copy of the caller's view.
  static awaitable<void> listen_here(state_ptr s, ListenOptions o, std::string host) {
    o.host = host;
    auto executor = co_await asio::this_coro::executor;
    check_can_listen(*s, o);
    bind_target target = literal_target(o);
    if (!target && !o.host.empty()) {
      asio::ip::tcp::resolver resolver(executor);
      auto [ec, results] = co_await resolver.async_resolve(
          o.host, std::to_string(o.port), asio::ip::resolver_base::numeric_service,
          asio::experimental::as_tuple(asio::use_awaitable));
      target = first_result(ec, results, o);
    }
    bind_and_listen(*s, own_executor(executor), o, target);
  }

  bind_target resolve_now(const executor_type& executor, const ListenOptions& o) {
    check_can_listen(*state_, o);
    bind_target target = literal_target(o);
    if (!target && !o.host.empty()) {
      asio::ip::basic_resolver<tcp, executor_type> resolver(executor);
      std::error_code ec;
      auto results = resolver.resolve(o.host, std::to_string(o.port),
                                      asio::ip::resolver_base::numeric_service, ec);
      target = first_result(ec, results, o);
    }
    return target;
  }

  /// An IP literal needs no resolver (and no host at all means Node's default).
  static bind_target literal_target(const ListenOptions& o) {
    if (auto ip = detail::parse_ip(o.host))
      return tcp::endpoint(*ip, static_cast<std::uint16_t>(o.port));
    return std::nullopt;
  }

  /// Node binds the first address a host name resolves to.
  template <typename Results>
  static bind_target first_result(const std::error_code& ec, const Results& results,
                                  const ListenOptions& o) {
    if (ec || results.empty()) {
      throw error(ec ? ec : make_error_code(errc::bad_address),
                  "getaddrinfo ENOTFOUND " + std::string(o.host));
    }
    return results.begin()->endpoint();
  }

  /// The awaiting coroutine's executor as this server's executor type.
  static executor_type own_executor(const asio::any_io_executor& executor) {
    if constexpr (std::is_same_v<executor_type, asio::any_io_executor>) {
      return executor;
    } else {
      if (auto* target = executor.target<executor_type>()) return *target;
      throw error(errc::invalid_argument,
                  ": the awaiting coroutine's executor is not this server's executor type; "
                  "use listen(executor, options)");
    }
  }

  static void bind_and_listen(state& s, const executor_type& executor, const ListenOptions& o,
                              bind_target target) {
    check_can_listen(s, o);
    const auto port = static_cast<std::uint16_t>(o.port);
    acceptor_type acceptor(executor);
    std::error_code ec;
    tcp::endpoint where;
    if (target) {
      where = *target;
      ec = open_bind_listen(acceptor, where, o);
    } else {
      // Node's default: "::" taking IPv4 too; "0.0.0.0" where the host has no IPv6.
      where = tcp::endpoint(asio::ip::address_v6::any(), port);
      ec = open_bind_listen(acceptor, where, o);
      if (ec == asio::error::address_family_not_supported) {
        where = tcp::endpoint(asio::ip::address_v4::any(), port);
        ec = open_bind_listen(acceptor, where, o);
      }
    }
    if (ec) throw detail::syscall_error("listen", ec, detail::host_port(where), true);
    s.acceptor.emplace(std::move(acceptor));
    if (!s.tracker) s.tracker = std::make_shared<detail::connection_tracker>(executor);
  }

  static std::error_code open_bind_listen(acceptor_type& acceptor, const tcp::endpoint& where,
                                          const ListenOptions& o) {
    std::error_code ec;
    std::error_code ignored;
    acceptor.close(ignored);
    if (acceptor.open(where.protocol(), ec)) return ec;
    if (acceptor.set_option(asio::socket_base::reuse_address(true), ec)) return ec;
    if (o.reuse_port) {
      int one = 1;
      if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        return {errno, std::system_category()};
      }
    }
    if (where.address().is_v6() && where.address().is_unspecified()) {
      acceptor.set_option(asio::ip::v6_only(o.ipv6_only), ec);
      if (ec) return ec;
    }
    if (acceptor.bind(where, ec)) return ec;
    if (acceptor.listen(o.backlog, ec)) return ec;
    return {};
  }

  static awaitable<socket_type> accept_on(state_ptr s) {
    if (!s->listening()) throw error(errc::server_not_running);
    tcp::endpoint peer_endpoint;
    asio::basic_stream_socket<tcp, Executor> peer(s->executor());
    for (;;) {
      auto [ec] = co_await s->acceptor->async_accept(
          peer, peer_endpoint, asio::experimental::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted && !s->listening()) {
        throw error(ec, "accept aborted: the server was closed");
      }
      if (ec) throw detail::syscall_error("accept", ec);
      if (!over_limit(*s)) break;
      drop(*s, peer, peer_endpoint);
    }
    const ServerOptions& o = s->options;
    detail::socket_settings settings{.allow_half_open = o.allow_half_open,
                                     .paused = o.pause_on_connect,
                                     .high_water_mark = o.high_water_mark};
    socket_type socket(std::make_shared<detail::socket_core<Executor>>(
        std::move(peer), peer_endpoint, settings, s->tracker));
    if (o.no_delay) socket.set_no_delay(true);
    if (o.keep_alive) socket.set_keep_alive(true, o.keep_alive_initial_delay);
    co_return socket;
  }

  static bool over_limit(const state& s) {
    return s.options.max_connections != 0 && s.tracker->count() >= s.options.max_connections;
  }

  /// Closes a connection beyond max_connections: the client sees its connect
  /// succeed, then FIN, with no data, as with Node.
  static void drop(state& s, asio::basic_stream_socket<tcp, Executor>& peer,
                   const tcp::endpoint& remote) {
    DropInfo info;
    std::error_code ec;
    if (auto local = peer.local_endpoint(ec); !ec) info.local = detail::to_address(local);
    info.remote = detail::to_address(remote);
    peer.close(ec);
    if (s.on_drop) s.on_drop(info);
  }

  static bool is_resource_exhaustion(const std::error_code& ec) {
    return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
           ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory;
  }

  /// Out of descriptors: the pending connection stays in the backlog; try again
  /// shortly rather than spinning on an accept that cannot succeed.
  static awaitable<void> pause_accepting(state_ptr s) {
    asio::steady_timer timer(s->executor(), std::chrono::milliseconds(50));
    co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }

  template <typename Handler>
  static awaitable<void> run_handler(Handler handler, socket_type socket) {
    try {
      co_await handler(std::move(socket));
    } catch (const std::exception&) {
      // A reset peer or a bad request ends that connection only; the socket's
      // destructor has already closed it.
    }
  }

  state_ptr state_;
};

/// A server on asio::any_io_executor, the one most programs use.
using Server = basic_server<>;

}  // namespace coronet
