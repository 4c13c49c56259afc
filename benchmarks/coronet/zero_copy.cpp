// Zero-copy forwarding and file sending against the copy loops they replace:
//   coronet_zero_copy --row ROW [--megabytes M]
//
// One process; coronet runs on an io_context{1} in the main thread, and the peers
// are plain blocking sockets on their own threads, so the main thread's CPU time
// (getrusage RUSAGE_THREAD) is what the forwarding or the sending costs.
//
// Proxy rows: a client thread sends M MiB in 64 KiB writes to the proxy, then FIN;
// the proxy joins it to a sink thread (reads 256 KiB at a time until FIN, then
// closes); the client waits for the proxy to pass the sink's FIN back.
// File rows: a file of M MiB (created in $TMPDIR, read once so it is in the page
// cache) is sent to a sink thread over one connection.
// Prints one JSON line: bytes, seconds, GB/s, the main thread's CPU seconds, and the
// whole process's (the peers too: on one machine, work the program under test does
// not do may land on them, e.g. a sink copying bytes no one touched since the client).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

#include <asio/read.hpp>
#include <asio/write.hpp>
#include <coronet/coronet.hpp>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view usage =
    "usage: coronet_zero_copy --row ROW [--megabytes M]\n"
    "  ROW: pipe       a proxy forwarding with coronet::pipe_both() (splice)\n"
    "       pipe_copy  the same with PipeOptions::zero_copy = false (its copy loop)\n"
    "       copy_loop  a proxy written as read() then write(), both ways (what the\n"
    "                  proxy example was before pipe())\n"
    "       send_file  socket.send_file(path) of an M MiB file\n"
    "       read_write pread() 64 KiB pieces of the same file and co_await write() each\n"
    "  M: MiB moved (default 1024). Prints one JSON line.\n";

double cpu_seconds(int who) {
  rusage usage{};
  ::getrusage(who, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}
double thread_cpu_seconds() { return cpu_seconds(RUSAGE_THREAD); }
double process_cpu_seconds() { return cpu_seconds(RUSAGE_SELF); }

/// The JSON line both kinds of row print.
void report(const std::string& row, std::uint64_t bytes, std::uint64_t received, double seconds,
            double cpu, double process_cpu) {
  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf(
      "{\"row\": \"%s\", \"bytes\": %llu, \"received\": %llu, \"seconds\": %.4f, "
      "\"gbytes_per_s\": %.4f, \"cpu_s\": %.4f, \"cpu_s_per_gb\": %.4f, "
      "\"process_cpu_s_per_gb\": %.4f}\n",
      row.c_str(), static_cast<unsigned long long>(bytes),
      static_cast<unsigned long long>(received), seconds, gb / seconds, cpu, cpu / gb,
      process_cpu / gb);
}

/// A blocking peer that reads until FIN, counts, then closes.
struct sink {
  asio::io_context io{1};
  asio::ip::tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  std::uint64_t bytes = 0;
  std::thread thread;

  sink() {
    thread = std::thread([this] {
      asio::ip::tcp::socket s = acceptor.accept();
      std::vector<char> buffer(256 * 1024);
      std::error_code ec;
      for (;;) {
        const std::size_t n = s.read_some(asio::buffer(buffer), ec);
        if (ec) break;
        bytes += n;
      }
    });
  }
  int port() const { return acceptor.local_endpoint().port(); }
  ~sink() {
    if (thread.joinable()) thread.join();
  }
};

coronet::awaitable<void> copy_one_way(coronet::Socket& from, coronet::Socket& to) {
  while (auto chunk = co_await from.read()) co_await to.write(*chunk);
  co_await to.end();
}

coronet::awaitable<void> proxy(coronet::Server& server, int upstream_port, std::string row,
                               double& cpu) {
  coronet::Socket client = co_await server.accept();
  coronet::Socket upstream = co_await coronet::connect(
      {.host = "127.0.0.1", .port = upstream_port, .allow_half_open = true, .no_delay = true});
  client.set_no_delay(true);
  const double before = thread_cpu_seconds();
  if (row == "copy_loop") {
    using namespace asio::experimental::awaitable_operators;
    co_await (copy_one_way(client, upstream) && copy_one_way(upstream, client));
  } else {
    auto moved = co_await coronet::pipe_both(client, upstream, {.zero_copy = row == "pipe"});
    if (moved.a_to_b.zero_copy != (row == "pipe")) throw std::runtime_error("wrong path taken");
  }
  cpu = thread_cpu_seconds() - before;
}

int proxy_row(const std::string& row, std::uint64_t bytes) {
  sink upstream;
  asio::io_context io{1};
  coronet::Server server{{.allow_half_open = true}};
  server.listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
  const int port = server.address()->port;
  double cpu = 0;
  const double process_before = process_cpu_seconds();
  std::exception_ptr failure;
  asio::co_spawn(io, proxy(server, upstream.port(), row, cpu),
                 [&](std::exception_ptr e) { failure = e; });
  Clock::time_point started, finished;
  std::thread client([&] {
    asio::io_context cio{1};
    asio::ip::tcp::socket s(cio);
    s.connect({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)});
    const std::string chunk(64 * 1024, 'x');
    started = Clock::now();
    for (std::uint64_t sent = 0; sent < bytes; sent += chunk.size())
      asio::write(s, asio::buffer(chunk));
    s.shutdown(asio::socket_base::shutdown_send);
    char byte;
    std::error_code ec;
    s.read_some(asio::buffer(&byte, 1), ec);  // the sink's FIN, passed back
    finished = Clock::now();
  });
  io.run();
  client.join();
  upstream.thread.join();
  const double process_cpu = process_cpu_seconds() - process_before;
  if (failure) std::rethrow_exception(failure);
  const double seconds = std::chrono::duration<double>(finished - started).count();
  report(row, bytes, upstream.bytes, seconds, cpu, process_cpu);
  return upstream.bytes == bytes ? 0 : 1;
}

