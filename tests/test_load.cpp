// Load: a thousand connections at once, connection churn, and a seeded soak of random
// operations, each checking that no byte is lost, doubled or invented and that
// descriptors, connections and memory all come back.
//
// Every case is sized by load_test::soak(). The default run (test 'load', part of the
// normal suite) takes seconds; CORONET_SOAK=1 (test 'soak':
// `meson test -C BUILD --setup soak --suite soak`) runs the same cases at full size.
// Builds with a sanitizer halve the default sizes. Everything runs on loopback, every
// loop is bounded, and nothing sleeps to wait for something: timers appear only where
// time is the behaviour under test (idle timeouts, the soak's duration, an idle pause)
// or as a safety bound that fails the test instead of hanging it.
#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "support.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CORONET_LOAD_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CORONET_LOAD_TEST_SANITIZED 1
#endif
#endif

namespace load_test {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// ------------------------------------------------------------------ sizes

/// True when CORONET_SOAK is set to anything but "" or "0": the full-size runs.
/// The environment is read once.
inline bool soak() {
  static const bool on = [] {
    const char* value = std::getenv("CORONET_SOAK");
    return value != nullptr && *value != '\0' && std::string_view(value) != "0";
  }();
  return on;
}

#ifdef CORONET_LOAD_TEST_SANITIZED
inline constexpr bool sanitized = true;  // ASan or TSan: several times slower
#else
inline constexpr bool sanitized = false;
#endif

/// Case 1: clients connected at once (both sizes), and what each echoes.
inline constexpr std::size_t echo_clients = 1000;
inline std::size_t echo_bytes_per_client() {
  if (soak()) return 1 << 20;
  return sanitized ? 32 << 10 : 64 << 10;
}
inline constexpr std::size_t echo_max_write = 16 << 10;

/// Case 2: connections opened and closed, `churn_parallel` at a time.
inline std::size_t churn_connections() {
  if (soak()) return 100'000;
  return sanitized ? 5'000 : 10'000;
}
inline constexpr std::size_t churn_parallel = 50;

/// Case 3: socket pairs driven at random, for a time and at most an operation count.
inline std::size_t random_pairs() { return soak() ? 200 : 50; }
inline steady::duration random_duration() { return soak() ? steady::duration(60s) : 2s; }
inline std::uint64_t random_max_ops_per_side() { return soak() ? 5'000'000 : 100'000; }
inline constexpr std::size_t random_max_write = 64 << 10;

/// test::run()'s bound for one case: a hang fails, it never stalls the suite.
inline steady::duration case_limit() { return soak() ? steady::duration(600s) : 100s; }

/// Memory a finished case may keep beyond what it started with.
inline constexpr long rss_slack = 16L << 20;

// ------------------------------------------------------------------ the process

/// Resident memory in bytes (/proc/self/statm), after handing free heap pages back
/// to the system, so what is left is memory still in use.
inline long resident_bytes() {
  ::malloc_trim(0);
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

inline std::string mib(long bytes) {
  return std::to_string(bytes / (1 << 20)) + "." +
         std::to_string(bytes % (1 << 20) * 10 / (1 << 20)) + " MiB";
}

// ------------------------------------------------------------------ coroutines

/// Coroutines wait until `count` events have happened. A timer that never expires
/// is the wake-up (cancelling it resumes every waiter), so nothing polls or sleeps.
class latch {
 public:
  latch(const asio::any_io_executor& executor, std::size_t count)
      : timer_(executor, asio::steady_timer::time_point::max()), remaining_(count) {}

  void count_down() {
    if (remaining_ > 0 && --remaining_ == 0) timer_.cancel();
  }
  std::size_t remaining() const { return remaining_; }

  coronet::awaitable<void> wait() {
    // Each wake-up is the final count_down(); the bound only guards against a bug.
    for (int round = 0; round < 1000 && remaining_ > 0; ++round) {
      co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }

 private:
  asio::steady_timer timer_;
  std::size_t remaining_;
};

/// Runs `op` on `executor`; when it ends, counts `done` down and keeps the first
/// exception for the caller to rethrow once everything has ended.
inline void start_tracked(const asio::any_io_executor& executor, coronet::awaitable<void> op,
                          latch& done, std::exception_ptr& failure) {
  asio::co_spawn(executor, std::move(op), [&done, &failure](std::exception_ptr e) {
    if (e && !failure) failure = e;
    done.count_down();
  });
}

/// Closes `server` and waits until every socket it accepted has closed (Node's
/// 'close'). The timer is only a bound: false when it passed first.
inline coronet::awaitable<bool> close_and_wait(coronet::Server& server, steady::duration bound) {
  using namespace asio::experimental::awaitable_operators;
  server.close();
  asio::steady_timer timer(co_await asio::this_coro::executor, bound);
  auto first = co_await (server.wait_closed() || timer.async_wait(asio::use_awaitable));
  co_return first.index() == 0;
}

inline double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

// ------------------------------------------------------------------ data streams

/// splitmix64's finaliser: a good 64-bit mix.
inline std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/// Bytes [position, position + n) of the pseudo-random stream named `seed`. Any
/// stretch can be made again from its position alone, so a reader's prefix can be
/// checked against what the writer sent without keeping it.
inline void fill_stream(std::uint64_t seed, std::uint64_t position, char* out, std::size_t n) {
  const std::uint64_t key = mix(seed + 0x9e3779b97f4a7c15ull);
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t at = position + i;
    const std::uint64_t word = mix(key + (at >> 3) * 0x9e3779b97f4a7c15ull);
    for (unsigned byte = at & 7; byte < 8 && i < n; ++byte, ++i) {
      out[i] = static_cast<char>(word >> (8 * byte));
    }
  }
}

/// test::checksum() of the first `n` bytes of stream `seed`.
inline std::uint64_t prefix_checksum(std::uint64_t seed, std::uint64_t n) {
  std::string block(64 << 10, '\0');
  std::uint64_t sum = test::checksum({});
  for (std::uint64_t done = 0; done < n;) {
    const std::size_t take =
        static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), n - done));
    fill_stream(seed, done, block.data(), take);
    sum = test::checksum(std::string_view(block.data(), take), sum);
    done += take;
  }
  return sum;
}

