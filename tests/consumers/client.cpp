// The client of the consumer tests, built against an installed coronet twice: with
// CMake's find_package(coronet) and as a Meson subproject. It connects to the
// server on 127.0.0.1:PORT, says hello as NAME, sends its payload and FIN while
// reading the echo, and exits 0 only if the echo, the server's summary line and
// the server's FIN all came back right (see exchange.hpp).
//
//   client PORT NAME
#include <coronet/coronet.hpp>

#include <cstdlib>
#include <iostream>
#include <stdexcept>
#include <string>

#include "exchange.hpp"

namespace {

asio::awaitable<void> send(coronet::Socket& socket, std::string hello, const std::string& payload) {
  co_await socket.write(hello);
  co_await socket.write(payload);
  co_await socket.end();
}

asio::awaitable<void> run(int port, std::string name) {
  auto socket = co_await coronet::connect({.host = "127.0.0.1", .port = port});
  const std::string payload = exchange::payload(name);
  const std::string hello = "hello " + name + " " + std::string(coronet::version()) + "\n";
  // Write and read at once: the echo arrives while the payload is still going out.
  asio::co_spawn(co_await asio::this_coro::executor, send(socket, hello, payload), asio::detached);
  auto echo = co_await socket.read_exactly(payload.size());
  if (!echo || *echo != payload) throw std::runtime_error("the echo differs from the payload");
  exchange::checksum sum;
  sum.add(payload);
  auto line = co_await socket.read_line(256);
  // A view lives until the next read on the socket: keep a copy past the read below.
  const std::string summary(line.value_or("(FIN)"));
  if (!line || summary != exchange::summary(name, payload.size(), sum)) {
    throw std::runtime_error("bad summary: " + summary);
  }
  if (co_await socket.read()) throw std::runtime_error("bytes after the summary");
  std::cout << name << ": " << summary << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: client PORT NAME\n";
    return 2;
  }
  int status = 1;
  asio::io_context io{1};
  asio::co_spawn(io, run(std::atoi(argv[1]), argv[2]), [&](std::exception_ptr e) {
    if (!e) {
      status = 0;
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "client " << argv[2] << ": " << failure.what() << std::endl;
    }
  });
  io.run();
  return status;
}
