// How late a 10 ms timer fires while one peer floods a server on the same thread:
//   coronet_lateness --reader R [--work-us N] [--work-every K] [--megabytes M]
//
// One process. A discard server on an io_context{1} in the main thread takes one
// connection and reads it with R until FIN; a steady_timer on the same
// io_context ticks every 10 ms and records how late each tick fired against its
// scheduled time. A client thread (a plain blocking Asio socket) sends M MB of
// 100-byte lines as fast as the kernel takes them, then closes. Prints one JSON
// line. This is issue 12's fairness measurement: a read that completes without
// going back to the io_context keeps the timer waiting.
//
// The timer keeps a fixed 10 ms grid from its first deadline (re-armed from the
// scheduled time, never from "now", so lateness does not hide in drift). A tick
// that fires late is recorded with its lateness; grid points that passed while it
// was late are skipped and counted as missed, so firings below the expected count
// mean the loop was starved. The tick pending when the flood ends fires once
// more and is recorded if its deadline fell inside the flood: a timer starved
// for the whole flood still reports how late it was.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <asio/write.hpp>
#include <coronet/coronet.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view usage =
    "usage: coronet_lateness --reader R [--work-us N] [--work-every K] [--megabytes M]\n"
    "  A discard server and a 10 ms steady_timer share one io_context{1}; a client\n"
    "  thread floods the server with M MB (10^6 bytes, default 200) of 100-byte\n"
    "  lines, then closes. Prints one JSON line: the timer's firings against the\n"
    "  expected count, its worst and p99 lateness; the server's reads and bytes\n"
    "  per read; the server thread's CPU share and involuntary context switches\n"
    "  (on a shared machine, preemption shows up as lateness too).\n"
    "  --reader       how the server's session reads until FIN:\n"
    "                   read          coronet read(): chunks as received\n"
    "                   read_some     coronet read_some() into a 64 KiB buffer\n"
    "                   read_line     coronet read_line(): one line per read\n"
    "                   read_until    coronet read_until(\"\\n\", 64 KiB): one line per read\n"
    "                   read_exactly  coronet read_exactly(100): one line per read\n"
    "                   asio          plain Asio async_read_some into 64 KiB on a raw\n"
    "                                 asio::ip::tcp::socket (the reference)\n"
    "  --work-us N    busy-spin N microseconds of the server's thread once every K\n"
    "                 completed reads (default 0: no work)\n"
    "  --work-every K the K of --work-us. Default: 1 for read, read_some and asio\n"
    "                 (per chunk, up to 64 KiB); 655 for the framed readers (one\n"
    "                 spin per 655 lines of 100 bytes, about one 64 KiB chunk, so\n"
    "                 \"N us per chunk\" means the same work per byte for every reader)\n";

constexpr std::size_t line_bytes = 100;
constexpr std::size_t chunk_bytes = 64 * 1024;
constexpr std::size_t lines_per_chunk = chunk_bytes / line_bytes;  // 655
constexpr std::size_t max_line = 64 * 1024;
constexpr auto tick = 10ms;

enum class Reader { read, read_some, read_line, read_until, read_exactly, asio };

struct Options {
  Reader reader = Reader::read;
  std::string reader_name;
  std::uint64_t work_us = 0;
  std::uint64_t work_every = 0;  // 0: the reader's default
  std::uint64_t megabytes = 200;
};

[[noreturn]] void bad_usage(std::string_view why) {
  std::cerr << "coronet_lateness: " << why << '\n' << usage;
  std::exit(2);
}

[[noreturn]] void fail(const std::string& why) {
  std::cerr << "coronet_lateness: " << why << '\n';
  std::exit(1);
}

bool is_framed(Reader r) {
  return r == Reader::read_line || r == Reader::read_until || r == Reader::read_exactly;
}

std::uint64_t work_every(const Options& o) {
  if (o.work_every) return o.work_every;
  return is_framed(o.reader) ? lines_per_chunk : 1;
}

// The server thread's own clock: its CPU time, and how often the kernel took the
// CPU from it (a shared machine's noise shows here, not in the library).
struct ThreadUsage {
  double cpu_seconds = 0;
  long involuntary_switches = 0;

  static ThreadUsage now() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    const auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6;
    };
    return {seconds(u.ru_utime) + seconds(u.ru_stime), u.ru_nivcsw};
  }
};

struct Flood {
  std::uint64_t bytes = 0;
  std::uint64_t reads = 0;  // completed reads: chunks, or frames for the framed readers
  Clock::time_point start{};
  Clock::time_point end{};
  ThreadUsage usage_start, usage_end;

  void begin() {
    start = Clock::now();
    usage_start = ThreadUsage::now();
  }
  void finish() {
    end = Clock::now();
    usage_end = ThreadUsage::now();
  }
};

