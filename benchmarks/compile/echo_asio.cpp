// The echo server of echo_coronet.cpp on plain Asio coroutines (awaitable,
// use_awaitable), as an Asio user writes it: every byte back, the client's FIN
// mirrored once flushed.
#include <csignal>
#include <iostream>

#include <asio.hpp>

namespace {

using asio::ip::tcp;

asio::awaitable<void> echo(tcp::socket socket) {
  std::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  char buffer[64 * 1024];
  for (;;) {
    const std::size_t n = co_await socket.async_read_some(asio::buffer(buffer), token);
    if (ec) break;
    co_await asio::async_write(socket, asio::buffer(buffer, n), token);
    if (ec) co_return;
  }
  if (ec == asio::error::eof) socket.shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    std::error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;
    if (!ec) asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
  }
}

}  // namespace

int main() {
  asio::io_context io{1};
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  asio::co_spawn(io, accept_loop(acceptor), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
}
