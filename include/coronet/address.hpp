// coronet/address.hpp - IP addresses the way Node's net module sees them.
//
//     coronet::is_ip("127.0.0.1")          // 4
//     coronet::is_ip("fe80::1%eth0")       // 6
//     coronet::is_ip("127.000.000.001")    // 0: Node refuses leading zeros
//     socket.remote()                      // {"::ffff:127.0.0.1", "IPv6", 52114}
//
// The grammar is Node's (lib/internal/net.js), not inet_pton's: inet_pton knows
// nothing of zones and its treatment of leading zeros varies by platform, so the
// check is written out here and Asio only converts text that already passed it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "config.hpp"
#include "detail/unix_path.hpp"
#include "error.hpp"

namespace coronet {

/// One end of a connection, as Node's address() / remoteAddress report it:
/// `address` is the printed IP ("127.0.0.1", "::1", "::ffff:127.0.0.1"),
/// `family` is Node's string "IPv4" or "IPv6", `port` the port in host order.
/// A Unix-domain end is {path, "Unix", 0}, an abstract name written "@name"
/// (Node gives the bare path string for a server and nothing for a socket).
/// A default-constructed Address (all empty) stands for Node's `{}`: not connected,
/// or the unnamed client end of a Unix-domain connection.
struct Address {
  std::string address{};   ///< the IP as printed ("::1"), or the socket's path
  std::string family{};    ///< "IPv4", "IPv6" or "Unix"; empty when not connected
  std::uint16_t port = 0;  ///< the port in host byte order; 0 when not connected

  /// Equal when all three fields are.
  friend bool operator==(const Address&, const Address&) = default;
};

namespace detail {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr bool is_hex_digit(char c) noexcept {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// Node's v4Seg: 0..255 in decimal; only "0" itself may start with a zero, so
/// "127.000.000.001" (which inet_aton would read as octal) is not an address.
constexpr bool is_ipv4_segment(std::string_view s) noexcept {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return false;
  int value = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    value = value * 10 + (c - '0');
  }
  return value <= 255;
}

/// Exactly four segments; a fifth dot leaves a '.' in the last one and fails it.
constexpr bool is_dotted_quad(std::string_view s) noexcept {
  for (int i = 0; i < 3; ++i) {
    const auto dot = s.find('.');
    if (dot == std::string_view::npos || !is_ipv4_segment(s.substr(0, dot))) return false;
    s.remove_prefix(dot + 1);
  }
  return is_ipv4_segment(s);
}

/// Node's v6Seg: one to four hex digits, leading zeros allowed ("0db8").
constexpr bool is_ipv6_group(std::string_view s) noexcept {
  if (s.empty() || s.size() > 4) return false;
  for (char c : s) {
    if (!is_hex_digit(c)) return false;
  }
  return true;
}

/// Node accepts a zone of letters, digits, '-', '.' and ':' ("eth0", "eth0.0", "1");
/// anything else ("eth0@1") makes the whole text not an address.
constexpr bool is_ipv6_zone(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alpha && !is_digit(c) && c != '-' && c != '.' && c != ':') return false;
  }
  return true;
}

/// The 16-bit groups in a ':'-separated run ("" has none), or -1 when malformed.
/// A dotted quad may close the run when `v4_tail` allows it; it fills two groups.
constexpr int count_ipv6_groups(std::string_view s, bool v4_tail) noexcept {
  if (s.empty()) return 0;
  for (int groups = 0; groups < 8; ++groups) {
    const auto colon = s.find(':');
    const auto part = s.substr(0, colon);
    if (colon == std::string_view::npos) {
      if (is_ipv6_group(part)) return groups + 1;
      return v4_tail && is_dotted_quad(part) ? groups + 2 : -1;
    }
    if (!is_ipv6_group(part)) return -1;  // also catches "1:" and ":1" (an empty group)
    s.remove_prefix(colon + 1);
  }
  return -1;  // more than eight groups
}

/// RFC 4291 text form without the zone: eight groups, or fewer around a single "::"
/// that stands for at least one zero group (Node's regex never lets it stand for none).
constexpr bool is_ipv6_body(std::string_view s) noexcept {
  const auto gap = s.find("::");
  if (gap == std::string_view::npos) return count_ipv6_groups(s, true) == 8;
  const auto head = s.substr(0, gap);
  const auto tail = s.substr(gap + 2);
  const int before = count_ipv6_groups(head, false);  // "1.2.3.4::" is not an address
  const int after = count_ipv6_groups(tail, true);    // a second "::" leaves an empty group
  return before >= 0 && after >= 0 && before + after <= 7;
}

}  // namespace detail