// What the session does with each completed read: counts it, and every K reads
// spends the time the "100 µs of work per chunk" stands for. A spin, not a
// sleep, so the thread stays busy; timed by the wall clock, so a spin the kernel
// preempts still ends on time and the loop's own delays are not stretched by it.
class Consumer {
 public:
  Consumer(const Options& o, Flood& flood)
      : spin_(std::chrono::microseconds(o.work_us)), every_(work_every(o)), flood_(flood) {}

  void consume(std::size_t bytes) {
    flood_.bytes += bytes;
    if (++flood_.reads % every_ != 0 || spin_.count() == 0) return;
    const auto until = Clock::now() + spin_;
    while (Clock::now() < until) {
    }
  }

 private:
  std::chrono::microseconds spin_;
  std::uint64_t every_;
  Flood& flood_;
};

// The 10 ms timer and what it saw.
class Ticker {
 public:
  explicit Ticker(asio::io_context& io) : timer_(io) {}

  void start() {
    next_ = Clock::now() + tick;
    arm();
  }

  // The flood is over at `end`: the pending tick fires once more, then the timer stops.
  void stop(Clock::time_point end) {
    stopping_ = true;
    end_ = end;
  }

  const std::vector<double>& lateness_ms() const { return lateness_ms_; }
  std::uint64_t missed() const { return missed_; }

 private:
  void arm() {
    timer_.expires_at(next_);
    timer_.async_wait([this](std::error_code ec) {
      if (!ec) fired();
    });
  }

  void fired() {
    const auto now = Clock::now();
    if (stopping_) {
      if (next_ <= end_) record(now);
      return;
    }
    record(now);
    next_ += tick;
    while (next_ <= now) {
      next_ += tick;
      ++missed_;
    }
    arm();
  }

  void record(Clock::time_point now) {
    lateness_ms_.push_back(std::chrono::duration<double, std::milli>(now - next_).count());
  }

  asio::steady_timer timer_;
  Clock::time_point next_{};
  Clock::time_point end_{};
  bool stopping_ = false;
  std::vector<double> lateness_ms_;
  std::uint64_t missed_ = 0;
};

// The client: whole lines, 655 of them per write, then FIN. Blocking, on its own thread.
void send_flood(unsigned short port, std::uint64_t total) {
  try {
    asio::io_context io;
    asio::ip::tcp::socket socket(io);
    socket.connect({asio::ip::make_address_v4("127.0.0.1"), port});
    std::string chunk(lines_per_chunk * line_bytes, 'x');
    for (std::size_t end = line_bytes - 1; end < chunk.size(); end += line_bytes) chunk[end] = '\n';
    for (std::uint64_t sent = 0; sent < total;) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), total - sent));
      asio::write(socket, asio::buffer(chunk.data(), n));
      sent += n;
    }
    socket.shutdown(asio::socket_base::shutdown_send);
    socket.close();
  } catch (const std::exception& e) {
    fail(std::string("client: ") + e.what());
  }
}

// Reads until FIN with the chosen coronet reader.
coronet::awaitable<void> drain(coronet::Socket& socket, Reader reader, Consumer& consumer) {
  switch (reader) {
    case Reader::read:
      while (auto chunk = co_await socket.read()) {
        consumer.consume(chunk->size());
      }
      break;
    case Reader::read_some: {
      std::vector<char> buffer(chunk_bytes);
      while (auto n = co_await socket.read_some(std::span<char>(buffer))) {
        consumer.consume(n);
      }
      break;
    }
    case Reader::read_line:
      while (auto line = co_await socket.read_line(max_line)) {
        consumer.consume(line->size() + 1);
      }
      break;
    case Reader::read_until:
      while (auto line = co_await socket.read_until("\n", max_line)) {
        consumer.consume(line->size());
      }
      break;
    case Reader::read_exactly:
      while (auto line = co_await socket.read_exactly(line_bytes)) {
        consumer.consume(line->size());
      }
      break;
    case Reader::asio: break;  // not a coronet reader; see asio_session()
  }
}

coronet::awaitable<void> coronet_session(coronet::Server& server, const Options& o, Ticker& ticker,
                                         Flood& flood) {
  coronet::Socket socket = co_await server.accept();
  server.close();
  Consumer consumer(o, flood);
  ticker.start();
  flood.begin();
  co_await drain(socket, o.reader, consumer);
  flood.finish();
  ticker.stop(flood.end);
}

// The reference: what plain Asio does with the same flood.
asio::awaitable<void> asio_session(asio::ip::tcp::acceptor& acceptor, const Options& o,
                                   Ticker& ticker, Flood& flood) {
  asio::ip::tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
  acceptor.close();
  Consumer consumer(o, flood);
  std::vector<char> buffer(chunk_bytes);
  ticker.start();
  flood.begin();
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(
        asio::buffer(buffer), asio::experimental::as_tuple(asio::use_awaitable));
    if (ec == asio::error::eof) break;
    if (ec) throw std::system_error(ec, "read");
    consumer.consume(n);
  }
  flood.finish();
  ticker.stop(flood.end);
}

