// coronet/connect.hpp - net.createConnection(): resolve, try each address, hand back a Socket.
//
//     auto socket = co_await coronet::connect({.host = "localhost", .port = 4000});
//     auto socket = co_await coronet::connect(4000);            // host "localhost"
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "address.hpp"
#include "block_list.hpp"
#include "config.hpp"
#include "deadline.hpp"
#include "detail/descriptor_hold.hpp"
#include "detail/event.hpp"
#include "error.hpp"
#include "socket.hpp"

namespace coronet {

/// Node's net.connect() options, with C++ types. Only `port` is required.
///
/// Strings are views: connect() copies them before it returns its awaitable, so
/// they only need to live until the call. (Every coronet options struct is
/// trivially destructible on purpose: g++ 12 crashes on aggregate temporaries
/// with destructors inside a co_await expression, which is how options are
/// usually written: `co_await connect({.host = "example.org", .port = 80})`.)
struct ConnectOptions {
  std::string_view host = "localhost";  ///< a name (resolved) or an IP literal (used as is)
  /// 0..65535; required unless `path` is given. Left out, connect() says so; out of
  /// range (-1 too), it names the value as Node's ERR_SOCKET_BAD_PORT does.
  std::optional<int> port{};
  /// A Unix-domain socket to connect to instead (Node's IPC `path`): a file path or
  /// an abstract "@name" / "\0name". With a path the TCP options (host, port,
  /// local address and port, family, no_delay, keep_alive, lookup) are ignored, as
  /// in Node; allow_half_open, timeout and high_water_mark apply.
  std::string_view path{};
  std::string_view local_address{};  ///< source address to bind, an IP literal
  int local_port = 0;                ///< source port to bind; 0 lets the kernel pick
  int family = 0;                    ///< 0 (any), 4 or 6: which resolved addresses to try
  bool allow_half_open = false;      ///< see ServerOptions::allow_half_open
  bool no_delay = false;             ///< set TCP_NODELAY once connected
  bool keep_alive = false;           ///< set SO_KEEPALIVE once connected
  /// With keep_alive: the first probe after this (whole seconds, at most
  /// Socket::max_keep_alive_delay); 0 keeps the system's delay. See
  /// basic_socket::set_keep_alive().
  std::chrono::seconds keep_alive_initial_delay{0};
  /// Bounds connection set-up: when no address answers within it, connect() throws
  /// errc::timeout. As in Node it also becomes the socket's idle timeout afterwards.
  /// 0 is none; a span longer than the clock can count (milliseconds::max()) never
  /// passes.
  std::chrono::milliseconds timeout{0};
  /// Happy Eyeballs (RFC 8305): when a name resolves to several addresses, the
  /// next attempt starts after this delay (or at once when the previous one
  /// fails) while the earlier ones keep going; the first to connect wins. Unlike
  /// Node, no attempt is abandoned after the delay, so slow routes still work.
  std::chrono::milliseconds attempt_delay{250};
  /// Node's `lookup`: resolves `host` instead of the system resolver (a plain
  /// function, called once, before any attempt). Empty result: ENOTFOUND.
  std::vector<asio::ip::address> (*lookup)(std::string_view host) = nullptr;
  std::size_t high_water_mark = 64 * 1024;  ///< see basic_socket::high_water_mark()
  /// Node's blockList: a resolved address it blocks is never dialled; it counts as
  /// a failed attempt ("IP(10.0.0.3) is blocked by net.BlockList", errc::ip_blocked)
  /// and the next address is tried at once. connect() copies the handle before it
  /// returns its awaitable, so the list need only live until the call. Ignored
  /// with a path, as in Node.
  const BlockList* block_list = nullptr;
};
static_assert(std::is_trivially_destructible_v<ConnectOptions>,
              "options must stay trivially destructible: see the note above");

namespace detail {

using tcp = asio::ip::tcp;

inline void validate(const ConnectOptions& o) {
  if (o.timeout.count() < 0 || o.attempt_delay.count() < 0) {
    throw error(make_error_code(errc::invalid_argument),
                "options.timeout and options.attempt_delay must not be negative");
  }
  if (!o.path.empty()) return;  // the TCP options are ignored
  if (!o.port) {
    throw error(make_error_code(errc::invalid_argument),
                "The \"options\" or \"port\" or \"path\" argument must be specified");
  }
  checked_port(*o.port, "Port");
  checked_port(o.local_port, "options.localPort");
  if (o.family != 0 && o.family != 4 && o.family != 6) {
    throw error(make_error_code(errc::bad_family),
                "The property 'options.family' must be one of: 0, 4, 6. Received " +
                    std::to_string(o.family));
  }
  if (!o.local_address.empty() && !is_ip(o.local_address)) {
    throw error(
        make_error_code(errc::bad_address),
        "Invalid IP address: options.localAddress is '" + std::string(o.local_address) + "'");
  }
  checked_range("options.keep_alive_initial_delay", o.keep_alive_initial_delay.count(), 0,
                Socket::max_keep_alive_delay.count(), "seconds");
}

/// Sets `timer` to go off `after` from now. A span the clock cannot count (its
/// nanoseconds overflow past about 292 years, as milliseconds::max() does) would
/// wrap into the past and fire at once: it means never.
template <typename Timer>
void expire_after(Timer& timer, std::chrono::milliseconds after) {
  using clock = typename Timer::clock_type;
  constexpr auto longest =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock::duration::max());
  if (after >= longest) {
    timer.expires_at(clock::time_point::max());
  } else {
    timer.expires_after(after);  // Asio saturates now() + after at time_point::max()
  }
}

inline bool family_matches(const tcp::endpoint& ep, int family) {
  return family == 0 || (family == 4) == ep.address().is_v4();
}

/// The addresses to try, in the resolver's order. An IP literal skips resolution.
template <typename Executor>
awaitable<std::vector<tcp::endpoint>> resolve(Executor executor, const ConnectOptions& o) {
  const auto port = static_cast<std::uint16_t>(*o.port);
  std::vector<tcp::endpoint> endpoints;
  if (auto ip = parse_ip(o.host)) {
    endpoints.emplace_back(*ip, port);
  } else if (o.lookup) {
    for (const auto& address : o.lookup(o.host)) endpoints.emplace_back(address, port);
    if (endpoints.empty())
      throw error(make_error_code(errc::bad_address),
                  "getaddrinfo ENOTFOUND " + std::string(o.host));
  } else {
    asio::ip::basic_resolver<tcp, Executor> resolver(executor);
    auto [ec, results] = co_await resolver.async_resolve(
        o.host, std::to_string(port), asio::ip::resolver_base::numeric_service,
        asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) {
      const char* name = ec == asio::error::host_not_found_try_again ? "EAI_AGAIN" : "ENOTFOUND";
      throw error(ec, std::string("getaddrinfo ") + name + " " + std::string(o.host));
    }
    for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  }
  std::erase_if(endpoints, [&](const tcp::endpoint& ep) { return !family_matches(ep, o.family); });
  if (endpoints.empty()) {
    throw error(make_error_code(errc::bad_address), "getaddrinfo ENOTFOUND " + std::string(o.host) +
                                                        " (no IPv" + std::to_string(o.family) +
                                                        " address)");
  }
  co_return endpoints;
}

/// Where an attempt at `target` binds first (options.local_address/local_port),
/// or nullopt. Worked out before the attempt is spawned: the attempt may run after
/// connect()'s frame, which owns the option strings, is gone (a cancelled connect()).
inline std::optional<tcp::endpoint> local_bind(const tcp::endpoint& target,
                                               const ConnectOptions& o) {
  if (o.local_address.empty() && o.local_port == 0) return std::nullopt;
  auto local = o.local_address.empty()
                   ? (target.address().is_v4() ? asio::ip::address(asio::ip::address_v4::any())
                                               : asio::ip::address(asio::ip::address_v6::any()))
                   : *parse_ip(o.local_address);
  return tcp::endpoint(local, static_cast<std::uint16_t>(o.local_port));
}

/// One attempt; on failure returns the error and leaves `socket` closed.
template <typename Executor>
awaitable<std::error_code> try_connect(asio::basic_stream_socket<tcp, Executor>& socket,
                                       const tcp::endpoint& target,
                                       std::optional<tcp::endpoint> bind_to) {
  std::error_code ec;
  socket.open(target.protocol(), ec);
  if (!ec && bind_to) socket.bind(*bind_to, ec);
  if (!ec) {
    auto [e] =
        co_await socket.async_connect(target, asio::experimental::as_tuple(asio::use_awaitable));
    ec = e;
  }
  if (ec) {
    std::error_code ignored;
    socket.close(ignored);
  }
  co_return ec;
}

/// RFC 8305's order: families alternate, IPv6 first. With a local address only
/// its family can work.
inline std::vector<tcp::endpoint> attempt_order(const std::vector<tcp::endpoint>& resolved,
                                                const ConnectOptions& o) {
  std::vector<tcp::endpoint> v6, v4, order;
  for (const auto& ep : resolved) (ep.address().is_v6() ? v6 : v4).push_back(ep);
  if (!o.local_address.empty()) (is_ipv4(o.local_address) ? v6 : v4).clear();
  for (std::size_t i = 0; i < std::max(v6.size(), v4.size()); ++i) {
    if (i < v6.size()) order.push_back(v6[i]);
    if (i < v4.size()) order.push_back(v4[i]);
  }
  return order;
}

/// The attempts of one connect(), shared by the coroutines that race.
template <typename Executor>
struct connect_race {
  using socket_type = asio::basic_stream_socket<tcp, Executor>;

