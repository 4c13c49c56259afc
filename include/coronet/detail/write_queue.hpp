// coronet/detail/write_queue.hpp - the bytes a socket still owes the kernel, in order.
//
// Entries are either borrowed (a co_await write() keeps its buffer alive until it
// completes) or owned (write_nowait() copies what the kernel did not take at once),
// or an end marker (FIN goes out after everything queued before it). Entries
// complete strictly in order, so a writer only needs its sequence number to know
// when its bytes are gone: done when completed() >= its number.
//
// The storage is a ring, and owned entries keep their string's capacity when the
// slot is reused, so a socket in steady state does not allocate. What a burst left
// behind is given back once the queue drains: a string over 64 KiB (copying that
// much costs far more than allocating it again) and a ring over 64 entries. A
// connection that once queued megabytes does not keep them while idle.
#pragma once

#include <sys/uio.h>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace coronet::detail {

class write_queue {
 public:
  using sequence = std::uint64_t;

  bool empty() const { return !ring_ || ring_->count == 0; }
  std::size_t bytes() const { return ring_ ? ring_->bytes : 0; }
  /// Sequence number of the last entry that completed (0 before any).
  sequence completed() const { return ring_ ? ring_->completed : 0; }
  bool front_is_end() const { return !empty() && at(0).is_end; }

  /// Queues bytes the caller keeps alive until its sequence number completes.
  sequence push_borrowed(const char* data, std::size_t size) {
    entry& e = push_slot();
    e.borrowed = data;
    e.size = size;
    ring_->bytes += size;
    return last_sequence();
  }

  /// Queues a private copy of the bytes.
  sequence push_owned(std::string_view data) {
    entry& e = push_slot();
    e.owned.assign(data);
    e.is_owned = true;
    e.size = data.size();
    ring_->bytes += data.size();
    return last_sequence();
  }

  /// Queues the FIN: it leaves once every entry before it has.
  sequence push_end() {
    push_slot().is_end = true;
    return last_sequence();
  }

  /// Fills iov with the data entries at the front (stopping at an end marker).
  /// Returns how many iovec slots were used.
  std::size_t gather(iovec* iov, std::size_t max) const {
    std::size_t n = 0;
    const std::size_t count = ring_ ? ring_->count : 0;
    for (std::size_t i = 0; i < count && n < max; ++i) {
      const entry& e = at(i);
      if (e.is_end) break;
      iov[n].iov_base = const_cast<char*>(e.data());
      iov[n].iov_len = e.size - e.offset;
      ++n;
    }
    return n;
  }

  /// The kernel took n bytes from the front: completes the entries it covered.
  void consume(std::size_t n) {
    if (n == 0) return;
    ring_->bytes -= n;
    while (n > 0) {
      entry& e = at(0);
      std::size_t left = e.size - e.offset;
      if (n < left) {
        e.offset += n;
        return;
      }
      n -= left;
      pop();
    }
  }

  /// The writer of entry `seq` stops waiting (it was cancelled) and can no longer
  /// keep its bytes alive: what is left of them becomes a private copy.
  void own(sequence seq) {
    if (seq <= completed() || seq > last_sequence()) return;
    entry& e = at(static_cast<std::size_t>(seq - completed() - 1));
    if (e.is_owned || e.is_end) return;
    e.owned.assign(e.borrowed + e.offset, e.size - e.offset);
    e.size -= e.offset;
    e.offset = 0;
    e.is_owned = true;
  }

  /// Completes the end marker at the front, once the FIN is sent.
  void pop_end() { pop(); }

  /// Drops everything (the socket failed): every queued sequence counts as completed,
  /// and the waiters learn the outcome from the socket's failure.
  void clear() {
    if (!ring_) return;
    while (ring_->count > 0) pop();
    ring_->bytes = 0;
  }

 private:
  struct entry {
    const char* borrowed = nullptr;
    std::string owned;
    std::size_t size = 0;
    std::size_t offset = 0;
    bool is_owned = false;
    bool is_end = false;

    const char* data() const { return (is_owned ? owned.data() : borrowed) + offset; }
  };

  /// Everything but the pointer to it, made by the first push: most sockets never
  /// queue (the kernel takes their writes at once), and an idle one carries 8 bytes.
  struct ring {
    std::vector<entry> slots;  // size is zero or a power of two
    std::size_t head = 0;
    std::size_t count = 0;
    std::size_t bytes = 0;
    sequence completed = 0;
  };

  entry& at(std::size_t i) { return ring_->slots[(ring_->head + i) & (ring_->slots.size() - 1)]; }
  const entry& at(std::size_t i) const {
    return ring_->slots[(ring_->head + i) & (ring_->slots.size() - 1)];
  }

  sequence last_sequence() const { return ring_ ? ring_->completed + ring_->count : 0; }

  entry& push_slot() {
    if (!ring_) ring_ = std::make_unique<ring>();
    if (ring_->count == ring_->slots.size()) grow();
    entry& e = at(ring_->count++);
    e.borrowed = nullptr;
    e.size = e.offset = 0;
    e.is_owned = e.is_end = false;
    return e;
  }

  void pop() {
    entry& e = at(0);
    if (e.owned.capacity() > kept_string_capacity)
      std::string().swap(e.owned);
    else
      e.owned.clear();  // keeps capacity for the next owned entry in this slot
    ring_->head = (ring_->head + 1) & (ring_->slots.size() - 1);
    --ring_->count;
    ++ring_->completed;
    if (ring_->count == 0 && ring_->slots.size() > kept_ring_entries) {
      ring_->slots = {};
      ring_->head = 0;
    }
  }

  static constexpr std::size_t kept_string_capacity = 64 * 1024;
  static constexpr std::size_t kept_ring_entries = 64;

  void grow() {
    std::vector<entry> bigger(ring_->slots.empty() ? 4 : ring_->slots.size() * 2);
    for (std::size_t i = 0; i < ring_->count; ++i) bigger[i] = std::move(at(i));
    ring_->slots = std::move(bigger);
    ring_->head = 0;
  }

  std::unique_ptr<ring> ring_;
};

}  // namespace coronet::detail
