// coronet/server.hpp - a listening server, TCP or Unix-domain: Node's net.Server as
// co_await-able calls.
//
//     coronet::Server server{{.allow_half_open = true}};
//     co_await server.listen(3000);                      // host "::", dual-stack
//     co_await server.listen({.path = "/run/app.sock"}); // or a Unix-domain socket
//     co_await server.serve(session);                    // a coroutine per connection
//
// The server is a handle to state that its sockets share, so a socket may outlive
// the Server object and wait_closed() still counts it.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "address.hpp"
#include "block_list.hpp"
#include "config.hpp"
#include "detail/connection_tracker.hpp"
#include "detail/descriptor_hold.hpp"
#include "error.hpp"
#include "socket.hpp"

namespace coronet {

namespace tls {
template <typename Executor>
class basic_server;
}

/// Node's net.createServer() options, applied to every accepted socket.
struct ServerOptions {
  /// false (Node's default): when the peer's FIN arrives, the socket ends its own side
  /// once queued writes have left. true: it stays writable until you call end().
  bool allow_half_open = false;
  /// Accepted sockets start paused: nothing is read until resume().
  bool pause_on_connect = false;
  bool no_delay = false;    ///< TCP_NODELAY on every accepted socket
  bool keep_alive = false;  ///< SO_KEEPALIVE on every accepted socket ...
  /// ... with this first-probe delay: 0 (the system's) to Socket::max_keep_alive_delay
  /// (32767 s, Linux's limit); the server's constructor refuses anything else.
  std::chrono::seconds keep_alive_initial_delay{0};
  std::size_t high_water_mark = 64 * 1024;  ///< each socket's write_nowait() bound
  /// Connections beyond this many open ones are closed as they arrive and reported
  /// to on_drop() (Node's maxConnections and 'drop'), whether or not anything waits
  /// in accept() at that moment. Below the limit, a connection waits in the kernel's
  /// backlog for the next accept(), as always. 0: no limit (Node 20's meaning).
  std::size_t max_connections = 0;
  /// Node's blockList: a peer it blocks is closed as soon as it is accepted, before
  /// it counts in connections(), and reported to on_blocked() (Node closes it
  /// silently; on_drop() stays for max_connections, as Node's 'drop' does). A
  /// pointer keeps these options trivially destructible: the server's constructor
  /// copies the handle, so the list need not outlive the constructor, and rules
  /// added later through any copy still apply. nullptr: nobody is blocked.
  const BlockList* block_list = nullptr;
};

/// What on_drop() (max_connections) and on_blocked() (block_list) learn about a
/// connection they refused.
struct DropInfo {
  Address local{};   ///< the server's end of the dropped connection
  Address remote{};  ///< the client's end
};

/// What a server has done so far (server.stats()), over every connection it
/// accepted, closed ones included.
struct ServerStats {
  std::uint64_t accepted = 0;       ///< connections accept() took (dropped ones are not among them)
  std::uint64_t dropped = 0;        ///< connections closed at once because of max_connections
  std::size_t active = 0;           ///< open now, as connections()
  std::uint64_t bytes_read = 0;     ///< received over all of them, open and closed
  std::uint64_t bytes_written = 0;  ///< handed to the kernel over all of them
};

/// What server.shutdown() did with the connections that were open when it began.
struct ShutdownResult {
  /// Ended without being cut: idle ones it ended at once, and the ones that finished
  /// their exchange (or closed on their own) within the grace period.
  std::size_t graceful = 0;
  /// Still open when the grace period ran out: destroyed.
  std::size_t cut = 0;
};

/// Node's server.listen() options. Like every coronet options struct it is
/// trivially destructible (see ConnectOptions): `host` and `path` are views that
/// listen() copies before it returns its awaitable.
struct ListenOptions {
  int port = 0;             ///< 0..65535; 0 lets the kernel pick (see address())
  std::string_view host{};  ///< empty: "::" dual-stack, else "0.0.0.0"; a name is resolved
  int backlog = 511;        ///< Node's default; the kernel caps it at somaxconn
  bool ipv6_only = false;   ///< on "::", refuse IPv4 clients (IPV6_V6ONLY)
  bool reuse_port = false;  ///< SO_REUSEPORT: several servers (one per core) share the port
  /// A Unix-domain socket instead of TCP (Node's IPC `path`): a file path, or an
  /// abstract name written "@name" or "\0name" (Linux; no file). At most 107 bytes.
  /// With a path, port and host must be left out. An existing file is not replaced:
  /// listen() throws EADDRINUSE, as Node does (see docs/guide.md for stale files).
  std::string_view path{};
  bool readable_all = false;  ///< with a file path: make the socket readable for all users
  bool writable_all = false;  ///< ... and writable (connecting needs write permission)
};
static_assert(std::is_trivially_destructible_v<ListenOptions>);
static_assert(std::is_trivially_destructible_v<ServerOptions>);

/// What serve() takes: a copyable callable that, given an accepted socket, returns
/// the coroutine (awaitable<void>) that handles it. serve() copies it once per
/// connection, so a capturing lambda is fine as long as what it captures outlives
/// the server's connections.
template <typename Handler, typename SocketType>
concept connection_handler =
    std::copy_constructible<Handler> && std::invocable<Handler&, SocketType> &&
    std::same_as<std::invoke_result_t<Handler&, SocketType>, awaitable<void>>;

/// A TCP or Unix-domain server, Node's net.Server, whose acceptor and sockets use `Executor`
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
  /// Throws errc::out_of_range for an option the kernel would refuse on every
  /// connection (a keep_alive_initial_delay outside 0..32767 s), naming it.
  explicit basic_server(ServerOptions options = {})
      : state_(std::make_shared<state>(validated(options))) {}
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
  /// not resolve; errc::server_already_listening when listening. With a path:
  /// "listen EADDRINUSE: address already in use /run/app.sock" when the file
  /// exists, "listen ENAMETOOLONG" past 107 bytes, errc::invalid_argument for a
  /// path with a port or host. Cancelled while it resolves a host name, it binds
  /// nothing.
  awaitable<void> listen(int port = 0, std::string_view host = {}, int backlog = 511) {
    return listen(ListenOptions{.port = port, .host = host, .backlog = backlog});
  }
  awaitable<void> listen(const ListenOptions& options) {
    return listen_here(state_, options, std::string(options.host), std::string(options.path));
  }
  ///@}
  /// The same without a coroutine, on an explicit executor (a host name is
  /// resolved synchronously). Handy in main() before io_context::run().
  void listen(const executor_type& executor, const ListenOptions& options) {
    if (!options.path.empty()) {
      check_can_listen(*state_, options);
      return bind_and_listen_unix(*state_, executor, options);
    }
    bind_and_listen(*state_, executor, options, resolve_now(executor, options));
  }

