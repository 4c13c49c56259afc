// coronet/error.hpp - the errors coronet reports, worded the way Node words them.
//
// Every failing operation throws coronet::error, a std::system_error whose code()
// is either a system errno (std::system_category: ECONNREFUSED, ECONNRESET, ...) or
// a coronet::errc (coronet's own conditions: write after end, timeout, ...), and
// whose what() is a sentence a person can act on:
//
//     connect ECONNREFUSED 127.0.0.1:4000
//     listen EADDRINUSE: address already in use 127.0.0.1:3000
//     read ECONNRESET
//     write after end
#pragma once

#include <cctype>
#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "config.hpp"

namespace coronet {

/// coronet's own error conditions. Each has a fixed message; the thrown
/// coronet::error may add detail (the bad value, the address) after it.
enum class errc {
  timeout = 1,         ///< an idle timeout or a deadline passed (the socket stays open)
  write_after_end,     ///< write() after our own end()
  ended_by_peer,       ///< write() after the peer's FIN ended our side (allow_half_open false)
  socket_destroyed,    ///< an operation on a socket after destroy()
  bad_port,            ///< a port outside 0..65535
  bad_address,         ///< a host that is not an IP address where one is required
  bad_family,          ///< an address family other than 0, 4 or 6
  invalid_argument,    ///< any other argument coronet refuses before a system call
  server_not_running,  ///< close() on a server that is not listening
  server_already_listening,  ///< listen() on a server that is already listening
  read_in_progress,          ///< a second read() while one is still waiting on the same socket
  frame_too_long,            ///< read_line()/read_until() passed its byte bound
  truncated_frame,           ///< FIN arrived in the middle of a read_exactly()/read_line() frame
  not_connected,             ///< an operation that needs a connection on a socket that has none
  out_of_range,              ///< a number outside what the option takes (Node's ERR_OUT_OF_RANGE)
  tls_handshake,             ///< the TLS handshake failed (an alert, no common version or protocol)
  tls_unauthorized,          ///< the peer's certificate failed verification or the hostname check
  tls_truncated,             ///< the peer closed TCP without TLS close_notify: data may be missing
  tls_protocol,              ///< a TLS error after the handshake (an alert, a corrupt record)
  ip_blocked,                ///< connect() to an address its BlockList blocks (ERR_IP_BLOCKED)
};

namespace detail {

class errc_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coronet"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::timeout: return "timed out";
      case errc::write_after_end: return "write after end";
      case errc::ended_by_peer: return "This socket has been ended by the other party";
      case errc::socket_destroyed: return "the socket was destroyed";
      case errc::bad_port: return "port should be >= 0 and < 65536";
      case errc::bad_address: return "invalid IP address";
      case errc::bad_family: return "address family must be one of: 0, 4, 6";
      case errc::invalid_argument: return "invalid argument";
      case errc::server_not_running: return "Server is not running.";
      case errc::server_already_listening:
        return "Listen method has been called more than once without closing.";
      case errc::read_in_progress: return "another read() is already waiting on this socket";
      case errc::frame_too_long: return "frame longer than the allowed maximum";
      case errc::truncated_frame: return "the peer ended the stream in the middle of a frame";
      case errc::not_connected: return "the socket is not connected";
      case errc::out_of_range: return "value out of range";
      case errc::tls_handshake: return "TLS handshake failed";
      case errc::tls_unauthorized: return "the peer's certificate is not authorized";
      case errc::tls_truncated:
        return "the peer closed the connection without TLS close_notify (data may be truncated)";
      case errc::tls_protocol: return "TLS protocol error";
      case errc::ip_blocked: return "IP is blocked by net.BlockList";
    }
    return "unknown coronet error";
  }
};

}  // namespace detail

/// The std::error_category of coronet::errc codes (its name() is "coronet").
inline const std::error_category& category() noexcept {
  static const detail::errc_category instance;
  return instance;
}

/// `e` as a std::error_code in category(). Found by argument-dependent lookup, it
/// lets an errc be compared with any error code: `ec == coronet::errc::timeout`.
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

}  // namespace coronet

template <>
struct std::is_error_code_enum<coronet::errc> : std::true_type {};

