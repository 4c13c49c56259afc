// coronet/detail/connection_tracker.hpp - the sockets a server still has open.
//
// Shared by a server and every socket it accepted, so that a socket outliving its
// Server object (or the reverse) is harmless, and server.wait_closed() can wake
// when the last one closes. It counts them, and it links them in an intrusive
// list so that shutdown() can reach each one: a socket links itself when the
// server adopts it and unlinks when its descriptor closes, so the list costs two
// pointers per socket and no allocation.
//
// It also keeps what server.stats() reports, at no cost per read or write: the
// accepted and dropped counts, and the bytes of closed connections, which each
// socket adds as it closes; the open ones' bytes are read through the list.
#pragma once

#include <cstddef>
#include <cstdint>
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

  void opened() {
    ++count_;
    ++accepted_;
  }
  /// A socket closed, having moved these bytes over its life.
  void closed(std::uint64_t bytes_read, std::uint64_t bytes_written) {
    --count_;
    closed_bytes_read_ += bytes_read;
    closed_bytes_written_ += bytes_written;
    changed_.notify_all();
  }
  /// A connection refused by max_connections.
  void dropped() { ++dropped_; }

  std::size_t count() const { return count_; }
  std::uint64_t accepted() const { return accepted_; }
  std::uint64_t dropped_count() const { return dropped_; }
  std::uint64_t closed_bytes_read() const { return closed_bytes_read_; }
  std::uint64_t closed_bytes_written() const { return closed_bytes_written_; }

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

  /// Calls `f` with each linked socket; `f` must not close any (see linked()).
  template <typename F>
  void for_each_linked(F f) const {
    for (const auto* c = head_; c; c = c->next_) f(*c);
  }

  /// A copy of the list: acting on one socket may close others (and unlink them).
  std::vector<tracked_connection*> linked() const {
    std::vector<tracked_connection*> all;
    for (auto* c = head_; c; c = c->next_) all.push_back(c);
    return all;
  }

 private:
  std::size_t count_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t closed_bytes_read_ = 0;
  std::uint64_t closed_bytes_written_ = 0;
  tracked_connection* head_ = nullptr;
  asio::any_io_executor executor_;
  event<asio::any_io_executor> changed_;
};

}  // namespace coronet::detail