void report(const Options& o, const Flood& flood, const Ticker& ticker) {
  const double seconds = std::chrono::duration<double>(flood.end - flood.start).count();
  std::vector<double> lateness = ticker.lateness_ms();
  std::sort(lateness.begin(), lateness.end());
  const double worst = lateness.empty() ? 0.0 : lateness.back();
  // Nearest-rank percentiles: with fewer than 100 firings the p99 is the worst.
  const auto percentile = [&](double p) {
    if (lateness.empty()) return 0.0;
    const auto rank = static_cast<std::size_t>(p * static_cast<double>(lateness.size()));
    return lateness[std::min(lateness.size() - 1, rank)];
  };
  const double p99 = percentile(0.99);
  std::printf(
      "{\"reader\":\"%s\",\"work_us\":%llu,\"work_every\":%llu,\"bytes\":%llu,\"seconds\":%.6f,"
      "\"mb_per_s\":%.1f,\"firings\":%zu,\"expected_firings\":%.1f,\"missed_ticks\":%llu,"
      "\"worst_lateness_ms\":%.3f,\"p99_lateness_ms\":%.3f,\"median_lateness_ms\":%.3f,\"reads\":%"
      "llu,"
      "\"bytes_per_read\":%.0f,\"server_cpu_share\":%.3f,\"involuntary_switches\":%ld}\n",
      o.reader_name.c_str(), static_cast<unsigned long long>(o.work_us),
      static_cast<unsigned long long>(o.work_us ? work_every(o) : 0),
      static_cast<unsigned long long>(flood.bytes), seconds,
      static_cast<double>(flood.bytes) / 1e6 / seconds, lateness.size(),
      seconds / std::chrono::duration<double>(tick).count(),
      static_cast<unsigned long long>(ticker.missed()), worst, p99, percentile(0.5),
      static_cast<unsigned long long>(flood.reads),
      static_cast<double>(flood.bytes) /
          static_cast<double>(std::max<std::uint64_t>(flood.reads, 1)),
      (flood.usage_end.cpu_seconds - flood.usage_start.cpu_seconds) / seconds,
      flood.usage_end.involuntary_switches - flood.usage_start.involuntary_switches);
}

std::uint64_t parse_number(const char* text, std::string_view flag) {
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') bad_usage(std::string(flag) + " takes a whole number");
  return value;
}

Options parse_args(int argc, char** argv) {
  Options o;
  o.reader_name = "read";
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (a == "--reader" && i + 1 < argc) {
      o.reader_name = argv[++i];
    } else if (a == "--work-us" && i + 1 < argc) {
      o.work_us = parse_number(argv[++i], a);
    } else if (a == "--work-every" && i + 1 < argc) {
      o.work_every = parse_number(argv[++i], a);
      if (o.work_every == 0) bad_usage("--work-every must be at least 1");
    } else if (a == "--megabytes" && i + 1 < argc) {
      o.megabytes = parse_number(argv[++i], a);
    } else {
      bad_usage("unknown argument " + std::string(a));
    }
  }
  const std::pair<std::string_view, Reader> readers[] = {{"read", Reader::read},
                                                         {"read_some", Reader::read_some},
                                                         {"read_line", Reader::read_line},
                                                         {"read_until", Reader::read_until},
                                                         {"read_exactly", Reader::read_exactly},
                                                         {"asio", Reader::asio}};
  const auto* found = std::find_if(std::begin(readers), std::end(readers),
                                   [&](const auto& r) { return r.first == o.reader_name; });
  if (found == std::end(readers))
    bad_usage("--reader must be read, read_some, read_line, read_until, read_exactly or asio");
  o.reader = found->second;
  if (o.megabytes == 0 || o.megabytes > 100'000) bad_usage("--megabytes must be 1..100000");
  if (o.work_us > 1'000'000) bad_usage("--work-us must be at most 1000000");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  const std::uint64_t total = o.megabytes * 1'000'000;
  asio::io_context io{1};
  Ticker ticker(io);
  Flood flood;
  std::exception_ptr failure;
  auto done = [&](std::exception_ptr e) { failure = e; };

  unsigned short port = 0;
  std::optional<coronet::Server> server;
  std::optional<asio::ip::tcp::acceptor> acceptor;
  if (o.reader == Reader::asio) {
    acceptor.emplace(io, asio::ip::tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
    port = acceptor->local_endpoint().port();
    asio::co_spawn(io, asio_session(*acceptor, o, ticker, flood), done);
  } else {
    server.emplace();
    server->listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
    port = static_cast<unsigned short>(server->address()->port);
    asio::co_spawn(io, coronet_session(*server, o, ticker, flood), done);
  }
  std::thread client(send_flood, port, total);
  io.run();
  client.join();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }
  if (flood.bytes != total) {
    fail("the server read " + std::to_string(flood.bytes) + " bytes where " +
         std::to_string(total) + " were sent");
  }
  report(o, flood, ticker);
  return 0;
}
