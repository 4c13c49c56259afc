// resp_server: a minimal Redis-protocol (RESP) server on coronet, written as a
// new user would, so that redis-benchmark can drive it beside redis-server
// (scripts/syscalls.sh counts the system calls each makes per request).
//
//   coronet_resp_server [--port PORT]
//
// PING answers +PONG, SET stores and answers +OK, GET answers the value or $-1;
// anything else is an error reply. Requests are RESP arrays of bulk strings, as
// redis-cli and redis-benchmark send them. Each chunk read() returns is parsed
// whole and answered with one write: a pipelined batch that arrives together
// leaves together.
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <coronet/coronet.hpp>

namespace {

constexpr std::string_view usage =
    "usage: coronet_resp_server [--port PORT]\n"
    "  A minimal Redis-protocol server on 127.0.0.1: PING, SET, GET.\n"
    "  --port  port; 0 lets the kernel pick (default 6379)\n"
    "  Prints 'listening on 127.0.0.1:PORT' first; SIGINT or SIGTERM stops it.\n";

using Store = std::unordered_map<std::string, std::string>;

// A request may not claim more than this: a bad length is an error, not an allocation.
constexpr std::size_t max_bulk = 512 * 1024 * 1024;
constexpr std::size_t max_arguments = 1024 * 1024;

enum class Parse { complete, incomplete, malformed };

// Reads a decimal number ending in "\r\n" at `at`; moves `at` past it.
Parse parse_number(std::string_view input, std::size_t& at, std::size_t& value) {
  const std::size_t end = input.find("\r\n", at);
  if (end == std::string_view::npos)
    return input.size() - at > 20 ? Parse::malformed : Parse::incomplete;
  if (end == at) return Parse::malformed;
  value = 0;
  for (std::size_t i = at; i < end; ++i) {
    if (input[i] < '0' || input[i] > '9' || value > max_bulk) return Parse::malformed;
    value = value * 10 + static_cast<std::size_t>(input[i] - '0');
  }
  at = end + 2;
  return Parse::complete;
}

// One command, "*N\r\n" then N times "$LEN\r\nBYTES\r\n", from the front of
// `input`. On complete, `args` views into `input` and `used` is its length.
Parse parse_command(std::string_view input, std::vector<std::string_view>& args,
                    std::size_t& used) {
  if (input.empty()) return Parse::incomplete;
  if (input[0] != '*') return Parse::malformed;
  std::size_t at = 1, count = 0;
  if (Parse p = parse_number(input, at, count); p != Parse::complete) return p;
  if (count == 0 || count > max_arguments) return Parse::malformed;
  args.clear();
  for (std::size_t i = 0; i < count; ++i) {
    if (at >= input.size()) return Parse::incomplete;
    if (input[at] != '$') return Parse::malformed;
    ++at;
    std::size_t length = 0;
    if (Parse p = parse_number(input, at, length); p != Parse::complete) return p;
    if (length > max_bulk) return Parse::malformed;
    if (input.size() - at < length + 2) return Parse::incomplete;
    if (input.substr(at + length, 2) != "\r\n") return Parse::malformed;
    args.push_back(input.substr(at, length));
    at += length + 2;
  }
  used = at;
  return Parse::complete;
}

bool is_command(std::string_view arg, std::string_view upper) {
  if (arg.size() != upper.size()) return false;
  for (std::size_t i = 0; i < arg.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(arg[i])) != upper[i]) return false;
  }
  return true;
}

void append_bulk(std::string& reply, std::string_view value) {
  reply += '$';
  reply += std::to_string(value.size());
  reply += "\r\n";
  reply += value;
  reply += "\r\n";
}

void execute(const std::vector<std::string_view>& args, Store& store, std::string& reply) {
  const std::string_view name = args[0];
  if (is_command(name, "PING") && args.size() <= 2) {
    if (args.size() == 2)
      append_bulk(reply, args[1]);
    else
      reply += "+PONG\r\n";
  } else if (is_command(name, "SET") && args.size() == 3) {
    store.insert_or_assign(std::string(args[1]), std::string(args[2]));
    reply += "+OK\r\n";
  } else if (is_command(name, "GET") && args.size() == 2) {
    auto it = store.find(std::string(args[1]));
    if (it == store.end())
      reply += "$-1\r\n";
    else
      append_bulk(reply, it->second);
  } else {
    reply += "-ERR unknown command or wrong number of arguments for '";
    reply += name.substr(0, 64);
    reply += "'\r\n";
  }
}

coronet::awaitable<void> session(coronet::Socket socket, Store& store) {
  socket.set_no_delay(true);
  std::string pending;  // the start of a command whose end has not arrived yet
  std::string reply;
  std::vector<std::string_view> args;
  while (auto chunk = co_await socket.read()) {
    // Parse straight from the chunk unless a command was cut at the last one's end.
    if (!pending.empty()) pending += *chunk;
    const std::string_view input = pending.empty() ? *chunk : std::string_view(pending);
    std::size_t consumed = 0, used = 0;
    Parse parsed;
    reply.clear();
    while ((parsed = parse_command(input.substr(consumed), args, used)) == Parse::complete) {
      execute(args, store, reply);
      consumed += used;
    }
    if (parsed == Parse::malformed) {
      reply += "-ERR Protocol error\r\n";
      co_return co_await socket.end(reply);
    }
    if (!reply.empty()) co_await socket.write(reply);  // one write per chunk
    if (pending.empty())
      pending.assign(input.substr(consumed));
    else
      pending.erase(0, consumed);
  }
  co_await socket.end();
}

}  // namespace

int main(int argc, char** argv) {
  int port = 6379;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage;
      return 0;
    }
    if (a == "--port" && i + 1 < argc) {
      char* end = nullptr;
      const long p = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) {
        std::cerr << "coronet_resp_server: --port must be 0..65535\n" << usage;
        return 2;
      }
      port = static_cast<int>(p);
    } else {
      std::cerr << "coronet_resp_server: unknown argument " << a << '\n' << usage;
      return 2;
    }
  }

  asio::io_context io{1};  // one thread: coronet reads with one recv() per chunk
  Store store;
  coronet::Server server({.allow_half_open = true});
  try {
    server.listen(io.get_executor(), {.port = port, .host = "127.0.0.1", .backlog = 4096});
  } catch (const coronet::error& e) {
    std::cerr << "coronet_resp_server: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << server.address()->port << std::endl;
  asio::co_spawn(io, server.serve([&store](coronet::Socket socket) {
    return session(std::move(socket), store);
  }),
                 asio::detached);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) { io.stop(); });
  io.run();
  return 0;
}