/// A write size from 1 to `max`, spread evenly over the powers of two: many small
/// writes, some large ones.
inline std::size_t random_size(std::mt19937_64& rng, std::size_t max) {
  std::size_t bits = 0;
  while ((std::size_t{2} << bits) <= max) ++bits;
  const std::size_t top = std::size_t{1} << (rng() % (bits + 1));
  return std::min<std::size_t>(max, 1 + rng() % top);
}

// ------------------------------------------------------------------ case 1: 1,000 at once

struct echo_result {
  std::uint64_t sent = 0;
  std::uint64_t sent_sum = test::checksum({});
  std::uint64_t received = 0;
  std::uint64_t received_sum = test::checksum({});
  bool saw_fin = false;
  bool closed = false;
};

/// The server's side: counts itself as accepted, then echoes until FIN and ends.
inline coronet::awaitable<void> echo_session(coronet::Socket socket, latch& all_connected) {
  all_connected.count_down();
  co_await test::echo(std::move(socket));
}

inline coronet::awaitable<void> send_stream(coronet::Socket& socket, std::uint64_t seed,
                                            std::size_t total, echo_result& r) {
  std::mt19937_64 sizes(seed);
  std::string buffer(echo_max_write, '\0');
  while (r.sent < total) {  // bounded: every pass sends at least one byte
    const std::size_t n = std::min<std::size_t>(random_size(sizes, echo_max_write), total - r.sent);
    fill_stream(seed, r.sent, buffer.data(), n);
    const std::string_view piece(buffer.data(), n);
    r.sent_sum = test::checksum(piece, r.sent_sum);
    co_await socket.write(piece);
    r.sent += n;
  }
  co_await socket.end();  // half-close: the echo keeps coming back
}

inline coronet::awaitable<void> receive_stream(coronet::Socket& socket, std::size_t expected,
                                               echo_result& r) {
  // Every read but the last brings at least one byte.
  for (std::size_t reads = 0; reads <= expected; ++reads) {
    auto chunk = co_await socket.read();
    if (!chunk) {
      r.saw_fin = true;
      co_return;
    }
    r.received_sum = test::checksum(*chunk, r.received_sum);
    r.received += chunk->size();
  }
}

