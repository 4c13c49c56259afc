// BlockList: Node's test/parallel/test-blocklist.js cases in C++, Node itself
// answering the same checks, then the server and connect() refusing blocked peers
// on real loopback sockets.
#include "child_process.hpp"
#include "support.hpp"

#include <coronet/block_list.hpp>

namespace {

using coronet::BlockList;
using coronet::Server;
using coronet::Socket;
using RuleTexts = std::vector<std::string>;
using namespace std::chrono_literals;

/// The coronet::error that `add` throws (the test fails when it throws nothing).
template <typename Add>
coronet::error refusal_of(Add add) {
  try {
    add();
  } catch (const coronet::error& e) {
    return e;
  }
  FAIL("expected a coronet::error");
  return coronet::error(coronet::errc::invalid_argument);
}

}  // namespace

TEST_CASE("BlockList: addresses, either family, and IPv4-mapped forms both ways") {
  BlockList list;
  list.add_address("1.1.1.1");
  list.add_address("8592:757c:efae:4e45:fb5d:d62a:0d00:8e17", "ipv6");
  list.add_address("::ffff:1.1.1.2", "ipv6");

  CHECK(list.check("1.1.1.1"));
  CHECK_FALSE(list.check("1.1.1.1", "ipv6"));  // not IPv6 text: not blocked, not an error
  CHECK_FALSE(list.check("8592:757c:efae:4e45:fb5d:d62a:0d00:8e17"));
  CHECK(list.check("8592:757c:efae:4e45:fb5d:d62a:0d00:8e17", "ipv6"));
  CHECK(list.check("::ffff:1.1.1.1", "ipv6"));  // an IPv4 rule blocks its mapped form
  CHECK(list.check("::ffff:1.1.1.1", "IPV6"));  // families in any case
  CHECK(list.check("1.1.1.2"));                 // a mapped rule blocks the IPv4 address
  CHECK_FALSE(list.check("1.2.3.4"));
  CHECK_FALSE(list.check("::1", "ipv6"));
}

TEST_CASE("BlockList: Asio addresses and socket Addresses check like text") {
  BlockList list;
  list.add_address(asio::ip::make_address("1.1.1.1"));
  list.add_address(asio::ip::make_address("8592:757c:efae:4e45:fb5d:d62a:0d00:8e17"));
  CHECK(list.check(asio::ip::make_address("1.1.1.1")));
  CHECK(list.check(asio::ip::make_address("::ffff:1.1.1.1")));
  CHECK(list.check(coronet::Address{"::ffff:1.1.1.1", "IPv6", 4000}));
  CHECK(list.check(coronet::Address{"1.1.1.1", "IPv4", 4000}));
  CHECK_FALSE(list.check(coronet::Address{"1.1.1.3", "IPv4", 4000}));
  CHECK(list.check("8592:757c:efae:4e45:fb5d:d62a:d00:8e17", "ipv6"));
  // A zone is not part of the address: the rule prints without it, as Node's does.
  list.add_address("fe80::1%eth0", "ipv6");
  CHECK(list.check("fe80::1", "ipv6"));
  CHECK(list.rules().front() == "Address: IPv6 fe80::1");
}

TEST_CASE("BlockList: the same address or subnet twice is one rule; ranges may repeat") {
  BlockList list;
  list.add_address("1.1.1.1");
  list.add_address("1.1.1.1");
  CHECK(list.rules() == RuleTexts{"Address: IPv4 1.1.1.1"});

  BlockList subnets;
  subnets.add_subnet("8592:757c:efae:4e45::", 64, "ipv6");
  subnets.add_subnet("8592:757c:efae:4e45::", 64, "ipv6");
  CHECK(subnets.rules() == RuleTexts{"Subnet: IPv6 8592:757c:efae:4e45::/64"});
  CHECK(subnets.check("8592:757c:efae:4e45:f::", "ipv6"));
  CHECK(subnets.check("8592:757c:efae:4e45::f", "ipv6"));
  CHECK_FALSE(subnets.check("8592:757c:efae:4f45::f", "ipv6"));
}

