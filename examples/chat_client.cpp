// chat_client: joins stdin and stdout to a chat_server. It sends --name as its
// first line, then every line of stdin; it prints whatever arrives. At the end of
// stdin it half-closes and still prints what the server sends until it ends, so
// `printf 'hi\n' | chat_client --port P --name ann` works in a pipeline.
//
//   chat_client [--host 127.0.0.1] --port PORT --name NAME [--tls [--ca FILE]]
#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: chat_client [--host HOST] --port PORT --name NAME [--tls [--ca FILE]]\n"
    "  Sends NAME, then each line of stdin, to the chat server at HOST:PORT (host default\n"
    "  127.0.0.1) and prints what the server sends. At the end of stdin it sends FIN and\n"
    "  keeps printing until the server ends. Type /who to list people, /quit to leave.\n"
    "  --tls   connect with TLS; the server's certificate must be valid for HOST\n"
    "  --ca    with --tls: trust the certificates in this PEM file instead of the system's\n";

struct tls_settings {
  bool on = false;
  std::string ca_file;  // empty: the system's trusted roots
};

asio::awaitable<coronet::Socket> connect_to(const coronet::ConnectOptions& where,
                                            const tls_settings& tls) {
#if CORONET_EXAMPLES_TLS
  if (tls.on) co_return co_await coronet::tls::connect(where, {.ca_file = tls.ca_file});
#else
  (void)tls;
#endif
  co_return co_await coronet::connect(where);
}

asio::awaitable<void> run(std::string host, int port, std::string name, tls_settings tls) {
  auto executor = co_await asio::this_coro::executor;
  const coronet::ConnectOptions where{
      .host = host, .port = port, .allow_half_open = true, .no_delay = true};
  auto socket = co_await connect_to(where, tls);
  auto guard = asio::make_work_guard(executor);
  co_await socket.write(name + "\n");
  cli::send_stdin(executor, socket);
  while (auto chunk = co_await socket.read()) {
    if (!cli::write_stdout(*chunk)) break;
  }
  // The server ended. The stdin thread may still be waiting for a line we no
  // longer need; nothing else is left to clean up.
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "chat_client", std::string(usage), {"host", "port", "name", "ca"},
                 {"tls"});
  const std::string host = args.text("host", "127.0.0.1");
  const int port = static_cast<int>(args.number("port", -1, 0, 65535));
  const std::string name = args.text("name", "");
  if (port < 0) args.fail("--port is required");
  if (name.empty() || name.find_first_of(" \n") != std::string::npos)
    args.fail("--name must be one word");
  tls_settings tls{args.has("tls"), args.text("ca", "")};
  if (tls.on) args.require_tls();
  if (args.has("ca") && !tls.on) args.fail("--ca goes with --tls");
  asio::io_context io{1};
  asio::co_spawn(io, run(host, port, name, tls), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "chat_client: " << failure.what() << '\n';
      std::_Exit(1);
    }
  });
  io.run();
  return 0;
}