namespace coronet {

namespace detail {

/// Asio reports errno values in its own "asio.system" category, which does not
/// compare equal to std::errc; coronet hands out the standard system category, so
/// `e.code() == std::errc::connection_refused` works.
inline std::error_code normalize(const std::error_code& ec) noexcept {
  if (ec.category() == asio::system_category()) return {ec.value(), std::system_category()};
  return ec;
}

}  // namespace detail

/// The exception every coronet operation throws. code() tells what happened in a
/// form a program can compare (`e.code() == std::errc::connection_refused`,
/// `e.code() == coronet::errc::timeout`); what() tells a person. An operation
/// that destroy() or a cancellation interrupted has code() ==
/// std::errc::operation_canceled (Asio's operation_aborted, ECANCELED).
class error : public std::system_error {
 public:
  /// An error with `code` (an Asio errno code becomes std::system_category's) and
  /// `message` as what().
  error(std::error_code code, std::string message)
      : std::system_error(detail::normalize(code)), message_(std::move(message)) {}
  /// The errc `e`, with its fixed message as what().
  explicit error(errc e) : error(make_error_code(e), make_error_code(e).message()) {}
  /// The errc `e`; what() is its fixed message followed by `detail` as given
  /// (": timeout must not be negative").
  error(errc e, std::string_view detail)
      : error(make_error_code(e), make_error_code(e).message() + std::string(detail)) {}
  /// The same for a detail given as a std::string or a literal: exact matches, so
  /// that neither is ambiguous with the error_code constructor above.
  error(errc e, const std::string& detail) : error(e, std::string_view(detail)) {}
  /// @copydoc error(errc, const std::string&)
  error(errc e, const char* detail) : error(e, std::string_view(detail)) {}

  /// The message for a person: "connect ECONNREFUSED 127.0.0.1:4000".
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

/// What a non-throwing form reports instead of throwing (the shape of Asio's
/// redirect_error): false after success; after a failure, the code and the very
/// message the throwing form would have thrown.
///
///     coronet::failure failed;
///     auto line = co_await socket.read_line(1024, failed);
///     if (failed) co_await socket.end("ERR " + failed.message() + "\n");
class failure {
 public:
  failure() = default;
  /// The failure an exception describes.
  explicit failure(const error& e) : code_(e.code()), message_(e.what()) {}
  /// True when the operation failed.
  explicit operator bool() const noexcept { return static_cast<bool>(code_); }
  /// What happened, comparable like coronet::error::code().
  const std::error_code& code() const noexcept { return code_; }
  /// What the throwing form's what() would have said; empty after success.
  const std::string& message() const noexcept { return message_; }
  /// Throws it as the throwing form would have (does nothing after success).
  void raise() const {
    if (code_) throw error(code_, message_);
  }
  /// Back to "no failure", for reuse in a loop.
  void clear() noexcept {
    code_.clear();
    message_.clear();
  }