TEST_CASE("BlockList: ranges include both ends") {
  BlockList list;
  list.add_range("1.1.1.1", "1.1.1.10");
  list.add_range("::1", "::f", "ipv6");
  CHECK_FALSE(list.check("1.1.1.0"));
  for (int n = 1; n <= 10; ++n) CHECK(list.check("1.1.1." + std::to_string(n)));
  CHECK_FALSE(list.check("1.1.1.11"));

  CHECK_FALSE(list.check("::0", "ipv6"));
  for (const char* hex : {"1", "2", "9", "a", "e", "f"}) {
    CHECK_MESSAGE(list.check(std::string("::") + hex, "ipv6"), "::", hex);
  }
  CHECK_FALSE(list.check("::10", "ipv6"));

  BlockList from_asio;
  from_asio.add_range(asio::ip::make_address("1.1.1.1"), asio::ip::make_address("1.1.1.10"));
  CHECK(from_asio.check("1.1.1.10"));
  CHECK_FALSE(from_asio.check("1.1.1.11"));
}

TEST_CASE("BlockList: an IPv4 range blocks IPv4-mapped addresses (Node issue 39074)") {
  BlockList list;
  list.add_range("10.0.0.2", "10.0.0.10");
  CHECK(list.check("10.0.0.2"));
  CHECK(list.check("10.0.0.10"));
  CHECK_FALSE(list.check("192.168.0.3"));
  CHECK_FALSE(list.check("2.2.2.2"));
  CHECK_FALSE(list.check("255.255.255.255"));

  CHECK(list.check("::ffff:0a00:0002", "ipv6"));
  CHECK(list.check("::ffff:0a00:000a", "ipv6"));
  CHECK_FALSE(list.check("::ffff:c0a8:0003", "ipv6"));
  CHECK_FALSE(list.check("::ffff:0202:0202", "ipv6"));
  CHECK_FALSE(list.check("::ffff:ffff:ffff", "ipv6"));
}

TEST_CASE("BlockList: an IPv6 range blocks IPv4 addresses only between mapped ends") {
  BlockList mapped;
  mapped.add_range("::ffff:1.1.1.1", "::ffff:1.1.1.5", "ipv6");
  CHECK(mapped.check("1.1.1.3"));
  CHECK(mapped.check("::ffff:1.1.1.3", "ipv6"));
  CHECK_FALSE(mapped.check("1.1.1.6"));

  // Node does not compare an IPv4 address with an IPv6 one that is not mapped.
  BlockList wide;
  wide.add_range("::1", "::ffff:ffff:ffff", "ipv6");
  CHECK_FALSE(wide.check("1.1.1.1"));
  CHECK(wide.check("::ffff:1.1.1.1", "ipv6"));
}

TEST_CASE("BlockList: subnets, IPv4-mapped both ways, non-aligned prefixes") {
  BlockList list;
  list.add_subnet("1.1.1.0", 16);
  list.add_subnet("8592:757c:efae:4e45::", 64, "ipv6");
  CHECK(list.check("1.1.0.1"));
  CHECK(list.check("1.1.1.1"));
  CHECK_FALSE(list.check("1.2.0.1"));
  CHECK(list.check("::ffff:1.1.0.1", "ipv6"));
  CHECK(list.check("8592:757c:efae:4e45:f::", "ipv6"));
  CHECK(list.check("8592:757c:efae:4e45::f", "ipv6"));
  CHECK_FALSE(list.check("8592:757c:efae:4f45::f", "ipv6"));

  BlockList odd;
  odd.add_subnet("10.0.0.0", 27);
  odd.add_subnet("8592:757c:efaf::", 51, "ipv6");
  for (int n = 0; n <= 31; ++n) CHECK(odd.check("10.0.0." + std::to_string(n)));
  CHECK_FALSE(odd.check("10.0.0.32"));
  CHECK(odd.check("8592:757c:efaf:0:0:0:0:0", "ipv6"));
  CHECK(odd.check("8592:757c:efaf:1fff:ffff:ffff:ffff:ffff", "ipv6"));
  CHECK_FALSE(odd.check("8592:757c:efaf:2fff:ffff:ffff:ffff:ffff", "ipv6"));

  // The ends of the prefix range: /32 is one address, /0 is the whole family.
  BlockList one;
  one.add_subnet("1.1.1.1", 32);
  CHECK(one.check("1.1.1.1"));
  CHECK_FALSE(one.check("1.1.1.2"));
  CHECK(one.check("::ffff:1.1.1.1", "ipv6"));
  BlockList all_v4;
  all_v4.add_subnet("1.1.1.1", 0);
  CHECK(all_v4.check("9.1.1.1"));
  CHECK(all_v4.check("::ffff:9.9.9.9", "ipv6"));
  CHECK_FALSE(all_v4.check("::1", "ipv6"));  // not an IPv4 address in any form
  BlockList mapped_net;
  mapped_net.add_subnet("::ffff:10.0.0.0", 120, "ipv6");  // 10.0.0.0/24
  CHECK(mapped_net.check("10.0.0.3"));
  CHECK_FALSE(mapped_net.check("10.0.1.3"));
}

