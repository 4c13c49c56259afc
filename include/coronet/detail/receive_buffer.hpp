// coronet/detail/receive_buffer.hpp - the bytes a socket has received and not yet
// handed out, in one contiguous block.
//
// Framed reads advance through it: taking a frame moves an offset, and the frame
// handed out is a view into the block itself, never a copy. The block is compacted
// (the unread tail moved to the front) only when there is no room left behind the
// data, so on a stream of small frames the copying is one partial frame per block,
// not one whole block per frame. Searches resume where the last one stopped.
//
// Storage comes from the per-thread buffer pool and goes back to it whenever the
// block is empty, so an idle connection holds none; a frame larger than a pooled
// block gets a block of its own, which is given up as soon as the socket waits
// with less than a pooled block's worth of data.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>

#include "buffer_pool.hpp"

namespace coronet::detail {

class receive_buffer {
 public:
  receive_buffer() = default;
  receive_buffer(const receive_buffer&) = delete;
  receive_buffer& operator=(const receive_buffer&) = delete;
  ~receive_buffer() { release(); }

  bool empty() const { return begin_ == end_; }
  std::size_t size() const { return end_ - begin_; }
  std::size_t capacity() const { return capacity_; }
  std::string_view data() const { return {block_.get() + begin_, size()}; }

  /// Makes room behind the data for at least `at_least` more bytes (and, when
  /// cheap, up to a pooled block's worth) and returns where to receive them.
  /// Invalidates views handed out earlier.
  std::pair<char*, std::size_t> prepare(std::size_t at_least = 1) {
    if (!block_) adopt_new_block(std::max(at_least, read_buffer_size));
    if (room() < at_least || room() < min_receive) {
      if (begin_ > 0 && capacity_ - size() >= std::max(at_least, min_receive)) {
        compact();
      } else if (room() < at_least) {
        grow(size() + std::max(at_least, read_buffer_size));
      }
    }
    return {block_.get() + end_, room()};
  }

  /// `n` bytes were received where prepare() said.
  void commit(std::size_t n) { end_ += n; }

  /// Copies bytes in behind the data.
  void append(const char* bytes, std::size_t n) {
    auto [at, space] = prepare(n);
    (void)space;
    std::memcpy(at, bytes, n);
    commit(n);
  }

  /// The first n bytes, as a view valid until the next prepare() or release().
  std::string_view take(std::size_t n) {
    std::string_view frame(block_.get() + begin_, n);
    begin_ += n;
    return frame;
  }

  /// Copies up to `max` bytes out and consumes them.
  std::size_t take_into(char* out, std::size_t max) {
    const std::size_t n = std::min(max, size());
    std::memcpy(out, block_.get() + begin_, n);
    begin_ += n;
    return n;
  }

  /// Before a socket waits: an empty block goes back to the pool, and an outsized
  /// one holding less than a pooled block is traded for a pooled block.
  void trim() {
    if (empty()) return release();
    if (capacity_ > read_buffer_size && size() <= read_buffer_size) {
      block_type smaller = buffer_pool::local().take();
      std::memcpy(smaller.get(), block_.get() + begin_, size());
      end_ = size();
      begin_ = 0;
      block_ = std::move(smaller);
      capacity_ = read_buffer_size;
    }
  }

  /// Drops the data and gives the storage back.
  void release() {
    if (capacity_ == read_buffer_size)
      buffer_pool::local().give(std::move(block_));
    else
      block_.reset();
    capacity_ = begin_ = end_ = 0;
  }

 private:
  using block_type = buffer_pool::buffer;

  // A receive into less room than this would cost a system call for a few bytes:
  // compact first.
  static constexpr std::size_t min_receive = 4 * 1024;

  std::size_t room() const { return capacity_ - end_; }

  void adopt_new_block(std::size_t capacity) {
    if (capacity <= read_buffer_size) {
      block_ = buffer_pool::local().take();
      capacity_ = read_buffer_size;
    } else {
      block_ = block_type(new char[capacity]);
      capacity_ = capacity;
    }
    begin_ = end_ = 0;
  }

  void compact() {
    std::memmove(block_.get(), block_.get() + begin_, size());
    end_ = size();
    begin_ = 0;
  }

  void grow(std::size_t capacity) {
    capacity = std::max(capacity, capacity_ * 2);
    block_type bigger(new char[capacity]);
    std::memcpy(bigger.get(), block_.get() + begin_, size());
    const std::size_t held = size();
    release();
    block_ = std::move(bigger);
    capacity_ = capacity;
    end_ = held;
  }

  block_type block_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace coronet::detail
