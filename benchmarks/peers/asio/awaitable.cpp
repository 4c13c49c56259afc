// The benchmark server on raw standalone Asio with C++20 coroutines
// (asio::awaitable and use_awaitable): the protocol every peer in
// benchmarks/peers/ speaks (see benchmarks/README.md), written as an Asio user
// would who wants coroutines without coronet.
//   asio_awaitable --mode echo|sink|mixed --port PORT | --unix PATH
//
// --unix listens on a Unix-domain socket file (asio::local::stream_protocol)
// instead of 127.0.0.1; the file must not exist and is removed at SIGTERM.
//
// One io_context run by one thread; one coroutine and one 64 KiB buffer per
// connection. It is the closest peer to coronet: what coronet adds on top of it
// (queues, options, Node's errors) is what the ratio between the two measures.
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include <asio.hpp>

namespace {

using asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

constexpr std::string_view usage =
    "usage: asio_awaitable --mode echo|sink|mixed --port PORT | --unix PATH\n"
    "  echo:  every byte back, FIN mirrored once flushed.\n"
    "  sink:  discard until FIN, then reply with the byte count and a newline.\n"
    "  mixed: a connection whose first byte is 'F' is a sink, any other an echo.\n"
    "  --unix PATH: a Unix-domain socket instead of 127.0.0.1.\n"
    "  Prints 'listening on 127.0.0.1:PORT' (or 'listening on unix:PATH') first;\n"
    "  SIGTERM or SIGINT stops it.\n";

constexpr int backlog = 4096;
constexpr std::size_t buffer_size = 64 * 1024;

enum class Mode { echo, sink, mixed };

// Errors (ECONNRESET...) end this connection's coroutine and no other; the
// error_code form keeps them off the exception path. Socket: a TCP or a
// Unix-domain stream socket (no TCP_NODELAY there).
template <typename Socket>
asio::awaitable<void> serve(Socket socket, Mode mode) {
  std::error_code ec;
  if constexpr (std::is_same_v<Socket, tcp::socket>) socket.set_option(tcp::no_delay(true), ec);
  auto buffer = std::make_unique<char[]>(buffer_size);
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  std::uint64_t received = 0;
  for (;;) {
    const std::size_t n =
        co_await socket.async_read_some(asio::buffer(buffer.get(), buffer_size), token);
    if (ec) break;
    // The fairness row's flood starts with 'F'; its ping-pong does not.
    if (mode == Mode::mixed) mode = buffer[0] == 'F' ? Mode::sink : Mode::echo;
    if (mode == Mode::sink) {
      received += n;
      continue;
    }
    co_await asio::async_write(socket, asio::buffer(buffer.get(), n), token);
    if (ec) co_return;
  }
  if (ec != asio::error::eof) co_return;
  if (mode == Mode::sink) {
    const std::string reply = std::to_string(received) + "\n";
    co_await asio::async_write(socket, asio::buffer(reply), token);
    if (ec) co_return;
  }
  socket.shutdown(Socket::shutdown_send, ec);
}

template <typename Acceptor>
asio::awaitable<void> accept_loop(Acceptor& acceptor, Mode mode) {
  for (;;) {
    std::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted) co_return;  // shutting down
    // Other errors (EMFILE...) lose one connection attempt, not the server.
    if (!ec)
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), mode), asio::detached);
  }
}

[[noreturn]] void bad_usage(std::string_view why) {
  std::cerr << "asio_awaitable: " << why << '\n' << usage;
  std::exit(2);
}

Mode parse_args(int argc, char** argv, int& port, std::string& path) {
  std::string_view mode;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help") {
      std::cout << usage;
      std::exit(0);
    } else if (a == "--mode" && i + 1 < argc) {
      mode = argv[++i];
    } else if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--unix" && i + 1 < argc) {
      path = argv[++i];
    } else {
      bad_usage("unknown argument " + std::string(a));
    }
  }
  if (port > 65535) bad_usage("--port must be 0..65535");
  if ((port >= 0) == !path.empty()) bad_usage("give either --port or --unix");
  if (mode == "echo") return Mode::echo;
  if (mode == "sink") return Mode::sink;
  if (mode != "mixed") bad_usage("--mode must be echo, sink or mixed");
  return Mode::mixed;
}

void run_until_signal(asio::io_context& io) {
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
}

void serve_tcp(asio::io_context& io, int port, Mode mode) {
  const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"),
                               static_cast<unsigned short>(port));
  tcp::acceptor acceptor(io);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(backlog);
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  asio::co_spawn(io, accept_loop(acceptor, mode), asio::detached);
  run_until_signal(io);
}

void serve_unix(asio::io_context& io, const std::string& path, Mode mode) {
  unix_socket::acceptor acceptor(io);
  acceptor.open();
  acceptor.bind(unix_socket::endpoint(path));
  acceptor.listen(backlog);
  std::cout << "listening on unix:" << path << std::endl;
  asio::co_spawn(io, accept_loop(acceptor, mode), asio::detached);
  run_until_signal(io);
  ::unlink(path.c_str());  // closing the acceptor leaves the file behind
}

}  // namespace

int main(int argc, char** argv) {
  int port = -1;
  std::string path;
  const Mode mode = parse_args(argc, argv, port, path);
  std::signal(SIGPIPE, SIG_IGN);

  asio::io_context io{1};
  if (path.empty())
    serve_tcp(io, port, mode);
  else
    serve_unix(io, path, mode);
  return 0;
}
