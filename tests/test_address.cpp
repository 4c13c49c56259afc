// IP literals, endpoints and ports, each answered the way Node's net module
// answers it. The isIP tables are the inputs and answers of Node's own tests
// (test/parallel/test-net-isip.js, test-net-isipv4.js, test-net-isipv6.js);
// their non-string inputs (undefined, null, 123, {}) have no C++ counterpart.
#include <coronet/address.hpp>

#include <doctest/doctest.h>

#include <string_view>
#include <utility>

using coronet::Address;
using coronet::detail::checked_port;
using coronet::detail::host_port;
using coronet::detail::parse_ip;
using coronet::detail::to_address;

namespace {

using tcp = asio::ip::tcp;

// test-net-isip.js: net.isIP(input) === answer.
constexpr std::pair<std::string_view, int> is_ip_table[] = {
    {"127.0.0.1", 4},
    {"x127.0.0.1", 0},
    {"example.com", 0},
    {"0000:0000:0000:0000:0000:0000:0000:0000", 6},
    {"0000:0000:0000:0000:0000:0000:0000:0000::0000", 0},
    {"1050:0:0:0:5:600:300c:326b", 6},
    {"2001:252:0:1::2008:6", 6},
    {"2001:dead:beef:1::2008:6", 6},
    {"2001::", 6},
    {"2001:dead::", 6},
    {"2001:dead:beef::", 6},
    {"2001:dead:beef:1::", 6},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 6},
    {":2001:252:0:1::2008:6:", 0},
    {":2001:252:0:1::2008:6", 0},
    {"2001:252:0:1::2008:6:", 0},
    {"2001:252::1::2008:6", 0},
    {"::2001:252:1:2008:6", 6},
    {"::2001:252:1:1.1.1.1", 6},
    {"::2001:252:1:255.255.255.255", 6},
    {"::2001:252:1:255.255.255.255.76", 0},
    {"fe80::2008%eth0", 6},
    {"fe80::2008%eth0.0", 6},
    {"fe80::2008%eth0@1", 0},
    {"::anything", 0},
    {"::1", 6},
    {"::", 6},
    {"0000:0000:0000:0000:0000:0000:12345:0000", 0},
    {"0", 0},
    {"", 0},
    {"bla", 0},
    // NODE-NET.md 1.1: leading zeros and a prefix length are not IPv4.
    {"127.000.000.001", 0},
    {"127.0.0.1/24", 0},
};

// test-net-isipv4.js
constexpr std::string_view v4[] = {
    "0.0.0.0",        "8.8.8.8",        "127.0.0.1",    "100.100.100.100",
    "192.168.0.1",    "18.101.25.153",  "123.23.34.2",  "172.26.168.134",
    "212.58.241.131", "128.0.0.0",      "23.71.254.72", "223.255.255.255",
    "192.0.2.235",    "99.198.122.146", "46.51.197.88", "173.194.34.134",
};

constexpr std::string_view v4_not[] = {
    ".100.100.100.100", "100..100.100.100.",   "100.100.100.100.",     "999.999.999.999",
    "256.256.256.256",  "256.100.100.100.100", "123.123.123",          "http://123.123.123",
    "1000.2.3.4",       "999.2.3.4",           "0000000192.168.0.200", "192.168.0.2000000000",
};