inline coronet::awaitable<void> echo_client(int port, std::uint64_t seed, std::size_t bytes,
                                            latch& all_connected, echo_result& r) {
  using namespace asio::experimental::awaitable_operators;
  coronet::Socket socket = co_await coronet::connect({.host = "127.0.0.1", .port = port});
  all_connected.count_down();
  co_await all_connected.wait();  // every connection is up before anyone sends
  co_await (send_stream(socket, seed, bytes, r) && receive_stream(socket, bytes, r));
  r.closed = socket.destroyed();  // both ways ended: the descriptor is already closed
}

inline coronet::awaitable<void> thousand_connections() {
  auto executor = co_await asio::this_coro::executor;
  const std::size_t clients = echo_clients;
  const std::size_t bytes = echo_bytes_per_client();
  test::fd_limit limit;  // restored at the end, also on failure
  limit.set_soft(limit.hard());
  REQUIRE_MESSAGE(test::fd_limit::current_soft() >= 2 * clients + 64,
                  "RLIMIT_NOFILE's hard limit is too low for " << clients << " connections");
  asio::steady_timer reactor_up(executor);  // the reactor's own descriptors exist from here
  const int descriptors_before = test::open_descriptors();
  const auto start = steady::now();

  coronet::Server server;
  co_await server.listen(coronet::ListenOptions{.port = 0, .host = "127.0.0.1", .backlog = 4096});
  const int port = server.address()->port;
  latch all_connected(executor, 2 * clients);  // each client connected, each accepted
  auto session = [&all_connected](coronet::Socket socket) {
    return echo_session(std::move(socket), all_connected);
  };
  asio::co_spawn(executor, server.serve(session), asio::detached);

  std::vector<echo_result> results(clients);
  latch finished(executor, clients);
  std::exception_ptr failure;
  for (std::size_t i = 0; i < clients; ++i) {
    start_tracked(executor, echo_client(port, 1000 + i, bytes, all_connected, results[i]), finished,
                  failure);
  }
  co_await all_connected.wait();
  const std::size_t held = server.connections();  // nobody has sent yet: all are open
  const int descriptors_held = test::open_descriptors();
  co_await finished.wait();
  if (failure) std::rethrow_exception(failure);

  std::size_t complete = 0;
  std::uint64_t checked = 0;
  for (std::size_t i = 0; i < clients; ++i) {
    const echo_result& r = results[i];
    checked += r.received;
    const bool ok = r.sent == bytes && r.received == bytes && r.received_sum == r.sent_sum &&
                    r.saw_fin && r.closed;
    if (ok) {
      ++complete;
    } else if (i - complete < 5) {  // the first few failures, described
      MESSAGE("client " << i << ": sent " << r.sent << ", received " << r.received << ", checksums "
                        << (r.received_sum == r.sent_sum ? "equal" : "differ") << ", FIN "
                        << r.saw_fin << ", closed " << r.closed);
    }
  }
  CHECK(held == clients);
  CHECK(descriptors_held >= descriptors_before + static_cast<int>(2 * clients));
  CHECK(complete == clients);
  CHECK(checked == clients * bytes);
  CHECK(co_await close_and_wait(server, 60s));
  CHECK(server.connections() == 0);
  CHECK(test::open_descriptors() == descriptors_before);
  MESSAGE("load: " << held << " connections held at once (" << descriptors_held
                   << " descriptors open); " << complete << "/" << clients << " echoed " << bytes
                   << " bytes each; " << checked << " bytes checked; " << seconds_since(start)
                   << " s");
}

// ------------------------------------------------------------------ case 2: churn

struct churn_stats {
  std::size_t started = 0;
  std::size_t completed = 0;
  std::size_t wrong = 0;
  steady::duration slowest{};  // connect to close, the longest of them
};

/// The server's side of one churned connection: echo one byte, then close first
/// (so TIME_WAIT lands on the server and the client's ephemeral ports stay free),
/// and read the client's FIN, which closes the descriptor.
inline coronet::awaitable<void> churn_session(coronet::Socket socket) {
  auto byte = co_await socket.read();
  if (!byte) co_return;
  co_await socket.write(*byte);
  co_await socket.end();
  for (int i = 0; i < 4; ++i) {
    auto more = co_await socket.read();
    if (!more) break;
  }
}

