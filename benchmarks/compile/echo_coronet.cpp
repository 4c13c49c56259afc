// A minimal echo server on coronet, written as the README teaches: every byte
// back, the client's FIN mirrored once flushed. scripts/compile_cost.sh builds it
// beside echo_asio.cpp, the same server on plain Asio coroutines.
#include <csignal>
#include <iostream>

#include <coronet/coronet.hpp>

namespace {

coronet::awaitable<void> echo(coronet::Socket socket) {
  socket.set_no_delay(true);
  while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
  co_await socket.end();
}

}  // namespace

int main() {
  asio::io_context io{1};
  coronet::Server server{{.allow_half_open = true}};
  server.listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
  std::cout << "listening on 127.0.0.1:" << server.address()->port << std::endl;
  asio::co_spawn(io, server.serve(echo), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
}
