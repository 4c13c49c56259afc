// Faults: what a program sees when the network or the process misbehaves. A peer
// that resets in the middle of a read or of a large write; destroy() while reads,
// writes, drain() and end() wait; a process out of descriptors; a reader that stops
// reading; a server closed with a thousand live connections; connecting to a closed
// port and to a black hole. Each case asserts what a user would notice, and that
// everything else carries on.
#include "support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Every helper lives here: the suites are compiled as one translation unit.
namespace faults_test {

using namespace std::chrono_literals;
using coronet::Server;
using coronet::Socket;
using steady = std::chrono::steady_clock;

/// A condition variable for coroutines on one thread: notify() wakes whoever waits
/// in until(), which re-checks its predicate, so no wake-up is ever lost.
class wakeup {
 public:
  explicit wakeup(const asio::any_io_executor& executor)
      : timer_(executor, steady::time_point::max()) {}
  void notify() { timer_.cancel(); }
  template <typename Predicate>
  coronet::awaitable<void> until(Predicate done) {
    while (!done()) co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }

 private:
  asio::steady_timer timer_;
};

/// Waits `d` on a timer: only where the behaviour under test is itself about time.
inline coronet::awaitable<void> wait_for(steady::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(asio::use_awaitable);
}

/// `size` zero bytes from calloc(): the kernel maps the pages lazily, so a 64 MiB
/// buffer of which only a few megabytes are ever sent costs nothing to make.
class zeroes {
 public:
  explicit zeroes(std::size_t size) : data_(static_cast<char*>(std::calloc(size, 1))), size_(size) {
    if (data_ == nullptr) throw std::bad_alloc();
  }
  ~zeroes() { std::free(data_); }
  zeroes(const zeroes&) = delete;
  zeroes& operator=(const zeroes&) = delete;
  std::string_view view() const { return {data_, size_}; }
  std::size_t size() const { return size_; }

 private:
  char* data_;
  std::size_t size_;
};

/// Pseudo-random bytes (splitmix64), eight at a time: test::random_bytes is
/// slow for many megabytes, especially under the sanitizers.
inline std::string quick_random_bytes(std::size_t n, std::uint64_t state) {
  std::string bytes(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(bytes.data() + i, &z, std::min<std::size_t>(8, n - i));
  }
  return bytes;
}

/// Writes `message`, then reads until as many bytes have come back (or FIN).
inline coronet::awaitable<std::string> round_trip(Socket& socket, std::string message) {
  co_await socket.write(message);
  std::string back;
  while (back.size() < message.size()) {
    auto chunk = co_await socket.read();
    if (!chunk) break;
    back.append(*chunk);
  }
  co_return back;
}

/// Counts the SIGPIPEs the process receives while it lives (the default action
/// would kill the process; counting makes "no SIGPIPE" an assertion).
class sigpipe_counter {
 public:
  sigpipe_counter() {
    count_ = 0;
    struct sigaction action {};
    action.sa_handler = &on_signal;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGPIPE, &action, &previous_);
  }
  ~sigpipe_counter() { ::sigaction(SIGPIPE, &previous_, nullptr); }
  sigpipe_counter(const sigpipe_counter&) = delete;
  sigpipe_counter& operator=(const sigpipe_counter&) = delete;
  int count() const { return count_; }

 private:
  static void on_signal(int) { ++count_; }
  static inline std::atomic<int> count_{0};
  struct sigaction previous_ {};
};

/// Placeholder descriptors (/dev/null) that use up what the limit allows.
class ballast {
 public:
  ballast() = default;
  ~ballast() { release_all(); }
  ballast(const ballast&) = delete;
  ballast& operator=(const ballast&) = delete;
  /// Opens descriptors until open() fails (at most `max`); true if it failed with EMFILE.
  bool fill(int max) {
    for (int i = 0; i < max; ++i) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return errno == EMFILE;
      fds_.push_back(fd);
    }
    return false;
  }
  void release_one() {
    ::close(fds_.back());
    fds_.pop_back();
  }
  void release_all() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  std::size_t size() const { return fds_.size(); }

 private:
  std::vector<int> fds_;
};

