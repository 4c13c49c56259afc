// coronet/block_list.hpp - Node's net.BlockList: rules that refuse IP addresses.
//
//     coronet::BlockList blocked;
//     blocked.add_address("123.123.123.123");
//     blocked.add_range("10.0.0.1", "10.0.0.10");
//     blocked.add_subnet("8592:757c:efae:4e45::", 64, "ipv6");
//     blocked.check("::ffff:10.0.0.3", "ipv6");           // true: IPv4-mapped
//     coronet::Server server{{.block_list = &blocked}};   // refuses those peers
//     // throws "IP(10.0.0.3) is blocked by net.BlockList":
//     co_await coronet::connect({.host = "10.0.0.3", .port = 80, .block_list = &blocked});
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "address.hpp"
#include "config.hpp"
#include "error.hpp"

namespace coronet {

namespace detail {

/// An address as a BlockList compares it: sixteen bytes, an IPv4 address in its
/// IPv4-mapped form (::ffff:a.b.c.d), so one comparison serves both families, and
/// the family it was given in, which decides how a rule prints and what it matches.
struct blocked_ip {
  std::array<unsigned char, 16> bytes{};
  bool v4 = false;

  static blocked_ip from(const asio::ip::address& ip) {
    blocked_ip result;
    if (ip.is_v4()) {
      result.v4 = true;
      result.bytes[10] = result.bytes[11] = 0xff;
      const auto quad = ip.to_v4().to_bytes();
      std::copy(quad.begin(), quad.end(), result.bytes.begin() + 12);
    } else {
      const auto all = ip.to_v6().to_bytes();  // the zone is not part of the address
      std::copy(all.begin(), all.end(), result.bytes.begin());
    }
    return result;
  }

  bool mapped() const {
    static constexpr std::array<unsigned char, 12> prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::equal(prefix.begin(), prefix.end(), bytes.begin());
  }

  /// Node prints what inet_ntop prints: "1.1.1.1", "2001:db8::1", "::ffff:1.1.1.2".
  std::string text() const {
    if (!v4) return asio::ip::address_v6(bytes).to_string();
    return asio::ip::address_v4({bytes[12], bytes[13], bytes[14], bytes[15]}).to_string();
  }

  friend bool operator==(const blocked_ip&, const blocked_ip&) = default;
};

/// True when the first `bits` bits of `a` and `b` agree.
inline bool same_prefix(const blocked_ip& a, const blocked_ip& b, int bits) {
  const auto whole = static_cast<std::size_t>(bits / 8);
  if (!std::equal(a.bytes.begin(), a.bytes.begin() + static_cast<std::ptrdiff_t>(whole),
                  b.bytes.begin()))
    return false;
  if (bits % 8 == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - bits % 8));
  return (a.bytes[whole] & mask) == (b.bytes[whole] & mask);
}

/// One rule of a BlockList, with Node's matching across families: an IPv4 rule
/// matches the IPv4-mapped IPv6 form of its addresses and the other way round; an
/// IPv6 address that is not IPv4-mapped never matches an IPv4 rule.
struct block_rule {
  enum class kind { address, range, subnet };
  kind type = kind::address;
  blocked_ip first;  // the address, the range's start, the subnet's network
  blocked_ip last;   // the range's end
  int prefix = 0;    // the subnet's prefix, in bits of its own family

  bool matches(const blocked_ip& ip) const {
    switch (type) {
      case kind::address: return ip.bytes == first.bytes;
      case kind::range: return in_range(ip);
      case kind::subnet: return same_prefix(ip, first, first.v4 ? 96 + prefix : prefix);
    }
    return false;
  }

  /// Node compares an IPv4 address with an IPv6 one only when the IPv6 one is
  /// IPv4-mapped; otherwise the two are not comparable and the range does not match.
  bool in_range(const blocked_ip& ip) const {
    if (ip.v4 && !first.v4 && !(first.mapped() && last.mapped())) return false;
    return first.bytes <= ip.bytes && ip.bytes <= last.bytes;
  }