// test-net-isipv6.js
constexpr std::string_view v6[] = {
    "::",
    "1::",
    "::1",
    "1::8",
    "1::7:8",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6::8",
    "1:2:3:4:5:6:7::",
    "1:2:3:4:5::7:8",
    "1:2:3:4:5::8",
    "1:2:3::8",
    "1::4:5:6:7:8",
    "1::6:7:8",
    "1::3:4:5:6:7:8",
    "1:2:3:4::6:7:8",
    "1:2::4:5:6:7:8",
    "::2:3:4:5:6:7:8",
    "1:2::8",
    "2001:0000:1234:0000:0000:C1C0:ABCD:0876",
    "3ffe:0b00:0000:0000:0001:0000:0000:000a",
    "FF02:0000:0000:0000:0000:0000:0000:0001",
    "0000:0000:0000:0000:0000:0000:0000:0001",
    "0000:0000:0000:0000:0000:0000:0000:0000",
    "::ffff:192.168.1.26",
    "2::10",
    "ff02::1",
    "fe80::",
    "2002::",
    "2001:db8::",
    "2001:0db8:1234::",
    "::ffff:0:0",
    "::ffff:192.168.1.1",
    "1:2:3:4::8",
    "1::2:3:4:5:6:7",
    "1::2:3:4:5:6",
    "1::2:3:4:5",
    "1::2:3:4",
    "1::2:3",
    "::2:3:4:5:6:7",
    "::2:3:4:5:6",
    "::2:3:4:5",
    "::2:3:4",
    "::2:3",
    "::8",
    "1:2:3:4:5:6::",
    "1:2:3:4:5::",
    "1:2:3:4::",
    "1:2:3::",
    "1:2::",
    "1:2:3:4::7:8",
    "1:2:3::7:8",
    "1:2::7:8",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5::1.2.3.4",
    "1:2:3:4::1.2.3.4",
    "1:2:3::1.2.3.4",
    "1:2::1.2.3.4",
    "1::1.2.3.4",
    "1:2:3:4::5:1.2.3.4",
    "1:2:3::5:1.2.3.4",
    "1:2::5:1.2.3.4",
    "1::5:1.2.3.4",
    "1::5:11.22.33.44",
    "fe80::217:f2ff:254.7.237.98",
    "fe80::217:f2ff:fe07:ed62",
    "2001:DB8:0:0:8:800:200C:417A",
    "FF01:0:0:0:0:0:0:101",
    "0:0:0:0:0:0:0:1",
    "0:0:0:0:0:0:0:0",
    "2001:DB8::8:800:200C:417A",
    "FF01::101",
    "0:0:0:0:0:0:13.1.68.3",
    "0:0:0:0:0:FFFF:129.144.52.38",
    "::13.1.68.3",
    "::FFFF:129.144.52.38",
    "fe80:0000:0000:0000:0204:61ff:fe9d:f156",
    "fe80:0:0:0:204:61ff:fe9d:f156",
    "fe80::204:61ff:fe9d:f156",
    "fe80:0:0:0:204:61ff:254.157.241.86",
    "fe80::204:61ff:254.157.241.86",
    "fe80::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8:85a3:0:0:8a2e:370:7334",
    "2001:db8:85a3::8a2e:370:7334",
    "2001:0db8:0000:0000:0000:0000:1428:57ab",
    "2001:0db8:0000:0000:0000::1428:57ab",
    "2001:0db8:0:0:0:0:1428:57ab",
    "2001:0db8:0:0::1428:57ab",
    "2001:0db8::1428:57ab",
    "2001:db8::1428:57ab",
    "::ffff:12.34.56.78",
    "::ffff:0c22:384e",
    "2001:0db8:1234:0000:0000:0000:0000:0000",
    "2001:0db8:1234:ffff:ffff:ffff:ffff:ffff",
    "2001:db8:a::123",
    "::ffff:192.0.2.128",
    "::ffff:c000:280",
    "a:b:c:d:e:f:f1:f2",
    "a:b:c::d:e:f:f1",
    "a:b:c::d:e:f",
    "a:b:c::d:e",
    "a:b:c::d",
    "::a",
    "::a:b:c",
    "::a:b:c:d:e:f:f1",
    "a::",
    "a:b:c::",
    "a:b:c:d:e:f:f1::",
    "a:bb:ccc:dddd:000e:00f:0f::",
    "0:a:0:a:0:0:0:a",
    "0:a:0:0:a:0:0:a",
    "2001:db8:1:1:1:1:0:0",
    "2001:db8:1:1:1:0:0:0",
    "2001:db8:1:1:0:0:0:0",
    "2001:db8:1:0:0:0:0:0",
    "2001:db8:0:0:0:0:0:0",
    "2001:0:0:0:0:0:0:0",
    "A:BB:CCC:DDDD:000E:00F:0F::",
    "0:0:0:0:0:0:0:a",
    "0:0:0:0:a:0:0:0",
    "0:0:0:a:0:0:0:0",
    "a:0:0:a:0:0:a:a",
    "a:0:0:a:0:0:0:a",
    "a:0:0:0:a:0:0:a",
    "a:0:0:0:a:0:0:0",
    "a:0:0:0:0:0:0:0",
    "fe80::7:8%eth0",
    "fe80::7:8%1",
};

