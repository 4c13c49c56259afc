// coronet/detail/connection_tracker.hpp - how many sockets a server still has open,
// and what they all moved.
//
// Shared by a server and every socket it accepted, so that a socket outliving its
// Server object (or the reverse) is harmless, and server.wait_closed() can wake
// when the last one closes.
//
// Byte totals for server.stats() cost nothing per read or write: an open socket
// registers where its own two counters live (a slot here), the server sums those
// when asked, and a socket adds its final counts to the closed totals as it closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "event.hpp"

namespace coronet::detail {

/// Totals over every connection a server accepted, closed ones included.
struct connection_totals {
  std::uint64_t accepted = 0;
  std::uint64_t dropped = 0;
  std::size_t active = 0;
  std::uint64_t bytes_read = 0;
  std::uint64_t bytes_written = 0;
};

class connection_tracker {
 public:
  /// Where an open socket's counters are; given back to closed().
  using slot = std::uint32_t;

  explicit connection_tracker(asio::any_io_executor executor) : executor_(std::move(executor)) {}

  /// A socket opens; its counters stay readable at these addresses until closed().
  slot opened(const std::uint64_t* bytes_read, const std::uint64_t* bytes_written) {
    ++count_;
    ++accepted_;
    slot s;
    if (!free_.empty()) {
      s = free_.back();
      free_.pop_back();
    } else {
      s = static_cast<slot>(live_.size());
      live_.emplace_back();
    }
    live_[s] = {bytes_read, bytes_written};
    return s;
  }
  void closed(slot s) {
    closed_read_ += *live_[s].read;
    closed_written_ += *live_[s].written;
    live_[s] = {};
    free_.push_back(s);
    --count_;
    changed_.notify_all();
  }
  /// A connection refused by max_connections.
  void dropped() { ++dropped_; }

  std::size_t count() const { return count_; }

  /// O(most connections ever open at once): for a metrics call, not per request.
  connection_totals totals() const {
    connection_totals t{accepted_, dropped_, count_, closed_read_, closed_written_};
    for (const auto& c : live_) {
      if (c.read == nullptr) continue;
      t.bytes_read += *c.read;
      t.bytes_written += *c.written;
    }
    return t;
  }

  /// Wakes whoever waits in wait_closed() to re-check.
  void notify() { changed_.notify_all(); }
  awaitable<bool> wait_for_change() { return changed_.wait(executor_); }

 private:
  struct counters {
    const std::uint64_t* read = nullptr;
    const std::uint64_t* written = nullptr;
  };

  std::size_t count_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t dropped_ = 0;
  std::uint64_t closed_read_ = 0;
  std::uint64_t closed_written_ = 0;
  std::vector<counters> live_;  // indexed by slot; read == nullptr marks a free one
  std::vector<slot> free_;
  asio::any_io_executor executor_;
  event<asio::any_io_executor> changed_;
};

}  // namespace coronet::detail