/// True if the process could open one more descriptor now (it is closed again).
inline bool can_open_descriptor() {
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

/// UBSan's vptr check (the ASan+UBSan build) validates a dynamic type the first
/// time it meets it by copying memory through a pipe(); with no descriptor left that
/// fails and it reports a false "invalid vptr". The error_code comparisons serve()
/// makes on EMFILE (system and generic category) are made once here, before the
/// descriptors run out, so UBSan has them on file. For the same reason the
/// starved stretch of that test has no INFO() (a new ContextScope type).
inline void make_ubsan_know_error_categories() {
  const std::error_code emfile(EMFILE, std::system_category());
  const bool aborted = emfile == std::errc::connection_aborted;  // asks both categories
  const bool exhausted = emfile == std::errc::too_many_files_open;
  CHECK(exhausted != aborted);
  CHECK_FALSE(emfile.message().empty());
}

/// CPU time used by the whole process so far.
inline std::chrono::nanoseconds process_cpu_time() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

/// The calling thread's scheduler statistics (/proc/thread-self/schedstat, read
/// through a descriptor opened in advance): time on a CPU plus time runnable but
/// waiting for one. That sum is the CPU the thread asked for, which a busy machine
/// cannot hide the way it hides plain CPU time (a spinning thread that gets a third
/// of a core still asks for all of it).
class thread_cpu_demand {
 public:
  thread_cpu_demand() : fd_(::open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) {}
  ~thread_cpu_demand() {
    if (fd_ >= 0) ::close(fd_);
  }
  thread_cpu_demand(const thread_cpu_demand&) = delete;
  thread_cpu_demand& operator=(const thread_cpu_demand&) = delete;
  /// nullopt where the kernel keeps no schedstat.
  std::optional<std::chrono::nanoseconds> now() const {
    if (fd_ < 0) return std::nullopt;
    char text[128];
    const ssize_t n = ::pread(fd_, text, sizeof text - 1, 0);
    if (n <= 0) return std::nullopt;
    text[n] = '\0';
    unsigned long long running = 0, waiting = 0;
    if (std::sscanf(text, "%llu %llu", &running, &waiting) != 2) return std::nullopt;
    return std::chrono::nanoseconds(running + waiting);
  }

 private:
  int fd_;
};

/// A listening socket's accept queue as the kernel counts it: connections that
/// completed the handshake and wait for accept(), and the queue's bound. For a
/// listener, TCP_INFO's tcpi_unacked and tcpi_sacked hold exactly these.
struct accept_queue {
  int waiting = -1;
  int bound = -1;
};

inline accept_queue listener_queue(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return {};
  return {static_cast<int>(info.tcpi_unacked), static_cast<int>(info.tcpi_sacked)};
}

/// The descriptor of this process's listening socket on `port`, or -1. (Server
/// does not expose its acceptor; no new descriptor is needed to look.)
inline int find_listener(int port) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const int last = static_cast<int>(std::min<rlim_t>(limit.rlim_max, 1 << 16));
  for (int fd = 0; fd < last; ++fd) {
    int listening = 0;
    socklen_t length = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0 || !listening) {
      continue;
    }
    sockaddr_storage address{};
    socklen_t address_length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) continue;
    int bound_port = -1;
    if (address.ss_family == AF_INET) {
      bound_port = ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound_port = ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
    }
    if (bound_port == port) return fd;
  }
  return -1;
}

// ------------------------------------------------------------------ peer resets

/// What the serve() handlers of the reset tests did.
struct session_log {
  explicit session_log(std::string_view flood_bytes) : flood(flood_bytes) {}
  std::string_view flood;  // what a "flood" connection is sent, and never reads
  wakeup* changed = nullptr;
  int started = 0;
  int finished = 0;
  std::vector<std::pair<std::error_code, std::string>> failures;  // code, what()
  Socket* flooding = nullptr;  // the handler's socket while its flood write waits
};

/// The reset tests' handler: an echo, except that a connection whose first bytes
/// are "flood" is sent session_log::flood. Logs what each handler threw.
inline coronet::awaitable<void> logged_session(session_log* log, Socket socket) {
  ++log->started;
  try {
    auto first = co_await socket.read();
    if (first && *first == "flood") {
      log->flooding = &socket;
      log->changed->notify();  // it runs on into write() before the test resumes
      co_await socket.write(log->flood);
    } else if (first) {
      co_await socket.write(*first);
      while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
      co_await socket.end();
    }
  } catch (const coronet::error& e) {
    log->failures.emplace_back(e.code(), e.what());
  }
  log->flooding = nullptr;
  ++log->finished;
  log->changed->notify();
}

inline auto logged_handler(session_log& log) {
  return [log = &log](Socket socket) { return logged_session(log, std::move(socket)); };
}

// ------------------------------------------------------------------ destroy()

enum class destroy_from { another_coroutine, timer_handler, posted_handler, dropped_handle };

/// How one pending operation ended: each must end exactly once.
struct op_outcome {
  explicit op_outcome(std::string_view op_name) : name(op_name) {}
  std::string_view name;
  int finished = 0;  // co_spawn's completion handler ran
  int returned = 0;  // the operation completed normally
  int threw = 0;     // ... or threw a coronet::error
  int other = 0;     // ... or something else
  std::error_code code;
  std::string what;
};