  /// The next connection. Completes when a peer connects and its socket has the
  /// server's options. A connection that fails on its own is skipped and accept()
  /// waits for the next: one the peer gave up on (ECONNABORTED), one accept(2)
  /// says to retry after (ENETDOWN, EPROTO, EHOSTUNREACH, ...), one the kernel
  /// refuses an option on (closed), one beyond max_connections (closed, reported
  /// to on_drop()), one from a peer its block_list blocks (closed, reported to
  /// on_blocked()). Throws errc::server_not_running when not listening,
  /// operation_aborted when close() interrupts it ("accept aborted: the server was
  /// closed"), "accept EMFILE" and the like when the process is out of resources
  /// (serve() rides those out; a bare accept() loop should too). Cancelled (`||`,
  /// a cancellation slot, a parent coroutine, coronet::timeout()), it throws
  /// operation_aborted ("accept cancelled"), holds no descriptor, and the next
  /// connection stays for the next accept(): in the backlog, or, if it was accepted
  /// in the same instant, held by the server (closed if the server closes first).
  awaitable<socket_type> accept() { return accept_on(state_); }

  /// Accepts until close(), running `handler(socket)` (a coroutine returning
  /// awaitable<void>; see connection_handler) for each connection on the server's
  /// executor. An exception from a handler ends that connection only, as does a
  /// connection accept() skips. Completes after close(). Out of descriptors
  /// (EMFILE/ENFILE) it pauses accepting briefly instead of spinning. Throws what
  /// accept() throws otherwise; cancelled, it stops accepting (the server still
  /// listens) and running handlers go on.
  template <typename Handler>
  requires connection_handler<Handler, socket_type>
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a coroutine must own its arguments
      awaitable<void> serve(Handler handler) {
    return serve_on(state_, std::move(handler));
  }