  explicit connect_race(Executor executor) : executor(std::move(executor)) {}

  std::optional<socket_type> winner;
  tcp::endpoint winner_endpoint;
  /// The attempts still connecting, to close when one wins. Shared with the attempts'
  /// coroutines rather than pointed into their frames: a destroyed io_context frees
  /// the frames in any order, and the last of them must not close a freed socket.
  std::vector<std::shared_ptr<socket_type>> in_flight;
  std::error_code first_error;
  std::string failures;  // "connect ECONNREFUSED ::1:80; connect ..."
  int running = 0;
  Executor executor;
  event<Executor> changed;

  void record_failure(const std::error_code& ec, const std::string& message) {
    if (!first_error) first_error = ec;
    if (!failures.empty()) failures += "; ";
    failures += message;
  }

  /// Closes every attempt still in flight: they finish with operation_aborted.
  void abandon_others() {
    for (const auto& attempt : in_flight) holds.close(*attempt);
  }
  /// Closes the abandoned attempts (see descriptor_hold.hpp); the attempts'
  /// coroutines share this race, so it outlives their operations.
  descriptor_hold holds;
};

template <typename Executor>
awaitable<void> connect_attempt(std::shared_ptr<connect_race<Executor>> race, tcp::endpoint target,
                                std::optional<tcp::endpoint> bind_to, Executor executor) {
  auto socket = std::make_shared<typename connect_race<Executor>::socket_type>(executor);
  race->in_flight.push_back(socket);
  std::error_code ec = co_await try_connect(*socket, target, bind_to);
  std::erase(race->in_flight, socket);
  if (race->in_flight.empty()) race->holds.release();  // no attempt's operation is left
  --race->running;
  if (!race->winner) {
    if (!ec) {
      race->winner.emplace(std::move(*socket));
      race->winner_endpoint = target;
      race->abandon_others();
    } else {
      race->record_failure(ec, syscall_error("connect", ec, host_port(target)).what());
    }
  }
  race->changed.notify_all();
}

/// Races the addresses the Happy Eyeballs way; the error lists every attempt.
template <typename Executor>
awaitable<asio::basic_stream_socket<tcp, Executor>> connect_any(
    Executor executor, const std::vector<tcp::endpoint>& targets, const ConnectOptions& o,
    tcp::endpoint& connected) {
  using namespace asio::experimental::awaitable_operators;
  auto race = std::make_shared<connect_race<Executor>>(executor);
  struct abandon_on_exit {
    connect_race<Executor>& race;
    ~abandon_on_exit() { race.abandon_others(); }  // cancelled or failed: leave nothing behind
  } guard{*race};
  asio::basic_waitable_timer<std::chrono::steady_clock,
                             asio::wait_traits<std::chrono::steady_clock>, Executor>
      stagger(executor);
  std::size_t next = 0;
  bool launch_now = true;
  const auto cancel = co_await asio::this_coro::cancellation_state;
  while (!race->winner) {
    if (cancel.cancelled() != asio::cancellation_type::none) throw cancelled_error("connect");
    if (next < targets.size() && (launch_now || race->running == 0)) {
      if (o.block_list && o.block_list->check(targets[next].address())) {
        // Node's ERR_IP_BLOCKED, as a failed attempt: no socket, the next at once.
        const auto ip = targets[next++].address().to_string();
        race->record_failure(make_error_code(errc::ip_blocked),
                             "IP(" + ip + ") is blocked by net.BlockList");
        launch_now = true;
        continue;
      }
      ++race->running;
      const auto& target = targets[next++];
      asio::co_spawn(executor, connect_attempt(race, target, local_bind(target, o), executor),
                     asio::detached);
      launch_now = false;
    }
    if (race->running == 0 && next == targets.size()) break;  // every attempt failed
    if (next < targets.size()) {
      expire_after(stagger, o.attempt_delay);
      auto woke =
          co_await (race->changed.wait(race->executor) || stagger.async_wait(asio::use_awaitable));
      launch_now = woke.index() == 1;  // the delay passed with no answer: start the next one
    } else {
      co_await race->changed.wait(race->executor);
    }
  }
  if (!race->winner) throw error(race->first_error, race->failures);
  connected = race->winner_endpoint;
  co_return std::move(*race->winner);
}

template <typename Executor>
using stream_socket = asio::basic_stream_socket<local_protocol, Executor>;

/// Runs `attempt` within options.timeout (when one is set), through timeout(): past
/// it, the attempt is cancelled (closing what it opened) and connect() throws
/// errc::timeout in Node's words. An attempt that fails first fails connect() at
/// once with its own error.
template <typename T>
awaitable<T> within_timeout(const ConnectOptions& o, awaitable<T> attempt,
                            std::string_view target) {
  if (o.timeout.count() == 0) co_return co_await std::move(attempt);
  try {
    co_return co_await coronet::timeout(o.timeout, std::move(attempt));
  } catch (const error& e) {
    if (e.code() != errc::timeout) throw;
  }
  throw error(make_error_code(errc::timeout), "connect ETIMEDOUT " + std::string(target) +
                                                  " (no connection within " +
                                                  std::to_string(o.timeout.count()) + " ms)");
}

/// TCP: resolve, race the addresses, and hand the winner over as the generic
/// stream socket every coronet socket is.
template <typename Executor>
awaitable<stream_socket<Executor>> connect_tcp(Executor executor, const ConnectOptions& o,
                                               tcp::endpoint& connected) {
  // The system resolver cannot be interrupted: a cancellation during resolution
  // is seen once it returns, before any descriptor is opened.
  const auto cancel = co_await asio::this_coro::cancellation_state;
  auto resolved = co_await resolve(executor, o);
  if (cancel.cancelled() != asio::cancellation_type::none) throw cancelled_error("connect");
  auto targets = attempt_order(resolved, o);
  if (targets.empty()) {
    throw error(make_error_code(errc::bad_address), "connect: no address of " +
                                                        std::string(o.host) +
                                                        " has the family of options.localAddress");
  }
  const std::string target = std::string(o.host) + ":" + std::to_string(*o.port);
  auto socket = co_await within_timeout(o, connect_any(executor, targets, o, connected), target);
  const local_protocol protocol(connected.protocol());
  co_return stream_socket<Executor>(executor, protocol, socket.release());
}

/// A Unix-domain socket: "connect ENOENT /run/app.sock" when nothing is there,
/// ECONNREFUSED when the file is stale (nobody listens on it).
template <typename Executor>
awaitable<stream_socket<Executor>> connect_path(Executor executor, const ConnectOptions& o) {
  const auto where = unix_endpoint(o.path, "connect");
  stream_socket<Executor> socket(executor);
  std::error_code ec;
  socket.open(where.protocol(), ec);
  if (!ec) {
    auto [e] =
        co_await socket.async_connect(where, asio::experimental::as_tuple(asio::use_awaitable));
    ec = e;
  }
  if (ec == asio::error::operation_aborted) throw cancelled_error("connect");
  if (ec) throw syscall_error("connect", ec, o.path);
  co_return socket;
}

/// The connection, before any socket exists (tls::connect() hand-shakes on it
/// first). `o`'s strings and block list must outlive it: connect() keeps copies in
/// its frame.
template <typename Executor>
awaitable<connected_stream<Executor>> open_connection(Executor executor, ConnectOptions o) {
  validate(o);
  const auto cancel = co_await asio::this_coro::cancellation_state;
  const bool unix_domain = !o.path.empty();
  tcp::endpoint connected;
  std::optional<stream_socket<Executor>> socket;
  if (unix_domain) {
    socket.emplace(co_await within_timeout(o, connect_path(executor, o), o.path));
  } else {
    socket.emplace(co_await connect_tcp(executor, o, connected));
  }
  // Connected in the instant it was cancelled: closed, as if it never started.
  if (cancel.cancelled() != asio::cancellation_type::none) throw cancelled_error("connect");
  co_return connected_stream<Executor>{std::move(*socket), connected, unix_domain};
}

/// What ConnectOptions ask of a socket once it exists.
template <typename Executor>
basic_socket<Executor> make_socket(connected_stream<Executor> c, const ConnectOptions& o,
                                   std::unique_ptr<secure_layer> layer = nullptr) {
  socket_settings settings{.unix_domain = c.unix_domain,
                           .allow_half_open = o.allow_half_open,
                           .paused = false,
                           .high_water_mark = o.high_water_mark};
  basic_socket<Executor> result(std::make_shared<socket_core<Executor>>(
      std::move(c.stream), c.remote, settings, nullptr, std::move(layer)));
  if (o.no_delay) result.set_no_delay(true);
  if (o.keep_alive) result.set_keep_alive(true, o.keep_alive_initial_delay);
  if (o.timeout.count() > 0) result.set_timeout(o.timeout);
  return result;
}

/// The caller's BlockList handle, for the frame to keep: the caller's list may go.
inline std::optional<BlockList> own_block_list(const ConnectOptions& o) {
  if (!o.block_list) return std::nullopt;
  return *o.block_list;
}

/// The connection itself. `host`, `local_address`, `path` and `block_list` are this
/// frame's own copies of the caller's: `o` is re-pointed at them before anything else.
template <typename Executor>
awaitable<basic_socket<Executor>> connect(Executor executor, ConnectOptions o, std::string host,
                                          std::string local_address, std::string path,
                                          std::optional<BlockList> block_list) {
  o.host = host;
  o.local_address = local_address;
  o.path = path;
  o.block_list = block_list ? &*block_list : nullptr;
  co_return make_socket(co_await open_connection(executor, o), o);
}

template <typename Executor>
awaitable<basic_socket<Executor>> connect(Executor executor, const ConnectOptions& o) {
  return connect(std::move(executor), o, std::string(o.host), std::string(o.local_address),
                 std::string(o.path), own_block_list(o));
}

inline awaitable<Socket> connect_here(ConnectOptions o, std::string host, std::string local_address,
                                      std::string path, std::optional<BlockList> block_list) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await connect(executor, o, std::move(host), std::move(local_address),
                             std::move(path), std::move(block_list));
}

}  // namespace detail

