// chat_server: Node's classic first `net` program. Every line a client sends is
// relayed to the others as "NAME: text". The first line a client sends is its
// name; /nick NAME renames, /who lists who is there, /quit leaves.
//
// Slow readers, NATS-style: lines to each client are queued with write_nowait().
// Past the high-water mark (64 KiB) the queue is a signal, not a failure: whoever
// sends waits, before reading its next line, until those behind catch up. A client
// is cut off (and the others told) only when its queue passes --max-queue, or when
// it has not caught up within --write-timeout: so one stalled reader holds the room
// up for at most that long, and memory stays bounded per client. An over-long line
// gets an error line and a goodbye (--max-line). SIGINT tells everyone and shuts
// down gracefully: a client in the middle of a line may finish it and gets its
// answer; after --grace seconds whoever is left is cut off.
//
//   chat_server [--host 127.0.0.1] [--port 0] [--max-line 1024] [--idle-timeout 0]
//               [--max-queue 1048576] [--write-timeout 5] [--grace 5]
//               [--tls-cert FILE --tls-key FILE]
//
// With --tls-cert and --tls-key it is a TLS server (coronet::tls::Server); the
// sessions do not change, since a TLS connection is the same coronet::Socket.
#include <csignal>
#include <cstdio>
#include <list>
#include <memory>

#include "cli.hpp"

namespace {

constexpr std::string_view usage =
    "usage: chat_server [--host HOST] [--port PORT] [--max-line BYTES] [--idle-timeout SECONDS]\n"
    "                   [--max-queue BYTES] [--write-timeout SECONDS] [--grace SECONDS]\n"
    "                   [--tls-cert FILE --tls-key FILE]\n"
    "  --host           address to listen on (default 127.0.0.1)\n"
    "  --port           port; 0 lets the kernel pick (default 0)\n"
    "  --max-line       longest line accepted, in bytes (default 1024)\n"
    "  --idle-timeout   disconnect a client silent this many seconds (default 0: never)\n"
    "  --max-queue      bytes queued for one client before it is cut off (default 1048576)\n"
    "  --write-timeout  seconds a client may stay behind before it is cut off (default 5)\n"
    "  --tls-cert       serve TLS with this PEM certificate (then its chain); needs --tls-key\n"
    "  --tls-key        the PEM private key of --tls-cert\n"
    "  Prints 'listening on HOST:PORT' first. Clients send their name as their first line.\n"
    "  --grace          on SIGINT/SIGTERM, seconds a client may take to finish the line it\n"
    "                   is sending before it is cut off (default 5)\n"
    "  Commands: /nick NAME, /who, /quit.\n"
    "SIGINT or SIGTERM: everyone is told; a client idle between lines is disconnected at once,\n"
    "  one in the middle of a line may finish it and gets its answer, and after --grace\n"
    "  whoever is left is cut off. Then it prints 'shutdown: N ended gracefully, M cut'\n"
    "  and exits. A second signal exits at once.\n"
    "Slow readers: once a client has 64 KiB waiting for it (or half --max-queue, if less),\n"
    "  each sender's next line waits until it catches up. A client that has not caught up\n"
    "  within --write-timeout, or whose queue passes --max-queue, is cut off, the others told.\n"
    "Memory: a client holds at most --max-queue bytes queued for it, plus --max-line + 128 KiB\n"
    "  of read buffers: in all about 6 MiB + CLIENTS x (max-queue + max-line + 128 KiB),\n"
    "  which is 6 MiB + CLIENTS x 1153 KiB at the defaults.\n";

constexpr std::size_t high_water_mark = 64 * 1024;  // Node's default

struct settings {
  std::size_t max_line = 1024;
  std::chrono::seconds idle{0};
  std::size_t max_queue = 1024 * 1024;
  std::chrono::seconds write_timeout{5};
  std::chrono::seconds grace{5};
};

struct client {
  coronet::Socket* socket = nullptr;  // null once its session has left
  std::string name;

  bool connected() const { return socket && !socket->destroyed(); }
  bool behind() const {
    return connected() && socket->writable_length() >= socket->high_water_mark();
  }
};

class room {
 public:
  explicit room(settings s) : settings_(s) {}