 private:
  /// serve()'s loop, with the state as a parameter of its own frame: g++ 12 at -O2
  /// lost a local copy of it across the loop (accept() then saw a server that was
  /// not listening and serve() ended after its first connection).
  template <typename Handler>
  static awaitable<void> serve_on(auto s, Handler handler) {  // s: state_ptr (declared below)
    if (!s->listening()) co_return;                           // as after close()
    // One slot for all its accepts, and one accept_each() frame unless one fails.
    accept_slot slot{stream_type(s->executor()), {}};
    const auto spawn = [&s, &handler](accept_slot& accepted) {
      std::optional<socket_type> socket = adopt(*s, take(*s, accepted));
      start_dropping_if_full(s);
      if (socket) spawn_handler(s->executor(), handler, std::move(*socket));
      return true;  // and the next
    };
    for (;;) {
      try {
        co_await accept_each(s, slot, spawn);
      } catch (const error& e) {
        if (!s->listening()) co_return;
        if (!is_resource_exhaustion(e.code())) throw;
      }
      co_await pause_accepting(s);
    }
  }

 public:
  /// Called for each connection closed because of max_connections (Node's 'drop').
  void on_drop(std::function<void(const DropInfo&)> handler) {
    state_->on_drop = std::move(handler);
  }
  /// Called for each connection closed because options().block_list blocks its
  /// peer (Node has no event for it). A full server reports to on_drop() instead.
  void on_blocked(std::function<void(const DropInfo&)> handler) {
    state_->on_blocked = std::move(handler);
  }

  /// Stops accepting at once; accepted sockets stay open. A Unix-domain server
  /// removes its socket file, as Node does. Throws errc::server_not_running when
  /// not listening (Node's ERR_SERVER_NOT_RUNNING).
  void close() {
    if (!listening()) throw error(errc::server_not_running);
    state_->listener_hold.close(*state_->acceptor);
    if (state_->accepting == 0) state_->listener_hold.release();  // nothing was waiting on it
    state_->held.reset();                                         // as the kernel drops its backlog
    if (!state_->socket_file.empty()) ::unlink(std::exchange(state_->socket_file, {}).c_str());
    state_->tracker->notify();
  }

  /// Graceful shutdown in one call (Python's Server.close_clients() then
  /// abort_clients(), with Node http's closeIdleConnections() in between):
  ///  - stops accepting at once (as close() does, and no error if already closed);
  ///  - ends every idle connection at once: one whose handler waits in a read with
  ///    nothing received and unread and nothing queued to write. We send FIN and
  ///    that read returns the end of the stream (nullopt, or 0 from read_some()),
  ///    as if the client had ended, so a handler's read loop finishes normally;
  ///  - lets every other connection finish its exchange (a partial frame, a reply
  ///    being written or computed) and ends it the moment it goes idle;
  ///  - after `grace`, destroys what is still open (pending operations fail with
  ///    operation_aborted, as after destroy()).
  /// Completes when every connection has closed, at the latest when `grace` runs
  /// out, with how many ended gracefully and how many were cut; wait_closed() is
  /// then complete too. Connections that close on their own count as graceful.
  /// Throws nothing but its cancellation: cancelled, it throws operation_aborted
  /// ("shutdown cancelled"); the server stays closed, nothing is destroyed, and the
  /// connections still open stay marked, so each still ends when it goes idle.
  awaitable<ShutdownResult> shutdown(std::chrono::milliseconds grace) {
    return shutdown_on(state_, grace);
  }

  /// Completes once the server is closed and every socket it accepted has closed
  /// (Node's 'close' event). Cancelled, it throws operation_aborted ("wait_closed
  /// cancelled") and changes nothing on the server.
  awaitable<void> wait_closed() {
    auto s = state_;
    const auto cancel = co_await asio::this_coro::cancellation_state;
    while (s->listening() || (s->tracker && s->tracker->count() > 0)) {
      if (is_cancelled(cancel) || !co_await s->tracker->wait_for_change()) {
        throw detail::cancelled_error("wait_closed");
      }
    }
  }

  /// Where it listens ({"::", "IPv6", 3000}, or {path, "Unix", 0}); nullopt when
  /// not listening.
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
  /// Counts and byte totals since the first listen(): all zero before it. It costs
  /// nothing per read or write; a call walks the open connections' counters, so it
  /// suits a metrics endpoint rather than every request. Same thread rules as
  /// connections(): ask from the thread (or strand) its sockets run on.
  ServerStats stats() const {
    if (!state_ || !state_->tracker) return {};
    const auto& t = *state_->tracker;
    ServerStats stats{t.accepted(), t.dropped_count(), t.count(), t.closed_bytes_read(),
                      t.closed_bytes_written()};
    t.for_each_linked([&stats](const detail::tracked_connection& c) {
      const auto& core = static_cast<const detail::socket_core<Executor>&>(c);
      stats.bytes_read += core.bytes_read();
      stats.bytes_written += core.bytes_written();
    });
    return stats;
  }
  /// The options it was constructed with.
  const ServerOptions& options() const { return state_->options; }
  /// The executor it listens on; throws errc::server_not_running before listen().
  executor_type get_executor() const {
    if (!state_ || !state_->acceptor) throw error(errc::server_not_running);
    return state_->acceptor->get_executor();
  }

