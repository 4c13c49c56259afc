// The server of the consumer tests, built against an installed coronet with
//   c++ server.cpp $(pkg-config --cflags --libs coronet)
// It listens on 127.0.0.1 with a port the kernel picks and prints that port as its
// first line (so the driver needs no sleep), then serves each client named on its
// command line exactly once (see exchange.hpp). It exits 0 only when every named
// client said hello with this server's coronet version and got its echo back.
//
//   server NAME...
#include <coronet/coronet.hpp>

#include <iostream>
#include <map>
#include <string>

#include "exchange.hpp"

namespace {

struct results {
  std::map<std::string, bool> served;  // name -> exchange completed
  int failures = 0;
};

asio::awaitable<void> session(coronet::Socket socket, results& out) {
  std::string name = "?";
  try {
    auto hello = co_await socket.read_line(256);
    const std::string expected_tail = std::string(" ") + std::string(coronet::version());
    if (!hello || !hello->starts_with("hello ") || !hello->ends_with(expected_tail)) {
      throw std::runtime_error("bad hello: " + std::string(hello.value_or("(FIN)")));
    }
    name = std::string(hello->substr(6, hello->size() - 6 - expected_tail.size()));
    if (!out.served.contains(name) || out.served[name]) {
      throw std::runtime_error("unexpected client " + name);
    }
    exchange::checksum sum;
    std::size_t bytes = 0;
    while (auto chunk = co_await socket.read()) {
      sum.add(*chunk);
      bytes += chunk->size();
      co_await socket.write(*chunk);
    }
    co_await socket.write(exchange::summary(name, bytes, sum) + "\n");
    co_await socket.end();
    out.served[name] = true;
    std::cout << "served " << name << ": " << bytes << " bytes from " << socket.remote_address()
              << std::endl;
  } catch (const std::exception& e) {
    ++out.failures;
    std::cerr << "server: client " << name << ": " << e.what() << std::endl;
  }
}

asio::awaitable<void> run(results& out) {
  coronet::Server server{{.allow_half_open = true}};  // the summary goes out after the client's FIN
  co_await server.listen(0, "127.0.0.1");
  std::cout << server.address()->port << std::endl;  // the first line: the driver waits for it
  for (std::size_t i = 0; i < out.served.size(); ++i) {
    asio::co_spawn(server.get_executor(), session(co_await server.accept(), out), asio::detached);
  }
  server.close();
  co_await server.wait_closed();  // every accepted socket has closed
}

}  // namespace

int main(int argc, char** argv) {
  results out;
  for (int i = 1; i < argc; ++i) out.served[argv[i]] = false;
  if (out.served.empty()) {
    std::cerr << "usage: server NAME...\n";
    return 2;
  }
  asio::io_context io{1};
  asio::co_spawn(io, run(out), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& failure) {
      std::cerr << "server: " << failure.what() << std::endl;
      ++out.failures;
    }
  });
  io.run();
  for (const auto& [name, done] : out.served) {
    if (!done) {
      std::cerr << "server: " << name << " was not served\n";
      ++out.failures;
    }
  }
  return out.failures == 0 ? 0 : 1;
}