/// A file of `bytes` in $TMPDIR, read once so the page cache holds it.
std::string make_file(std::uint64_t bytes) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir ? dir : "/tmp") + "/coronet_zero_copy_XXXXXX";
  const int fd = ::mkstemp(path.data());
  const std::string block(1024 * 1024, 'f');
  for (std::uint64_t at = 0; at < bytes; at += block.size())
    if (::write(fd, block.data(), block.size()) < 0) std::exit(2);
  ::lseek(fd, 0, SEEK_SET);
  std::string scratch(1024 * 1024, '\0');
  while (::read(fd, scratch.data(), scratch.size()) > 0) {
  }
  ::close(fd);
  return path;
}

coronet::awaitable<void> send(coronet::Socket& socket, std::string path, std::string row,
                              std::uint64_t bytes, double& cpu) {
  const double before = thread_cpu_seconds();
  if (row == "send_file") {
    co_await socket.send_file(path);
  } else {
    const int fd = ::open(path.c_str(), O_RDONLY);
    std::string buffer(64 * 1024, '\0');
    for (std::uint64_t at = 0; at < bytes;) {
      const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(at));
      if (n <= 0) break;
      co_await socket.write(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      at += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
  }
  cpu = thread_cpu_seconds() - before;
  co_await socket.end();
}

int file_row(const std::string& row, std::uint64_t bytes) {
  const std::string path = make_file(bytes);
  const double process_before = process_cpu_seconds();
  sink reader;
  asio::io_context io{1};
  double cpu = 0;
  std::exception_ptr failure;
  Clock::time_point started;
  asio::co_spawn(
      io,
      [&]() -> coronet::awaitable<void> {
        coronet::Socket socket =
            co_await coronet::connect({.host = "127.0.0.1", .port = reader.port()});
        started = Clock::now();
        co_await send(socket, path, row, bytes, cpu);
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  reader.thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const double process_cpu = process_cpu_seconds() - process_before;
  ::unlink(path.c_str());
  if (failure) std::rethrow_exception(failure);
  report(row, bytes, reader.bytes, seconds, cpu, process_cpu);
  return reader.bytes == bytes ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string row;
  std::uint64_t megabytes = 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::cout << usage;
      return 0;
    }
    if (arg == "--row" && i + 1 < argc) {
      row = argv[++i];
    } else if (arg == "--megabytes" && i + 1 < argc) {
      megabytes = std::stoull(argv[++i]);
    } else {
      std::cerr << usage;
      return 2;
    }
  }
  const std::uint64_t bytes = megabytes * 1024 * 1024;
  if (row == "pipe" || row == "pipe_copy" || row == "copy_loop") return proxy_row(row, bytes);
  if (row == "send_file" || row == "read_write") return file_row(row, bytes);
  std::cerr << usage;
  return 2;
}