/// Node's net.isIPv4: dotted decimal, four segments 0..255, no leading zeros,
/// nothing else (no "/24", no spaces, no shorthand like "127.1").
constexpr bool is_ipv4(std::string_view text) noexcept { return detail::is_dotted_quad(text); }

/// Node's net.isIPv6: RFC 4291 text, an embedded IPv4 tail allowed
/// ("::ffff:1.2.3.4"), then an optional zone ("fe80::1%eth0").
constexpr bool is_ipv6(std::string_view text) noexcept {
  const auto percent = text.find('%');
  if (percent == std::string_view::npos) return detail::is_ipv6_body(text);
  return detail::is_ipv6_body(text.substr(0, percent)) &&
         detail::is_ipv6_zone(text.substr(percent + 1));
}

/// Node's net.isIP: 4 for an IPv4 address, 6 for an IPv6 address, else 0.
constexpr int is_ip(std::string_view text) noexcept {
  if (is_ipv4(text)) return 4;
  return is_ipv6(text) ? 6 : 0;
}

namespace detail {

/// The address an IP literal names; nullopt for anything is_ip() refuses, so a
/// host that is not a literal goes to the resolver instead. Asio converts the text
/// after our check and reads the zone itself: a number becomes the scope id, a
/// known interface name on a link-local address becomes its index, and any other
/// zone is dropped (scope 0) rather than refused, since Node accepted the text.
inline std::optional<asio::ip::address> parse_ip(std::string_view text) {
  if (is_ip(text) == 0) return std::nullopt;
  asio::error_code ec;
  auto ip = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;  // unreachable for text our grammar accepted
  return ip;
}

/// An endpoint as Node reports it. An IPv4-mapped address stays IPv6: a
/// dual-stack server shows an IPv4 client as "::ffff:127.0.0.1", family "IPv6".
/// Asio prints a scoped link-local address with its zone ("fe80::1%eth0"), as
/// Node does.
inline Address to_address(const asio::ip::tcp::endpoint& endpoint) {
  const auto ip = endpoint.address();
  return {ip.to_string(), ip.is_v4() ? "IPv4" : "IPv6", endpoint.port()};
}

/// A TCP endpoint that the kernel handed back as a generic one (accept(),
/// getsockname() on a socket opened for either family).
inline asio::ip::tcp::endpoint to_tcp(const local_protocol::endpoint& endpoint) {
  asio::ip::tcp::endpoint ip;
  std::memcpy(ip.data(), endpoint.data(), std::min(endpoint.size(), ip.capacity()));
  ip.resize(std::min(endpoint.size(), ip.capacity()));
  return ip;
}

/// Either kind of endpoint as an Address: an IP one as above, a Unix-domain one
/// as {path, "Unix", 0}, or {} when it has no name.
inline Address to_address(const local_protocol::endpoint& endpoint) {
  if (endpoint.protocol().family() != AF_UNIX) return to_address(to_tcp(endpoint));
  std::string path = unix_path(endpoint);
  if (path.empty()) return {};
  return {std::move(path), "Unix", 0};
}

/// "address:port" as Node writes it in error messages: no brackets around IPv6
/// ("connect ECONNREFUSED ::1:4000"), so messages match Node's word for word.
inline std::string host_port(const asio::ip::tcp::endpoint& endpoint) {
  return endpoint.address().to_string() + ':' + std::to_string(endpoint.port());
}

/// The port as a uint16_t, or Node's ERR_SOCKET_BAD_PORT before any system call:
/// "options.port should be >= 0 and < 65536. Received 65536." `what` names the
/// argument the way Node does ("options.port" for listen, "Port" for connect).
/// Takes long long so a caller's int never wraps into range on the way in.
inline std::uint16_t checked_port(long long port, std::string_view what) {
  if (port < 0 || port > 65535) {
    throw error(
        make_error_code(errc::bad_port),
        std::string(what) + " should be >= 0 and < 65536. Received " + std::to_string(port) + ".");
  }
  return static_cast<std::uint16_t>(port);
}

}  // namespace detail
}  // namespace coronet