TEST_CASE("BlockList: rules() in Node's words, newest first, shared by every copy") {
  BlockList list;
  list.add_address("1.1.1.1");
  list.add_range("10.0.0.1", "10.0.0.10");
  list.add_subnet("8592:757c:efae:4e45::", 64, "IpV6");
  CHECK(list.rules() == RuleTexts{"Subnet: IPv6 8592:757c:efae:4e45::/64",
                                  "Range: IPv4 10.0.0.1-10.0.0.10", "Address: IPv4 1.1.1.1"});
  CHECK(list.check("1.1.1.1"));
  CHECK(list.check("10.0.0.5"));
  CHECK(list.check("::ffff:10.0.0.5", "ipv6"));
  CHECK(list.check("8592:757c:efae:4e45::f", "ipv6"));
  CHECK_FALSE(list.check("123.123.123.123"));
  CHECK_FALSE(list.check("8592:757c:efaf:4e45:fb5d:d62a:0d00:8e17", "ipv6"));
  CHECK_FALSE(list.check("::ffff:123.123.123.123", "ipv6"));

  // Printed as inet_ntop prints them; a subnet keeps the network as given.
  BlockList printed;
  printed.add_address("2001:0db8::0001", "ipv6");
  printed.add_subnet("1.1.1.9", 16);
  printed.add_address("::ffff:1.1.1.2", "ipv6");
  CHECK(printed.rules() == RuleTexts{"Address: IPv6 ::ffff:1.1.1.2", "Subnet: IPv4 1.1.1.9/16",
                                     "Address: IPv6 2001:db8::1"});

  // A copy is the same list, as Node hands one BlockList to many servers.
  BlockList copy = list;
  copy.add_address("9.9.9.9");
  CHECK(list.check("9.9.9.9"));
  CHECK(list.rules().front() == "Address: IPv4 9.9.9.9");
}

