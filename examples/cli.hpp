// examples/cli.hpp - the little every example needs: --flags with --help, and
// stdin read on a thread of its own (stdin may be a file, which epoll cannot
// watch, or a terminal) and handed to the io_context one chunk at a time.
#pragma once

#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <future>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <coronet/coronet.hpp>
// The build defines CORONET_EXAMPLES_TLS where it found OpenSSL; without it the
// --tls flags are refused with a message saying so.
#if CORONET_EXAMPLES_TLS
#include <coronet/tls.hpp>
#endif

namespace cli {

/// `--name value` flags, `--name` switches and positional arguments. Prints usage
/// for --help (exit 0) and a one-line error plus usage for anything it does not
/// know (exit 2).
class args {
 public:
  args(int argc, char** argv, std::string_view program, std::string_view usage,
       std::vector<std::string_view> flags, std::vector<std::string_view> switches = {})
      : program_(program), usage_(usage) {
    for (int i = 1; i < argc; ++i) {
      std::string_view a = argv[i];
      if (a == "--help" || a == "-h") {
        std::cout << usage_;
        std::exit(0);
      }
      if (!a.starts_with("--")) {
        positional_.emplace_back(a);
        continue;
      }
      const auto name = a.substr(2);
      if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
        values_[std::string(name)] = "";
        continue;
      }
      if (std::find(flags.begin(), flags.end(), name) == flags.end())
        fail("unknown flag " + std::string(a));
      if (i + 1 >= argc) fail("flag " + std::string(a) + " needs a value");
      values_[std::string(name)] = argv[++i];
    }
  }

  /// Whether the flag or switch was given.
  bool has(const std::string& name) const { return values_.contains(name); }

  std::string text(const std::string& name, std::string fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }

  long number(const std::string& name, long fallback, long min, long max) const {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    long v = 0;
    auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec != std::errc() || end != it->second.data() + it->second.size() || v < min || v > max) {
      fail("--" + name + " must be a number from " + std::to_string(min) + " to " +
           std::to_string(max) + ", not '" + it->second + "'");
    }
    return v;
  }

  const std::vector<std::string>& positional() const { return positional_; }

  /// Refuses a TLS flag in a build without TLS.
  void require_tls() const {
#if !CORONET_EXAMPLES_TLS
    fail("this build has no TLS (OpenSSL 3 was not found when it was configured)");
#endif
  }

  [[noreturn]] void fail(const std::string& why) const {
    std::cerr << program_ << ": " << why << "\n" << usage_;
    std::exit(2);
  }

 private:
  std::string program_;
  std::string usage_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// Reads stdin on its own thread and hands each chunk to `sink` on the io_context,
/// waiting until the sink's coroutine finishes with it (so a slow socket slows the
/// reading: backpressure reaches the terminal or the pipe). An empty chunk means EOF.
template <typename Sink>
std::thread pump_stdin(asio::any_io_executor executor, Sink sink) {
  return std::thread([executor, sink]() mutable {
    std::string buffer(64 * 1024, '\0');
    for (;;) {
      ssize_t n = ::read(0, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      const std::string_view chunk(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
      std::promise<bool> handled;
      auto done = handled.get_future();
      asio::co_spawn(executor, sink(chunk), [&handled](std::exception_ptr e, bool keep_going) {
        handled.set_value(!e && keep_going);
      });
      if (!done.get() || chunk.empty()) return;
    }
  });
}

/// stdin to `socket` on a thread of its own (see pump_stdin): every chunk is written,
/// and stdin's end becomes the socket's end(), our FIN. `socket` must outlive it.
template <typename Socket>
void send_stdin(asio::any_io_executor executor, Socket& socket) {
  std::thread(pump_stdin(executor, [&socket](std::string_view chunk) -> coronet::awaitable<bool> {
    if (chunk.empty()) {
      co_await socket.end();
      co_return false;
    }
    co_await socket.write(chunk);
    co_return true;
  })).detach();
}

/// Writes all of `data` to stdout; false when stdout is gone.
inline bool write_stdout(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(1, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

/// "HOST:PORT" split at the last colon ("::1:80" works too).
inline std::optional<std::pair<std::string, int>> host_port(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  int port = 0;
  auto digits = text.substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return std::pair{std::string(text.substr(0, colon)), port};
}

}  // namespace cli