 private:
  std::error_code code_;
  std::string message_;
};

namespace detail {

/// errno's symbolic name, as Node prints it ("ECONNREFUSED"); empty when unknown.
inline std::string_view errno_name(int value) noexcept {
  switch (value) {
#define CORONET_ERRNO(name) \
  case name: return #name;
    CORONET_ERRNO(EACCES)
    CORONET_ERRNO(EADDRINUSE)
    CORONET_ERRNO(EADDRNOTAVAIL)
    CORONET_ERRNO(EAFNOSUPPORT)
    CORONET_ERRNO(EAGAIN)
    CORONET_ERRNO(EALREADY)
    CORONET_ERRNO(EBADF)
    CORONET_ERRNO(ECANCELED)
    CORONET_ERRNO(ECONNABORTED)
    CORONET_ERRNO(ECONNREFUSED)
    CORONET_ERRNO(ECONNRESET)
    CORONET_ERRNO(EHOSTUNREACH)
    CORONET_ERRNO(EINVAL)
    CORONET_ERRNO(EIO)
    CORONET_ERRNO(EISDIR)
    CORONET_ERRNO(EMFILE)
    CORONET_ERRNO(ENETDOWN)
    CORONET_ERRNO(ENETUNREACH)
    CORONET_ERRNO(ENFILE)
    CORONET_ERRNO(ENAMETOOLONG)
    CORONET_ERRNO(ENOBUFS)
    CORONET_ERRNO(ENOENT)
    CORONET_ERRNO(ENOTDIR)
    CORONET_ERRNO(ENOMEM)
    CORONET_ERRNO(ENOTCONN)
    CORONET_ERRNO(ENOTSOCK)
    CORONET_ERRNO(EPERM)
    CORONET_ERRNO(EPIPE)
    CORONET_ERRNO(ETIMEDOUT)
    CORONET_ERRNO(EPROTO)
    CORONET_ERRNO(EINTR)
#undef CORONET_ERRNO
    default: return {};
  }
}

/// The error code's short name: "ECONNREFUSED" for errno codes, else its message.
inline std::string code_name(std::error_code ec) {
  ec = normalize(ec);
  if (ec.category() == std::system_category() || ec.category() == std::generic_category()) {
    if (auto name = errno_name(ec.value()); !name.empty()) return std::string(name);
  }
  if (ec == asio::error::eof) return "EOF";
  return ec.message();
}

/// A system call failed: "connect ECONNREFUSED 127.0.0.1:4000". With `describe`,
/// Node's longer form: "listen EADDRINUSE: address already in use 127.0.0.1:3000".
inline error syscall_error(std::string_view syscall, const std::error_code& ec,
                           std::string_view where = {}, bool describe = false) {
  std::string message(syscall);
  message += ' ';
  message += code_name(ec);
  if (describe) {
    std::string text = ec.message();
    if (!text.empty())
      text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
    message += ": " + text;
  }
  if (!where.empty()) {
    message += ' ';
    message += where;
  }
  return error(ec, std::move(message));
}

/// The one error every cancelled operation throws, whatever cancelled it (a timer
/// through `||`, a cancellation slot, a parent coroutine): "read_line cancelled",
/// with code() == std::errc::operation_canceled. cancelled_operation() reads the
/// name back, so this is the only place that knows the message's shape.
inline error cancelled_error(std::string_view op) {
  return error(asio::error::operation_aborted, std::string(op) + " cancelled");
}

/// The operation a cancelled_error() names ("read_line"); empty for any other error.
inline std::string_view cancelled_operation(const std::system_error& e) noexcept {
  constexpr std::string_view suffix = " cancelled";
  const std::string_view message = e.what();
  const bool cancelled =
      e.code() == std::errc::operation_canceled || e.code() == asio::error::operation_aborted;
  if (!cancelled || !message.ends_with(suffix)) return {};
  return message.substr(0, message.size() - suffix.size());
}

/// An integer as Node prints it in ERR_OUT_OF_RANGE: digits grouped by '_' beyond
/// 2^32 ("4_294_967_396"), so a wrapped value is easy to see.
inline std::string node_integer(long long value) {
  const unsigned long long magnitude =
      value < 0 ? 0ULL - static_cast<unsigned long long>(value) : value;
  std::string digits = std::to_string(magnitude);
  if (magnitude > (1ULL << 32)) {
    for (auto i = static_cast<std::ptrdiff_t>(digits.size()) - 3; i > 0; i -= 3) {
      digits.insert(static_cast<std::size_t>(i), 1, '_');
    }
  }
  return value < 0 ? "-" + digits : digits;
}

/// Node's ERR_OUT_OF_RANGE: `The value of "interval" is out of range. It must be
/// >= 1 && <= 32767 (seconds). Received 40000`.
inline error out_of_range(std::string_view name, std::string_view range, long long received) {
  return error(make_error_code(errc::out_of_range),
               "The value of \"" + std::string(name) + "\" is out of range. It must be " +
                   std::string(range) + ". Received " + node_integer(received));
}

/// `value` when it lies in min..max; else out_of_range(), the range in `unit`.
inline long long checked_range(std::string_view name, long long value, long long min, long long max,
                               std::string_view unit) {
  if (value < min || value > max) {
    throw out_of_range(name,
                       ">= " + std::to_string(min) + " && <= " + std::to_string(max) + " (" +
                           std::string(unit) + ")",
                       value);
  }
  return value;
}

}  // namespace detail
}  // namespace coronet
