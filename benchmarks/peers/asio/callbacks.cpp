// The benchmark server on raw standalone Asio with completion-handler callbacks:
// the protocol every peer in benchmarks/peers/ speaks (see benchmarks/README.md),
// written as an Asio user would for speed, with no coroutines.
//   asio_callbacks --mode echo|sink|mixed --port PORT | --unix PATH
//
// --unix listens on a Unix-domain socket file (asio::local::stream_protocol)
// instead of 127.0.0.1; the file must not exist and is removed at SIGTERM.
//
// One io_context run by one thread. Each connection owns one 64 KiB buffer for
// its whole life, and a shared_ptr captured by the pending handler keeps it alive.
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
    "usage: asio_callbacks --mode echo|sink|mixed --port PORT | --unix PATH\n"
    "  echo:  every byte back, FIN mirrored once flushed.\n"
    "  sink:  discard until FIN, then reply with the byte count and a newline.\n"
    "  mixed: a connection whose first byte is 'F' is a sink, any other an echo.\n"
    "  --unix PATH: a Unix-domain socket instead of 127.0.0.1.\n"
    "  Prints 'listening on 127.0.0.1:PORT' (or 'listening on unix:PATH') first;\n"
    "  SIGTERM or SIGINT stops it.\n";

constexpr int backlog = 4096;
constexpr std::size_t buffer_size = 64 * 1024;

enum class Mode { echo, sink, mixed };

// Socket: a TCP or a Unix-domain stream socket (no TCP_NODELAY there).
template <typename Socket>
class Connection : public std::enable_shared_from_this<Connection<Socket>> {
 public:
  Connection(Socket socket, Mode mode) : socket_(std::move(socket)), mode_(mode) {}

  void start() {
    std::error_code ignored;
    if constexpr (std::is_same_v<Socket, tcp::socket>)
      socket_.set_option(tcp::no_delay(true), ignored);
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  // Any error but EOF (ECONNRESET...) just drops the last reference, which
  // closes this socket and no other.
  void on_read(std::error_code ec, std::size_t n) {
    if (ec == asio::error::eof) return finish();
    if (ec) return;
    // The fairness row's flood starts with 'F'; its ping-pong does not.
    if (mode_ == Mode::mixed) mode_ = buffer_[0] == 'F' ? Mode::sink : Mode::echo;
    if (mode_ == Mode::sink) {
      received_ += n;
      return read();
    }
    // Echo: write all of it before reading again, so a slow reader slows us
    // down instead of growing a queue.
    asio::async_write(socket_, asio::buffer(buffer_, n),
                      [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  // The peer sent FIN: sink owes its count; both then send our FIN.
  void finish() {
    if (mode_ == Mode::echo) return shutdown();
    reply_ = std::to_string(received_) + "\n";
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                        if (!ec) self->shutdown();
                      });
  }

  void shutdown() {
    std::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
  }

  Socket socket_;
  Mode mode_;
  std::uint64_t received_ = 0;
  std::string reply_;  // must outlive the async_write that sends it
  char buffer_[buffer_size];
};

template <typename Acceptor>
void accept(Acceptor& acceptor, Mode mode) {
  using Socket = typename Acceptor::protocol_type::socket;
  acceptor.async_accept([&acceptor, mode](std::error_code ec, Socket socket) {
    if (ec == asio::error::operation_aborted) return;  // shutting down
    // Other errors (EMFILE...) lose one connection attempt, not the server.
    if (!ec) std::make_shared<Connection<Socket>>(std::move(socket), mode)->start();
    accept(acceptor, mode);
  });
}

tcp::acceptor listen(asio::io_context& io, unsigned short port) {
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(backlog);
  return acceptor;
}

[[noreturn]] void bad_usage(std::string_view why) {
  std::cerr << "asio_callbacks: " << why << '\n' << usage;
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
  tcp::acceptor acceptor = listen(io, static_cast<unsigned short>(port));
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  accept(acceptor, mode);
  run_until_signal(io);
}

void serve_unix(asio::io_context& io, const std::string& path, Mode mode) {
  unix_socket::acceptor acceptor(io);
  acceptor.open();
  acceptor.bind(unix_socket::endpoint(path));
  acceptor.listen(backlog);
  std::cout << "listening on unix:" << path << std::endl;
  accept(acceptor, mode);
  run_until_signal(io);
  ::unlink(path.c_str());  // closing the acceptor leaves the file behind
}

}  // namespace

int main(int argc, char** argv) {
  int port = -1;
  std::string path;
  const Mode mode = parse_args(argc, argv, port, path);
  // Asio already sends with MSG_NOSIGNAL; ignoring SIGPIPE also covers any
  // path that does not.
  std::signal(SIGPIPE, SIG_IGN);

  asio::io_context io{1};  // the hint: one thread runs it, so skip locking
  if (path.empty())
    serve_tcp(io, port, mode);
  else
    serve_unix(io, path, mode);
  return 0;
}
