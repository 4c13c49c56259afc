// The TLS benchmark server on coronet: a TLS sink, as every TLS peer of the
// benchmark (benchmarks/README.md, "TLS") runs one.
//   coronet_tls_server --port PORT --cert FILE --key FILE
// Each connection is read until the peer's end (close_notify), then answered with
// the byte count and a newline, and ended (close_notify, FIN). Prints
// 'listening on 127.0.0.1:PORT' first; SIGTERM or SIGINT stops it.
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include <asio/signal_set.hpp>
#include <coronet/tls.hpp>

namespace {

coronet::awaitable<void> sink(coronet::Socket socket) {
  socket.set_no_delay(true);
  std::uint64_t bytes = 0;
  while (auto chunk = co_await socket.read()) bytes += chunk->size();
  co_await socket.end(std::to_string(bytes) + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key;
  int port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--port")
      port = std::atoi(argv[i + 1]);
    else if (flag == "--cert")
      cert = argv[i + 1];
    else if (flag == "--key")
      key = argv[i + 1];
  }
  if (cert.empty() || key.empty()) {
    std::cerr << "usage: coronet_tls_server --port PORT --cert FILE --key FILE\n";
    return 2;
  }
  asio::io_context io{1};
  coronet::tls::Server server({}, {.cert_file = cert, .key_file = key});
  server.listen(io.get_executor(), {.port = port, .host = "127.0.0.1", .backlog = 4096});
  std::cout << "listening on 127.0.0.1:" << server.address()->port << std::endl;
  asio::co_spawn(io, server.serve(sink), asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
  return 0;
}
