// pipe() and pipe_both(): Node's readable.pipe(writable) between sockets, spliced
// by the kernel between plain sockets and copied otherwise. Every test runs the
// relay between real loopback peers and checks what the peers see.
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "support.hpp"

using coronet::Server;
using coronet::Socket;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace pipe_test {

/// A relay in the middle: `user_a` talks to `relay_a`, `relay_b` to `user_b`; the
/// test pipes between relay_a and relay_b. The relay's sockets are half-open, as a
/// proxy's must be.
struct relay {
  Server server_a{{.allow_half_open = true}};
  Server server_b{{.allow_half_open = true}};
  Socket user_a, relay_a, relay_b, user_b;
};

coronet::awaitable<void> make_relay(relay& r, std::string unix_path_b = {}) {
  const int port_a = co_await test::listen_loopback(r.server_a);
  r.user_a =
      co_await coronet::connect({.host = "127.0.0.1", .port = port_a, .allow_half_open = true});
  r.relay_a = co_await r.server_a.accept();
  if (unix_path_b.empty()) {
    const int port_b = co_await test::listen_loopback(r.server_b);
    r.relay_b =
        co_await coronet::connect({.host = "127.0.0.1", .port = port_b, .allow_half_open = true});
  } else {
    co_await r.server_b.listen({.path = unix_path_b});
    r.relay_b = co_await coronet::connect({.path = unix_path_b, .allow_half_open = true});
  }
  r.user_b = co_await r.server_b.accept();
}

/// Writes `data`, then FIN.
coronet::awaitable<void> send_and_end(Socket& s, const std::string& data) {
  co_await s.write(data);
  co_await s.end();
}

/// Reads until FIN; the checksum and the count of what arrived.
struct received {
  std::uint64_t sum = test::checksum("");
  std::size_t bytes = 0;
};
coronet::awaitable<void> receive_all(Socket& s, received& got) {
  while (auto chunk = co_await s.read()) {
    got.sum = test::checksum(*chunk, got.sum);
    got.bytes += chunk->size();
  }
}

coronet::awaitable<void> wait_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

/// Makes writes on `destination` wait early: with a 4 KB send buffer and a peer
/// that does not read, loopback holds some 100 KB (through ordinary buffers, MBs).
void stall(Socket& destination) {
  destination.native().set_option(asio::socket_base::send_buffer_size(4096));
}

/// The stall has done its part. Through 4 KB loopback paces the rest by the
/// reader's delayed ACKs (seconds for megabytes): an ordinary buffer again.
void end_stall(Socket& destination) {
  destination.native().set_option(asio::socket_base::send_buffer_size(1 << 20));
}

/// A blocking peer on its own thread: sends `data` on a fresh connection to `port`
/// then FIN, so its pace does not depend on the io_context under test.
class blocking_sender {
 public:
  blocking_sender(int port, const std::string& data) : data_(data) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)});
    thread_ = std::thread([this] {
      std::error_code ignored;
      asio::write(socket_, asio::buffer(data_), ignored);
      socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    });
  }
  ~blocking_sender() { thread_.join(); }

 private:
  asio::io_context io_{1};
  asio::ip::tcp::socket socket_{io_};
  const std::string& data_;
  std::thread thread_;
};

