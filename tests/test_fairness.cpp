// Fairness: a socket whose operations never have to wait (a peer that sends faster
// than its handler consumes, or a kernel with room for every write) still lets the
// rest of its thread run. Counted, not timed: a ticker coroutine re-posts itself,
// and between two of its ticks a socket may complete at most its budget of
// operations. Without the budget a flood runs thousands of reads in a row and
// timers and other sockets on the thread wait for all of them.
#include <sys/ioctl.h>

#include "support.hpp"

using coronet::Socket;

namespace {

/// Counts how many times the executor got round to it.
struct ticker {
  long ticks = 0;
  bool stop = false;
  coronet::awaitable<void> run() {
    auto ex = co_await asio::this_coro::executor;
    while (!stop) {
      co_await asio::post(ex, asio::use_awaitable);
      ++ticks;
    }
  }
};

/// The longest run of operations that completed between two ticks.
struct run_counter {
  const ticker& clock;
  long last = -1;
  int run = 0;
  int longest = 0;
  void completed() {
    if (clock.ticks == last) {
      ++run;
    } else {
      last = clock.ticks;
      run = 1;
    }
    longest = std::max(longest, run);
  }
};

/// A peer on its own thread, writing `total` bytes of 10-byte lines in 64 KiB
/// pieces with blocking calls, so the kernel always has more for the reader.
class flood {
 public:
  flood(int port, std::size_t total) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)});
    thread_ = std::thread([this, total] {
      std::string piece;
      while (piece.size() < 64 * 1024) piece += "123456789\n";
      std::error_code ec;
      for (std::size_t sent = 0; sent < total && !ec; sent += piece.size())
        asio::write(socket_, asio::buffer(piece), ec);
      socket_.shutdown(asio::socket_base::shutdown_send, ec);
    });
  }
  ~flood() { thread_.join(); }

 private:
  asio::io_context io_{1};
  asio::ip::tcp::socket socket_{io_};
  std::thread thread_;
};

constexpr int budget = coronet::detail::budget_operations;

}  // namespace

TEST_CASE("a flooding peer never keeps the thread from its other work beyond the budget") {
  for (const std::string form : {"read_line", "read_until", "read_exactly", "read_some", "read"}) {
    CAPTURE(form);
    test::run([form]() -> coronet::awaitable<void> {
      auto ex = co_await asio::this_coro::executor;
      coronet::Server server;
      const int port = co_await test::listen_loopback(server);
      flood peer(port, 4 << 20);
      Socket s = co_await server.accept();
      ticker clock;
      asio::co_spawn(ex, clock.run(), asio::detached);
      run_counter runs{clock};
      std::size_t bytes = 0;
      char small[10];
      for (;;) {
        std::size_t n = 0;
        if (form == "read_line") {
          auto line = co_await s.read_line();
          if (!line) break;
          n = line->size() + 1;
        } else if (form == "read_until") {
          auto line = co_await s.read_until("\n", 64);
          if (!line) break;
          n = line->size();
        } else if (form == "read_exactly") {
          auto frame = co_await s.read_exactly(10);
          if (!frame) break;
          n = frame->size();
        } else if (form == "read_some") {
          n = co_await s.read_some(std::span<char>(small));
          if (n == 0) break;
        } else {
          auto chunk = co_await s.read();
          if (!chunk) break;
          n = chunk->size();
        }
        bytes += n;
        runs.completed();
      }
      clock.stop = true;
      CHECK(bytes == (std::size_t{4 << 20} + 65539) / 65540 * 65540);  // whole pieces
      MESSAGE(form << ": at most " << runs.longest
                   << " operations between two turns of the thread");
      CHECK(runs.longest <= budget + 1);
    });
  }
}

TEST_CASE("writes the kernel always has room for still let the thread run") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    ticker clock;
    asio::co_spawn(ex, clock.run(), asio::detached);
    run_counter runs{clock};
    std::size_t received = 0;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          while (auto chunk = co_await p.client.read()) received += chunk->size();
        },
        asio::detached);
    for (int i = 0; i < 20000; ++i) {
      co_await p.accepted.write("0123456789");
      runs.completed();
    }
    co_await p.accepted.end();
    co_await test::settle([&] { return received == 200000; }, 100000);
    clock.stop = true;
    CHECK(received == 200000);
    MESSAGE("at most " << runs.longest << " writes between two turns of the thread");
    CHECK(runs.longest <= budget + 1);
  });
}

TEST_CASE("a read whose bytes are already waiting returns without giving up the thread") {
  // A ping-pong whose peer answers while the reply is being sent (both on one
  // CPU): each turn of the thread polls epoll once more, so a read that finds its
  // bytes waiting must take them at once. Only the budget's yield may cost a turn.
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    test::pair p;
    co_await test::make_pair(p);
    p.accepted.set_no_delay(true);
    p.client.set_no_delay(true);
    ticker clock;
    asio::co_spawn(ex, clock.run(), asio::detached);
    const std::string ping(64, 'p');
    constexpr int round_trips = 500;
    int at_once = 0;
    for (int i = 0; i < round_trips; ++i) {
      co_await p.client.write(ping);
      // Loopback delivers during the send; make sure before timing the read.
      const int fd = p.accepted.native().native_handle();
      int waiting = 0;
      for (int spin = 0; spin < 1000000 && waiting < 64; ++spin) ::ioctl(fd, FIONREAD, &waiting);
      REQUIRE(waiting == 64);
      const long before = clock.ticks;
      auto chunk = co_await p.accepted.read();
      REQUIRE(chunk);
      CHECK(chunk->size() == 64);
      if (clock.ticks == before) ++at_once;
      co_await p.accepted.write(*chunk);
      auto reply = co_await p.client.read();
      REQUIRE(reply);
    }
    clock.stop = true;
    MESSAGE(at_once << " of " << round_trips << " reads took waiting bytes without a turn");
    CHECK(at_once >= round_trips - round_trips / budget - 2);
  });
}