/// Opens a TCP connection, or a Unix-domain one with options.path, on the awaiting
/// coroutine's executor.
/// Completes once connected. Throws coronet::error: before any system call, a
/// missing port (errc::invalid_argument), a port outside 0..65535 (errc::bad_port,
/// "Port should be >= 0 and < 65536. Received -1."), a bad family or local address,
/// a keep_alive_initial_delay outside 0..32767 s (errc::out_of_range); then
/// "getaddrinfo ENOTFOUND host"; "connect ECONNREFUSED 127.0.0.1:4000" (every
/// attempt listed when several addresses were tried, code() of the first);
/// errc::timeout when options.timeout passes; with a path, "connect ENOENT
/// /run/app.sock" (no such file), ECONNREFUSED (a stale file nobody listens on),
/// "connect ENAMETOOLONG" past 107 bytes; errc::ip_blocked when options.block_list
/// blocks every address ("IP(127.0.0.1) is blocked by net.BlockList"), having
/// opened no socket for those.
/// Cancelled (`||`, a cancellation slot, a parent coroutine, coronet::timeout()), it
/// throws operation_aborted ("connect cancelled") and closes every attempt, and a
/// connection made in that instant: no descriptor is left. A host name being
/// resolved is seen cancelled once the resolver returns. Destroying the io_context
/// while it waits leaves nothing open or pointing at freed memory either.
inline awaitable<Socket> connect(const ConnectOptions& options) {
  return detail::connect_here(options, std::string(options.host),
                              std::string(options.local_address), std::string(options.path),
                              detail::own_block_list(options));
}

/// connect({.host = host, .port = port}).
inline awaitable<Socket> connect(int port, std::string_view host = "localhost") {
  return connect(ConnectOptions{.host = host, .port = port});
}

/// The same on an explicit executor, for a socket of a concrete executor type.
template <typename Executor>
awaitable<basic_socket<Executor>> connect(Executor executor, const ConnectOptions& options) {
  return detail::connect(std::move(executor), options);
}

}  // namespace coronet