constexpr std::string_view v6_not[] = {
    "",
    "1:",
    ":1",
    "11:36:12",
    "02001:0000:1234:0000:0000:C1C0:ABCD:0876",
    "2001:0000:1234:0000:00001:C1C0:ABCD:0876",
    "2001:0000:1234: 0000:0000:C1C0:ABCD:0876",
    "2001:1:1:1:1:1:255Z255X255Y255",
    "3ffe:0b00:0000:0001:0000:0000:000a",
    "FF02:0000:0000:0000:0000:0000:0000:0000:0001",
    "3ffe:b00::1::a",
    "::1111:2222:3333:4444:5555:6666::",
    "1:2:3::4:5::7:8",
    "12345::6:7:8",
    "1::5:400.2.3.4",
    "1::5:260.2.3.4",
    "1::5:256.2.3.4",
    "1::5:1.256.3.4",
    "1::5:1.2.256.4",
    "1::5:1.2.3.256",
    "1::5:300.2.3.4",
    "1::5:1.300.3.4",
    "1::5:1.2.300.4",
    "1::5:1.2.3.300",
    "1::5:900.2.3.4",
    "1::5:1.900.3.4",
    "1::5:1.2.900.4",
    "1::5:1.2.3.900",
    "1::5:300.300.300.300",
    "1::5:3000.30.30.30",
    "1::400.2.3.4",
    "1::260.2.3.4",
    "1::256.2.3.4",
    "1::1.256.3.4",
    "1::1.2.256.4",
    "1::1.2.3.256",
    "1::300.2.3.4",
    "1::1.300.3.4",
    "1::1.2.300.4",
    "1::1.2.3.300",
    "1::900.2.3.4",
    "1::1.900.3.4",
    "1::1.2.900.4",
    "1::1.2.3.900",
    "1::300.300.300.300",
    "1::3000.30.30.30",
    "::400.2.3.4",
    "::260.2.3.4",
    "::256.2.3.4",
    "::1.256.3.4",
    "::1.2.256.4",
    "::1.2.3.256",
    "::300.2.3.4",
    "::1.300.3.4",
    "::1.2.300.4",
    "::1.2.3.300",
    "::900.2.3.4",
    "::1.900.3.4",
    "::1.2.900.4",
    "::1.2.3.900",
    "::300.300.300.300",
    "::3000.30.30.30",
    "2001:DB8:0:0:8:800:200C:417A:221",
    "FF01::101::2",
    "1111:2222:3333:4444::5555:",
    "1111:2222:3333::5555:",
    "1111:2222::5555:",
    "1111::5555:",
    "::5555:",
    ":::",
    "1111:",
    ":",
    ":1111:2222:3333:4444::5555",
    ":1111:2222:3333::5555",
    ":1111:2222::5555",
    ":1111::5555",
    ":::5555",
    "1.2.3.4:1111:2222:3333:4444::5555",
    "1.2.3.4:1111:2222:3333::5555",
    "1.2.3.4:1111:2222::5555",
    "1.2.3.4:1111::5555",
    "1.2.3.4::5555",
    "1.2.3.4::",
    "fe80:0000:0000:0000:0204:61ff:254.157.241.086",
    "123",
    "ldkfj",
    "2001::FFD3::57ab",
    "2001:db8:85a3::8a2e:37023:7334",
    "2001:db8:85a3::8a2e:370k:7334",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    "1:::3:4:5",
    "1:2:3::4:5:6:7:8:9",
    "::ffff:2.3.4",
    "::ffff:257.1.2.3",
    "::ffff:12345678901234567890.1.26",
    "2001:0000:1234:0000:0000:C1C0:ABCD:0876 0",
    "02001:0000:1234:0000:0000:C1C0:ABCD:0876",
};

tcp::endpoint endpoint(std::string_view ip, std::uint16_t port) {
  return {asio::ip::make_address(std::string(ip)), port};
}