template <typename T>
coronet::awaitable<void> observe(coronet::awaitable<T> op, op_outcome* outcome) {
  try {
    co_await std::move(op);
    ++outcome->returned;
  } catch (const coronet::error& e) {
    ++outcome->threw;
    outcome->code = e.code();
    outcome->what = e.what();
  }
}

/// Like test::run, but the io_context is left to run out of work after the body
/// finishes, and must: an operation that never completes, or a handler left
/// behind, fails the test (after `limit`).
inline void run_until_drained(std::function<coronet::awaitable<void>()> body,
                              steady::duration limit) {
  asio::io_context io{1};
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, body(), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  io.run_for(limit);
  REQUIRE_MESSAGE(done, "the test coroutine did not finish in time");
  if (failure) std::rethrow_exception(failure);
  CHECK_MESSAGE(io.stopped(), "work was left in the io_context after the test finished");
}

/// A read, a 16 MiB write the peer does not read, a second write queued behind it,
/// drain() and end(), all waiting on one socket when destroy() comes `how`.
inline void destroy_with_everything_pending(destroy_from how) {
  std::array<op_outcome, 5> ops{op_outcome{"read"}, op_outcome{"write"}, op_outcome{"write"},
                                op_outcome{"drain"}, op_outcome{"end"}};
  const zeroes big(16 << 20);  // loopback takes about 4 MiB of it at once
  const std::string tail = "tail";
  run_until_drained(
      [&]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        wakeup changed(ex);
        test::pair p;
        co_await test::make_pair(p);
        auto spawn = [&](auto op, op_outcome& outcome) {
          asio::co_spawn(ex, observe(std::move(op), &outcome),
                         [&outcome, &changed](std::exception_ptr e) {
                           ++outcome.finished;
                           if (e) ++outcome.other;
                           changed.notify();
                         });
        };
        spawn(p.client.read(), ops[0]);
        spawn(p.client.write(big.view()), ops[1]);
        spawn(p.client.write(tail), ops[2]);
        spawn(p.client.drain(), ops[3]);
        spawn(p.client.end(), ops[4]);
        // They start in order; once end() has queued its FIN all five are waiting.
        co_await test::settle(
            [&] { return p.client.ready_state() == "readOnly" && p.client.writable_length() > 0; });
        REQUIRE(p.client.ready_state() == "readOnly");
        REQUIRE(p.client.writable_length() > tail.size());
        auto probe = co_await test::expect_error(p.client.read());
        CHECK(probe.code() == coronet::errc::read_in_progress);  // the first read waits
        for (const auto& op : ops) CHECK(op.finished == 0);

        std::uint64_t sent = 0;
        auto destroy = [&] {
          sent = p.client.bytes_written();
          p.client.destroy();
        };
        asio::steady_timer timer(ex);
        switch (how) {
          case destroy_from::another_coroutine:
            asio::co_spawn(
                ex,
                [&]() -> coronet::awaitable<void> {
                  co_await asio::post(ex, asio::use_awaitable);
                  destroy();
                },
                asio::detached);
            break;
          case destroy_from::timer_handler:
            timer.expires_after(1ms);
            timer.async_wait([&](std::error_code) { destroy(); });
            break;
          case destroy_from::posted_handler: asio::post(ex, destroy); break;
          case destroy_from::dropped_handle: {
            sent = p.client.bytes_written();
            Socket last_handle = std::move(p.client);  // its destructor destroys
            break;
          }
        }
        co_await changed.until([&] {
          return std::all_of(ops.begin(), ops.end(),
                             [](const op_outcome& o) { return o.finished > 0; });
        });
        for (const auto& op : ops) {
          CAPTURE(op.name);
          CHECK(op.finished == 1);
          CHECK(op.threw == 1);
          CHECK(op.returned == 0);
          CHECK(op.other == 0);
          CHECK(op.code == std::errc::operation_canceled);
          CHECK(op.what == std::string(op.name) + " aborted: the socket was destroyed");
        }
        if (how != destroy_from::dropped_handle) {
          CHECK(p.client.destroyed());
          CHECK(p.client.ready_state() == "closed");
          CHECK(p.client.writable_length() == 0);  // queued bytes were dropped
        }
        // What the kernel had taken still arrives, then FIN: nothing more, nothing torn.
        CHECK(sent > 0);
        CHECK(sent < big.size());
        std::string got = co_await test::read_all(p.accepted);
        CHECK(got.size() == sent);
        CHECK(got.find_first_not_of('\0') == std::string::npos);
      },
      15s);
  // The io_context has run out of work: still exactly one completion each.
  for (const auto& op : ops) {
    CAPTURE(op.name);
    CHECK(op.finished == 1);
    CHECK(op.threw + op.returned + op.other == 1);
  }
}