  /// Sends `line` to everyone who has a name, but `except`.
  void broadcast(const std::string& line, const client* except = nullptr) {
    for (auto& c : clients_) {
      if (c.get() != except && !c->name.empty()) send(*c, line);
    }
  }

  /// Queues a line for one client; past --max-queue the client is cut off. Replies
  /// to a client's own commands come here too, so asking without reading is bounded.
  void send(client& c, std::string_view line) {
    if (!c.connected()) return;
    try {
      c.socket->write_nowait(line);  // false past the high-water mark: see wait_for_readers()
    } catch (const coronet::error&) {
      return;  // already ending: its session cleans up
    }
    if (c.socket->writable_length() > settings_.max_queue) cut_off(c);
  }

  /// The sender's side of the policy: called before `me` reads its next line, waits
  /// while `me` or anyone `me` broadcasts to is past the high-water mark, each for at
  /// most --write-timeout, after which that one is cut off. Nobody waits longer: a
  /// reader that is cut off, or leaves, releases its waiters at once.
  coronet::awaitable<void> wait_for_readers(const client& me) {
    while (auto slow = first_behind(me)) {
      if (!co_await caught_up(*slow->socket) && slow->behind()) cut_off(*slow);
    }
  }

  /// True when everything queued for `socket` is in the kernel within --write-timeout.
  coronet::awaitable<bool> caught_up(coronet::Socket& socket) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer deadline(co_await asio::this_coro::executor, settings_.write_timeout);
    auto winner = co_await (drained(socket.drain()) || deadline.async_wait(asio::use_awaitable));
    co_return winner.index() == 0;
  }

  /// "* here: ann bob"; with `rtt`, each TCP client's smoothed round-trip time from
  /// TCP_INFO as well: "* here: ann (rtt 0.05 ms) bob (rtt 12.30 ms)".
  std::string who(bool rtt = false) const {
    std::string list = "* here:";
    for (const auto& c : clients_) {
      if (c->name.empty()) continue;
      list += " " + c->name;
      const auto info = rtt && c->connected() ? c->socket->info() : std::nullopt;
      if (info) {
        char ms[32];
        std::snprintf(ms, sizeof ms, " (rtt %.2f ms)", info->rtt.count() / 1000.0);
        list += ms;
      }
    }
    return list + "\n";
  }

  client& join(coronet::Socket& socket) {
    return *clients_.emplace_back(std::make_shared<client>(client{&socket, {}}));
  }
  void leave(client& c) {
    c.socket = nullptr;  // a sender still waiting on it must not touch the socket
    clients_.remove_if([&](const auto& x) { return x.get() == &c; });
  }

  /// Tells everyone the server is going; server.shutdown() then ends each socket.
  void announce_shutdown() {
    for (auto& c : clients_) send(*c, "* server shutting down\n");
  }

  const settings& limits() const { return settings_; }

 private:
  /// Shared, so a sender waiting on a client keeps it alive after it leaves.
  std::shared_ptr<client> first_behind(const client& me) const {
    for (const auto& c : clients_) {
      if ((c.get() == &me || !c->name.empty()) && c->behind()) return c;
    }
    return nullptr;
  }

  /// `drain`, where a socket that fails or is destroyed counts as drained: it holds
  /// nobody up any more. (`||` would otherwise wait for the timer.)
  static coronet::awaitable<void> drained(coronet::awaitable<void> drain) {
    try {
      co_await std::move(drain);
    } catch (const std::exception&) {
    }
  }

  /// Disconnects a client that does not keep up, and tells the others.
  void cut_off(client& c) {
    if (!c.connected()) return;
    c.socket->destroy();  // its session sees the error and leaves quietly
    std::string name = std::exchange(c.name, {});
    if (!name.empty()) broadcast("* " + name + " was disconnected: too slow\n");
  }

