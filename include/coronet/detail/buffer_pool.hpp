// coronet/detail/buffer_pool.hpp - read buffers lent to sockets only while they hold data.
//
// An idle socket waits for readability without a buffer; only when the kernel has
// bytes does it take one from this per-thread pool, and it gives it back when the
// caller asks for the next chunk. Ten thousand idle connections therefore cost
// ten thousand socket objects, not ten thousand 64 KiB buffers.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace coronet::detail {

/// Large enough that one recv() drains a loopback burst; bulk throughput is flat beyond it.
inline constexpr std::size_t read_buffer_size = 64 * 1024;

class buffer_pool {
 public:
  using buffer = std::unique_ptr<char[]>;

  /// The calling thread's pool: sockets of one io_context thread share it without locks.
  static buffer_pool& local() {
    thread_local buffer_pool pool;
    return pool;
  }

  buffer take() {
    if (free_.empty()) return buffer(new char[read_buffer_size]);
    buffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }

  void give(buffer b) {
    // Keep a few for the next readers; beyond that, memory goes back to the system
    // so a burst of busy connections does not pin its peak forever.
    if (b && free_.size() < max_free) free_.push_back(std::move(b));
  }

 private:
  static constexpr std::size_t max_free = 16;
  std::vector<buffer> free_;
};

}  // namespace coronet::detail
