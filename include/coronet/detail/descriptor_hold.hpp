// coronet/detail/descriptor_hold.hpp - closing an Asio socket whose operation may
// still be in flight, without the next socket paying for it.
//
// On Asio's epoll backend, close() is all it takes: the waiting operation ends with
// operation_aborted and nothing of it is left. Asio 1.22's io_uring backend
// (-Dio_uring=enabled) frees its per-descriptor state at close() while the
// cancelled operation is still queued in it; the next socket opened is given that
// state, and when the cancellation comes back Asio submits the old operation again
// against the old descriptor *number*, which by then is usually the new socket's:
// a closed server's accept() took the next server's connection, a destroyed socket's
// read() the next connection's bytes (tests/test_descriptor_reuse.cpp).
//
// So under io_uring the socket is released from Asio (which cancels as close()
// does) and its number is pointed at a placeholder with dup2(): the connection's
// file leaves the descriptor table at once, as close() would take it, but the number
// stays taken by a socket on which any late operation fails at once (an unconnected
// Unix stream socket: no bytes, no connections, HUP to a poll). Three system calls
// more per close, on io_uring only. The numbers a hold took are
// freed by release(), once its owner knows the operations are over (the server's
// last waiting accept() has returned, a connect()'s last attempt), or when the hold
// is destroyed: its owner (the socket core, the server's state, a connect race) is
// kept alive by every operation it has in flight, so that is after they have run.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <system_error>
#include <vector>

#include "../config.hpp"

namespace coronet::detail {

#if defined(ASIO_HAS_IO_URING_AS_DEFAULT)

class descriptor_hold {
 public:
  descriptor_hold() = default;
  descriptor_hold(const descriptor_hold&) = delete;
  descriptor_hold& operator=(const descriptor_hold&) = delete;
  ~descriptor_hold() { release(); }

  /// Closes `s` (an Asio socket or acceptor) as described above.
  template <typename AsioSocket>
  void close(AsioSocket& s) {
    std::error_code ec;
    const int fd = s.release(ec);  // cancels its operations, as close() does
    if (ec || fd < 0) return;
    const int placeholder = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (placeholder >= 0 && ::dup3(placeholder, fd, O_CLOEXEC) == fd) {
      held_.push_back(fd);
    } else {
      ::close(fd);  // no placeholder to be had: close as Asio would
    }
    if (placeholder >= 0) ::close(placeholder);
  }

  /// Frees the numbers held: call it once the closed sockets' operations have all
  /// completed (their waiting coroutines have resumed).
  void release() {
    for (const int fd : held_) ::close(fd);
    held_.clear();
  }

 private:
  std::vector<int> held_;
};

#else

/// Asio's epoll backend keeps a closed socket's operations to itself: close() it is.
class descriptor_hold {
 public:
  template <typename AsioSocket>
  void close(AsioSocket& s) {
    std::error_code ignored;
    s.close(ignored);
  }
  void release() {}
};

#endif

}  // namespace coronet::detail