  settings settings_;
  std::list<std::shared_ptr<client>> clients_;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

/// Acts on one line from `me`; false for /quit.
bool handle(room& chat, client& me, std::string_view text) {
  if (text.empty()) return true;
  if (me.name.empty() || text.starts_with("/nick ")) {
    auto name = trim(me.name.empty() && !text.starts_with("/nick ") ? text : text.substr(6));
    if (name.empty() || name.find(' ') != std::string_view::npos) {
      chat.send(me, "* a name is one word\n");
      return true;
    }
    std::string old = std::exchange(me.name, std::string(name));
    if (old.empty()) {
      chat.broadcast("* " + me.name + " joined\n", &me);
      chat.send(me, chat.who());
    } else {
      chat.broadcast("* " + old + " is now " + me.name + "\n");
    }
  } else if (text == "/who") {
    chat.send(me, chat.who(true));
  } else if (text == "/quit") {
    chat.send(me, "* bye\n");
    return false;
  } else {
    chat.broadcast(me.name + ": " + std::string(text) + "\n", &me);
  }
  return true;
}

/// One client, from its name to its /quit (or FIN, or error).
coronet::awaitable<void> session(room& chat, coronet::Socket socket) {
  const auto& limits = chat.limits();
  socket.set_high_water_mark(std::min(high_water_mark, limits.max_queue / 2));
  if (limits.idle.count() > 0) socket.set_timeout(limits.idle);
  client& me = chat.join(socket);
  try {
    chat.send(me, "* welcome! send your name\n");
    for (;;) {
      co_await chat.wait_for_readers(me);  // the next line only once they keep up
      auto line = co_await socket.read_line(limits.max_line);
      if (!line || !handle(chat, me, trim(*line))) break;
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
  // The last lines (a goodbye, an error) go first, unless the client has stopped reading.
  if (co_await chat.caught_up(socket)) {
    try {
      co_await socket.end();
    } catch (const coronet::error&) {
    }
  }
}

/// Listens, serves the chat until SIGINT/SIGTERM, then shuts down gracefully.
/// `Listener` is coronet::Server or coronet::tls::Server: the rest is the same.
template <typename Listener>
int serve_chat(Listener& server, const std::string& host, int port, settings limits) {
  asio::io_context io{1};
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
  // The first Ctrl-C says goodbye and shuts down gracefully; the process exits
  // when every client has gone or been cut off. A second Ctrl-C does not wait.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    chat.announce_shutdown();
    signals.async_wait([&](std::error_code again, int) {
      if (!again) io.stop();
    });
    asio::co_spawn(io, server.shutdown(limits.grace),
                   [&](std::exception_ptr, coronet::ShutdownResult r) {
                     std::cout << "shutdown: " << r.graceful << " ended gracefully, " << r.cut
                               << " cut" << std::endl;
                     signals.cancel();
                   });
  });
  io.run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::args args(argc, argv, "chat_server", std::string(usage),
                 {"host", "port", "max-line", "idle-timeout", "max-queue", "write-timeout", "grace",
                  "tls-cert", "tls-key"});
  const std::string host = args.text("host", "127.0.0.1");
  const int port = static_cast<int>(args.number("port", 0, 0, 65535));
  settings limits;
  limits.max_line = static_cast<std::size_t>(args.number("max-line", 1024, 1, 1 << 24));
  limits.idle = std::chrono::seconds(args.number("idle-timeout", 0, 0, 86'400));
  limits.max_queue = static_cast<std::size_t>(args.number("max-queue", 1 << 20, 1024, 1 << 30));
  limits.write_timeout = std::chrono::seconds(args.number("write-timeout", 5, 1, 3600));
  limits.grace = std::chrono::seconds(args.number("grace", 5, 0, 3600));
  const std::string cert = args.text("tls-cert", ""), key = args.text("tls-key", "");
  if (args.has("tls-cert") || args.has("tls-key")) {
    args.require_tls();
    if (cert.empty() || key.empty()) args.fail("--tls-cert and --tls-key go together");
  }
#if CORONET_EXAMPLES_TLS
  if (!cert.empty()) {
    std::optional<coronet::tls::Server> server;
    try {
      server.emplace(coronet::ServerOptions{.allow_half_open = true},
                     coronet::tls::Options{.cert_file = cert, .key_file = key});
    } catch (const coronet::error& e) {
      std::cerr << "chat_server: " << e.what() << '\n';  // a missing file, a key that does not fit
      return 1;
    }
    return serve_chat(*server, host, port, limits);
  }
#endif
  coronet::Server server({.allow_half_open = true});
  return serve_chat(server, host, port, limits);
}