// ------------------------------------------------------------------ slow reader

enum class writer_kind { write_nowait_then_drain, awaited_write };

struct writer_progress {
  std::size_t max_queued = 0;  // writable_length() right after each call returned
  int refusals = 0;            // write_nowait() said false
  bool waiting = false;        // inside drain() or write() now
  bool done = false;
  std::exception_ptr failure;
};

/// Sends `payload` in pieces the way Node code does: write_nowait() and drain()
/// when it says false, or an awaited write() per piece; then end().
inline coronet::awaitable<void> write_in_pieces(Socket& socket, std::string_view payload,
                                                std::size_t piece, writer_kind kind,
                                                writer_progress& progress, wakeup& changed) {
  for (std::size_t at = 0; at < payload.size(); at += piece) {
    const std::string_view part = payload.substr(at, piece);
    if (kind == writer_kind::write_nowait_then_drain) {
      const bool below_mark = socket.write_nowait(part);
      progress.max_queued = std::max(progress.max_queued, socket.writable_length());
      if (!below_mark) {
        ++progress.refusals;
        progress.waiting = true;
        changed.notify();
        co_await socket.drain();
        progress.waiting = false;
      }
    } else {
      progress.waiting = true;
      changed.notify();
      co_await socket.write(part);
      progress.waiting = false;
      progress.max_queued = std::max(progress.max_queued, socket.writable_length());
    }
  }
  co_await socket.end();
}

/// The reader pauses; the writer must stall with its queue bounded, and once the
/// reader resumes every byte arrives in order.
inline void stalled_reader(writer_kind kind, std::size_t piece) {
  test::run(
      [kind, piece]() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        wakeup changed(ex);
        test::pair p;
        co_await test::make_pair(p);
        p.accepted.pause();
        const std::string payload = quick_random_bytes(16 << 20, 4242);  // 4x what loopback holds
        const std::size_t bound = kind == writer_kind::write_nowait_then_drain
                                      ? p.client.high_water_mark() + piece
                                      : piece;
        writer_progress progress;
        asio::co_spawn(ex, write_in_pieces(p.client, payload, piece, kind, progress, changed),
                       [&](std::exception_ptr e) {
                         progress.failure = e;
                         progress.done = true;
                         changed.notify();
                       });

        // The writer stalls: it waits, and over a 50 ms window no byte leaves.
        bool stalled = false;
        for (int i = 0; i < 40 && !stalled; ++i) {
          co_await changed.until([&] { return progress.waiting || progress.done; });
          REQUIRE_FALSE(progress.done);
          const std::uint64_t before = p.client.bytes_written();
          co_await wait_for(50ms);
          stalled = progress.waiting && p.client.bytes_written() == before;
        }
        REQUIRE_MESSAGE(stalled, "the writer never stalled against the paused reader");
        CHECK_FALSE(progress.done);
        CHECK(p.accepted.bytes_read() == 0);  // paused: nothing was read
        CHECK(p.client.bytes_written() < payload.size());
        const std::size_t queued = p.client.writable_length();
        CHECK(queued > 0);
        CHECK(queued <= bound);
        CHECK(progress.max_queued <= bound);
        if (kind == writer_kind::write_nowait_then_drain) CHECK(progress.refusals > 0);

        p.accepted.resume();
        std::string received = co_await test::read_all(p.accepted);
        co_await changed.until([&] { return progress.done; });
        if (progress.failure) std::rethrow_exception(progress.failure);
        CHECK(progress.max_queued <= bound);
        CHECK(p.client.writable_length() == 0);
        CHECK(p.client.bytes_written() == payload.size());
        CHECK(received.size() == payload.size());
        const bool intact = received == payload;  // every byte, in order
        CHECK(intact);
      },
      30s);
}

// ------------------------------------------------------------------ 1,000 connections

struct idle_log {
  wakeup* changed = nullptr;
  int started = 0;
  int finished = 0;
};

/// An idle echo: it waits in read() until its client ends.
inline coronet::awaitable<void> idle_session(idle_log* log, Socket socket) {
  ++log->started;
  log->changed->notify();
  try {
    while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
    co_await socket.end();
  } catch (const coronet::error&) {
  }
  ++log->finished;
  log->changed->notify();
}

// ------------------------------------------------------------------ black hole

/// A listener with backlog 0 that never accepts. fill() connects raw sockets
/// until one gets no answer: the kernel then drops every further SYN, so a connect
/// to it waits until something gives up (here, ConnectOptions::timeout).
class black_hole {
 public:
  black_hole(const asio::any_io_executor& executor, const std::string& ip)
      : executor_(executor), acceptor_(executor) {
    const auto address = asio::ip::make_address(ip);
    acceptor_.open(address.is_v4() ? asio::ip::tcp::v4() : asio::ip::tcp::v6());
    acceptor_.bind({address, 0});
    acceptor_.listen(0);
    endpoint_ = acceptor_.local_endpoint();
  }

