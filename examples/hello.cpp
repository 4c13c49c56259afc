// hello: an echo server and a client talking over loopback, in one program.
// The smallest complete picture of coronet: listen, accept, read until FIN,
// write back, half-close; connect, write, end, read what comes back.
//
//   hello [--lines N] [--host HOST]
#include <coronet/coronet.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

namespace {

void usage(std::ostream& out) {
  out << "usage: hello [--lines N] [--host HOST]\n"
         "  Starts an echo server on HOST (default 127.0.0.1) with a port the kernel picks,\n"
         "  connects a client to it, sends N lines (default 3), half-closes, and prints\n"
         "  what each side saw.\n";
}

asio::awaitable<void> echo_session(coronet::Socket socket) {
  std::cout << "server: connection from " << socket.remote_address() << ':' << socket.remote_port()
            << '\n';
  while (auto chunk = co_await socket.read()) co_await socket.write(*chunk);
  std::cout << "server: the client ended after " << socket.bytes_read()
            << " bytes; echoed them all and ending too\n";
  co_await socket.end();
}

asio::awaitable<void> run(std::string host, int lines) {
  coronet::Server server;
  co_await server.listen(0, host);
  const auto address = *server.address();
  std::cout << "server: listening on " << address.address << ':' << address.port << '\n';
  asio::co_spawn(server.get_executor(), server.serve(echo_session), asio::detached);

  auto client = co_await coronet::connect({.host = host, .port = address.port, .no_delay = true});
  for (int i = 1; i <= lines; ++i)
    co_await client.write("hello number " + std::to_string(i) + "\n");
  co_await client.end();  // our FIN: the server sees the end, and we can still read
  while (auto line = co_await client.read_line(1024))
    std::cout << "client: got back \"" << *line << "\"\n";
  std::cout << "client: the server ended; " << client.bytes_written() << " bytes sent, "
            << client.bytes_read() << " received\n";
  server.close();
  co_await server.wait_closed();
  std::cout << "server: closed\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int lines = 3;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return 0;
    }
    if ((arg == "--lines" || arg == "--host") && i + 1 < argc) {
      if (arg == "--lines")
        lines = std::atoi(argv[++i]);
      else
        host = argv[++i];
      continue;
    }
    std::cerr << "hello: unknown argument '" << arg << "'\n";
    usage(std::cerr);
    return 2;
  }
  asio::io_context io{1};
  int status = 0;
  asio::co_spawn(io, run(host, lines), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "hello: " << failure.what() << '\n';
      status = 1;
    }
  });
  io.run();
  return status;
}
