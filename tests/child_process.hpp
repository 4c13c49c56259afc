// tests/child_process.hpp - a real peer program (Node.js, nc, an example binary)
// run beside the test, its stdout read line by line without blocking the io_context.
#pragma once

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <asio.hpp>
#include <coronet/coronet.hpp>

extern char** environ;

namespace test {

class child_process {
 public:
  /// Starts `argv[0]` (a path) with stdout (and stderr) piped to us.
  child_process(asio::any_io_executor executor, const std::vector<std::string>& argv)
      : out_(executor) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      throw std::runtime_error("cannot start " + argv[0]);
    }
    out_.assign(fds[0]);
  }
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }

  /// The next line it printed, without "\n"; nullopt once its output ends.
  coronet::awaitable<std::optional<std::string>> line() {
    auto [ec, n] =
        co_await asio::async_read_until(out_, asio::dynamic_buffer(buffer_), '\n',
                                        asio::experimental::as_tuple(asio::use_awaitable));
    if (ec) co_return std::nullopt;
    std::string l = buffer_.substr(0, n - 1);
    buffer_.erase(0, n);
    co_return l;
  }

  /// Every line until its output ends.
  coronet::awaitable<std::vector<std::string>> all_lines() {
    std::vector<std::string> lines;
    while (auto l = co_await line()) lines.push_back(*l);
    co_return lines;
  }

  /// Its exit status (waits for it).
  int wait() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_) pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  asio::posix::stream_descriptor out_;
  std::string buffer_;
};

/// Node, when the build found it (CORONET_NODE), else nullopt.
inline std::optional<std::string> node_path() {
  if (const char* p = std::getenv("CORONET_NODE"); p && *p) return std::string(p);
  return std::nullopt;
}

inline std::string source_path(const std::string& relative) {
  const char* root = std::getenv("CORONET_SOURCE_ROOT");
  return std::string(root ? root : ".") + "/" + relative;
}

}  // namespace test