  int port() const { return endpoint_.port(); }
  accept_queue queue() { return listener_queue(acceptor_.native_handle()); }

  /// Connects until a connect does not complete within `probe` (a loopback
  /// handshake takes microseconds); returns how many did complete, or -1 if all
  /// of `max` did (this machine answers every SYN).
  coronet::awaitable<int> fill(int max, steady::duration probe) {
    using namespace asio::experimental::awaitable_operators;
    for (int i = 0; i < max; ++i) {
      asio::ip::tcp::socket socket(executor_);
      asio::steady_timer deadline(executor_, probe);
      auto outcome = co_await (
          socket.async_connect(endpoint_, asio::experimental::as_tuple(asio::use_awaitable)) ||
          deadline.async_wait(asio::experimental::as_tuple(asio::use_awaitable)));
      if (outcome.index() == 1) {
        hung_ = std::move(socket);  // still in SYN-SENT; kept until the end
        co_return i;
      }
      const std::error_code ec = std::get<0>(std::get<0>(outcome));
      REQUIRE_MESSAGE(!ec, "a raw connect to the black hole failed: " << ec.message());
      fillers_.push_back(std::move(socket));
    }
    co_return -1;
  }

 private:
  asio::any_io_executor executor_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint endpoint_;
  std::vector<asio::ip::tcp::socket> fillers_;
  std::optional<asio::ip::tcp::socket> hung_;
};

}  // namespace faults_test

using namespace std::chrono_literals;

// ================================================================== 1. peer resets

TEST_CASE("faults: a peer reset during a pending read fails that read; the server serves on") {
  faults_test::sigpipe_counter sigpipes;
  test::run(
      []() -> coronet::awaitable<void> {
        using faults_test::round_trip;
        auto ex = co_await asio::this_coro::executor;
        faults_test::wakeup changed(ex);
        faults_test::session_log log{""};
        log.changed = &changed;
        coronet::Server server;
        const int port = co_await test::listen_loopback(server);
        bool serving = true;
        asio::co_spawn(ex, server.serve(faults_test::logged_handler(log)),
                       [&](std::exception_ptr e) {
                         CHECK_FALSE(e);
                         serving = false;
                         changed.notify();
                       });
        coronet::Socket bystander = co_await coronet::connect(port, "127.0.0.1");
        CHECK(co_await round_trip(bystander, "before") == "before");

        // The victim is a raw Asio socket, reset the classic way: SO_LINGER 0, close().
        asio::ip::tcp::socket victim(ex);
        co_await victim.async_connect(
            {asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)},
            asio::use_awaitable);
        co_await asio::async_write(victim, asio::buffer("ping", 4), asio::use_awaitable);
        char echoed[4];
        co_await asio::async_read(victim, asio::buffer(echoed), asio::use_awaitable);
        CHECK(std::string_view(echoed, 4) == "ping");  // its handler now waits in read()
        CHECK(server.connections() == 2);
        victim.set_option(asio::socket_base::linger(true, 0));
        victim.close();

        co_await changed.until([&] { return log.finished == 1; });
        REQUIRE(log.failures.size() == 1);
        CHECK(log.failures[0].first == std::errc::connection_reset);
        CHECK(log.failures[0].second == "read ECONNRESET");
        CHECK(server.connections() == 1);
        CHECK(server.listening());

        // A connection made after the fault is served, and so is the one made before.
        coronet::Socket after = co_await coronet::connect(port, "127.0.0.1");
        CHECK(co_await round_trip(after, "after the reset") == "after the reset");
        CHECK(co_await round_trip(bystander, "still here") == "still here");

        server.close();
        co_await after.end();
        co_await bystander.end();
        co_await server.wait_closed();
        co_await changed.until([&] { return !serving && log.finished == log.started; });
        CHECK(log.started == 3);
        CHECK(log.failures.size() == 1);  // the other sessions ended cleanly
      },
      10s);
  CHECK(sigpipes.count() == 0);
}