inline coronet::awaitable<void> churn_worker(int port, std::size_t total, churn_stats& s) {
  for (std::size_t round = 0; round < total && s.started < total; ++round) {
    const std::size_t id = s.started++;
    const auto began = steady::now();
    coronet::Socket socket = co_await coronet::connect({.host = "127.0.0.1", .port = port});
    const char payload = static_cast<char>(id % 251);
    co_await socket.write(std::string_view(&payload, 1));
    auto echoed = co_await socket.read();
    const bool echoed_ok = echoed && echoed->size() == 1 && (*echoed)[0] == payload;
    bool fin = false;
    if (echoed_ok) {
      auto after = co_await socket.read();
      fin = !after;
    }
    co_await socket.end();  // the peer's FIN already ended us; this waits for nothing
    if (echoed_ok && fin && socket.destroyed()) {
      ++s.completed;
    } else {
      ++s.wrong;
    }
    s.slowest = std::max(s.slowest, steady::now() - began);
  }
}

inline coronet::awaitable<void> churn() {
  auto executor = co_await asio::this_coro::executor;
  const std::size_t total = churn_connections();
  asio::steady_timer reactor_up(executor);
  coronet::Server server;
  co_await server.listen(coronet::ListenOptions{.port = 0, .host = "127.0.0.1", .backlog = 4096});
  const int port = server.address()->port;
  asio::co_spawn(executor, server.serve(churn_session), asio::detached);
  const int descriptors_before = test::open_descriptors();
  const long rss_before = resident_bytes();
  const auto start = steady::now();

  churn_stats stats;
  latch finished(executor, churn_parallel);
  std::exception_ptr failure;
  for (std::size_t i = 0; i < churn_parallel; ++i) {
    start_tracked(executor, churn_worker(port, total, stats), finished, failure);
  }
  co_await finished.wait();
  if (failure) std::rethrow_exception(failure);
  const double elapsed = seconds_since(start);

  // The server reads the last clients' FINs on its own time: wait for them.
  for (int round = 0; round < 100000 && server.connections() > 0; ++round) {
    co_await asio::post(executor, asio::use_awaitable);
  }
  const std::size_t left_open = server.connections();
  const int descriptors_after = test::open_descriptors();
  const long rss_after = resident_bytes();
  CHECK(stats.completed == total);
  CHECK(stats.wrong == 0);
  CHECK(left_open == 0);
  CHECK(descriptors_after == descriptors_before);
  if (!sanitized) {  // sanitizers keep freed memory in quarantine on purpose
    CHECK_MESSAGE(rss_after - rss_before < rss_slack,
                  "RSS " << mib(rss_before) << " before, " << mib(rss_after) << " after");
  }
  CHECK(co_await close_and_wait(server, 30s));
  MESSAGE("churn: " << stats.completed << "/" << total << " connections opened, echoed 1 byte, "
                    << "closed (" << churn_parallel << " at a time) in " << elapsed << " s ("
                    << static_cast<long>(stats.completed / std::max(elapsed, 1e-9))
                    << "/s, slowest "
                    << std::chrono::duration_cast<std::chrono::milliseconds>(stats.slowest).count()
                    << " ms); descriptors " << descriptors_before << " -> " << descriptors_after
                    << "; RSS " << mib(rss_before) << " -> " << mib(rss_after));
}

// ------------------------------------------------------------------ case 3: random soak

/// One direction of one pair: what its writer handed over, what its reader got.
struct direction {
  std::uint64_t seed = 0;
  // writer
  std::uint64_t submitted = 0;  // bytes of writes that completed or write_nowait() took
  std::uint64_t submitted_sum = test::checksum({});  // test::checksum() of those bytes
  std::uint64_t attempted = 0;  // bytes of the write that failed (some may have left)
  bool ended = false;           // end() completed
  bool stopped_by_end = false;  // a write refused because the stream had ended
  std::error_code write_error;  // what stopped the writer otherwise
  // reader
  std::uint64_t received = 0;
  std::uint64_t received_sum = test::checksum({});
  bool saw_fin = false;
  std::error_code read_error;
  std::string read_error_text;
  std::uint64_t timeouts = 0;
};