 private:
  // The TLS server accepts connections here and hand-shakes before they become sockets.
  template <typename>
  friend class tls::basic_server;

  using tcp = asio::ip::tcp;
  // One acceptor and socket type for both families (see detail::socket_core).
  using local_protocol = detail::local_protocol;
  using acceptor_type = asio::basic_socket_acceptor<local_protocol, Executor>;
  using stream_type = asio::basic_stream_socket<local_protocol, Executor>;

  struct state {
    explicit state(ServerOptions o) : options(o) {
      if (o.block_list) options.block_list = &block_list.emplace(*o.block_list);
    }
    ServerOptions options;
    std::optional<BlockList> block_list;  // the server's own handle on the caller's list
    std::optional<acceptor_type> acceptor;
    detail::descriptor_hold listener_hold;  // closes acceptor (see descriptor_hold.hpp)
    std::shared_ptr<detail::connection_tracker> tracker;
    std::function<void(const DropInfo&)> on_drop;
    std::function<void(const DropInfo&)> on_blocked;
    std::size_t accepting = 0;  // accept() calls waiting: they drop over-limit connections
    bool dropping = false;      // drop_while_full() runs: nobody else need start it
    bool unix_domain = false;   // listening on a path
    std::string socket_file;    // the file listen() created, removed by close()
    /// A connection accepted in the instant its accept() was cancelled: the next
    /// accept() takes it, as it would have taken it from the backlog.
    std::optional<std::pair<stream_type, local_protocol::endpoint>> held;
    bool listening() const { return acceptor && acceptor->is_open(); }
    executor_type executor() { return acceptor->get_executor(); }
  };
  using state_ptr = std::shared_ptr<state>;

  static ServerOptions validated(const ServerOptions& o) {
    detail::checked_range("options.keep_alive_initial_delay", o.keep_alive_initial_delay.count(), 0,
                          socket_type::max_keep_alive_delay.count(), "seconds");
    return o;
  }

  /// Where to bind; nullopt means "no host": "::" dual-stack, else "0.0.0.0".
  using bind_target = std::optional<tcp::endpoint>;

  static void check_can_listen(const state& s, const ListenOptions& o) {
    if (s.listening()) throw error(errc::server_already_listening);
    detail::checked_port(o.port, "options.port");
    if (o.backlog < 0) throw error(errc::invalid_argument, ": backlog must not be negative");
    if (o.path.empty()) return;
    if (o.port != 0 || !o.host.empty()) {
      throw error(errc::invalid_argument,
                  ": options.path names a Unix-domain socket; leave out options.port and "
                  "options.host");
    }
    if (detail::is_abstract(o.path) && (o.readable_all || o.writable_all)) {
      throw error(errc::invalid_argument,
                  ": options.readable_all and options.writable_all need a file path; an abstract "
                  "socket (\"" +
                      std::string(o.path) + "\") has no file to set permissions on");
    }
  }

  /// The coroutine behind listen(): `host` and `path` are this frame's copies of
  /// the caller's views.
  static awaitable<void> listen_here(state_ptr s, ListenOptions o, std::string host,
                                     std::string path) {
    o.host = host;
    o.path = path;
    auto executor = co_await asio::this_coro::executor;
    check_can_listen(*s, o);
    if (!o.path.empty()) {
      bind_and_listen_unix(*s, own_executor(executor), o);
      co_return;
    }
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
    became_listening(s, std::move(acceptor), executor, false);
  }

  static void became_listening(state& s, acceptor_type acceptor, const executor_type& executor,
                               bool unix_domain) {
    s.acceptor.emplace(std::move(acceptor));
    s.unix_domain = unix_domain;
    if (!s.tracker) s.tracker = std::make_shared<detail::connection_tracker>(executor);
  }

  /// listen() on a path. bind() creates the socket file (EADDRINUSE when one is
  /// there already, stale or not: Node does not remove it either), then the
  /// permissions Node's readableAll/writableAll add.
  static void bind_and_listen_unix(state& s, const executor_type& executor,
                                   const ListenOptions& o) {
    const auto where = detail::unix_endpoint(o.path, "listen");
    acceptor_type acceptor(executor);
    std::error_code ec;
    if (!acceptor.open(where.protocol(), ec) && !acceptor.bind(where, ec)) {
      const bool file = !detail::is_abstract(o.path);
      if (file) s.socket_file = std::string(o.path);
      if (file && (o.readable_all || o.writable_all)) ec = grant_access(o);
      if (!ec) acceptor.listen(o.backlog, ec);
      if (ec && file) ::unlink(std::exchange(s.socket_file, {}).c_str());
    }
    if (ec) throw detail::syscall_error("listen", ec, std::string(o.path), true);
    became_listening(s, std::move(acceptor), executor, true);
  }