TEST_CASE(
    "faults: a peer reset during a 64 MiB write fails that write, no SIGPIPE; serving goes on") {
  faults_test::sigpipe_counter sigpipes;
  const faults_test::zeroes flood(64 << 20);  // far beyond what loopback buffers hold
  faults_test::session_log log{flood.view()};
  test::run(
      [&log]() -> coronet::awaitable<void> {
        using faults_test::round_trip;
        auto ex = co_await asio::this_coro::executor;
        faults_test::wakeup changed(ex);
        log.changed = &changed;
        coronet::Server server;
        const int port = co_await test::listen_loopback(server);
        bool serving = true;
        asio::co_spawn(ex, server.serve(faults_test::logged_handler(log)),
                       [&](std::exception_ptr e) {
                         CHECK_FALSE(e);
                         serving = false;
                         changed.notify();
                       });
        coronet::Socket bystander = co_await coronet::connect(port, "127.0.0.1");
        CHECK(co_await round_trip(bystander, "before") == "before");

        // Two victims ask for the flood and never read it. The first resets while
        // its connection is open both ways (the writer sees ECONNRESET); the second
        // sends FIN first, so the kernel reports the reset as EPIPE: the errno that
        // raises SIGPIPE unless coronet sends with MSG_NOSIGNAL.
        for (const bool fin_first : {false, true}) {
          CAPTURE(fin_first);
          coronet::Socket victim = co_await coronet::connect(port, "127.0.0.1");
          co_await victim.write("flood");
          co_await changed.until([&] { return log.flooding != nullptr; });
          // The handler's write waits: the kernel holds what it can, the rest is queued.
          CHECK(log.flooding->writable_length() > 0);
          CHECK(log.flooding->bytes_written() > 0);
          CHECK(log.flooding->bytes_written() < log.flood.size());
          if (fin_first) co_await victim.end();
          victim.reset_and_destroy();  // RST, with megabytes unread in its receive buffer

          const std::size_t failures = log.failures.size();
          co_await changed.until([&] { return log.failures.size() > failures; });
          const auto& [code, what] = log.failures.back();
          if (fin_first) {
            CHECK(code == std::errc::broken_pipe);
            CHECK(what == "write EPIPE");
          } else {
            CHECK((code == std::errc::connection_reset || code == std::errc::broken_pipe));
            CHECK((what == "write ECONNRESET" || what == "write EPIPE"));
          }
          co_await changed.until([&] { return log.flooding == nullptr; });
          CHECK(server.connections() == 1);
          CHECK(server.listening());
        }
        CHECK(log.failures.size() == 2);

        coronet::Socket after = co_await coronet::connect(port, "127.0.0.1");
        CHECK(co_await round_trip(after, "after the resets") == "after the resets");
        CHECK(co_await round_trip(bystander, "still here") == "still here");

        server.close();
        co_await after.end();
        co_await bystander.end();
        co_await server.wait_closed();
        co_await changed.until([&] { return !serving && log.finished == log.started; });
        CHECK(log.started == 4);
        CHECK(log.failures.size() == 2);
      },
      15s);
  CHECK(sigpipes.count() == 0);  // MSG_NOSIGNAL: an error on that socket, no signal
}

// ================================================================== 2. destroy() races

TEST_CASE("faults: destroy() with a read, two writes, drain() and end() pending ends each once") {
  using faults_test::destroy_from;
  SUBCASE("destroy() from another coroutine") {
    faults_test::destroy_with_everything_pending(destroy_from::another_coroutine);
  }
  SUBCASE("destroy() from a timer's completion handler") {
    faults_test::destroy_with_everything_pending(destroy_from::timer_handler);
  }
  SUBCASE("destroy() from a posted handler") {
    faults_test::destroy_with_everything_pending(destroy_from::posted_handler);
  }
  SUBCASE("the last Socket handle dropped while they wait") {
    faults_test::destroy_with_everything_pending(destroy_from::dropped_handle);
  }
}

// ================================================================== 3. out of descriptors