/// One socket of a pair and the random plan for it.
struct side {
  coronet::Socket socket;
  direction* out = nullptr;  // what this socket writes
  direction* in = nullptr;   // what this socket reads
  std::mt19937_64 rng;
  std::optional<steady::time_point> end_early_at;  // a half-close before the others
  std::optional<steady::time_point> destroy_at;
  bool reset = false;  // reset_and_destroy() rather than destroy()
  bool destroyed_here = false;
};

struct random_pair {
  direction client_to_server;
  direction server_to_client;
  side client;
  side accepted;
  bool client_half_open = false;
  bool server_half_open = false;
};

struct soak_totals {
  steady::time_point deadline;
  std::uint64_t max_ops = 0;
  std::uint64_t ops = 0;
  std::uint64_t reads = 0;
  std::uint64_t writes = 0;
  std::uint64_t nowait_writes = 0;
  std::uint64_t drains = 0;
  std::uint64_t pauses = 0;
  std::uint64_t timeouts_set = 0;
  std::uint64_t idles = 0;
  std::uint64_t refused_after_end = 0;
};

/// Records why a write failed: a refusal because the stream ended sent nothing;
/// anything else may have sent part of it.
inline void note_write_failure(direction& out, const coronet::error& e, std::size_t size) {
  if (e.code() == coronet::errc::ended_by_peer || e.code() == coronet::errc::write_after_end) {
    out.stopped_by_end = true;
  } else {
    out.write_error = e.code();
    out.attempted = size;
  }
}

/// Reads everything the peer sends, with read() or read_some() at random, until FIN
/// or an error. An idle timeout is a notification: reading goes on.
inline coronet::awaitable<void> random_reader(side& me, soak_totals& totals) {
  std::mt19937_64 rng(me.in->seed ^ 0x7265616465720000ull);
  std::array<char, 4096> buffer{};
  direction& in = *me.in;
  // Bounded by the stream: each pass reads a byte or more, or is an idle timeout.
  for (std::uint64_t round = 0; round < (std::uint64_t{1} << 40); ++round) {
    try {
      std::string_view got;
      if (rng() % 4 == 0) {
        const std::size_t want = 1 + rng() % buffer.size();
        const std::size_t n = co_await me.socket.read_some(std::span<char>(buffer.data(), want));
        if (n == 0) {
          in.saw_fin = true;
          co_return;
        }
        got = std::string_view(buffer.data(), n);
      } else {
        auto chunk = co_await me.socket.read();
        if (!chunk) {
          in.saw_fin = true;
          co_return;
        }
        got = *chunk;
      }
      in.received_sum = test::checksum(got, in.received_sum);
      in.received += got.size();
      ++totals.reads;
      ++totals.ops;
    } catch (const coronet::error& e) {
      if (e.code() != coronet::errc::timeout) {
        in.read_error = e.code();
        in.read_error_text = e.what();
        co_return;
      }
      ++in.timeouts;  // the socket stays open: read on
    }
  }
}

