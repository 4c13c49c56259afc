// Framed reads against splitting lines yourself, on one coronet socket:
//   coronet_framing --reader R --line-bytes L [--duration S]
//
// A writer thread sends lines of L bytes ("xxx...x\n") over loopback as fast as
// the reader takes them; the reader, on an io_context{1} in the main thread,
// takes them with R for S seconds and prints one JSON line: lines per second of
// wall time and per second of the reader's CPU time. R is one of
//   read_line     read_line()                 a line without its "\n"
//   read_until    read_until("\n", 64 KiB)    a line with its "\n"
//   read_exactly  read_exactly(L)             a line with its "\n"
//   read_memchr   read() + memchr             what a user writes by hand: lines
//                 are split in place, the one cut by a chunk's end is copied
// Every line's length is checked, so a reader that loses or invents a byte
// fails the run instead of looking fast.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <coronet/coronet.hpp>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view usage =
    "usage: coronet_framing --reader read_line|read_until|read_exactly|read_memchr\n"
    "                       --line-bytes L [--duration SECONDS]\n"
    "  Floods one loopback connection with L-byte lines (newline included) and\n"
    "  prints how many lines per second the reader takes, as one JSON line.\n";

// Reading the clock per line would cost as much as a fast reader's line.
constexpr std::uint64_t lines_per_clock_check = 4096;
constexpr std::size_t max_line = 64 * 1024;

enum class Reader { read_line, read_until, read_exactly, read_memchr };

struct Options {
  Reader reader = Reader::read_line;
  std::string reader_name;
  std::size_t line_bytes = 0;
  double duration = 1.0;
};

[[noreturn]] void bad_usage(std::string_view why) {
  std::cerr << "coronet_framing: " << why << '\n' << usage;
  std::exit(2);
}

[[noreturn]] void fail(const std::string& why) {
  std::cerr << "coronet_framing: " << why << '\n';
  std::exit(1);
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Writes whole lines until the reader goes away (EPIPE/ECONNRESET) or `stop`.
void write_lines(int port, std::size_t line_bytes, const std::atomic<bool>& stop) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("writer: socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    fail("writer: connect: " + std::string(std::strerror(errno)));
  }
  // Whole lines per write, so every write continues the line structure.
  std::vector<char> chunk(std::max<std::size_t>(1, 64 * 1024 / line_bytes) * line_bytes, 'x');
  for (std::size_t end = line_bytes - 1; end < chunk.size(); end += line_bytes) chunk[end] = '\n';
  std::size_t offset = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const ssize_t n = ::send(fd, chunk.data() + offset, chunk.size() - offset, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // the reader has measured enough and closed
    offset = (offset + static_cast<std::size_t>(n)) % chunk.size();
  }
  ::close(fd);
}

void check_length(std::size_t got, std::size_t want) {
  if (got != want) {
    fail("a frame of " + std::to_string(got) + " bytes where " + std::to_string(want) +
         " were sent");
  }
}

[[noreturn]] void fail_early_end() { fail("the writer's stream ended early"); }

// Each reader takes lines until `deadline`; returns how many. Separate loops,
// not one loop over a callback, so each is what a user would write.
coronet::awaitable<std::uint64_t> take_lines(coronet::Socket& socket, const Options& o,
                                             Clock::time_point deadline) {
  std::uint64_t lines = 0;
  const std::size_t L = o.line_bytes;
  switch (o.reader) {
    case Reader::read_line:
      for (;;) {
        auto line = co_await socket.read_line(max_line);
        if (!line) fail_early_end();
        check_length(line->size(), L - 1);
        if (++lines % lines_per_clock_check == 0 && Clock::now() >= deadline) break;
      }
      break;
    case Reader::read_until:
      for (;;) {
        auto line = co_await socket.read_until("\n", max_line);
        if (!line) fail_early_end();
        check_length(line->size(), L);
        if (++lines % lines_per_clock_check == 0 && Clock::now() >= deadline) break;
      }
      break;
    case Reader::read_exactly:
      for (;;) {
        auto line = co_await socket.read_exactly(L);
        if (!line) fail_early_end();
        if (line->back() != '\n') fail("read_exactly: a frame that is not a line");
        if (++lines % lines_per_clock_check == 0 && Clock::now() >= deadline) break;
      }
      break;
    case Reader::read_memchr: {
      std::string partial;  // the line cut by the previous chunk's end
      for (;;) {
        auto chunk = co_await socket.read();
        if (!chunk) fail_early_end();
        const char* p = chunk->data();
        const char* const end = p + chunk->size();
        while (const auto* nl = static_cast<const char*>(std::memchr(p, '\n', end - p))) {
          const std::size_t tail = static_cast<std::size_t>(nl - p);
          if (partial.empty()) {
            check_length(tail, L - 1);
          } else {
            partial.append(p, tail);
            check_length(partial.size(), L - 1);
            partial.clear();
          }
          ++lines;
          p = nl + 1;
        }
        partial.append(p, end);
        if (Clock::now() >= deadline) break;
      }
      break;
    }
  }
  co_return lines;
}

coronet::awaitable<void> measure(coronet::Server& server, const Options& o) {
  coronet::Socket socket = co_await server.accept();
  server.close();
  // The clock starts once the first line is in: connecting is not reading.
  auto first = co_await socket.read_exactly(o.line_bytes);
  if (!first) fail_early_end();
  const double cpu_start = thread_cpu_seconds();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.duration));
  const std::uint64_t lines = co_await take_lines(socket, o, deadline);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu_seconds = thread_cpu_seconds() - cpu_start;
  socket.destroy();
  std::printf(
      "{\"reader\":\"%s\",\"line_bytes\":%zu,\"lines\":%llu,\"seconds\":%.6f,"
      "\"lines_per_s\":%.1f,\"cpu_seconds\":%.6f,\"lines_per_cpu_s\":%.1f}\n",
      o.reader_name.c_str(), o.line_bytes, static_cast<unsigned long long>(lines), seconds,
      static_cast<double>(lines) / seconds, cpu_seconds, static_cast<double>(lines) / cpu_seconds);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (a == "--reader" && i + 1 < argc) {
      o.reader_name = argv[++i];
    } else if (a == "--line-bytes" && i + 1 < argc) {
      o.line_bytes = std::strtoul(argv[++i], nullptr, 10);
    } else if (a == "--duration" && i + 1 < argc) {
      o.duration = std::strtod(argv[++i], nullptr);
    } else {
      bad_usage("unknown argument " + std::string(a));
    }
  }
  if (o.reader_name == "read_line")
    o.reader = Reader::read_line;
  else if (o.reader_name == "read_until")
    o.reader = Reader::read_until;
  else if (o.reader_name == "read_exactly")
    o.reader = Reader::read_exactly;
  else if (o.reader_name == "read_memchr")
    o.reader = Reader::read_memchr;
  else
    bad_usage("--reader must be read_line, read_until, read_exactly or read_memchr");
  if (o.line_bytes < 2 || o.line_bytes > max_line) bad_usage("--line-bytes must be 2..65536");
  if (!(o.duration > 0 && o.duration < 3600)) bad_usage("--duration must be 0..3600 seconds");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  asio::io_context io{1};
  coronet::Server server;
  server.listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
  std::atomic<bool> stop{false};
  std::thread writer(write_lines, server.address()->port, o.line_bytes, std::cref(stop));
  std::exception_ptr failure;
  asio::co_spawn(io, measure(server, o), [&](std::exception_ptr e) { failure = e; });
  io.run();
  stop = true;
  writer.join();
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }
  return 0;
}
