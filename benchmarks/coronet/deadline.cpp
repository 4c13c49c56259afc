// What a deadline costs when the operation does not wait:
//   coronet_deadline [--iterations N] [--runs R]
//
// Each operation is awaited bare, through coronet::timeout(5s, op), and through
// the `op || timer` idiom (a steady_timer re-armed per call), on an io_context{1}:
//   instant    an awaitable that returns at once (the floor: timeout()'s own cost)
//   read_line  read_line() of 16-byte lines already received (a peer wrote them all
//              first), so every call completes from the socket's buffer
// It prints a table of nanoseconds per call (the best of R runs, each of N calls)
// and the same as one JSON line.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/coronet.hpp>

namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;

constexpr std::string_view usage =
    "usage: coronet_deadline [--iterations N] [--runs R]\n"
    "  Nanoseconds per call of an operation that completes at once: bare, with\n"
    "  coronet::timeout(5s, op), and with `op || timer`; a table and one JSON line.\n";

constexpr std::size_t line_bytes = 16;

enum class Form { bare, timeout, or_timer };
constexpr const char* form_names[] = {"bare", "timeout()", "op || timer"};

coronet::awaitable<int> instant() { co_return 1; }

/// One call of `op` in the given form; returns what the operation returned.
template <typename T>
coronet::awaitable<T> call(Form form, coronet::awaitable<T> op, asio::steady_timer& timer) {
  if (form == Form::bare) co_return co_await std::move(op);
  if (form == Form::timeout) co_return co_await coronet::timeout(5s, std::move(op));
  timer.expires_after(5s);
  auto outcome = co_await (std::move(op) || timer.async_wait(asio::use_awaitable));
  co_return std::move(std::get<0>(outcome));
}

coronet::awaitable<double> time_instant(Form form, std::size_t iterations) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  long sum = 0;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < iterations; ++i) sum += co_await call(form, instant(), timer);
  const std::chrono::duration<double, std::nano> spent = Clock::now() - start;
  if (sum != static_cast<long>(iterations)) throw std::runtime_error("instant: lost a call");
  co_return spent.count() / static_cast<double>(iterations);
}

/// Reads `iterations` lines the peer has already sent; only the reads are timed.
coronet::awaitable<double> time_read_line(Form form, std::size_t iterations) {
  auto ex = co_await asio::this_coro::executor;
  coronet::Server server;
  co_await server.listen(0, "127.0.0.1");
  auto client = co_await coronet::connect(server.address()->port, "127.0.0.1");
  auto reader = co_await server.accept();
  std::string batch;
  for (std::size_t i = 0; i < iterations; ++i) batch += std::string(line_bytes - 1, 'x') + '\n';
  asio::co_spawn(ex, client.write(batch), asio::detached);  // more than the kernel holds
  asio::steady_timer timer(ex);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < iterations; ++i) {
    auto line = co_await call(form, reader.read_line(64), timer);
    if (!line || line->size() != line_bytes - 1) throw std::runtime_error("read_line: bad line");
  }
  const std::chrono::duration<double, std::nano> spent = Clock::now() - start;
  co_return spent.count() / static_cast<double>(iterations);
}

struct Options {
  std::size_t iterations = 200000;
  int runs = 5;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help") {
      std::cout << usage;
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument("missing value after " + std::string(arg));
    if (arg == "--iterations") {
      o.iterations = std::stoul(argv[++i]);
    } else if (arg == "--runs") {
      o.runs = std::stoi(argv[++i]);
    } else {
      throw std::invalid_argument("unknown argument " + std::string(arg));
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n" << usage;
    return 2;
  }
  // best[operation][form]: the fastest run, which is the least disturbed by a
  // shared machine.
  double best[2][3];
  for (auto& row : best)
    for (double& cell : row) cell = 1e300;
  asio::io_context io{1};
  std::exception_ptr failed;
  asio::co_spawn(
      io,
      [&]() -> coronet::awaitable<void> {
        for (int run = 0; run < o.runs; ++run) {
          for (int f = 0; f < 3; ++f) {
            const auto form = static_cast<Form>(f);
            best[0][f] = std::min(best[0][f], co_await time_instant(form, o.iterations));
            best[1][f] = std::min(best[1][f], co_await time_read_line(form, o.iterations));
          }
        }
      },
      [&](std::exception_ptr e) { failed = e; });
  io.run();
  if (failed) {
    try {
      std::rethrow_exception(failed);
    } catch (const std::exception& e) {
      std::cerr << "coronet_deadline: " << e.what() << "\n";
      return 1;
    }
  }
  const char* operations[] = {"instant", "read_line"};
  std::printf("%-10s %12s %12s %12s   (ns per call, best of %d x %zu)\n", "operation", "bare",
              "timeout()", "op || timer", o.runs, o.iterations);
  for (int op = 0; op < 2; ++op) {
    std::printf("%-10s %12.0f %12.0f %12.0f\n", operations[op], best[op][0], best[op][1],
                best[op][2]);
  }
  std::printf("{");
  for (int op = 0; op < 2; ++op) {
    std::printf("%s\"%s\": {", op ? ", " : "", operations[op]);
    for (int f = 0; f < 3; ++f)
      std::printf("%s\"%s\": %.1f", f ? ", " : "", form_names[f], best[op][f]);
    std::printf("}");
  }
  std::printf("}\n");
  return 0;
}