/// Drives one socket through a seeded random sequence of writes, write_nowait()
/// bursts with drain(), pause()/resume(), set_timeout(), idle spells, an early
/// end(), writes after end(), and destroy() on some; then ends it.
inline coronet::awaitable<void> random_driver(side& me, soak_totals& totals) {
  auto executor = co_await asio::this_coro::executor;
  std::mt19937_64& rng = me.rng;
  direction& out = *me.out;
  std::string buffer(random_max_write, '\0');
  asio::steady_timer idle(executor);
  bool writing = true;
  constexpr std::array<std::chrono::milliseconds, 5> idle_timeouts{0ms, 2ms, 5ms, 10ms, 25ms};

  for (std::uint64_t op = 0; op < totals.max_ops && steady::now() < totals.deadline; ++op) {
    ++totals.ops;
    if (me.destroy_at && steady::now() >= *me.destroy_at) {
      if (me.reset) {
        me.socket.reset_and_destroy();
      } else {
        me.socket.destroy();
      }
      me.destroyed_here = true;
      co_return;  // the reader sees operation_canceled; the peer FIN or ECONNRESET
    }
    if (writing && me.end_early_at && steady::now() >= *me.end_early_at) {
      writing = false;
      try {
        co_await me.socket.end();
        out.ended = true;
      } catch (const coronet::error& e) {
        out.write_error = e.code();
      }
      continue;
    }
    const unsigned pick = static_cast<unsigned>(rng() % 100);
    if (pick < 35) {
      // write(): waits while the kernel is full
      if (!writing) continue;
      const std::size_t n = random_size(rng, random_max_write);
      fill_stream(out.seed, out.submitted, buffer.data(), n);
      bool failed = false;
      try {
        co_await me.socket.write(std::string_view(buffer.data(), n));
        out.submitted_sum = test::checksum(std::string_view(buffer.data(), n), out.submitted_sum);
        out.submitted += n;
        ++totals.writes;
      } catch (const coronet::error& e) {
        note_write_failure(out, e, n);
        failed = true;
      }
      if (failed) writing = false;
    } else if (pick < 55) {
      // write_nowait() burst, then drain() when it said so (and sometimes anyway)
      if (!writing) continue;
      const int burst = 1 + static_cast<int>(rng() % 16);
      bool full = false;
      for (int i = 0; i < burst && writing; ++i) {
        const std::size_t n = random_size(rng, random_max_write / 4);
        fill_stream(out.seed, out.submitted, buffer.data(), n);
        try {
          full = !me.socket.write_nowait(std::string_view(buffer.data(), n)) || full;
          out.submitted_sum = test::checksum(std::string_view(buffer.data(), n), out.submitted_sum);
          out.submitted += n;
          ++totals.nowait_writes;
        } catch (const coronet::error& e) {
          note_write_failure(out, e, n);
          writing = false;
        }
      }
      if (writing && (full || rng() % 2 == 0)) {
        bool failed = false;
        try {
          co_await me.socket.drain();
          ++totals.drains;
        } catch (const coronet::error& e) {
          out.write_error = e.code();  // what was queued may be lost with the socket
          failed = true;
        }
        if (failed) writing = false;
      }
    } else if (pick < 67) {
      // pause() for a few turns of the loop (never across a wait that needs the peer,
      // so two paused sides cannot block each other), then resume()
      me.socket.pause();
      ++totals.pauses;
      const int turns = 1 + static_cast<int>(rng() % 48);
      for (int i = 0; i < turns; ++i) {
        if (writing && rng() % 4 == 0) {
          const std::size_t n = random_size(rng, 4096);
          fill_stream(out.seed, out.submitted, buffer.data(), n);
          try {
            me.socket.write_nowait(std::string_view(buffer.data(), n));
            out.submitted_sum =
                test::checksum(std::string_view(buffer.data(), n), out.submitted_sum);
            out.submitted += n;
            ++totals.nowait_writes;
          } catch (const coronet::error& e) {
            note_write_failure(out, e, n);
            writing = false;
          }
        }
        co_await asio::post(executor, asio::use_awaitable);
      }
      me.socket.resume();
    } else if (pick < 75) {
      me.socket.set_timeout(idle_timeouts[rng() % idle_timeouts.size()]);
      ++totals.timeouts_set;
    } else if (pick < 77) {
      // an idle spell: time is the behaviour here (it lets idle timeouts fire)
      idle.expires_after(std::chrono::milliseconds(1 + rng() % 30));
      co_await idle.async_wait(asio::use_awaitable);
      ++totals.idles;
    } else if (pick < 80) {
      // after our end(), a write is refused and the stream is untouched
      if (writing || !out.ended) continue;
      try {
        co_await me.socket.write("after end");
        FAIL("a write after end() was accepted");
      } catch (const coronet::error& e) {
        CHECK((e.code() == coronet::errc::write_after_end ||
               e.code() == coronet::errc::ended_by_peer));
        ++totals.refused_after_end;
      }
    } else {
      co_await asio::post(executor, asio::use_awaitable);  // let the others run
    }
  }

  me.socket.resume();  // a paused socket never sees FIN
  if (!out.ended) {
    // After a refusal because the peer's FIN ended us, this waits for that same FIN.
    try {
      co_await me.socket.end();
      out.ended = true;
    } catch (const coronet::error& e) {
      if (!out.write_error) out.write_error = e.code();
    }
  }
}

