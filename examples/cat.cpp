// coronet-cat: a netcat-like client. stdin goes to the socket, the socket to stdout;
// stdin's EOF half-closes (FIN) and the output goes on until the server ends.
//
//   coronet-cat [--tls [--ca FILE] [--servername NAME]] HOST PORT
#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: coronet-cat [--tls [--ca FILE] [--servername NAME]] HOST PORT\n"
    "  Connects to HOST:PORT; copies stdin to the connection and the connection to stdout.\n"
    "  At the end of stdin it sends FIN and keeps printing until the server ends.\n"
    "  Exits 0 when both directions ended cleanly, 1 with a message on any error.\n"
    "  --tls         connect with TLS (openssl s_client's job); the end of stdin sends\n"
    "                close_notify, then FIN\n"
    "  --ca          with --tls: trust the certificates in this PEM file, not the system's\n"
    "  --servername  with --tls: the name to send (SNI) and to check the certificate\n"
    "                against (default: HOST when it is a name)\n";

struct tls_settings {
  bool on = false;
  std::string ca_file;     // empty: the system's trusted roots
  std::string servername;  // empty: HOST
};

asio::awaitable<coronet::Socket> connect_to(const coronet::ConnectOptions& where,
                                            const tls_settings& tls) {
#if CORONET_EXAMPLES_TLS
  if (tls.on)
    co_return co_await coronet::tls::connect(
        where, {.ca_file = tls.ca_file, .servername = tls.servername});
#else
  (void)tls;
#endif
  co_return co_await coronet::connect(where);
}

asio::awaitable<void> run(std::string host, int port, tls_settings tls, int& status) {
  auto executor = co_await asio::this_coro::executor;
  const coronet::ConnectOptions where{.host = host, .port = port, .allow_half_open = true};
  auto socket = co_await connect_to(where, tls);
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
  cli::args args(argc, argv, "coronet-cat", std::string(usage), {"ca", "servername"}, {"tls"});
  const tls_settings tls{args.has("tls"), args.text("ca", ""), args.text("servername", "")};
  if (tls.on) args.require_tls();
  if ((args.has("ca") || args.has("servername")) && !tls.on)
    args.fail("--ca and --servername go with --tls");
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
  asio::co_spawn(io, run(host, port, tls, status), [&](std::exception_ptr e) {
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