TEST_CASE("BlockList: bad input is refused with Node's wording") {
  BlockList list;
  auto bad_family = refusal_of([&] { list.add_address("1.1.1.1", "foo"); });
  CHECK(bad_family.code() == coronet::errc::bad_family);
  CHECK(std::string(bad_family.what()) ==
        "The argument 'family' must be 'ipv4' or 'ipv6'. Received 'foo'");
  CHECK(refusal_of([&] { list.add_range("1.1.1.1", "1.1.1.2", "foo"); }).code() ==
        coronet::errc::bad_family);
  CHECK(refusal_of([&] { list.add_subnet("", 1, ""); }).code() == coronet::errc::bad_family);

  auto bad_address = refusal_of([&] { list.add_address("1.1.1.x"); });
  CHECK(bad_address.code() == coronet::errc::bad_address);
  CHECK(std::string(bad_address.what()) ==
        "Invalid socket address: the argument 'address' ('1.1.1.x') is not an IPv4 address");
  CHECK(refusal_of([&] { list.add_address("::1"); }).code() == coronet::errc::bad_address);
  CHECK(refusal_of([&] { list.add_address("1.1.1.1", "ipv6"); }).code() ==
        coronet::errc::bad_address);
  CHECK(refusal_of([&] { list.add_address("01.1.1.1"); }).code() == coronet::errc::bad_address);
  CHECK(std::string(refusal_of([&] { list.add_range("1.1.1.1", "::1"); }).what()) ==
        "Invalid socket address: the argument 'end' ('::1') is not an IPv4 address");

  auto backwards = refusal_of([&] { list.add_range("1.1.1.2", "1.1.1.1"); });
  CHECK(backwards.code() == coronet::errc::invalid_argument);
  CHECK(std::string(backwards.what()) ==
        "The argument 'start' must come before end. Received '1.1.1.2' (end: '1.1.1.1')");
  CHECK(refusal_of([&] {
          list.add_range(asio::ip::make_address("1.1.1.1"), asio::ip::make_address("::1"));
        }).code() == coronet::errc::invalid_argument);

  auto wide = refusal_of([&] { list.add_subnet("1.1.1.1", 33, "ipv4"); });
  CHECK(wide.code() == coronet::errc::out_of_range);
  CHECK(std::string(wide.what()) ==
        "The value of \"prefix\" is out of range. It must be >= 0 && <= 32. Received 33");
  CHECK(refusal_of([&] { list.add_subnet("1.1.1.1", -1); }).code() == coronet::errc::out_of_range);
  CHECK(refusal_of([&] { list.add_subnet("::", -1, "ipv6"); }).code() ==
        coronet::errc::out_of_range);
  CHECK(std::string(refusal_of([&] { list.add_subnet("::", 129, "ipv6"); }).what()) ==
        "The value of \"prefix\" is out of range. It must be >= 0 && <= 128. Received 129");

  CHECK(list.rules().empty());  // nothing refused was added
  // check() never throws: what is not an address is not blocked.
  CHECK_FALSE(list.check("bogus"));
  CHECK_FALSE(list.check("1.1.1.1", "bogus"));
}

TEST_CASE("BlockList: threads add and check one shared list at once") {
  BlockList list;
  std::atomic<bool> stop{false};
  std::atomic<int> checks{0};
  std::thread checker([&, copy = list] {
    do {
      (void)copy.check("10.0.0.1");
      (void)copy.rules();
      ++checks;
    } while (!stop);
  });
  for (int n = 0; n < 2000; ++n)
    list.add_address("10.0." + std::to_string(n / 256) + "." + std::to_string(n % 256));
  stop = true;
  checker.join();
  CHECK(list.rules().size() == 2000);
  CHECK(list.check("10.0.7.207"));
  CHECK(checks > 0);
}

TEST_CASE("BlockList: check() answers as Node's net.BlockList does, address by address") {
  auto node = test::node_path();
  if (!node) {
    MESSAGE("skipped: node not found (apt-get install nodejs)");
    return;
  }
  const std::vector<std::string> rules = {
      "address,1.1.1.1,ipv4",
      "address,::ffff:1.1.1.2,ipv6",
      "range,10.0.0.2,10.0.0.10,ipv4",
      "range,::ffff:1.2.0.1,::ffff:1.2.0.9,ipv6",
      "range,::1,::f,ipv6",
      "subnet,172.16.0.0,12,ipv4",
      "subnet,8592:757c:efaf::,51,ipv6",
      "subnet,::ffff:192.168.0.0,112,ipv6",
  };
  const std::vector<std::string> queries = {
      "1.1.1.1,ipv4",
      "::ffff:1.1.1.1,ipv6",
      "1.1.1.2,ipv4",
      "::ffff:101:102,ipv6",
      "1.1.1.3,ipv4",
      "10.0.0.1,ipv4",
      "10.0.0.2,ipv4",
      "10.0.0.10,ipv4",
      "10.0.0.11,ipv4",
      "::ffff:10.0.0.5,ipv6",
      "1.2.0.5,ipv4",
      "1.2.0.10,ipv4",
      "::5,ipv6",
      "::10,ipv6",
      "0.0.0.5,ipv4",
      "172.31.255.255,ipv4",
      "172.32.0.0,ipv4",
      "::ffff:172.20.1.1,ipv6",
      "8592:757c:efaf:1fff::1,ipv6",
      "8592:757c:efaf:2000::,ipv6",
      "192.168.3.4,ipv4",
      "192.169.0.1,ipv4",
      "::1,ipv6",
      "bogus,ipv4",
      "1.1.1.1,ipv6",
      "::1,ipv4",
  };
  BlockList list;
  for (const auto& rule : rules) {
    std::vector<std::string> f;
    for (std::size_t at = 0, comma; at <= rule.size(); at = comma + 1) {
      comma = std::min(rule.find(',', at), rule.size());
      f.push_back(rule.substr(at, comma - at));
    }
    if (f[0] == "address") list.add_address(f[1], f[2]);
    if (f[0] == "range") list.add_range(f[1], f[2], f[3]);
    if (f[0] == "subnet") list.add_subnet(f[1], std::stoi(f[2]), f[3]);
  }
  std::vector<std::string> ours;
  for (const auto& query : queries) {
    const auto comma = query.find(',');
    const auto ip = query.substr(0, comma);
    const auto family = query.substr(comma + 1);
    ours.push_back(ip + " " + family + " " + (list.check(ip, family) ? "true" : "false"));
  }
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::string> argv = {*node, test::source_path("tests/node/blocklist.js")};
    argv.insert(argv.end(), rules.begin(), rules.end());
    argv.push_back("--");
    argv.insert(argv.end(), queries.begin(), queries.end());
    test::child_process peer(ex, argv);
    auto nodes = co_await peer.all_lines();
    CHECK(peer.wait() == 0);
    REQUIRE(nodes.size() == ours.size());
    for (std::size_t i = 0; i < ours.size(); ++i) CHECK(ours[i] == nodes[i]);
  });
}