/// A fresh directory for a socket file, removed afterwards.
struct socket_dir {
  std::string path;
  socket_dir() {
    char name[] = "/tmp/coronet-pipe-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~socket_dir() { std::filesystem::remove_all(path); }
};

// (The test cases live in the namespace too: the unity build shares one file.)

TEST_CASE("pipe_both moves 16 MB each way intact, spliced and copied, and passes each FIN on") {
  // 64 times the kernel pipe (256 KiB), more than loopback buffers hold.
  const std::string a_data = test::random_bytes(16 * 1024 * 1024, 1);
  const std::string b_data = test::random_bytes(16 * 1024 * 1024, 2);
  for (const bool zero_copy : {true, false}) {
    CAPTURE(zero_copy);
    test::run(
        [&]() -> coronet::awaitable<void> {
          relay r;
          co_await make_relay(r);
          received at_a, at_b;
          coronet::DuplexResult moved;
          auto proxy = [&]() -> coronet::awaitable<void> {
            moved = co_await coronet::pipe_both(r.relay_a, r.relay_b, {.zero_copy = zero_copy});
          };
          co_await (proxy() && send_and_end(r.user_a, a_data) && send_and_end(r.user_b, b_data) &&
                    receive_all(r.user_a, at_a) && receive_all(r.user_b, at_b));
          CHECK(at_b.bytes == a_data.size());
          CHECK(at_b.sum == test::checksum(a_data));
          CHECK(at_a.bytes == b_data.size());
          CHECK(at_a.sum == test::checksum(b_data));
          CHECK(moved.a_to_b.bytes == a_data.size());
          CHECK(moved.b_to_a.bytes == b_data.size());
          CHECK(moved.a_to_b.zero_copy == zero_copy);
          CHECK(moved.b_to_a.zero_copy == zero_copy);
          CHECK(r.relay_a.bytes_read() == a_data.size());
          CHECK(r.relay_b.bytes_written() == a_data.size());
          // Both FINs went through, so both relay sockets are over.
          CHECK(r.relay_a.destroyed());
          CHECK(r.relay_b.destroyed());
        },
        120s);
  }
}

TEST_CASE("pipe: the source's FIN ends the destination, which can still read afterwards") {
  test::run([&]() -> coronet::awaitable<void> {
    relay r;
    co_await make_relay(r);
    co_await r.user_a.end("request");
    const coronet::PipeResult moved = co_await coronet::pipe(r.relay_a, r.relay_b);
    CHECK(moved.bytes == 7);
    CHECK(moved.zero_copy);
    CHECK(co_await test::read_all(r.user_b) == "request");  // FIN after the bytes
    CHECK(r.relay_b.ready_state() == "readOnly");
    // The other direction is still open: the answer comes back after the FIN.
    co_await r.user_b.end("answer");
    CHECK(co_await test::read_all(r.relay_b) == "answer");
  });
}

TEST_CASE(
    "pipe: a reset on the source resets the destination; a reset destination resets the source") {
  for (const bool zero_copy : {true, false}) {
    CAPTURE(zero_copy);
    test::run([&]() -> coronet::awaitable<void> {
      relay r;
      co_await make_relay(r);
      std::optional<coronet::error> relay_failed, user_b_saw;
      auto proxy = [&]() -> coronet::awaitable<void> {
        relay_failed = co_await test::expect_error(
            coronet::pipe_both(r.relay_a, r.relay_b, {.zero_copy = zero_copy}));
      };
      auto users = [&]() -> coronet::awaitable<void> {
        co_await r.user_a.write("partial response");
        CHECK(co_await r.user_b.read() == "partial response");  // through the relay
        r.user_a.reset_and_destroy();
        user_b_saw = co_await test::expect_error(test::read_all(r.user_b));
      };
      co_await (proxy() && users());
      CHECK(relay_failed->code() == std::errc::connection_reset);
      CHECK(std::string(relay_failed->what()) == "read ECONNRESET");
      CHECK(r.relay_a.destroyed());
      CHECK(r.relay_b.destroyed());
      // user_b sees a reset, not a FIN that would pass the cut stream for a whole one.
      CHECK(user_b_saw->code() == std::errc::connection_reset);
    });
    test::run([&]() -> coronet::awaitable<void> {
      relay r;
      co_await make_relay(r);
      std::optional<coronet::error> relay_failed, user_a_saw;
      auto proxy = [&]() -> coronet::awaitable<void> {
        // Writing into a reset peer: an error, and no SIGPIPE ends the process.
        relay_failed = co_await test::expect_error(
            coronet::pipe(r.relay_a, r.relay_b, {.zero_copy = zero_copy}));
      };
      const std::string data = test::random_bytes(4 * 1024 * 1024);
      auto users = [&]() -> coronet::awaitable<void> {
        co_await r.user_a.write("first");
        CHECK(co_await r.user_b.read() == "first");
        r.user_b.reset_and_destroy();
        r.user_a.write_nowait(data);  // flushed in the background
        user_a_saw = co_await test::expect_error(test::read_all(r.user_a));
      };
      co_await (proxy() && users());
      CHECK(std::string(relay_failed->what()).starts_with("write E"));
      CHECK(r.relay_a.destroyed());
      CHECK(r.relay_b.destroyed());
      CHECK(user_a_saw->code() == std::errc::connection_reset);
    });
  }
}

/// Whether a SIGPIPE waits, blocked, on this thread; taking it if `take`.
bool sigpipe_pending(bool take) {
  sigset_t pending;
  ::sigpending(&pending);
  const bool waiting = ::sigismember(&pending, SIGPIPE) == 1;
  if (waiting && take) {
    sigset_t only_pipe;
    ::sigemptyset(&only_pipe);
    ::sigaddset(&only_pipe, SIGPIPE);
    timespec now{};
    ::sigtimedwait(&only_pipe, nullptr, &now);
  }
  return waiting;
}

TEST_CASE(
    "pipe into a reset peer on a thread that blocks SIGPIPE: the pipe's own SIGPIPE is taken "
    "back, one the program had pending stays") {
  sigset_t only_pipe, old;
  ::sigemptyset(&only_pipe);
  ::sigaddset(&only_pipe, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &only_pipe, &old);
  for (const bool program_had_one : {false, true}) {
    CAPTURE(program_had_one);
    REQUIRE(!sigpipe_pending(false));
    if (program_had_one) ::pthread_kill(::pthread_self(), SIGPIPE);
    test::run([&]() -> coronet::awaitable<void> {
      relay r;
      co_await make_relay(r);
      r.user_b.reset_and_destroy();
      // Take the reset's error from relay_b's kernel, so that the splice into it
      // fails with EPIPE, the failure that raises SIGPIPE, not ECONNRESET.
      int reset = 0;
      socklen_t size = sizeof reset;
      ::getsockopt(r.relay_b.native().native_handle(), SOL_SOCKET, SO_ERROR, &reset, &size);
      CHECK(reset == ECONNRESET);
      co_await r.user_a.write("after the reset");
      auto failed = co_await test::expect_error(coronet::pipe(r.relay_a, r.relay_b));
      CHECK(std::string(failed.what()) == "write EPIPE");
    });
    CHECK(sigpipe_pending(true) == program_had_one);
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

TEST_CASE(
    "pipe: bytes a framed read left buffered go first, and bytes queued on the destination before "
    "them") {
  test::run([&]() -> coronet::awaitable<void> {
    relay r;
    co_await make_relay(r);
    const std::string body = test::random_bytes(1024 * 1024, 3);
    co_await r.user_a.write("HEAD\n" + body);
    CHECK(co_await r.relay_a.read_line() == "HEAD");
    CHECK(r.relay_a.readable_length() > 0);  // part of the body came with the line
    // 8 MB the destination's kernel cannot take at once: most of it stays queued.
    const std::string queued = test::random_bytes(8 * 1024 * 1024, 4);
    r.relay_b.write_nowait(queued);
    CHECK(r.relay_b.writable_length() > 0);
    received got;
    co_await (coronet::pipe(r.relay_a, r.relay_b) && r.user_a.end() && receive_all(r.user_b, got));
    CHECK(got.bytes == queued.size() + body.size());
    CHECK(got.sum == test::checksum(body, test::checksum(queued)));
  });
}

TEST_CASE(
    "pipe: a FIN that arrives while the kernel pipe still holds bytes ends the destination after "
    "them") {
  test::run([&]() -> coronet::awaitable<void> {
    relay r;
    co_await make_relay(r);
    const std::string body = test::random_bytes(100 * 1024, 10);
    co_await r.user_a.end(body);  // the body and the FIN wait in relay_a's kernel
    // 8 MB queued on the destination first: the pipe reads the body, holds it while
    // the queue drains, and meets the FIN before it has passed the body on.
    const std::string queued = test::random_bytes(8 * 1024 * 1024, 11);
    r.relay_b.write_nowait(queued);
    received got;
    coronet::PipeResult moved;
    auto pipe = [&]() -> coronet::awaitable<void> {
      moved = co_await coronet::pipe(r.relay_a, r.relay_b);
    };
    co_await (pipe() && receive_all(r.user_b, got));  // receive_all ends at the FIN
    CHECK(moved.zero_copy);
    CHECK(moved.bytes == body.size());
    CHECK(got.bytes == queued.size() + body.size());
    CHECK(got.sum == test::checksum(body, test::checksum(queued)));
    CHECK(r.relay_b.ready_state() == "readOnly");
  });
}

TEST_CASE(
    "pipe: a stalled destination keeps what the relay holds bounded, and then gets every byte") {
  // The destination's 4 KB send buffer (stall()) and user_b's window fill with the
  // first 100 KB; loopback buffers before the relay take at most some 10 MB.
  const std::string data = test::random_bytes(16 * 1024 * 1024, 5);
  for (const bool zero_copy : {true, false}) {
    CAPTURE(zero_copy);
    test::run(
        [&]() -> coronet::awaitable<void> {
          relay r;
          co_await make_relay(r);
          stall(r.relay_b);
          auto pipe = [&]() -> coronet::awaitable<void> {
            co_await coronet::pipe(r.relay_a, r.relay_b, {.zero_copy = zero_copy});
          };
          // user_b reads nothing yet. Watch the relay until the flow has stopped
          // (no byte read for 50 ticks in a row), checking the bound at every tick.
          std::uint64_t most_held = 0;
          auto watch = [&]() -> coronet::awaitable<void> {
            std::uint64_t last = 0;
            for (int still = 0, tick = 0; still < 50 && tick < 5000; ++tick) {
              co_await wait_for(1ms);
              const std::uint64_t in = r.relay_a.bytes_read();
              most_held = std::max<std::uint64_t>(most_held, in - r.relay_b.bytes_written());
              still = in == last ? still + 1 : 0;
              last = in;
            }
          };
          received got;
          auto then_read = [&]() -> coronet::awaitable<void> {
            co_await watch();
            end_stall(r.relay_b);
            co_await receive_all(r.user_b, got);
          };
          co_await (pipe() && send_and_end(r.user_a, data) && then_read());
          // Spliced: at most one kernel pipe (256 KiB) between read and written;
          // copied: one chunk and the 64 KiB high-water mark.
          CHECK(most_held <= (zero_copy ? 256u : 320u) * 1024);
          CHECK(got.bytes == data.size());
          CHECK(got.sum == test::checksum(data));
        },
        120s);
  }
}

TEST_CASE("pipe_both between a TCP and a Unix-domain socket splices both ways") {
  socket_dir dir;
  const std::string a_data = test::random_bytes(8 * 1024 * 1024, 6);
  const std::string b_data = test::random_bytes(8 * 1024 * 1024, 7);
  test::run([&]() -> coronet::awaitable<void> {
    relay r;
    co_await make_relay(r, dir.path + "/b.sock");
    CHECK(r.relay_b.is_unix_domain());
    received at_a, at_b;
    coronet::DuplexResult moved;
    auto proxy = [&]() -> coronet::awaitable<void> {
      moved = co_await coronet::pipe_both(r.relay_a, r.relay_b);
    };
    co_await (proxy() && send_and_end(r.user_a, a_data) && send_and_end(r.user_b, b_data) &&
              receive_all(r.user_a, at_a) && receive_all(r.user_b, at_b));
    CHECK(at_b.sum == test::checksum(a_data));
    CHECK(at_a.sum == test::checksum(b_data));
    CHECK(moved.a_to_b.zero_copy);
    CHECK(moved.b_to_a.zero_copy);
  });
}

TEST_CASE(
    "pipe cancelled while the destination stalls: both stay open and no byte is lost or doubled") {
  const std::string data = test::random_bytes(16 * 1024 * 1024, 8);
  for (const bool zero_copy : {true, false}) {
    CAPTURE(zero_copy);
    test::run([&]() -> coronet::awaitable<void> {
      relay r;
      co_await make_relay(r);
      blocking_sender sender(r.server_a.address()->port, data);  // a second client of server_a
      Socket from = co_await r.server_a.accept();
      // user_b reads nothing: the pipe fills the kernels and waits; the deadline cancels it.
      auto winner =
          co_await (coronet::pipe(from, r.relay_b, {.zero_copy = zero_copy}) || wait_for(300ms));
      CHECK(winner.index() == 1);
      CHECK(!from.destroyed());
      CHECK(!r.relay_b.destroyed());
      CHECK(from.bytes_read() > 0);
      // A second pipe finishes the job: user_b gets the stream once, in order.
      received got;
      co_await (coronet::pipe(from, r.relay_b, {.zero_copy = zero_copy}) &&
                receive_all(r.user_b, got));
      CHECK(got.bytes == data.size());
      CHECK(got.sum == test::checksum(data));
    });
  }
}

TEST_CASE(
    "pipe: the source's idle timeout and write_timeout end it with errc::timeout, both open") {
  test::run([&]() -> coronet::awaitable<void> {
    relay r;
    co_await make_relay(r);
    r.relay_a.set_timeout(50ms);
    auto idle = co_await test::expect_error(coronet::pipe(r.relay_a, r.relay_b));
    CHECK(idle.code() == coronet::errc::timeout);
    CHECK(std::string(idle.what()) == "read timed out: no activity for 50 ms");
    CHECK(r.relay_a.ready_state() == "open");
    CHECK(r.relay_b.ready_state() == "open");
    r.relay_a.set_timeout(0ms);

    // user_b never reads: the destination stalls for write_timeout.
    stall(r.relay_b);
    const std::string data = test::random_bytes(4 * 1024 * 1024, 9);
    r.user_a.write_nowait(data);
    auto stalled =
        co_await test::expect_error(coronet::pipe(r.relay_a, r.relay_b, {.write_timeout = 200ms}));
    CHECK(stalled.code() == coronet::errc::timeout);
    CHECK(std::string(stalled.what()) == "pipe timed out: the destination took no byte for 200 ms");
    CHECK(r.relay_b.ready_state() == "open");
  });
}

}  // namespace pipe_test