  std::string text() const {
    const std::string family = first.v4 ? "IPv4 " : "IPv6 ";
    switch (type) {
      case kind::address: return "Address: " + family + first.text();
      case kind::range: return "Range: " + family + first.text() + "-" + last.text();
      case kind::subnet: return "Subnet: " + family + first.text() + "/" + std::to_string(prefix);
    }
    return {};
  }

  /// Node keeps one rule per address and per subnet; ranges may repeat.
  bool same_as(const block_rule& other) const {
    return type != kind::range && type == other.type && first == other.first &&
           prefix == other.prefix;
  }
};

/// The rules every copy of a BlockList shares.
struct block_rules {
  mutable std::shared_mutex mutex;
  std::vector<block_rule> rules;  // oldest first; rules() lists them newest first
};

inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

/// 4 or 6 for Node's family names ("ipv4", "IPv6", any case), else 0.
inline int family_number(std::string_view family) {
  if (equals_ignoring_case(family, "ipv4")) return 4;
  if (equals_ignoring_case(family, "ipv6")) return 6;
  return 0;
}

/// Node's SocketAddress parse: the text must be an address of that family.
inline std::optional<asio::ip::address> parse_in_family(std::string_view text, int family) {
  if (is_ip(text) != family) return std::nullopt;
  return parse_ip(text);
}

}  // namespace detail

/// Node's net.BlockList: rules by address, range and subnet, IPv4 and IPv6, that
/// check() tests an address against. A server refuses peers it blocks
/// (ServerOptions::block_list) and connect() refuses to dial them
/// (ConnectOptions::block_list).
///
/// A BlockList is a handle: copies share one set of rules, as Node passes one
/// BlockList by reference to a server and any number of connects, so a rule added
/// through any copy applies everywhere at once. Copying costs a reference count.
///
/// Thread-safe: rules may be added and checked from any threads at once (a
/// multi-core server's threads check one list while another thread adds rules).
/// A check sees every rule whose add_*() returned before it started.
///
/// Families are Node's strings, "ipv4" (the default) and "ipv6", in any case. As in
/// Node, an IPv4 rule also matches that address in IPv4-mapped IPv6 form
/// ("::ffff:1.2.3.4") and an IPv4-mapped IPv6 rule matches the plain IPv4 address.
class BlockList {
 public:
  /// An empty list (check() is false for everything).
  BlockList() : shared_(std::make_shared<detail::block_rules>()) {}

  /// Blocks one address. Adding the same address twice keeps one rule. Throws
  /// coronet::error: errc::bad_family for a family other than "ipv4"/"ipv6",
  /// errc::bad_address for text that is not an address of that family.
  void add_address(std::string_view address, std::string_view family = "ipv4") {
    add_address(parsed("address", address, family));
  }
  /// The same for an address Asio already holds (its family is its own).
  void add_address(const asio::ip::address& address) {
    detail::block_rule rule;
    rule.first = detail::blocked_ip::from(address);
    add(rule);
  }

  /// Blocks every address from `start` to `end`, both included. Throws what
  /// add_address() throws, and errc::invalid_argument when start comes after end
  /// ("The argument 'start' must come before end. Received '1.1.1.2'").
  void add_range(std::string_view start, std::string_view end, std::string_view family = "ipv4") {
    add_range(parsed("start", start, family), parsed("end", end, family));
  }
  /// The same for addresses Asio holds; both must be of one family
  /// (errc::invalid_argument otherwise).
  void add_range(const asio::ip::address& start, const asio::ip::address& end) {
    if (start.is_v4() != end.is_v4()) {
      throw error(make_error_code(errc::invalid_argument),
                  "The arguments 'start' and 'end' must be of one family. Received '" +
                      start.to_string() + "' and '" + end.to_string() + "'");
    }
    detail::block_rule rule;
    rule.type = detail::block_rule::kind::range;
    rule.first = detail::blocked_ip::from(start);
    rule.last = detail::blocked_ip::from(end);
    if (rule.last.bytes < rule.first.bytes) {
      throw error(make_error_code(errc::invalid_argument),
                  "The argument 'start' must come before end. Received '" + rule.first.text() +
                      "' (end: '" + rule.last.text() + "')");
    }
    add(rule);
  }

