// proxy: a TCP forwarder. Each connection to --listen is joined to a new
// connection to --to; bytes flow both ways with backpressure (a write waits while
// the other side's kernel is full, and meanwhile nothing more is read), and a FIN
// from either side is passed on as a FIN to the other, a reset as a reset. A write
// that has waited --write-timeout for a peer that does not read resets both sides:
// a stalled peer holds up only its own pair, and only for that long.
//
//   proxy --listen PORT --to HOST:PORT [--host 127.0.0.1] [--write-timeout 30]
#include <csignal>

#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: proxy --listen PORT --to HOST:PORT [--host HOST] [--write-timeout SECONDS]\n"
    "  Listens on HOST:PORT (host default 127.0.0.1; port 0 picks one) and forwards each\n"
    "  connection to --to, both directions, half-close included. A reset on one side\n"
    "  resets the other.\n"
    "  --write-timeout  reset both sides when a write has waited this long for its reader\n"
    "                   (default 30; 0: wait forever)\n"
    "  Prints 'listening on HOST:PORT' first. SIGINT or SIGTERM stops it.\n";

std::string upstream_host;
int upstream_port = 0;
std::chrono::seconds write_timeout{30};

/// Runs `op`, handing its failure back through `failure` instead of throwing: `||`
/// would hold on to a failed operand until the timer fired.
coronet::awaitable<void> caught(coronet::awaitable<void> op, std::exception_ptr& failure) {
  try {
    co_await std::move(op);
  } catch (...) {
    failure = std::current_exception();
  }
}

/// to.write(chunk), for at most --write-timeout; then errc::timeout.
coronet::awaitable<void> write_in_time(coronet::Socket& to, std::string_view chunk) {
  if (write_timeout.count() == 0) {
    co_await to.write(chunk);
    co_return;
  }
  using namespace asio::experimental::awaitable_operators;
  std::exception_ptr failure;
  asio::steady_timer deadline(co_await asio::this_coro::executor, write_timeout);
  auto winner =
      co_await (caught(to.write(chunk), failure) || deadline.async_wait(asio::use_awaitable));
  if (winner.index() == 1) {
    std::cerr << "proxy: a write waited " << write_timeout.count()
              << " s for a peer that does not read; both sides reset\n";
    throw coronet::error(coronet::errc::timeout);
  }
  if (failure) std::rethrow_exception(failure);
}

/// from -> to until from's FIN, which becomes to's FIN.
coronet::awaitable<void> pipe(coronet::Socket& from, coronet::Socket& to) {
  while (auto chunk = co_await from.read()) co_await write_in_time(to, *chunk);
  co_await to.end();
}

coronet::awaitable<void> forward(coronet::Socket client) {
  coronet::Socket upstream;
  try {
    upstream = co_await coronet::connect(
        {.host = upstream_host, .port = upstream_port, .allow_half_open = true, .no_delay = true});
  } catch (const coronet::error& e) {
    std::cerr << "proxy: " << e.what() << '\n';
    client.reset_and_destroy();  // the client learns at once that there is no way through
    co_return;
  }
  client.set_no_delay(true);
  using namespace asio::experimental::awaitable_operators;
  try {
    // Both directions at once; each ends on its own FIN.
    co_await (pipe(client, upstream) && pipe(upstream, client));
  } catch (const std::exception&) {
    // A reset or a stalled write on one side (when both directions fail, `&&` throws
    // asio::multiple_exceptions): reset both, so that neither peer takes it for an end.
    client.reset_and_destroy();
    upstream.reset_and_destroy();
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "proxy", std::string(usage),
                 {"listen", "to", "host", "write-timeout"});
  const std::string host = args.text("host", "127.0.0.1");
  const int port = static_cast<int>(args.number("listen", -1, 0, 65535));
  if (port < 0) args.fail("--listen PORT is required");
  auto target = cli::host_port(args.text("to", ""));
  if (!target) args.fail("--to HOST:PORT is required");
  upstream_host = target->first;
  upstream_port = target->second;
  write_timeout = std::chrono::seconds(args.number("write-timeout", 30, 0, 86'400));

  asio::io_context io{1};
  coronet::Server server({.allow_half_open = true});
  try {
    server.listen(io.get_executor(), {.port = port, .host = host});
  } catch (const coronet::error& e) {
    std::cerr << "proxy: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on " << host << ':' << server.address()->port << std::endl;
  asio::co_spawn(io, server.serve(forward), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) {
    server.close();
    io.stop();
  });
  io.run();
  return 0;
}