TEST_CASE("a server's block_list closes a blocked peer at once; others get through") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    BlockList list;
    list.add_address("127.0.0.1");  // an IPv4 rule: on "::" the peer is ::ffff:127.0.0.1
    Server server{{.block_list = &list}};
    std::vector<coronet::DropInfo> blocked;
    int dropped = 0;
    server.on_blocked([&](const coronet::DropInfo& d) { blocked.push_back(d); });
    server.on_drop([&](const coronet::DropInfo&) { ++dropped; });
    co_await server.listen(0, "::");
    const int port = server.address()->port;

    std::optional<Socket> accepted;
    asio::co_spawn(
        ex, [&]() -> coronet::awaitable<void> { accepted = co_await server.accept(); },
        asio::detached);
    Socket refused = co_await coronet::connect(port, "127.0.0.1");
    const int refused_port = refused.local_port();
    refused.set_timeout(5s);  // a FIN that never came would fail here, not hang
    // The client's connect succeeds, then FIN with no data, as a dropped one sees.
    CHECK(co_await test::read_all(refused) == "");
    REQUIRE(blocked.size() == 1);
    CHECK(blocked[0].remote.address == "::ffff:127.0.0.1");
    CHECK(blocked[0].remote.port == refused_port);
    CHECK(blocked[0].local.port == port);
    CHECK(dropped == 0);  // 'drop' is max_connections' alone
    CHECK(server.connections() == 0);
    CHECK(server.stats().accepted == 0);
    CHECK(server.stats().dropped == 0);
    CHECK_FALSE(accepted.has_value());  // accept() skipped it and waits on

    Socket welcome = co_await coronet::connect(port, "::1");
    co_await test::settle([&] { return accepted.has_value(); });
    REQUIRE(accepted.has_value());
    CHECK(accepted->remote_address() == "::1");
    CHECK(server.connections() == 1);
    co_await welcome.write("hello");
    CHECK(*(co_await accepted->read()) == "hello");
    CHECK(blocked.size() == 1);
  });
}

