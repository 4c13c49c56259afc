// coronet/detail/connection_tracker.hpp - the sockets a server still has open.
//
// Shared by a server and every socket it accepted, so that a socket outliving its
// Server object (or the reverse) is harmless, and server.wait_closed() can wake
// when the last one closes. It counts them, and it links them in an intrusive
// list so that shutdown() can reach each one: a socket links itself when the
// server adopts it and unlinks when its descriptor closes, so the list costs two
// pointers per socket and no allocation.
#pragma once

#include <cstddef>
#include <vector>

#include "event.hpp"

namespace coronet::detail {

/// The list hook a socket carries; the server casts it back to its socket type.
class tracked_connection {
 private:
  friend class connection_tracker;
  tracked_connection* prev_ = nullptr;
  tracked_connection* next_ = nullptr;
  bool linked_ = false;
};

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

  void link(tracked_connection& c) {
    if (c.linked_) return;
    c.prev_ = nullptr;
    c.next_ = head_;
    if (head_) head_->prev_ = &c;
    head_ = &c;
    c.linked_ = true;
  }

  void unlink(tracked_connection& c) {
    if (!c.linked_) return;
    if (c.prev_) c.prev_->next_ = c.next_;
    if (c.next_) c.next_->prev_ = c.prev_;
    if (head_ == &c) head_ = c.next_;
    c.prev_ = c.next_ = nullptr;
    c.linked_ = false;
  }

  /// A copy of the list: acting on one socket may close others (and unlink them).
  std::vector<tracked_connection*> linked() const {
    std::vector<tracked_connection*> all;
    for (auto* c = head_; c; c = c->next_) all.push_back(c);
    return all;
  }

 private:
  std::size_t count_ = 0;
  tracked_connection* head_ = nullptr;
  asio::any_io_executor executor_;
  event<asio::any_io_executor> changed_;
};

}  // namespace coronet::detail