  /// Blocks the subnet `network`/`prefix` (0..32 for IPv4, 0..128 for IPv6). The
  /// same subnet twice keeps one rule. Throws what add_address() throws, and Node's
  /// ERR_OUT_OF_RANGE (errc::out_of_range) for a prefix outside its family's bits:
  /// "The value of "prefix" is out of range. It must be >= 0 && <= 32. Received 33".
  void add_subnet(std::string_view network, int prefix, std::string_view family = "ipv4") {
    add_subnet(parsed("network", network, family), prefix);
  }
  /// The same for a network Asio holds.
  void add_subnet(const asio::ip::address& network, int prefix) {
    const int bits = network.is_v4() ? 32 : 128;
    if (prefix < 0 || prefix > bits) {
      throw detail::out_of_range("prefix", ">= 0 && <= " + std::to_string(bits), prefix);
    }
    detail::block_rule rule;
    rule.type = detail::block_rule::kind::subnet;
    rule.first = detail::blocked_ip::from(network);
    rule.prefix = prefix;
    add(rule);
  }

  /// True when a rule blocks `address`, given as text of `family`. As in Node, text
  /// that is not an address of that family, or a family Node does not know, is
  /// not blocked: check() returns false and never throws.
  bool check(std::string_view address, std::string_view family = "ipv4") const {
    auto ip = detail::parse_in_family(address, detail::family_number(family));
    return ip && check(*ip);
  }
  /// The same for an address Asio holds (a peer's, a resolved one).
  bool check(const asio::ip::address& address) const {
    const auto ip = detail::blocked_ip::from(address);
    std::shared_lock lock(shared_->mutex);
    return std::any_of(shared_->rules.begin(), shared_->rules.end(),
                       [&](const detail::block_rule& rule) { return rule.matches(ip); });
  }
  /// The same for an Address as a socket reports it ({"::ffff:1.2.3.4", "IPv6", port}).
  bool check(const Address& address) const { return check(address.address, address.family); }

  /// The rules as Node's `rules` lists them, newest first: "Address: IPv4 1.2.3.4",
  /// "Range: IPv4 1.1.1.1-1.1.1.5", "Subnet: IPv6 8592:757c:efae:4e45::/64".
  std::vector<std::string> rules() const {
    std::shared_lock lock(shared_->mutex);
    std::vector<std::string> texts;
    texts.reserve(shared_->rules.size());
    for (auto rule = shared_->rules.rbegin(); rule != shared_->rules.rend(); ++rule) {
      texts.push_back(rule->text());
    }
    return texts;
  }

 private:
  /// Node's checks on an (argument, family) pair, with its wording.
  static asio::ip::address parsed(std::string_view argument, std::string_view text,
                                  std::string_view family) {
    const int number = detail::family_number(family);
    if (number == 0) {
      throw error(
          make_error_code(errc::bad_family),
          "The argument 'family' must be 'ipv4' or 'ipv6'. Received '" + std::string(family) + "'");
    }
    auto ip = detail::parse_in_family(text, number);
    if (!ip) {
      throw error(make_error_code(errc::bad_address),
                  "Invalid socket address: the argument '" + std::string(argument) + "' ('" +
                      std::string(text) + "') is not an IPv" + std::to_string(number) + " address");
    }
    return *ip;
  }

  void add(const detail::block_rule& rule) {
    std::unique_lock lock(shared_->mutex);
    auto& rules = shared_->rules;
    if (std::none_of(rules.begin(), rules.end(),
                     [&](const detail::block_rule& r) { return r.same_as(rule); })) {
      rules.push_back(rule);
    }
  }

  std::shared_ptr<detail::block_rules> shared_;
};

}  // namespace coronet