/// What one direction's reader got, against what its writer sent: for a pair that
/// closed gracefully, everything, once; otherwise a prefix of the stream, then an
/// error or FIN. Returns a description of what is wrong, empty when all is well.
inline std::string check_direction(const direction& d, bool graceful) {
  std::string wrong;
  // A graceful stream is compared with the writer's own checksum; a cut one with its
  // prefix, made again from the seed.
  const std::uint64_t expected =
      d.received == d.submitted ? d.submitted_sum : prefix_checksum(d.seed, d.received);
  if (d.received_sum != expected) {
    wrong += " the bytes read are not the stream's first " + std::to_string(d.received) + ";";
  }
  if (!d.saw_fin && !d.read_error) wrong += " the reader stopped without FIN or error;";
  if (graceful) {
    if (d.received != d.submitted) {
      wrong += " read " + std::to_string(d.received) + " of " + std::to_string(d.submitted) +
               " bytes written;";
    }
    if (!d.saw_fin) wrong += " no FIN (" + d.read_error_text + ");";
    if (d.write_error) wrong += " writer failed: " + d.write_error.message() + ";";
    if (!d.ended) wrong += " end() did not complete;";
  } else if (d.received > d.submitted + d.attempted) {
    wrong += " read " + std::to_string(d.received) + " bytes, more than the " +
             std::to_string(d.submitted + d.attempted) + " written;";
  }
  return wrong;
}

