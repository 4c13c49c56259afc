// coronet/detail/zero_copy.hpp - what pipe() and send_file() share: a SIGPIPE-safe
// way to let the kernel write into a socket, a per-thread pool of kernel pipes for
// splice(2), and send_file() itself.
//
// splice(2) and sendfile(2) take no MSG_NOSIGNAL: writing into a socket whose peer
// has gone raises SIGPIPE, which would kill the program. coronet promises that a
// reset peer is an error on that socket only, so each such call runs with SIGPIPE
// blocked on the calling thread, and the signal it raised is taken back before the
// mask is restored (two cheap system calls per call, or per run of splices that
// pipe() makes without waiting).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"

// After config.hpp: a pipe or a socket given to send_file() is read through Asio.
#include <asio/posix/stream_descriptor.hpp>

namespace coronet::detail {

/// SIGPIPE blocked on this thread for one system call that may raise it.
class sigpipe_blocked {
 public:
  sigpipe_blocked() {
    ::sigemptyset(&pipe_);
    ::sigaddset(&pipe_, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    // Only a thread that already blocked SIGPIPE can have one pending (otherwise it
    // was delivered when it came): only then is sigpending() worth its system call.
    if (::sigismember(&old_, SIGPIPE) == 1) {
      sigset_t pending;
      ::sigpending(&pending);
      was_pending_ = ::sigismember(&pending, SIGPIPE) == 1;
    }
  }
  ~sigpipe_blocked() {
    const int saved = errno;
    if (errno_was_epipe_ && !was_pending_) {
      // The call failed with EPIPE and raised SIGPIPE: take it, so that unblocking
      // does not deliver it. (One that was pending before is the program's own.)
      timespec now{};
      while (::sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved;
  }
  sigpipe_blocked(const sigpipe_blocked&) = delete;
  sigpipe_blocked& operator=(const sigpipe_blocked&) = delete;

  /// A call's result: a negative one with EPIPE means a SIGPIPE is pending. One
  /// scope may cover several calls (pipe() drains a kernel pipe repeatedly under one).
  ssize_t seen(ssize_t result) {
    if (result < 0 && errno == EPIPE) errno_was_epipe_ = true;
    return result;
  }

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool errno_was_epipe_ = false;
};

/// A kernel pipe for splice(2): both ends non-blocking.
struct kernel_pipe {
  int read_end = -1;
  int write_end = -1;
  std::size_t capacity = 0;

  void close() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
    read_end = write_end = -1;
  }
};

/// How much a kernel pipe holds. Larger than Linux's 64 KiB default, so a bulk
/// stream takes fewer splice calls; still a bound on what one pipe() holds in the
/// kernel (its pages are the socket's own, moved, not copied). Within the default
/// /proc/sys/fs/pipe-max-size (1 MiB); when the kernel refuses, the default stays.
inline constexpr std::size_t kernel_pipe_bytes = 256 * 1024;

/// Empty kernel pipes kept per thread, so a pipe() that goes idle gives its kernel
/// pipe back (an idle connection holds none) and a busy one does not pay pipe2()
/// per burst.
class kernel_pipe_pool {
 public:
  static kernel_pipe_pool& local() {
    thread_local kernel_pipe_pool pool;
    return pool;
  }
  ~kernel_pipe_pool() {
    for (auto& p : free_) p.close();
  }

  /// An empty pipe, or nullopt when the process is out of descriptors.
  std::optional<kernel_pipe> take() {
    if (!free_.empty()) {
      kernel_pipe p = free_.back();
      free_.pop_back();
      return p;
    }
    int ends[2];
    if (::pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) return std::nullopt;
    kernel_pipe p{ends[0], ends[1], 0};
    ::fcntl(p.write_end, F_SETPIPE_SZ, static_cast<int>(kernel_pipe_bytes));
    const int size = ::fcntl(p.write_end, F_GETPIPE_SZ);
    p.capacity = size > 0 ? static_cast<std::size_t>(size) : 64 * 1024;
    return p;
  }
  /// Takes back an empty pipe.
  void give(kernel_pipe p) {
    if (free_.size() < max_kept)
      free_.push_back(p);
    else
      p.close();
  }

 private:
  static constexpr std::size_t max_kept = 16;
  std::vector<kernel_pipe> free_;
};

/// The kernel pipe one pipe() moves bytes through, and how many bytes it holds.
/// Taken from the pool when bytes are to be moved, given back when empty.
class spliced_bytes {
 public:
  spliced_bytes() = default;
  ~spliced_bytes() {
    if (!pipe_) return;
    if (held_ == 0)
      kernel_pipe_pool::local().give(*pipe_);
    else
      pipe_->close();  // bytes nobody can deliver any more (the socket failed)
  }
  spliced_bytes(const spliced_bytes&) = delete;
  spliced_bytes& operator=(const spliced_bytes&) = delete;

  std::size_t held() const { return held_; }

  /// Whether a kernel pipe could be had (false: out of descriptors).
  bool ready() {
    if (!pipe_) pipe_ = kernel_pipe_pool::local().take();
    return pipe_.has_value();
  }
  /// Gives the pipe back while nothing is in it (before a wait that may be long).
  void give_back_if_empty() {
    if (pipe_ && held_ == 0) kernel_pipe_pool::local().give(*std::exchange(pipe_, std::nullopt));
  }

  /// Bytes the pipe can still take (it must be ready()).
  std::size_t room() const { return pipe_->capacity - held_; }

  /// One splice from `socket` into the pipe's room (room() > 0). Filling a pipe
  /// that still holds bytes lets the source's next bytes wait in the pipe while the
  /// destination takes the earlier ones, instead of in the source's kernel.
  ssize_t fill_from(int socket) {
    ssize_t n;
    do
      n = ::splice(socket, nullptr, pipe_->write_end, nullptr, room(),
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    if (n > 0) held_ += static_cast<std::size_t>(n);
    return n;
  }

  /// One splice from the pipe into `socket`, while `quiet` blocks SIGPIPE.
  ssize_t drain_to(int socket, sigpipe_blocked& quiet) {
    ssize_t n;
    do
      n = quiet.seen(::splice(pipe_->read_end, nullptr, socket, nullptr, held_,
                              SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
    while (n < 0 && errno == EINTR);
    if (n > 0) held_ -= static_cast<std::size_t>(n);
    return n;
  }

  /// What the pipe holds, taken out as a copy (for a pipe() that stops half-way).
  std::string take_all() {
    std::string out;
    if (!pipe_) return out;
    out.resize(held_);
    std::size_t at = 0;
    while (at < out.size()) {
      const ssize_t n = ::read(pipe_->read_end, out.data() + at, out.size() - at);
      if (n > 0) {
        at += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;  // cannot happen: the bytes are there
      }
    }
    out.resize(at);
    held_ = 0;
    return out;
  }

 private:
  std::optional<kernel_pipe> pipe_;
  std::size_t held_ = 0;
};

// ---------------------------------------------------------------- send_file

/// Where send_file()'s messages say the bytes come from: the path, or "fd N".
inline std::string file_name(int fd, const std::string& path) {
  return path.empty() ? "fd " + std::to_string(fd) : path;
}

/// How much of the file to send, decided before any byte moves.
struct file_range {
  bool seekable = false;
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;  // nullopt: until the file's end (a pipe's EOF)
};

inline file_range plan_range(int fd, const std::string& name, std::uint64_t offset,
                             std::optional<std::uint64_t> length) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw syscall_error("send_file", {errno, std::system_category()}, name);
  if (S_ISDIR(st.st_mode)) throw syscall_error("send_file", {EISDIR, std::system_category()}, name);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    if (offset != 0) {
      throw error(errc::invalid_argument, ": send_file offset " + std::to_string(offset) +
                                              " needs a file that can seek; " + name +
                                              " is a pipe, socket or device");
    }
    return {false, 0, length};
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (offset > size) {
    throw error(errc::out_of_range, ": send_file offset " + std::to_string(offset) +
                                        " is past the end of " + name + " (" +
                                        std::to_string(size) + " bytes)");
  }
  if (length && *length > size - offset) {
    throw error(errc::out_of_range, ": send_file asks for " + std::to_string(*length) +
                                        " bytes at offset " + std::to_string(offset) + " of " +
                                        name + ", which has " + std::to_string(size) + " bytes");
  }
  return {true, offset, length ? *length : size - offset};
}

/// The file ended before the bytes that were asked for.
inline error file_ended(const std::string& name, std::uint64_t sent, std::uint64_t wanted) {
  return error(make_error_code(errc::truncated_frame),
               "send_file: " + name + " ended after " + std::to_string(sent) + " of the " +
                   std::to_string(wanted) + " bytes asked for (it shrank meanwhile)");
}

/// A cancellation or a timeout part-way says how far the file got.
inline error stopped_after(const error& e, const std::string& name, std::uint64_t sent) {
  return error(e.code(), std::string(e.what()) + " after " + std::to_string(sent) + " bytes of " +
                             name + " were sent");
}

/// Sends `data` whole into the socket, waiting for room as a write does.
template <typename Core>
awaitable<void> send_all(Core& core, std::string_view data, std::uint64_t& sent,
                         const asio::cancellation_state& cancel) {
  while (!data.empty()) {
    std::size_t n = 0;
    if (std::error_code ec = core.send_some(asio::buffer(data), n))
      throw core.fail_with("send_file", ec);
    if (n == 0) {
      co_await core.wait_writable("send_file", cancel);
      continue;
    }
    data.remove_prefix(n);
    sent += n;
  }
}

/// sendfile(2) from a regular file: the kernel copies page cache to socket. Returns
/// false, having sent nothing, where the kernel refuses sendfile for this pair.
template <typename Core>
awaitable<bool> send_with_sendfile(Core& core, int fd, const std::string& name,
                                   const file_range& range, std::uint64_t& sent,
                                   const asio::cancellation_state& cancel) {
  const std::uint64_t wanted = *range.length;
  auto at = static_cast<off_t>(range.offset);
  while (sent < wanted) {
    if (core.over_budget_for("send_file", cancel)) co_await core.pace("send_file", cancel);
    // Linux moves at most 0x7ffff000 bytes per call.
    const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(wanted - sent, 0x7ffff000));
    ssize_t n;
    {
      sigpipe_blocked quiet;
      do n = quiet.seen(::sendfile(core.descriptor(), fd, &at, chunk));
      while (n < 0 && errno == EINTR);
    }
    if (n > 0) {
      sent += static_cast<std::uint64_t>(n);
      core.count_sent(static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) throw file_ended(name, sent, wanted);
    const int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      co_await core.wait_writable("send_file", cancel);
    } else if ((e == EINVAL || e == ENOSYS) && sent == 0) {
      co_return false;
    } else {
      throw core.fail_with("send_file", {e, std::system_category()});
    }
  }
  co_return true;
}

/// The fallback for a regular file: pread() into a buffer, then send it.
template <typename Core>
awaitable<void> send_by_copy(Core& core, int fd, const std::string& name, const file_range& range,
                             std::uint64_t& sent, const asio::cancellation_state& cancel) {
  constexpr std::size_t chunk = 64 * 1024;
  const auto buffer = std::make_unique<char[]>(chunk);
  const std::uint64_t wanted = *range.length;
  while (sent < wanted) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(wanted - sent, chunk));
    const ssize_t n = ::pread(fd, buffer.get(), want, static_cast<off_t>(range.offset + sent));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw syscall_error("send_file", {errno, std::system_category()}, name);
    if (n == 0) throw file_ended(name, sent, wanted);
    if (core.over_budget_for("send_file", cancel)) co_await core.pace("send_file", cancel);
    co_await send_all(core, std::string_view(buffer.get(), static_cast<std::size_t>(n)), sent,
                      cancel);
  }
}

/// The fallback for a pipe, a socket or a device: read it as it comes, then send.
/// Asio's descriptor sets O_NONBLOCK on it (shared with the caller's descriptor),
/// so the flags are put back afterwards.
template <typename Core>
awaitable<void> send_stream(Core& core, int fd, const std::string& name, const file_range& range,
                            std::uint64_t& sent, const asio::cancellation_state& cancel) {
  const int flags = ::fcntl(fd, F_GETFL);
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw syscall_error("send_file", {errno, std::system_category()}, name);
  asio::posix::stream_descriptor input(core.get_executor(), copy);
  struct restore_flags {
    int fd, flags;
    ~restore_flags() {
      if (flags >= 0) ::fcntl(fd, F_SETFL, flags);
    }
  } restore{fd, flags};
  constexpr std::size_t chunk = 64 * 1024;
  const auto buffer = std::make_unique<char[]>(chunk);
  for (;;) {
    std::size_t want = chunk;
    if (range.length) {
      if (sent >= *range.length) co_return;
      want = static_cast<std::size_t>(std::min<std::uint64_t>(*range.length - sent, chunk));
    }
    auto [ec, n] = co_await input.async_read_some(
        asio::buffer(buffer.get(), want), asio::experimental::as_tuple(asio::use_awaitable));
    if (core.failed()) throw core.fail_with("send_file", asio::error::operation_aborted);
    if (cancel.cancelled() != asio::cancellation_type::none || ec == asio::error::operation_aborted)
      throw error(asio::error::operation_aborted, "send_file cancelled");
    if (ec == asio::error::eof) {
      if (range.length) throw file_ended(name, sent, *range.length);
      co_return;
    }
    if (ec) throw syscall_error("send_file", ec, name);
    co_await send_all(core, std::string_view(buffer.get(), n), sent, cancel);
  }
}

/// send_file() on an open descriptor (see basic_socket::send_file()). `path` is
/// for messages; empty when the caller gave a descriptor.
template <typename Core>
awaitable<std::uint64_t> send_file(std::shared_ptr<Core> core, int fd, std::string path,
                                   std::uint64_t offset, std::optional<std::uint64_t> length) {
  const auto cancel = co_await asio::this_coro::cancellation_state;
  const std::string name = file_name(fd, path);
  core->check_writable_for("send_file");
  if (core->corked() > 0) {
    throw error(errc::invalid_argument,
                ": send_file() on a corked socket: uncork() first, so the file goes after "
                "what cork() holds");
  }
  const file_range range = plan_range(fd, name, offset, length);
  if (range.length && *range.length == 0) co_return 0;
  // What was written before goes first; then the socket is the file's alone, and
  // writes made meanwhile queue behind it.
  while (!core->write_side_free()) co_await Core::drain(core);
  core->check_writable_for("send_file");
  typename Core::write_claim claim{*core};
  std::uint64_t sent = 0;
  try {
    bool done = false;
    if (range.seekable && core->plain_descriptor())
      done = co_await send_with_sendfile(*core, fd, name, range, sent, cancel);
    if (!done && range.seekable) co_await send_by_copy(*core, fd, name, range, sent, cancel);
    if (!range.seekable) co_await send_stream(*core, fd, name, range, sent, cancel);
  } catch (const error& e) {
    claim.release();
    if (sent > 0 && !core->failed()) throw stopped_after(e, name, sent);
    throw;
  }
  claim.release();
  co_return sent;
}

/// send_file() by path: opened read-only for the call, closed after it.
template <typename Core>
awaitable<std::uint64_t> send_file_at(std::shared_ptr<Core> core, std::string path,
                                      std::uint64_t offset, std::optional<std::uint64_t> length) {
  if (path.empty()) throw error(errc::invalid_argument, ": send_file needs a path");
  core->check_writable_for("send_file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw syscall_error("send_file", {errno, std::system_category()}, path);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_after{fd};
  co_return co_await send_file(core, fd, path, offset, length);
}

}  // namespace coronet::detail
