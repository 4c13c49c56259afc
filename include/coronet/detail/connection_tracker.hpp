// coronet/detail/connection_tracker.hpp - how many sockets a server still has open.
//
// Shared by a server and every socket it accepted, so that a socket outliving its
// Server object (or the reverse) is harmless, and server.wait_closed() can wake
// when the last one closes.
#pragma once

#include <cstddef>

#include "event.hpp"

namespace coronet::detail {

class connection_tracker {
 public:
  explicit connection_tracker(asio::any_io_executor executor) : executor_(std::move(executor)) {}

  void opened() { ++count_; }
  void closed() {
    --count_;
    changed_.notify_all();
  }
  std::size_t count() const { return count_; }

  /// Wakes whoever waits in wait_closed() to re-check.
  void notify() { changed_.notify_all(); }
  awaitable<bool> wait_for_change() { return changed_.wait(executor_); }

 private:
  std::size_t count_ = 0;
  asio::any_io_executor executor_;
  event<asio::any_io_executor> changed_;
};

}  // namespace coronet::detail