  static std::error_code grant_access(const ListenOptions& o) {
    const std::string file(o.path);
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) return {errno, std::system_category()};
    mode_t mode = st.st_mode & 07777;
    if (o.readable_all) mode |= S_IRUSR | S_IRGRP | S_IROTH;
    if (o.writable_all) mode |= S_IWUSR | S_IWGRP | S_IWOTH;
    if (::chmod(file.c_str(), mode) != 0) return {errno, std::system_category()};
    return {};
  }

  static std::error_code open_bind_listen(acceptor_type& acceptor, const tcp::endpoint& ip_where,
                                          const ListenOptions& o) {
    std::error_code ec;
    std::error_code ignored;
    acceptor.close(ignored);
    const local_protocol::endpoint where(ip_where);
    if (acceptor.open(where.protocol(), ec)) return ec;
    if (acceptor.set_option(asio::socket_base::reuse_address(true), ec)) return ec;
    if (o.reuse_port) {
      int one = 1;
      if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        return {errno, std::system_category()};
      }
    }
    if (ip_where.address().is_v6() && ip_where.address().is_unspecified()) {
      acceptor.set_option(asio::ip::v6_only(o.ipv6_only), ec);
      if (ec) return ec;
    }
    if (acceptor.bind(where, ec)) return ec;
    if (acceptor.listen(o.backlog, ec)) return ec;
    return {};
  }

  /// Counts an accept() in state::accepting for as long as it may still drop.
  class waiting_in_accept {
   public:
    explicit waiting_in_accept(state& s) : s_(s) { ++s_.accepting; }
    waiting_in_accept(const waiting_in_accept&) = delete;
    waiting_in_accept& operator=(const waiting_in_accept&) = delete;
    ~waiting_in_accept() { stop(); }
    void stop() {
      // The last accept() waiting on a closed listener is back: its operation is
      // over, and the listener's number can go (detail/descriptor_hold.hpp).
      if (counted_ && --s_.accepting == 0 && !s_.listening()) s_.listener_hold.release();
      counted_ = false;
    }

   private:
    state& s_;
    bool counted_ = true;
  };

  static bool is_cancelled(const asio::cancellation_state& cancel) {
    return cancel.cancelled() != asio::cancellation_type::none;
  }

  static awaitable<socket_type> accept_on(state_ptr s) {
    const auto slot = new_slot(*s);
    std::optional<socket_type> socket;
    co_await accept_each(s, *slot, [&s, &socket](accept_slot& accepted) {
      socket = adopt(*s, take(*s, accepted));
      start_dropping_if_full(s);
      return !socket;  // the kernel refused an option on it: the next one
    });
    co_return std::move(*socket);
  }

  /// The next connection within max_connections, before it is a socket (the TLS
  /// server hand-shakes on it); what accept() says of failures and cancellation
  /// holds here too.
  static awaitable<detail::connected_stream<Executor>> accept_stream_on(state_ptr s) {
    const auto slot = new_slot(*s);
    co_await accept_each(s, *slot, [](accept_slot&) { return false; });
    co_return take(*s, *slot);
  }

  /// Where an accept puts the connection it takes: the socket and the peer's
  /// address (a generic endpoint, 144 bytes). The accept's caller owns it, not a
  /// coroutine frame made per accept, because Asio's per-thread cache hands a freed
  /// frame's block to the next frame that fits in it: an accept frame holding these
  /// (672 bytes) was freed just before each connection's entry frame was
  /// allocated, which then kept the whole block (docs/design.md, "What an idle
  /// connection costs"). serve() keeps one for as long as it runs.
  struct accept_slot {
    stream_type peer;
    local_protocol::endpoint remote;
  };

  /// accept()'s own slot, on the heap rather than in its frame (see accept_slot).
  static std::unique_ptr<accept_slot> new_slot(state& s) {
    if (!s.listening()) throw error(errc::server_not_running);
    return std::make_unique<accept_slot>(accept_slot{stream_type(s.executor()), {}});
  }

  /// The connection an accept left in `slot`, moved out (the slot's socket is then
  /// as if new, ready for the next accept).
  static detail::connected_stream<Executor> take(const state& s, accept_slot& slot) {
    const tcp::endpoint ip_remote = s.unix_domain ? tcp::endpoint{} : detail::to_tcp(slot.remote);
    return {std::move(slot.peer), ip_remote, s.unix_domain};
  }

  /// Accepts connections within max_connections into `slot`, one at a time, and
  /// hands each to `deliver(slot)`, which takes it and says whether to accept
  /// another. One frame for all of serve()'s accepts: per connection, only Asio's
  /// initiation frame for async_accept comes and goes, and the connection's entry
  /// frame fits that block. What accept() says of failures and cancellation holds
  /// here too; only an exception ends it, unless `deliver` says so.
  template <typename Deliver>
  // NOLINTNEXTLINE(performance-unnecessary-value-param): a coroutine must own its arguments
  static awaitable<void> accept_each(state_ptr s, accept_slot& slot, Deliver deliver) {
    const auto cancel = co_await asio::this_coro::cancellation_state;
    for (;;) {
      if (!s->listening()) throw error(errc::server_not_running);
      waiting_in_accept waiting{*s};
      for (;;) {
        std::error_code ec;
        if (is_cancelled(cancel)) throw detail::cancelled_error("accept");
        if (s->held) {
          // Taken only after a turn of the executor, never at once: `||` discards an
          // operand that completes at once but after the other, and the connection
          // with it. After the turn a cancellation is seen, and the connection stays.
          co_await asio::post(s->executor(), asio::use_awaitable);
          if (is_cancelled(cancel)) throw detail::cancelled_error("accept");
          if (!take_held(*s, slot)) continue;  // another accept() took it meanwhile
        } else {
          std::tie(ec) = co_await s->acceptor->async_accept(
              slot.peer, slot.remote, asio::experimental::as_tuple(asio::use_awaitable));
        }
        if (settle(s, slot, ec, cancel, waiting)) break;
      }
      if (!deliver(slot)) co_return;
    }
  }

  /// The connection a cancelled accept left (see state::held), if it is still there.
  static bool take_held(state& s, accept_slot& slot) {
    if (!s.held) return false;
    std::tie(slot.peer, slot.remote) = std::move(*std::exchange(s.held, std::nullopt));
    return true;
  }

  /// What an accept's outcome means: true when `slot` holds a connection to hand
  /// out, false to wait for the next; throws what accept() throws.
  static bool settle(const state_ptr& s, accept_slot& slot, const std::error_code& ec,
                     const asio::cancellation_state& cancel, waiting_in_accept& waiting) {
    if (!s->listening()) {
      // Closed, or the accept completed in the same turn as close() or shutdown():
      // no connection is handed out after that (shutdown() has counted its own).
      // An error then is the close's doing: operation_aborted, or on io_uring what
      // the closed listener's placeholder answered (detail/descriptor_hold.hpp).
      std::error_code ignored;
      if (!ec) slot.peer.close(ignored);
      throw error(asio::error::operation_aborted, "accept aborted: the server was closed");
    }
    if (is_cancelled(cancel)) {
      if (!ec) s->held.emplace(std::move(slot.peer), slot.remote);
      throw detail::cancelled_error("accept");
    }
    if (is_failed_connection(ec)) return false;
    if (ec) {
      waiting.stop();
      start_dropping_if_full(s);  // this accept() no longer drops for the server
      throw detail::syscall_error("accept", ec);
    }
    const bool full = over_limit(*s);
    if (full || is_blocked(*s, slot.remote)) {
      drop(*s, slot.peer, slot.remote, full ? refusal::full : refusal::blocked);
      return false;
    }
    waiting.stop();
    return true;
  }

  /// The accepted connection as a socket with the server's options, or nullopt
  /// when the kernel refuses one of them: that connection alone is closed (the
  /// socket's destructor does it), as Node ignores a failed setKeepAlive().
  static std::optional<socket_type> adopt(state& s, detail::connected_stream<Executor> c,
                                          std::unique_ptr<detail::secure_layer> layer = nullptr) {
    const ServerOptions& o = s.options;
    detail::socket_settings settings{.unix_domain = s.unix_domain,
                                     .allow_half_open = o.allow_half_open,
                                     .paused = o.pause_on_connect,
                                     .high_water_mark = o.high_water_mark};
    auto core = std::make_shared<detail::socket_core<Executor>>(
        std::move(c.stream), c.remote, settings, s.tracker, std::move(layer));
    s.tracker->link(*core);  // so that shutdown() can reach it
    socket_type socket(std::move(core));
    try {
      if (o.no_delay) socket.set_no_delay(true);
      if (o.keep_alive) socket.set_keep_alive(true, o.keep_alive_initial_delay);
    } catch (const error&) {
      return std::nullopt;
    }
    return socket;
  }

  /// accept(2): "Linux accept() passes already-pending network errors on the new
  /// socket as an error code from accept() ... For reliable operation the
  /// application should detect [these] and treat them like EAGAIN by retrying."
  /// (ECONNABORTED and EPROTO: Asio retries those itself; listed for clarity.)
  static bool is_failed_connection(const std::error_code& ec) {
    const auto code = detail::normalize(ec);
    if (code.category() != std::system_category()) return false;
    switch (code.value()) {
      case ECONNABORTED:
      case ENETDOWN:
      case EPROTO:
      case ENOPROTOOPT:
      case EHOSTDOWN:
      case ENONET:
      case EHOSTUNREACH:
      case EOPNOTSUPP:
      case ENETUNREACH: return true;
      default: return false;
    }
  }

  /// Node drops a connection beyond maxConnections as soon as it arrives. An
  /// accept() that is waiting does that itself; when none is (a handler loop busy
  /// elsewhere), this coroutine does it, so the client is not left connected and
  /// silent in the backlog.
  static void start_dropping_if_full(const state_ptr& s) {
    if (s->dropping || !should_drop(*s)) return;
    s->dropping = true;
    asio::co_spawn(s->executor(), drop_while_full(s), asio::detached);
  }

  static bool should_drop(const state& s) {
    return s.listening() && s.accepting == 0 && over_limit(s);
  }

  /// Waits until a connection is pending and accepts it only to drop it, while the
  /// server is full and no accept() waits. It never accepts below the limit, so a
  /// connection that an accept() called later should get stays in the backlog.
  static awaitable<void> drop_while_full(state_ptr s) {
    struct stop_dropping {
      state& s;
      ~stop_dropping() { s.dropping = false; }
    } guard{*s};
    // Let the accept() that filled the server hand out its socket first, and a
    // serve() loop call accept() again, which makes this loop unnecessary.
    co_await asio::post(s->executor(), asio::use_awaitable);
    while (should_drop(*s)) {
      auto [waited] = co_await s->acceptor->async_wait(
          acceptor_type::wait_read, asio::experimental::as_tuple(asio::use_awaitable));
      if (waited && waited != asio::error::operation_aborted) co_return;
      if (waited || !should_drop(*s)) continue;
      std::error_code ec;
      s->acceptor->non_blocking(true, ec);  // another accept may have taken it: no blocking
      local_protocol::endpoint remote;
      stream_type peer(s->executor());
      if (!ec) s->acceptor->accept(peer, remote, ec);
      if (!ec) {
        drop(*s, peer, remote, refusal::full);
      } else if (is_resource_exhaustion(ec)) {
        co_await pause_accepting(s);
      }
    }
  }

  /// A Unix-domain peer has no IP address for a BlockList to judge.
  static bool is_blocked(const state& s, const local_protocol::endpoint& remote) {
    return s.block_list && !s.unix_domain && s.block_list->check(detail::to_tcp(remote).address());
  }

  static bool over_limit(const state& s) {
    return s.options.max_connections != 0 && s.tracker->count() >= s.options.max_connections;
  }

  /// Why drop() closes a connection: it decides which hook hears of it.
  enum class refusal { full, blocked };

  /// Closes a connection beyond max_connections (on_drop(), counted in stats()) or
  /// from a blocked peer (on_blocked()): the client sees its connect succeed, then
  /// FIN, with no data, as with Node.
  static void drop(state& s, stream_type& peer, const local_protocol::endpoint& remote,
                   refusal why) {
    DropInfo info;
    std::error_code ec;
    if (auto local = peer.local_endpoint(ec); !ec) info.local = detail::to_address(local);
    if (!s.unix_domain) info.remote = detail::to_address(remote);
    peer.close(ec);
    if (why == refusal::full) s.tracker->dropped();
    const auto& hook = why == refusal::full ? s.on_drop : s.on_blocked;
    if (hook) hook(info);
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

  using core_type = detail::socket_core<Executor>;

  static awaitable<ShutdownResult> shutdown_on(state_ptr s, std::chrono::milliseconds grace) {
    if (s->listening()) {
      s->listener_hold.close(*s->acceptor);
      if (s->accepting == 0) s->listener_hold.release();
    }
    s->held.reset();  // as the kernel drops its backlog
    ShutdownResult result;
    if (!s->tracker) co_return result;  // it never listened: no connections
    const auto open = s->tracker->linked();
    for (auto* connection : open) {
      if (auto core = locked(connection)) core->end_when_idle();
    }
    s->tracker->notify();  // wait_closed() may be done already
    if (co_await wait_for_all_closed(s->tracker, grace)) {
      for (auto* connection : s->tracker->linked()) {
        if (auto core = locked(connection)) {
          core->destroy();
          ++result.cut;
        }
      }
    }
    result.graceful = open.size() - result.cut;
    co_return result;
  }

  /// The socket a list entry belongs to (every socket the tracker links is ours).
  static std::shared_ptr<core_type> locked(detail::tracked_connection* connection) {
    return static_cast<core_type*>(connection)->weak_from_this().lock();
  }

  /// Waits until the server has no open connection (false) or `grace` has passed
  /// with some still open (true). Throws operation_aborted when cancelled.
  static awaitable<bool> wait_for_all_closed(std::shared_ptr<detail::connection_tracker> tracker,
                                             std::chrono::milliseconds grace) {
    using clock = std::chrono::steady_clock;
    const auto cancel = co_await asio::this_coro::cancellation_state;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_at(detail::saturating_add<clock>(
        clock::now(), std::max(grace, std::chrono::milliseconds::zero())));
    timer.async_wait([tracker](std::error_code ec) {
      if (!ec) tracker->notify();
    });
    while (tracker->count() > 0 && clock::now() < timer.expiry()) {
      if (cancel.cancelled() != asio::cancellation_type::none ||
          !co_await tracker->wait_for_change())
        throw error(asio::error::operation_aborted, "shutdown cancelled");
    }
    co_return tracker->count() > 0;
  }

#if CORONET_ASIO_INTERNALS
  /// Runs `handler(socket)` as a coroutine of its own, as co_spawn(..., detached)
  /// does, but with one frame per connection instead of two: Asio's co_spawn entry
  /// coroutine keeps 432 bytes for as long as the connection lives (docs/design.md),
  /// and a handler with state needs a frame that keeps a copy of it alive anyway.
  /// This frame is that copy and the entry point at once, so it goes beneath Asio's
  /// public API: an awaitable thread (asio::detail) started on it, as co_spawn starts
  /// its entry coroutine. It starts at once, as co_spawn does on its own executor,
  /// and runs until the handler first waits before this function returns.
  static void spawn_handler(const executor_type& ex, const auto& handler, socket_type socket) {
    asio::detail::awaitable_thread<asio::any_io_executor>(
        run_handler(handler, socket), asio::any_io_executor(ex), asio::cancellation_slot(),
        asio::cancellation_state())
        .launch();
  }

  /// An exception from the handler ends that connection only (a reset peer, a bad
  /// request): the socket's destructor has already closed it.
  ///
  /// `socket` is spawn_handler()'s, borrowed only until the handler's coroutine has
  /// taken it, which happens before the first suspension (launch() runs this frame
  /// at once), so the frame keeps a reference instead of a second socket; the call
  /// is a statement of its own so that no moved-from argument lives across the wait.
  ///
  /// Unlike co_spawn's entry point, this frame holds no work guard on the executor
  /// (56 bytes, an any_io_executor): co_spawn needs one because it is an operation
  /// whose completion handler must still be runnable on its executor, and this has
  /// no completion handler. An asio::awaitable can only suspend in an Asio
  /// operation, and every operation keeps its completion handler's executor busy
  /// until it completes (Asio's requirements on asynchronous operations; coronet's
  /// own waits are timers, receives, posts and co_spawn'ed threads), so run()
  /// still cannot return while a handler waits.
  template <typename Handler>
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-reference-coroutine-parameters): see above
  static asio::awaitable<asio::detail::awaitable_thread_entry_point> run_handler(
      Handler handler, socket_type& socket) {
    try {
      auto session = handler(std::move(socket));
      co_await std::move(session);
    } catch (...) {
    }
  }
#else
  /// The same through co_spawn: its entry frame and this one per connection.
  static void spawn_handler(const executor_type& ex, const auto& handler, socket_type socket) {
    asio::co_spawn(ex, run_handler(handler, std::move(socket)), asio::detached);
  }

  /// An exception from the handler ends that connection only; this frame keeps the
  /// handler's copy alive for as long as its coroutine runs.
  template <typename Handler>
  static awaitable<void> run_handler(Handler handler, socket_type socket) {
    try {
      co_await handler(std::move(socket));
    } catch (...) {
    }
  }
#endif

  state_ptr state_;
};

/// A server on asio::any_io_executor, the one most programs use.
using Server = basic_server<>;

}  // namespace coronet
