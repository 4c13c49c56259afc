// proxy: a TCP forwarder. Each connection to --listen is joined to a new
// connection to --to by coronet::pipe_both(): bytes flow both ways, spliced by the
// kernel, with backpressure (nothing more is read while the other side's kernel is
// full), and a FIN from either side is passed on as a FIN to the other, a reset as
// a reset. When a peer that does not read has taken no byte for --write-timeout,
// both sides are reset: a stalled peer holds up only its own pair, and only for
// that long (a slow reader that keeps taking bytes is not cut off).
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
std::chrono::seconds write_timeout{30};  // 0: wait forever

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
  try {
    // Both directions at once, each passing its FIN on; between two TCP sockets the
    // kernel splices the bytes and the proxy never copies them. A reset or an I/O
    // error on one side resets the other (pipe_both() does that itself).
    co_await coronet::pipe_both(client, upstream, {.write_timeout = write_timeout});
  } catch (const std::exception& e) {
    // A stalled reader (pipe_both() leaves both open then) or anything else: reset
    // both, so that neither peer takes it for an end. (Resetting a socket that
    // pipe_both() has already reset does nothing.)
    const auto* failure = dynamic_cast<const coronet::error*>(&e);
    if (failure && failure->code() == coronet::errc::timeout) {
      std::cerr << "proxy: a write waited " << write_timeout.count()
                << " s for a peer that does not read; both sides reset\n";
    }
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
