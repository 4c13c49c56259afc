// proxy: a TCP forwarder. Each connection to --listen is joined to a new
// connection to --to; bytes flow both ways with backpressure (a write waits while
// the other side's kernel is full, and meanwhile nothing more is read), and a FIN
// from either side is passed on as a FIN to the other, a reset as a reset.
//
//   proxy --listen PORT --to HOST:PORT [--host 127.0.0.1]
#include <csignal>

#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: proxy --listen PORT --to HOST:PORT [--host HOST]\n"
    "  Listens on HOST:PORT (host default 127.0.0.1; port 0 picks one) and forwards each\n"
    "  connection to --to, both directions, half-close included.\n"
    "  Prints 'listening on HOST:PORT' first. SIGINT or SIGTERM stops it.\n";

std::string upstream_host;
int upstream_port = 0;

/// from -> to until from's FIN, which becomes to's FIN.
coronet::awaitable<void> pipe(coronet::Socket& from, coronet::Socket& to) {
  while (auto chunk = co_await from.read()) co_await to.write(*chunk);
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
    // A reset on one side (when both directions fail, `&&` throws
    // asio::multiple_exceptions): reset both, so that neither peer takes it for an end.
    client.reset_and_destroy();
    upstream.reset_and_destroy();
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "proxy", std::string(usage), {"listen", "to", "host"});
  const std::string host = args.text("host", "127.0.0.1");
  const int port = static_cast<int>(args.number("listen", -1, 0, 65535));
  if (port < 0) args.fail("--listen PORT is required");
  auto target = cli::host_port(args.text("to", ""));
  if (!target) args.fail("--to HOST:PORT is required");
  upstream_host = target->first;
  upstream_port = target->second;

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
