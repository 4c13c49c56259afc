// tests/support.hpp - what every suite needs: run a coroutine on a real io_context
// with a time bound, and a loopback server to talk to.
#pragma once

#include <dirent.h>
#include <sys/resource.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <asio.hpp>  // the tests use Asio directly too (blocking peers, descriptors)
#include <coronet/coronet.hpp>

namespace test {

using namespace std::chrono_literals;

/// Runs `body()` (a coroutine) on a fresh io_context until it finishes, rethrowing
/// what it threw. Fails the test if it has not finished within `limit`, so a bug
/// that hangs shows up as a failure, never as a stuck suite.
/// `concurrency_hint` 1 (the default) is the single-threaded fast path; pass
/// ASIO_CONCURRENCY_HINT_DEFAULT to exercise the path for multi-threaded contexts.
inline void run(std::function<coronet::awaitable<void>()> body,
                std::chrono::steady_clock::duration limit = 30s, int concurrency_hint = 1,
                int threads = 1) {
  asio::io_context io{concurrency_hint};
  std::exception_ptr failure;
  bool done = false;
  // With several threads, the test's coroutines share one strand (as a user's must
  // when they share sockets) while the reactor runs on every thread.
  asio::any_io_executor executor = io.get_executor();
  if (threads > 1) executor = asio::make_strand(io);
  asio::co_spawn(executor, body(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
    io.stop();
  });
  std::vector<std::thread> extra;
  for (int i = 1; i < threads; ++i) extra.emplace_back([&] { io.run_for(limit); });
  io.run_for(limit);
  for (auto& t : extra) t.join();
  REQUIRE_MESSAGE(done, "the test coroutine did not finish in time");
  if (failure) std::rethrow_exception(failure);
}

/// Deterministic pseudo-random bytes: a failure reproduces.
inline std::string random_bytes(std::size_t n, std::uint32_t seed = 12345) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

/// FNV-1a: cheap and order-sensitive, enough to catch a lost, doubled or swapped chunk.
inline std::uint64_t checksum(std::string_view data, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// Reads until FIN and returns everything.
inline coronet::awaitable<std::string> read_all(coronet::Socket& socket) {
  std::string all;
  while (auto chunk = co_await socket.read()) all.append(*chunk);
  co_return all;
}

/// A coroutine that echoes one connection until FIN, then ends.
inline coronet::awaitable<void> echo(coronet::Socket socket) {
  while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
  co_await socket.end();
}

/// Listens on 127.0.0.1 (or `host`), port 0, and returns the port.
inline coronet::awaitable<int> listen_loopback(coronet::Server& server,
                                               std::string host = "127.0.0.1") {
  co_await server.listen(0, host);
  co_return server.address()->port;
}

/// Expects `op` to throw coronet::error; returns it for further checks.
template <typename Awaitable>
coronet::awaitable<coronet::error> expect_error(Awaitable op) {
  try {
    co_await std::move(op);
  } catch (const coronet::error& e) {
    co_return e;
  }
  FAIL("expected a coronet::error");
  co_return coronet::error(coronet::errc::invalid_argument);
}

/// A listener that never accepts and whose backlog is full, so that a further
/// connect() to it gets no answer at all: the kernel drops its SYNs. This is how a
/// black-holed address looks to a client, made on loopback.
class blackhole {
 public:
  explicit blackhole(const std::string& ip = "127.0.0.1") {
    auto address = asio::ip::make_address(ip);
    acceptor_.open(address.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6());
    acceptor_.bind({address, 0});
    acceptor_.listen(0);  // room for a single pending connection
    port_ = acceptor_.local_endpoint().port();
    // Fill the one slot: this connect completes in the kernel without an accept().
    filler_.connect({address, static_cast<std::uint16_t>(port_)});
  }
  int port() const { return port_; }

 private:
  asio::io_context io_{1};
  asio::ip::tcp::acceptor acceptor_{io_};
  asio::ip::tcp::socket filler_{io_};
  int port_ = 0;
};

/// Lets other coroutines on this executor run until `done()` or `rounds` passes:
/// a bounded way to wait for something that needs no I/O of its own.
template <typename Predicate>
coronet::awaitable<void> settle(Predicate done, int rounds = 1000) {
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < rounds && !done(); ++i) co_await asio::post(ex, asio::use_awaitable);
}

/// A connected pair on loopback: `client` from connect(), `accepted` from the server.
struct pair {
  coronet::Server server;
  coronet::Socket client;
  coronet::Socket accepted;
};

inline coronet::awaitable<void> make_pair(pair& p, coronet::ServerOptions options = {},
                                          coronet::ConnectOptions connect_options = {}) {
  p.server = coronet::Server(options);
  const int port = co_await listen_loopback(p.server);
  connect_options.host = "127.0.0.1";
  connect_options.port = port;
  p.client = co_await coronet::connect(connect_options);
  p.accepted = co_await p.server.accept();
}

/// RLIMIT_NOFILE as it was when constructed, restored when destroyed (also when a
/// test fails half-way).
class fd_limit {
 public:
  fd_limit() { ::getrlimit(RLIMIT_NOFILE, &original_); }
  ~fd_limit() { restore(); }
  fd_limit(const fd_limit&) = delete;
  fd_limit& operator=(const fd_limit&) = delete;
  rlim_t soft() const { return original_.rlim_cur; }
  rlim_t hard() const { return original_.rlim_max; }
  /// The soft limit in force now.
  static rlim_t current_soft() {
    rlimit now{};
    ::getrlimit(RLIMIT_NOFILE, &now);
    return now.rlim_cur;
  }
  /// Sets the soft limit (at most the hard one); false if the kernel refused.
  bool set_soft(rlim_t value) {
    rlimit changed = original_;
    changed.rlim_cur = std::min(value, original_.rlim_max);
    return ::setrlimit(RLIMIT_NOFILE, &changed) == 0;
  }
  void restore() { ::setrlimit(RLIMIT_NOFILE, &original_); }

 private:
  rlimit original_{};
};

/// Descriptors open in this process (needs one free descriptor to look).
inline int open_descriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

}  // namespace test