std::string port_message(long long port, std::string_view what) {
  try {
    checked_port(port, what);
  } catch (const coronet::error& e) {
    CHECK(e.code() == coronet::errc::bad_port);
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("is_ip answers as net.isIP (test-net-isip)") {
  for (const auto& [text, answer] : is_ip_table) {
    const std::string_view input = text;  // clang 14 cannot capture a structured binding
    CAPTURE(input);
    CHECK(coronet::is_ip(input) == answer);
    CHECK(coronet::is_ipv4(input) == (answer == 4));
    CHECK(coronet::is_ipv6(input) == (answer == 6));
  }
}

TEST_CASE("is_ipv4 answers as net.isIPv4 (test-net-isipv4)") {
  for (auto input : v4) {
    CAPTURE(input);
    CHECK(coronet::is_ipv4(input));
    CHECK_FALSE(coronet::is_ipv6(input));
    CHECK(coronet::is_ip(input) == 4);
  }
  for (auto input : v4_not) {
    CAPTURE(input);
    CHECK_FALSE(coronet::is_ipv4(input));
    CHECK(coronet::is_ip(input) == 0);
  }
}

TEST_CASE("is_ipv6 answers as net.isIPv6 (test-net-isipv6)") {
  for (auto input : v6) {
    CAPTURE(input);
    CHECK(coronet::is_ipv6(input));
    CHECK_FALSE(coronet::is_ipv4(input));
    CHECK(coronet::is_ip(input) == 6);
  }
  for (auto input : v6_not) {
    CAPTURE(input);
    CHECK_FALSE(coronet::is_ipv6(input));
    CHECK(coronet::is_ip(input) == 0);
  }
}

TEST_CASE("is_ip: zones and edges beyond Node's tables") {
  CHECK(coronet::is_ip("fe80::1%a-b.c:d") == 6);  // the zone's whole alphabet
  CHECK(coronet::is_ip("::1.2.3.4%z") == 6);      // a zone after an embedded IPv4
  CHECK(coronet::is_ip("fe80::1%") == 0);         // an empty zone
  CHECK(coronet::is_ip("fe80::1%eth0%1") == 0);   // '%' is not a zone character
  CHECK(coronet::is_ip("127.0.0.1%eth0") == 0);   // IPv4 has no zone
  CHECK(coronet::is_ip(" 127.0.0.1") == 0);
  CHECK(coronet::is_ip("127.0.0.1 ") == 0);
  CHECK(coronet::is_ip("127.1") == 0);  // inet_aton shorthand
  CHECK(coronet::is_ip("0x7f.0.0.1") == 0);
  CHECK(coronet::is_ip("1:2:3:4:5:6::1.2.3.4") == 0);  // "::" must stand for a group
  CHECK(coronet::is_ip("1:2:3:4:5:6:7:8::") == 0);
  CHECK(coronet::is_ip(std::string_view("::1\0", 4)) == 0);
  static_assert(coronet::is_ip("::ffff:127.0.0.1") == 6, "usable at compile time");
}

TEST_CASE("parse_ip: an address exactly when is_ip says so") {
  auto v4_loopback = parse_ip("127.0.0.1");
  REQUIRE(v4_loopback);
  CHECK(*v4_loopback == asio::ip::address(asio::ip::address_v4::loopback()));

  auto v6_loopback = parse_ip("::1");
  REQUIRE(v6_loopback);
  CHECK(*v6_loopback == asio::ip::address(asio::ip::address_v6::loopback()));

  auto mapped = parse_ip("::FFFF:129.144.52.38");
  REQUIRE(mapped);
  REQUIRE(mapped->is_v6());
  CHECK(mapped->to_v6().is_v4_mapped());  // stays IPv6, as in Node
  CHECK(mapped->to_string() == "::ffff:129.144.52.38");

  CHECK_FALSE(parse_ip(""));
  CHECK_FALSE(parse_ip("localhost"));
  CHECK_FALSE(parse_ip("example.com"));
  CHECK_FALSE(parse_ip("127.000.000.001"));  // inet_aton would read octal here
  CHECK_FALSE(parse_ip("127.0.0.1/24"));
  CHECK_FALSE(parse_ip("fe80::2008%eth0@1"));

  // connect() dereferences parse_ip() after is_ip() passed: they must never disagree.
  for (const auto& [text, answer] : is_ip_table) {
    const std::string_view input = text;
    CAPTURE(input);
    CHECK(parse_ip(input).has_value() == (answer != 0));
  }
  for (auto input : v4) {
    CAPTURE(input);
    auto ip = parse_ip(input);
    REQUIRE(ip);
    CHECK(ip->is_v4());
    CHECK(ip->to_string() == input);  // canonical already
  }
  for (auto input : v6) {
    CAPTURE(input);
    auto ip = parse_ip(input);
    REQUIRE(ip);
    CHECK(ip->is_v6());
  }
  for (auto input : v6_not) {
    CAPTURE(input);
    CHECK_FALSE(parse_ip(input));
  }
}

TEST_CASE("parse_ip keeps a numeric or known zone and drops an unknown one") {
  auto numeric = parse_ip("fe80::2008%3");
  REQUIRE(numeric);
  CHECK(numeric->to_v6().scope_id() == 3);

  auto unknown = parse_ip("fe80::2008%nosuchif0");
  REQUIRE(unknown);
  CHECK(unknown->to_v6().scope_id() == 0);
  CHECK(unknown->to_string() == "fe80::2008");

#if defined(__linux__)
  auto named = parse_ip("fe80::1%lo");  // Linux always has a loopback interface "lo"
  REQUIRE(named);
  CHECK(named->to_v6().scope_id() != 0);
#endif
}

TEST_CASE("to_address prints endpoints the way Node does") {
  CHECK(to_address(endpoint("127.0.0.1", 4000)) == Address{"127.0.0.1", "IPv4", 4000});
  CHECK(to_address(endpoint("0.0.0.0", 0)) == Address{"0.0.0.0", "IPv4", 0});
  CHECK(to_address(endpoint("::1", 4000)) == Address{"::1", "IPv6", 4000});
  CHECK(to_address(endpoint("::", 3000)) == Address{"::", "IPv6", 3000});
  CHECK(to_address(endpoint("2001:DB8:0:0:8:800:200C:417A", 65535)) ==
        Address{"2001:db8::8:800:200c:417a", "IPv6", 65535});

  // An IPv4 client of a dual-stack server: Node shows it as IPv6.
  CHECK(to_address(endpoint("::ffff:127.0.0.1", 52114)) ==
        Address{"::ffff:127.0.0.1", "IPv6", 52114});

  // A scoped link-local address keeps its zone.
  asio::ip::address_v6 scoped = asio::ip::make_address_v6("fe80::1");
  scoped.scope_id(3);
  const auto link_local = to_address(tcp::endpoint(scoped, 80));
  CHECK(link_local.address.rfind("fe80::1%", 0) == 0);
  CHECK(link_local.family == "IPv6");

  CHECK(Address{} == Address{"", "", 0});  // Node's {} for a socket with no address
}

TEST_CASE("host_port: Node's address:port, no brackets") {
  CHECK(host_port(endpoint("127.0.0.1", 4000)) == "127.0.0.1:4000");
  CHECK(host_port(endpoint("::1", 4000)) == "::1:4000");
  CHECK(host_port(endpoint("::ffff:127.0.0.1", 80)) == "::ffff:127.0.0.1:80");
  CHECK(host_port(endpoint("0.0.0.0", 0)) == "0.0.0.0:0");
}

TEST_CASE("checked_port: 0..65535 pass, anything else is ERR_SOCKET_BAD_PORT") {
  CHECK(checked_port(0, "options.port") == 0);
  CHECK(checked_port(80, "Port") == 80);
  CHECK(checked_port(65535, "options.port") == 65535);

  CHECK(port_message(-1, "options.port") ==
        "options.port should be >= 0 and < 65536. Received -1.");
  CHECK(port_message(65536, "options.port") ==
        "options.port should be >= 0 and < 65536. Received 65536.");
  CHECK(port_message(65536, "Port") == "Port should be >= 0 and < 65536. Received 65536.");
  CHECK(port_message(4294967295LL, "Port") ==
        "Port should be >= 0 and < 65536. Received 4294967295.");  // 2**32-1 must not wrap

  CHECK_THROWS_AS(checked_port(-1, "Port"), coronet::error);
  CHECK_THROWS_AS(checked_port(65536, "Port"), std::system_error);  // catchable as its base
}