inline coronet::awaitable<void> random_soak() {
  auto executor = co_await asio::this_coro::executor;
  const std::size_t pair_count = random_pairs();
  asio::steady_timer reactor_up(executor);
  const int descriptors_before = test::open_descriptors();
  const long rss_before = resident_bytes();
  std::mt19937_64 plan(20261125);

  // Two servers: accepted sockets with and without allow_half_open.
  std::array<coronet::Server, 2> servers{coronet::Server{{.allow_half_open = false}},
                                         coronet::Server{{.allow_half_open = true}}};
  std::array<int, 2> ports{};
  for (std::size_t i = 0; i < servers.size(); ++i) {
    ports[i] = co_await test::listen_loopback(servers[i]);
  }

  soak_totals totals;
  totals.max_ops = random_max_ops_per_side();
  std::vector<random_pair> pairs(pair_count);  // never resized: coroutines hold references
  for (std::size_t i = 0; i < pair_count; ++i) {
    random_pair& p = pairs[i];
    p.server_half_open = plan() % 2 == 0;
    p.client_half_open = plan() % 2 == 0;
    coronet::Server& server = servers[p.server_half_open ? 1 : 0];
    p.client.socket = co_await coronet::connect({.host = "127.0.0.1",
                                                 .port = ports[p.server_half_open ? 1 : 0],
                                                 .allow_half_open = p.client_half_open});
    p.accepted.socket = co_await server.accept();  // the one pending connection: this pair's
    p.client_to_server.seed = mix(2 * i + 1);
    p.server_to_client.seed = mix(2 * i + 2);
    p.client.out = &p.client_to_server;
    p.client.in = &p.server_to_client;
    p.accepted.out = &p.server_to_client;
    p.accepted.in = &p.client_to_server;
    p.client.rng.seed(plan());
    p.accepted.rng.seed(plan());
  }

  const auto start = steady::now();
  const auto duration = random_duration();
  totals.deadline = start + duration;
  auto at_fraction = [&](std::uint64_t permille) {
    return start + std::chrono::duration_cast<steady::duration>(duration * (permille / 1000.0));
  };
  for (random_pair& p : pairs) {
    for (side* s : {&p.client, &p.accepted}) {
      if (plan() % 4 == 0) s->end_early_at = at_fraction(100 + plan() % 800);
      constexpr std::array<std::size_t, 4> marks{1024, 16 << 10, 64 << 10, 256 << 10};
      s->socket.set_high_water_mark(marks[plan() % marks.size()]);
    }
    if (plan() % 5 == 0) {  // one pair in five: one side destroys mid-stream
      side& s = plan() % 2 == 0 ? p.client : p.accepted;
      s.destroy_at = at_fraction(50 + plan() % 900);
      s.reset = plan() % 2 == 0;
    }
  }

  latch finished(executor, 4 * pair_count);
  std::exception_ptr failure;
  for (random_pair& p : pairs) {
    for (side* s : {&p.client, &p.accepted}) {
      start_tracked(executor, random_driver(*s, totals), finished, failure);
      start_tracked(executor, random_reader(*s, totals), finished, failure);
    }
  }
  co_await finished.wait();
  if (failure) std::rethrow_exception(failure);
  const double elapsed = seconds_since(start);

  std::size_t graceful = 0, destroyed = 0, bad = 0, still_open = 0;
  std::uint64_t checked = 0, timeouts = 0;
  std::map<std::string, int> endings;  // how the readers of cut streams stopped
  for (std::size_t i = 0; i < pair_count; ++i) {
    const random_pair& p = pairs[i];
    const bool is_graceful = !p.client.destroyed_here && !p.accepted.destroyed_here;
    (is_graceful ? graceful : destroyed) += 1;
    for (const direction* d : {&p.client_to_server, &p.server_to_client}) {
      checked += d->received;
      timeouts += d->timeouts;
      if (!is_graceful) ++endings[d->saw_fin ? std::string("FIN") : d->read_error.message()];
      const std::string wrong = check_direction(*d, is_graceful);
      if (!wrong.empty() && bad++ < 5) {
        MESSAGE("pair " << i << (d == &p.client_to_server ? " client->server" : " server->client")
                        << (is_graceful ? " (graceful)" : " (destroyed)") << ":" << wrong);
      }
    }
    // Every socket has closed by itself: ended both ways, destroyed, or failed.
    still_open += !p.client.socket.destroyed();
    still_open += !p.accepted.socket.destroyed();
  }
  CHECK(bad == 0);
  CHECK(still_open == 0);
  CHECK(servers[0].connections() == 0);
  CHECK(servers[1].connections() == 0);
  CHECK(graceful > 0);
  CHECK(destroyed > 0);
  CHECK(timeouts > 0);  // idle spells let some fire: reading went on after each

  pairs.clear();
  for (coronet::Server& server : servers) CHECK(co_await close_and_wait(server, 30s));
  const int descriptors_after = test::open_descriptors();
  const long rss_after = resident_bytes();
  CHECK(descriptors_after == descriptors_before);
  if (!sanitized) {
    CHECK_MESSAGE(rss_after - rss_before < rss_slack,
                  "RSS " << mib(rss_before) << " before, " << mib(rss_after) << " after");
  }
  std::string ending_list;
  for (const auto& [how, count] : endings) ending_list += " " + how + " x" + std::to_string(count);
  MESSAGE("soak: " << pair_count << " pairs (" << graceful << " closed gracefully, " << destroyed
                   << " with a destroy) for " << elapsed << " s; " << totals.ops
                   << " operations: " << totals.reads << " reads and " << totals.ops - totals.reads
                   << " driver steps (" << totals.writes << " write, " << totals.nowait_writes
                   << " write_nowait in bursts, " << totals.drains << " drain, " << totals.pauses
                   << " pause/resume, " << totals.timeouts_set << " set_timeout, " << totals.idles
                   << " idle, " << totals.refused_after_end << " write after end refused); "
                   << timeouts << " idle timeouts read; " << checked << " bytes checked; "
                   << "readers of cut streams ended by" << ending_list << ";"
                   << " descriptors " << descriptors_before << " -> " << descriptors_after
                   << "; RSS " << mib(rss_before) << " -> " << mib(rss_after));
}

}  // namespace load_test

TEST_CASE("load: 1,000 concurrent connections echo random data and close") {
  test::run(load_test::thousand_connections, load_test::case_limit());
}

TEST_CASE("load: connection churn gives back descriptors, connections and memory") {
  test::run(load_test::churn, load_test::case_limit());
}

TEST_CASE("load: seeded random operations on many pairs lose, double and invent nothing") {
  test::run(load_test::random_soak, load_test::case_limit());
}
