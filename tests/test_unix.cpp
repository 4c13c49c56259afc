// Unix-domain sockets (Node's IPC `path`): the same Server and Socket as TCP, with
// Node's rules for the socket file, the abstract namespace and TCP-only options.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "child_process.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using coronet::Server;
using coronet::Socket;

namespace {

/// A fresh directory for socket files, removed with what is left in it.
struct temp_dir {
  std::string path;
  temp_dir() {
    char name[] = "/tmp/coronet-unix-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

/// A name in the abstract namespace that no other test run uses.
std::string abstract_name(const char* what) {
  return "@coronet-test-" + std::to_string(::getpid()) + "-" + what;
}

bool exists(const std::string& path) { return std::filesystem::exists(path); }

}  // namespace

TEST_CASE("a Unix-domain server and client exchange data with the whole Socket API") {
  temp_dir dir;
  const std::string path = dir.file("app.sock");
  test::run([&]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    co_await server.listen({.path = path});
    CHECK(server.address() == coronet::Address{path, "Unix", 0});
    CHECK(exists(path));

    Socket client = co_await coronet::connect({.path = path});
    Socket accepted = co_await server.accept();
    CHECK(client.is_unix_domain());
    CHECK(accepted.is_unix_domain());
    CHECK(server.connections() == 1);
    // Node: a pipe has no remote address; the server's end is named by its path.
    CHECK(client.remote() == coronet::Address{});
    CHECK(accepted.remote() == coronet::Address{});
    CHECK(accepted.address() == coronet::Address{path, "Unix", 0});
    CHECK(client.address() == coronet::Address{});

    co_await client.write("first line\nsecond ");
    co_await client.write("line\n");
    CHECK(co_await accepted.read_line(100) == "first line");
    CHECK(co_await accepted.read_line(100) == "second line");
    CHECK(client.write_nowait(std::string(100, 'x')));
    co_await client.drain();
    CHECK(co_await accepted.read_exactly(100) == std::string(100, 'x'));

    // Half-close both ways, in Node's order.
    co_await client.end("bye");
    CHECK(co_await test::read_all(accepted) == "bye");
    CHECK(accepted.ready_state() == "writeOnly");
    co_await accepted.end("ok");
    CHECK(co_await test::read_all(client) == "ok");
    CHECK(client.bytes_written() == 18 + 5 + 100 + 3);
    CHECK(accepted.bytes_read() == client.bytes_written());
    CHECK(client.bytes_read() == 2);

    server.close();
    CHECK_FALSE(exists(path));  // Node removes the socket file on close
    co_await server.wait_closed();
  });
}

/// What a crashed server leaves: a socket file nobody listens on.
void make_stale_socket_file(const std::string& path) {
  asio::io_context io;
  asio::local::stream_protocol::acceptor acceptor(io, asio::local::stream_protocol::endpoint(path));
  acceptor.close();  // closing does not remove the file; only unlink() does
}

TEST_CASE(
    "a path that exists is EADDRINUSE, naming it; removing a stale file lets listen() go on") {
  temp_dir dir;
  const std::string path = dir.file("busy.sock");
  const std::string stale = dir.file("stale.sock");
  make_stale_socket_file(stale);
  test::run([&]() -> coronet::awaitable<void> {
    Server first;
    co_await first.listen({.path = path});
    Server second;
    auto e = co_await test::expect_error(second.listen({.path = path}));
    CHECK(e.code() == std::errc::address_in_use);
    CHECK(std::string(e.what()) == "listen EADDRINUSE: address already in use " + path);
    CHECK(exists(path));  // the live server's file is left alone
    CHECK(first.listening());

    // The stale file refuses connections, and listen() does not replace it (as Node) ...
    auto refused = co_await test::expect_error(coronet::connect({.path = stale}));
    CHECK(refused.code() == std::errc::connection_refused);
    CHECK(std::string(refused.what()) == "connect ECONNREFUSED " + stale);
    Server third;
    auto in_use = co_await test::expect_error(third.listen({.path = stale}));
    CHECK(in_use.code() == std::errc::address_in_use);
    // ... until the user removes it (the guide: try to connect first, unlink on ECONNREFUSED).
    std::filesystem::remove(stale);
    co_await third.listen({.path = stale});
    CHECK(third.listening());
  });
}

TEST_CASE("connect() to a path with nothing there is ENOENT, naming the path") {
  temp_dir dir;
  const std::string path = dir.file("nobody.sock");
  test::run([&]() -> coronet::awaitable<void> {
    // The first socket makes the io_context open its epoll and timer descriptors.
    co_await test::expect_error(coronet::connect({.path = path}));
    const int before = test::open_descriptors();
    auto e = co_await test::expect_error(coronet::connect({.path = path}));
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(std::string(e.what()) == "connect ENOENT " + path);
    CHECK(test::open_descriptors() == before);
  });
}

TEST_CASE("a path longer than sun_path holds is refused with the limit, never truncated") {
  const std::string longest = "/tmp/" + std::string(coronet::detail::max_unix_path - 5, 'x');
  const std::string too_long = longest + "y";
  test::run([&]() -> coronet::awaitable<void> {
    Server server;
    auto e = co_await test::expect_error(server.listen({.path = too_long}));
    CHECK(e.code() == std::errc::filename_too_long);
    const std::string what = e.what();
    CHECK(
        what.starts_with("listen ENAMETOOLONG: the Unix socket path is 108 bytes long; "
                         "Linux allows at most 107"));
    CHECK_FALSE(exists(too_long.substr(0, 107)));  // nothing bound under a cut-down name
    auto c = co_await test::expect_error(coronet::connect({.path = too_long}));
    CHECK(c.code() == std::errc::filename_too_long);

    // Exactly the limit works.
    co_await server.listen({.path = longest});
    CHECK(server.address()->address == longest);
    server.close();
    CHECK_FALSE(exists(longest));
  });
}

TEST_CASE("the abstract namespace: '@name' or \"\\0name\", no file, address() with '@'") {
  const std::string at_name = abstract_name("at");
  std::string nul_name = abstract_name("nul");
  nul_name[0] = '\0';
  test::run([&]() -> coronet::awaitable<void> {
    for (const std::string& name : {at_name, nul_name}) {
      Server server;
      co_await server.listen({.path = name});
      const std::string printed = "@" + name.substr(1);
      CHECK(server.address() == coronet::Address{printed, "Unix", 0});
      CHECK_FALSE(exists(name.substr(1)));
      Socket client = co_await coronet::connect({.path = printed});
      Socket accepted = co_await server.accept();
      co_await client.end("abstract");
      CHECK(co_await test::read_all(accepted) == "abstract");
      // Only one server per abstract name either.
      Server again;
      auto e = co_await test::expect_error(again.listen({.path = name}));
      CHECK(e.code() == std::errc::address_in_use);
    }
  });
}

TEST_CASE("readable_all / writable_all set the socket file's permissions; not on abstract names") {
  temp_dir dir;
  const std::string both = dir.file("both.sock");
  const std::string readable = dir.file("readable.sock");
  const auto mode_of = [](const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  test::run([&]() -> coronet::awaitable<void> {
    Server a;
    co_await a.listen({.path = both, .readable_all = true, .writable_all = true});
    CHECK((mode_of(both) & 0666) == 0666);
    Server b;
    co_await b.listen({.path = readable, .readable_all = true});
    CHECK((mode_of(readable) & 0444) == 0444);

    Server c;
    auto e = co_await test::expect_error(
        c.listen({.path = abstract_name("perm"), .readable_all = true}));
    CHECK(e.code() == coronet::errc::invalid_argument);
    CHECK(std::string(e.what()).find("need a file path") != std::string::npos);
    auto mixed = co_await test::expect_error(c.listen({.port = 3000, .path = both}));
    CHECK(mixed.code() == coronet::errc::invalid_argument);
    CHECK_FALSE(c.listening());
  });
}

TEST_CASE("TCP-only options do nothing on a Unix-domain socket, as on a Node pipe") {
  temp_dir dir;
  const std::string path = dir.file("opts.sock");
  test::run([&]() -> coronet::awaitable<void> {
    Server server{{.no_delay = true, .keep_alive = true}};  // harmless for pipes, as in Node
    co_await server.listen({.path = path});
    Socket client = co_await coronet::connect({.path = path, .no_delay = true, .keep_alive = true});
    Socket accepted = co_await server.accept();
    client.set_no_delay(true).set_keep_alive(true, std::chrono::seconds(5));
    client.set_user_timeout(std::chrono::milliseconds(100));
    CHECK_THROWS_AS(client.set_keep_alive(true, std::chrono::seconds(-1)), coronet::error);
    // Node's resetAndDestroy() throws ERR_INVALID_HANDLE_TYPE on a pipe; the socket lives on.
    CHECK_THROWS_AS(client.reset_and_destroy(), coronet::error);
    CHECK_FALSE(client.destroyed());
    co_await client.end("still fine");
    CHECK(co_await test::read_all(accepted) == "still fine");
  });
}

TEST_CASE("idle timeout, pause/resume and max_connections work over a Unix-domain socket") {
  temp_dir dir;
  const std::string path = dir.file("misc.sock");
  test::run([&]() -> coronet::awaitable<void> {
    Server server{{.max_connections = 1}};
    int dropped = 0;
    server.on_drop([&](const coronet::DropInfo& info) {
      ++dropped;
      CHECK(info.local == coronet::Address{path, "Unix", 0});
      CHECK(info.remote == coronet::Address{});
    });
    co_await server.listen({.path = path});
    Socket client = co_await coronet::connect({.path = path});
    Socket accepted = co_await server.accept();

    accepted.set_timeout(std::chrono::milliseconds(30));
    auto e = co_await test::expect_error(accepted.read());
    CHECK(e.code() == coronet::errc::timeout);
    accepted.set_timeout(std::chrono::milliseconds(0));

    accepted.pause();
    co_await client.write("held");
    accepted.resume();
    CHECK(co_await accepted.read() == "held");

    // A second client goes over max_connections: dropped at once, the client sees FIN.
    Socket extra = co_await coronet::connect({.path = path});
    CHECK(co_await extra.read() == std::nullopt);
    CHECK(dropped == 1);
    CHECK(server.connections() == 1);
  });
}

TEST_CASE("connect() to a path honours options.timeout and allow_half_open") {
  temp_dir dir;
  const std::string path = dir.file("half.sock");
  test::run([&]() -> coronet::awaitable<void> {
    Server server{{.allow_half_open = true}};
    co_await server.listen({.path = path});
    Socket client = co_await coronet::connect(
        {.path = path, .allow_half_open = true, .timeout = std::chrono::milliseconds(5000)});
    CHECK(client.timeout() == std::chrono::milliseconds(5000));
    Socket accepted = co_await server.accept();
    co_await accepted.end("from server");
    CHECK(co_await test::read_all(client) == "from server");
    CHECK(client.ready_state() == "writeOnly");  // half-open: still writable
    co_await client.end("late reply");
    CHECK(co_await test::read_all(accepted) == "late reply");
  });
}

// ---- Node.js as the peer, both directions

#define REQUIRE_NODE()                                           \
  auto node = test::node_path();                                 \
  if (!node) {                                                   \
    MESSAGE("skipped: node not found (apt-get install nodejs)"); \
    return;                                                      \
  }

TEST_CASE("a Node client on a Unix-domain socket half-closes; the coronet server answers") {
  REQUIRE_NODE();
  temp_dir dir;
  const std::string path = dir.file("node-client.sock");
  test::run([&]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    Server server{{.allow_half_open = true}};
    co_await server.listen({.path = path});
    test::child_process client(
        ex, {*node, test::source_path("tests/node/peer.js"), "client", path, "half-close"});
    Socket s = co_await server.accept();
    CHECK(co_await test::read_all(s) == "ping");
    co_await s.end("pong over a pipe");
    auto lines = co_await client.all_lines();
    CHECK(lines == std::vector<std::string>{"data: pong over a pipe", "end", "close"});
    CHECK(client.wait() == 0);
  });
}

TEST_CASE("a coronet client sends 10 MiB through a Node echo server on a Unix-domain socket") {
  REQUIRE_NODE();
  temp_dir dir;
  const std::string path = dir.file("node-server.sock");
  test::run(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        test::child_process node_server(
            ex, {*node, test::source_path("tests/node/peer.js"), "server", "echo", path});
        auto first = co_await node_server.line();
        REQUIRE(first == "listening " + path);
        Socket s = co_await coronet::connect({.path = path, .allow_half_open = true});
        const std::string data = test::random_bytes(10 * 1024 * 1024);
        std::string echoed;
        auto reader = [&]() -> coronet::awaitable<void> { echoed = co_await test::read_all(s); };
        auto writer = [&]() -> coronet::awaitable<void> {
          co_await s.write(data);
          co_await s.end();
        };
        using namespace asio::experimental::awaitable_operators;
        co_await (reader() && writer());
        CHECK(echoed.size() == data.size());
        CHECK(test::checksum(echoed) == test::checksum(data));
        CHECK(co_await node_server.line() == "closed");
      },
      60s);
}