TEST_CASE("serve() skips peers in a range or subnet, and rules added later apply at once") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server;
    {
      BlockList list;  // the server keeps its own handle: this one may go
      list.add_range("127.0.0.2", "127.0.0.9");
      server = Server({.block_list = &list});
    }
    int blocked = 0;
    server.on_blocked([&](const coronet::DropInfo&) { ++blocked; });
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);

    coronet::ConnectOptions from{.host = "127.0.0.1", .port = port, .local_address = "127.0.0.5"};
    Socket in_range = co_await coronet::connect(from);
    in_range.set_timeout(5s);
    CHECK(co_await test::read_all(in_range) == "");
    CHECK(blocked == 1);

    from.local_address = "127.0.0.1";
    Socket outside = co_await coronet::connect(from);
    co_await outside.write("one");
    CHECK(*(co_await outside.read()) == "one");

    // A copy of the server's handle adds a subnet that covers 127.0.0.1 too.
    BlockList shared = *server.options().block_list;
    shared.add_subnet("127.0.0.0", 8);
    Socket now_blocked = co_await coronet::connect(from);
    now_blocked.set_timeout(5s);
    CHECK(co_await test::read_all(now_blocked) == "");
    CHECK(blocked == 2);
    // The connection accepted before the rule lives on.
    co_await outside.end("two");
    CHECK(co_await test::read_all(outside) == "two");
    CHECK(server.connections() <= 1);
  });
}

TEST_CASE("an IPv4-mapped rule blocks the plain IPv4 peer of an IPv4 server") {
  test::run([]() -> coronet::awaitable<void> {
    BlockList list;
    list.add_address("::ffff:127.0.0.1", "ipv6");
    Server server{{.block_list = &list}};
    std::vector<coronet::DropInfo> blocked;
    server.on_blocked([&](const coronet::DropInfo& d) { blocked.push_back(d); });
    const int port = co_await test::listen_loopback(server);  // 127.0.0.1 only
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, server.serve(test::echo), asio::detached);
    Socket refused = co_await coronet::connect(port, "127.0.0.1");
    refused.set_timeout(5s);
    CHECK(co_await test::read_all(refused) == "");
    REQUIRE(blocked.size() == 1);
    CHECK(blocked[0].remote.address == "127.0.0.1");
    CHECK(server.connections() == 0);
  });
}

TEST_CASE("connect() refuses a blocked address with Node's ERR_IP_BLOCKED and opens nothing") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    const int port = co_await test::listen_loopback(server);
    const int descriptors_before = test::open_descriptors();
    // The list only has to live until the call, as the options' strings do.
    auto attempt = [port] {
      BlockList list;
      list.add_subnet("127.0.0.0", 8);
      return coronet::connect({.host = "127.0.0.1", .port = port, .block_list = &list});
    }();
    auto e = co_await test::expect_error(std::move(attempt));
    CHECK(std::string(e.what()) == "IP(127.0.0.1) is blocked by net.BlockList");
    CHECK(e.code() == coronet::errc::ip_blocked);
    CHECK(test::open_descriptors() == descriptors_before);

    // Nothing reached the server: the first connection it accepts is the next one.
    Socket allowed = co_await coronet::connect(port, "127.0.0.1");
    Socket accepted = co_await server.accept();
    CHECK(accepted.remote_port() == allowed.local_port());
  });
}

TEST_CASE("connect() skips a blocked address and dials the next one a name resolves to") {
  test::run([]() -> coronet::awaitable<void> {
    Server server;
    co_await server.listen(0, "::");  // both families
    const int port = server.address()->port;
    auto both = [](std::string_view) {
      return std::vector<asio::ip::address>{asio::ip::make_address("127.0.0.1"),
                                            asio::ip::make_address("::1")};
    };
    BlockList list;
    list.add_address("::1", "ipv6");  // Happy Eyeballs would dial it first
    Socket s = co_await coronet::connect(
        {.host = "dual.test", .port = port, .lookup = both, .block_list = &list});
    CHECK(s.remote_address() == "127.0.0.1");

    // Every address blocked (an IPv4-mapped rule blocks the IPv4 target): each is
    // named, none was dialled.
    list.add_address("::ffff:127.0.0.1", "ipv6");
    const int descriptors_before = test::open_descriptors();
    auto e = co_await test::expect_error(
        coronet::connect({.host = "dual.test", .port = port, .lookup = both, .block_list = &list}));
    CHECK(std::string(e.what()) ==
          "IP(::1) is blocked by net.BlockList; IP(127.0.0.1) is blocked by net.BlockList");
    CHECK(e.code() == coronet::errc::ip_blocked);
    CHECK(test::open_descriptors() == descriptors_before);
  });
}
