// coronet-cat: a netcat-like client. stdin goes to the socket, the socket to stdout;
// stdin's EOF half-closes (FIN) and the output goes on until the server ends.
//
//   coronet-cat HOST PORT
#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: coronet-cat HOST PORT\n"
    "  Connects to HOST:PORT; copies stdin to the connection and the connection to stdout.\n"
    "  At the end of stdin it sends FIN and keeps printing until the server ends.\n"
    "  Exits 0 when both directions ended cleanly, 1 with a message on any error.\n";

asio::awaitable<void> run(std::string host, int port, int& status) {
  auto executor = co_await asio::this_coro::executor;
  auto socket = co_await coronet::connect({.host = host, .port = port, .allow_half_open = true});
  auto guard = asio::make_work_guard(executor);

  // stdin -> socket, on a thread of its own; its end is our FIN.
  cli::send_stdin(executor, socket);

  // socket -> stdout, until the server's FIN.
  while (auto chunk = co_await socket.read()) {
    if (!cli::write_stdout(*chunk)) break;
  }
  status = 0;
  guard.reset();
  socket.destroy();  // the stdin thread may still wait for input we no longer need
  std::fflush(stdout);
  std::_Exit(status);
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "coronet-cat", std::string(usage), {});
  if (args.positional().size() != 2) args.fail("expected HOST and PORT");
  const std::string host = args.positional()[0];
  int port = -1;
  try {
    port = std::stoi(args.positional()[1]);
  } catch (const std::exception&) {
    args.fail("PORT must be a number, not '" + args.positional()[1] + "'");
  }
  asio::io_context io{1};
  int status = 1;
  asio::co_spawn(io, run(host, port, status), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "coronet-cat: " << failure.what() << '\n';
      std::_Exit(1);
    }
  });
  io.run();
  return status;
}
