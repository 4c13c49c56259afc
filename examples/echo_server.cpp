// echo_server: echoes every byte back and mirrors half-close: when the client
// sends FIN, it flushes what it owes and ends too. With --threads N it runs N
// io_contexts on N threads, each with its own server on the same port
// (SO_REUSEPORT), which is how coronet uses several cores.
//
// SIGINT or SIGTERM shuts it down gracefully: idle connections end at once, the
// others once their echo is out, and after --grace what is left is cut.
//
//   echo_server [--host 127.0.0.1] [--port 0] [--threads 1] [--idle-timeout 0] [--grace 5000]
#include <csignal>

#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: echo_server [--host HOST] [--port PORT] [--threads N] [--idle-timeout MS] [--grace "
    "MS]\n"
    "  --host          address to listen on (default 127.0.0.1)\n"
    "  --port          port; 0 lets the kernel pick (default 0)\n"
    "  --threads       io_contexts sharing the port through SO_REUSEPORT, one per core (default "
    "1)\n"
    "  --idle-timeout  close a connection idle this many milliseconds (default 0: never)\n"
    "  --grace         on SIGINT/SIGTERM, milliseconds a connection may take to finish its\n"
    "                  echo before it is cut (default 5000)\n"
    "  Prints 'listening on HOST:PORT' first. SIGINT or SIGTERM stops accepting, ends idle\n"
    "  connections at once and the others once their echo is out, then prints\n"
    "  'shutdown: N ended gracefully, M cut'. A second signal exits at once.\n";

std::chrono::milliseconds idle_timeout{0};

asio::awaitable<void> echo(coronet::Socket socket) {
  socket.set_no_delay(true);
  if (idle_timeout.count() > 0) socket.set_timeout(idle_timeout);
  try {
    while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
    co_await socket.end();  // the client's FIN, mirrored once everything is flushed
  } catch (const coronet::error& e) {
    if (e.code() != coronet::errc::timeout) throw;
    socket.destroy();  // idle too long
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "echo_server", std::string(usage),
                 {"host", "port", "threads", "idle-timeout", "grace"});
  const std::string host = args.text("host", "127.0.0.1");
  int port = static_cast<int>(args.number("port", 0, 0, 65535));
  const auto threads = static_cast<std::size_t>(args.number("threads", 1, 1, 256));
  idle_timeout = std::chrono::milliseconds(args.number("idle-timeout", 0, 0, 86'400'000));
  const std::chrono::milliseconds grace(args.number("grace", 5000, 0, 86'400'000));

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<coronet::Server> servers(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i) {
      contexts.push_back(std::make_unique<asio::io_context>(1));
      servers[i] = coronet::Server({.allow_half_open = true});
      servers[i].listen(contexts[i]->get_executor(),
                        {.port = port, .host = host, .reuse_port = threads > 1});
      port = servers[i].address()->port;  // the others join the port the first one got
    }
  } catch (const coronet::error& e) {
    std::cerr << "echo_server: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on " << host << ':' << port << std::endl;

  for (std::size_t i = 0; i < threads; ++i) {
    asio::co_spawn(*contexts[i], servers[i].serve(echo), asio::detached);
  }
  // Each server shuts down on its own thread; the totals are added up on the first.
  asio::signal_set signals(*contexts[0], SIGINT, SIGTERM);
  coronet::ShutdownResult total;
  std::size_t reported = 0;
  auto stop_all = [&] {
    for (auto& c : contexts) c->stop();
  };
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    signals.async_wait([&](std::error_code again, int) {
      if (!again) stop_all();  // a second signal does not wait for anyone
    });
    for (std::size_t i = 0; i < threads; ++i) {
      asio::co_spawn(*contexts[i], servers[i].shutdown(grace),
                     [&](std::exception_ptr, coronet::ShutdownResult r) {
                       asio::post(*contexts[0], [&, r] {
                         total.graceful += r.graceful;
                         total.cut += r.cut;
                         if (++reported < threads) return;
                         std::cout << "shutdown: " << total.graceful << " ended gracefully, "
                                   << total.cut << " cut" << std::endl;
                         signals.cancel();
                         stop_all();
                       });
                     });
    }
  });
  std::vector<std::thread> workers;
  for (std::size_t i = 1; i < threads; ++i) workers.emplace_back([&, i] { contexts[i]->run(); });
  contexts[0]->run();
  for (auto& w : workers) w.join();
  return 0;
}