TEST_CASE("faults: out of descriptors, serve() neither dies nor spins, and recovers") {
  test::fd_limit limit;          // restores RLIMIT_NOFILE, also on failure
  faults_test::ballast ballast;  // closed on the way out, also on failure
  test::run(
      [&]() -> coronet::awaitable<void> {
        using faults_test::round_trip;
        using coronet::Socket;
        auto ex = co_await asio::this_coro::executor;
        faults_test::wakeup changed(ex);
        coronet::Server server;
        const int port = co_await test::listen_loopback(server);
        bool serving = true;
        std::exception_ptr serve_failure;
        asio::co_spawn(ex, server.serve(test::echo), [&](std::exception_ptr e) {
          serve_failure = e;
          serving = false;
          changed.notify();
        });

        // An accept() loop written by hand, without serve(), with a client waiting.
        coronet::Server bare;
        const int bare_port = co_await test::listen_loopback(bare);
        Socket waits_for_bare = co_await coronet::connect(bare_port, "127.0.0.1");

        const faults_test::thread_cpu_demand demand;  // opened now: none are left later
        faults_test::make_ubsan_know_error_categories();
        // Allow 20 more descriptors than are open now; clients (two descriptors
        // each, ours and the server's) take them while at least one is left over.
        const int open_at_start = test::open_descriptors();
        REQUIRE(open_at_start > 0);
        const int allowed = open_at_start + 20;
        REQUIRE(limit.set_soft(static_cast<rlim_t>(allowed)));
        std::vector<Socket> clients;
        while (allowed - test::open_descriptors() >= 3 && clients.size() < 20) {
          clients.push_back(co_await coronet::connect(port, "127.0.0.1"));
          const std::string hello = "client " + std::to_string(clients.size());
          CHECK(co_await round_trip(clients.back(), hello) == hello);
        }
        CHECK(clients.size() >= 5);
        // Use up the rest but one; the next client takes that one, so the server's
        // accept() of it fails with EMFILE.
        REQUIRE(ballast.fill(10));
        REQUIRE(ballast.size() >= 1);
        ballast.release_one();
        Socket starved = co_await coronet::connect(port, "127.0.0.1");  // kernel handshake
        CHECK_FALSE(faults_test::can_open_descriptor());
        co_await starved.write("are you there?");
        std::string answer;
        bool answered = false;
        asio::co_spawn(
            ex,
            [&]() -> coronet::awaitable<void> {
              while (answer.size() < 14) {
                auto chunk = co_await starved.read();
                if (!chunk) break;
                answer.append(*chunk);
              }
              answered = true;
              changed.notify();
            },
            asio::detached);

        // Starved for 300 ms: serve() retries now and then, it does not spin.
        const auto cpu_before = faults_test::process_cpu_time();
        const auto demand_before = demand.now();
        const auto wall_before = faults_test::steady::now();
        co_await faults_test::wait_for(300ms);
        const auto cpu = faults_test::process_cpu_time() - cpu_before;
        const auto demand_after = demand.now();
        const auto wall = faults_test::steady::now() - wall_before;
        REQUIRE(serving);  // serve() did not die of EMFILE
        CHECK(server.listening());
        CHECK_FALSE(answered);  // not served: it waits in the backlog
        CHECK(answer.empty());
        const int listener = faults_test::find_listener(port);
        REQUIRE(listener >= 0);
        CHECK(faults_test::listener_queue(listener).waiting == 1);
        CHECK(server.connections() == clients.size());
        // A bare accept() reports it (checked below, once messages can be made).
        auto bare_failure = co_await test::expect_error(bare.accept());

        // Descriptors come back: the waiting client is served without a further
        // connection to wake the acceptor, and new ones are served too.
        ballast.release_all();
        clients.clear();  // closes them; their sessions end
        limit.restore();
        co_await changed.until([&] { return answered; });
        CHECK(answer == "are you there?");
        Socket fresh = co_await coronet::connect(port, "127.0.0.1");
        CHECK(co_await round_trip(fresh, "recovered") == "recovered");
        CHECK(serving);
        CHECK(bare_failure.code() == std::errc::too_many_files_open);
        CHECK(std::string(bare_failure.what()) == "accept EMFILE");
        Socket accepted_by_hand = co_await bare.accept();  // and then accepts
        CHECK(accepted_by_hand.remote_port() == waits_for_bare.local_port());

        // The CPU figures, checked now that messages may take descriptors again.
        using std::chrono::duration_cast;
        using std::chrono::milliseconds;
        const auto wall_ms = duration_cast<milliseconds>(wall).count();
        CHECK_MESSAGE(cpu < wall / 2, "starved for " << wall_ms << " ms, the process used "
                                                     << duration_cast<milliseconds>(cpu).count()
                                                     << " ms of CPU");
        if (demand_before && demand_after) {
          const auto wanted = *demand_after - *demand_before;
          CHECK_MESSAGE(wanted < wall / 2, "starved for "
                                               << wall_ms << " ms, the io thread asked for "
                                               << duration_cast<milliseconds>(wanted).count()
                                               << " ms of CPU");
        }

        server.close();
        co_await changed.until([&] { return !serving; });
        CHECK_FALSE(serve_failure);
        co_await starved.end();
        co_await fresh.end();
        co_await server.wait_closed();
        CHECK(server.connections() == 0);
      },
      20s);
}

// ================================================================== 4. a reader that stops

TEST_CASE("faults: a paused reader stalls write_nowait()/drain() with the queue bounded") {
  faults_test::stalled_reader(faults_test::writer_kind::write_nowait_then_drain, 40000);
}

TEST_CASE("faults: a paused reader stalls an awaited write(); only that write is queued") {
  faults_test::stalled_reader(faults_test::writer_kind::awaited_write, 1 << 20);
}

// ================================================================== 5. close() with 1,000 live

