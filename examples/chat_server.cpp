// chat_server: Node's classic first `net` program. Every line a client sends is
// relayed to the others as "NAME: text". The first line a client sends is its
// name; /nick NAME renames, /who lists who is there, /quit leaves.
//
// A slow client never stalls the others: lines to each client are queued with
// write_nowait(), and a client whose queue passes --max-queue bytes is cut off.
// An over-long line gets an error line back and the client is disconnected;
// memory stays bounded by --max-line. SIGINT tells everyone and ends every socket.
//
//   chat_server [--host 127.0.0.1] [--port 0] [--max-line 1024] [--idle-timeout 0] [--max-queue
//   65536]
#include <csignal>
#include <list>

#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: chat_server [--host HOST] [--port PORT] [--max-line BYTES] [--idle-timeout SECONDS]\n"
    "                   [--max-queue BYTES]\n"
    "  --host          address to listen on (default 127.0.0.1)\n"
    "  --port          port; 0 lets the kernel pick (default 0)\n"
    "  --max-line      longest line accepted, in bytes (default 1024)\n"
    "  --idle-timeout  disconnect a client silent this many seconds (default 0: never)\n"
    "  --max-queue     bytes a slow client may fall behind before it is cut off (default 65536)\n"
    "  Prints 'listening on HOST:PORT' first. Clients send their name as their first line.\n"
    "  Commands: /nick NAME, /who, /quit. SIGINT closes the server gracefully.\n";

struct settings {
  std::size_t max_line = 1024;
  std::chrono::seconds idle{0};
  std::size_t max_queue = 64 * 1024;
};

struct client {
  coronet::Socket* socket = nullptr;
  std::string name;
};

class room {
 public:
  explicit room(settings s) : settings_(s) {}

  /// Sends `line` to everyone but `except`; cuts off whoever has fallen too far behind.
  void broadcast(const std::string& line, const client* except = nullptr) {
    std::vector<client*> too_slow;
    for (client& c : clients_) {
      if (&c == except || c.name.empty()) continue;
      if (!send(c, line)) too_slow.push_back(&c);
    }
    for (client* c : too_slow) {
      std::string name = c->name;
      c->socket->destroy();  // its session sees the error and leaves quietly
      c->name.clear();
      broadcast("* " + name + " was disconnected: too far behind\n");
    }
  }

  /// Queues a line for one client; false when its queue has passed the bound.
  bool send(client& c, std::string_view line) {
    if (c.socket->destroyed()) return true;
    try {
      return c.socket->write_nowait(line);
    } catch (const coronet::error&) {
      return true;  // already ending: its session cleans up
    }
  }

  std::string who() const {
    std::string list = "* here:";
    for (const client& c : clients_) {
      if (!c.name.empty()) list += " " + c.name;
    }
    return list + "\n";
  }

  client& join(coronet::Socket& socket) { return clients_.emplace_back(client{&socket, {}}); }
  void leave(client& c) {
    clients_.remove_if([&](const client& x) { return &x == &c; });
  }

  /// Tells everyone the server is going, and ends each socket after that line.
  void shut_down() {
    for (client& c : clients_) {
      send(c, "* server shutting down\n");
      asio::co_spawn(c.socket->get_executor(), end_quietly(*c.socket), asio::detached);
    }
  }

  const settings& limits() const { return settings_; }

 private:
  static coronet::awaitable<void> end_quietly(coronet::Socket& socket) {
    try {
      co_await socket.end();
    } catch (const coronet::error&) {
    }
  }

  settings settings_;
  std::list<client> clients_;  // stable addresses: sessions keep a reference
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

/// One client, from its name to its /quit (or FIN, or error).
coronet::awaitable<void> session(room& chat, coronet::Socket socket) {
  const auto& limits = chat.limits();
  socket.set_high_water_mark(limits.max_queue);
  if (limits.idle.count() > 0) socket.set_timeout(limits.idle);
  client& me = chat.join(socket);
  std::string goodbye;
  try {
    chat.send(me, "* welcome! send your name\n");
    while (auto line = co_await socket.read_line(limits.max_line)) {
      auto text = trim(*line);
      if (text.empty()) continue;
      if (me.name.empty() || text.starts_with("/nick ")) {
        auto name = trim(me.name.empty() && !text.starts_with("/nick ") ? text : text.substr(6));
        if (name.empty() || name.find(' ') != std::string_view::npos) {
          chat.send(me, "* a name is one word\n");
          continue;
        }
        std::string old = std::exchange(me.name, std::string(name));
        if (old.empty()) {
          chat.broadcast("* " + me.name + " joined\n", &me);
          chat.send(me, chat.who());
        } else {
          chat.broadcast("* " + old + " is now " + me.name + "\n");
        }
      } else if (text == "/who") {
        chat.send(me, chat.who());
      } else if (text == "/quit") {
        chat.send(me, "* bye\n");
        break;
      } else {
        chat.broadcast(me.name + ": " + std::string(text) + "\n", &me);
      }
    }
  } catch (const coronet::error& e) {
    if (e.code() == coronet::errc::frame_too_long) {
      chat.send(
          me, "* error: line longer than " + std::to_string(limits.max_line) + " bytes; goodbye\n");
    } else if (e.code() == coronet::errc::timeout) {
      chat.send(me, "* idle too long; goodbye\n");
    }
  }
  std::string name = me.name;
  chat.leave(me);
  if (!name.empty()) chat.broadcast("* " + name + " left\n");
  if (!socket.destroyed()) {
    try {
      co_await socket.end();
    } catch (const coronet::error&) {
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "chat_server", std::string(usage),
                 {"host", "port", "max-line", "idle-timeout", "max-queue"});
  const std::string host = args.text("host", "127.0.0.1");
  const int port = static_cast<int>(args.number("port", 0, 0, 65535));
  settings limits;
  limits.max_line = static_cast<std::size_t>(args.number("max-line", 1024, 1, 1 << 24));
  limits.idle = std::chrono::seconds(args.number("idle-timeout", 0, 0, 86'400));
  limits.max_queue = static_cast<std::size_t>(args.number("max-queue", 64 * 1024, 1, 1 << 30));

  asio::io_context io{1};
  coronet::Server server({.allow_half_open = true});
  try {
    server.listen(io.get_executor(), {.port = port, .host = host});
  } catch (const coronet::error& e) {
    std::cerr << "chat_server: " << e.what() << '\n';
    return 1;
  }
  std::cout << "listening on " << host << ':' << server.address()->port << std::endl;

  room chat(limits);
  asio::co_spawn(io,
                 server.serve([&chat](coronet::Socket s) { return session(chat, std::move(s)); }),
                 asio::detached);
  // The first Ctrl-C says goodbye and ends every socket; the process exits when
  // the clients have gone. A second Ctrl-C does not wait for them.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code, int) {
    server.close();
    chat.shut_down();
    signals.async_wait([&](std::error_code, int) { io.stop(); });
    asio::co_spawn(io, server.wait_closed(), [&](std::exception_ptr) { signals.cancel(); });
  });
  io.run();
  return 0;
}