TEST_CASE("faults: close() with 1,000 live connections refuses new ones; wait_closed() waits") {
  constexpr int live = 1000;
  test::fd_limit limit;  // two descriptors per connection, and some to spare
  const int needed = test::open_descriptors() + 2 * live + 64;
  if (limit.soft() < static_cast<rlim_t>(needed)) REQUIRE(limit.set_soft(limit.hard()));
  REQUIRE_MESSAGE(limit.hard() >= static_cast<rlim_t>(needed), "RLIMIT_NOFILE is too low");
  test::run(
      [&]() -> coronet::awaitable<void> {
        using coronet::Socket;
        auto ex = co_await asio::this_coro::executor;
        faults_test::wakeup changed(ex);
        faults_test::idle_log log;
        log.changed = &changed;
        coronet::Server server;
        const int port = co_await test::listen_loopback(server);
        bool serving = true;
        asio::co_spawn(ex, server.serve([log = &log](Socket s) {
          return faults_test::idle_session(log, std::move(s));
        }),
                       [&](std::exception_ptr e) {
                         CHECK_FALSE(e);
                         serving = false;
                         changed.notify();
                       });
        std::vector<Socket> clients;
        clients.reserve(live);
        for (int i = 0; i < live; ++i)
          clients.push_back(co_await coronet::connect(port, "127.0.0.1"));
        co_await changed.until([&] { return log.started == live; });
        CHECK(server.connections() == live);

        bool closed = false;
        asio::co_spawn(
            ex,
            [&]() -> coronet::awaitable<void> {
              co_await server.wait_closed();
              closed = true;
              changed.notify();
            },
            asio::detached);
        server.close();
        CHECK_FALSE(server.listening());
        const auto before = faults_test::steady::now();
        auto refused = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
        const auto took = faults_test::steady::now() - before;
        CHECK(refused.code() == std::errc::connection_refused);
        CHECK(std::string(refused.what()) ==
              "connect ECONNREFUSED 127.0.0.1:" + std::to_string(port));
        CHECK(took < 1s);
        co_await changed.until([&] { return !serving; });  // serve() returned

        // The accepted connections live on after close().
        CHECK(co_await faults_test::round_trip(clients[live / 2], "still open") == "still open");
        CHECK_FALSE(closed);
        CHECK(server.connections() == live);

        for (int i = 0; i < live - 1; ++i) co_await clients[i].end();
        co_await changed.until([&] { return log.finished == live - 1; });
        CHECK(server.connections() == 1);
        CHECK_FALSE(closed);  // one left open

        co_await clients.back().end();
        co_await changed.until([&] { return closed; });
        CHECK(server.connections() == 0);
        CHECK(log.finished == live);
      },
      60s);
}

// ================================================================== 6. nothing there

TEST_CASE("faults: connect to a closed port is refused at once, naming the address") {
  test::run(
      []() -> coronet::awaitable<void> {
        for (const std::string host : {"127.0.0.1", "::1"}) {
          CAPTURE(host);
          coronet::Server server;
          const int port = co_await test::listen_loopback(server, host);
          server.close();
          const auto before = faults_test::steady::now();
          auto e = co_await test::expect_error(coronet::connect(port, host));
          const auto took = faults_test::steady::now() - before;
          CHECK(e.code() == std::errc::connection_refused);
          CHECK(std::string(e.what()) ==
                "connect ECONNREFUSED " + host + ":" + std::to_string(port));
          CHECK(took < 1s);
        }
      },
      10s);
}

TEST_CASE("faults: connect to a black hole times out with errc::timeout, leaving nothing open") {
  test::run(
      []() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        for (const std::string host : {"127.0.0.1", "::1"}) {
          CAPTURE(host);
          faults_test::black_hole hole(ex, host);
          const int filled = co_await hole.fill(8, 100ms);
          REQUIRE_MESSAGE(filled >= 0,
                          "every connect completed: this kernel answers SYNs to a "
                          "full backlog, so there is no black hole to test with");
          CHECK(filled >= 1);
          const auto queue = hole.queue();
          CHECK(queue.waiting > queue.bound);  // the accept queue is full

          const int fds_before = test::open_descriptors();
          const auto before = faults_test::steady::now();
          auto e = co_await test::expect_error(
              coronet::connect({.host = host, .port = hole.port(), .timeout = 200ms}));
          const auto took = faults_test::steady::now() - before;
          CHECK(e.code() == coronet::errc::timeout);
          CHECK(std::string(e.what()) == "connect ETIMEDOUT " + host + ":" +
                                             std::to_string(hole.port()) +
                                             " (no connection within 200 ms)");
          CHECK(took >= 200ms);
          CHECK(took < 5s);
          co_await test::settle([&] { return test::open_descriptors() == fds_before; }, 100);
          CHECK(test::open_descriptors() == fds_before);  // the attempt's socket is closed
        }
      },
      20s);
}
