// coronet/detail/socket_core.hpp - one connected stream socket (TCP or Unix-domain):
// its state machine, its read side and its write queue, in one place.
//
// The public basic_socket is a handle to this object. Every operation in flight
// holds a shared_ptr to it, so moving or dropping the handle while a read or a
// write waits elsewhere is harmless: the core lives until the last of them ends.
//
// State. A socket is open from the moment it exists (connect() and accept() hand
// out connected sockets only). Our end() ends the write side, the peer's FIN ends
// the read side, and when both have ended the descriptor is closed. destroy() or
// an I/O error closes it at once. Every public call asks this one object whether
// it is allowed (check_readable / check_writable), so "write after end" and "read
// after destroy" are decided here and nowhere else.
//
// Reading. Received bytes live in one receive_buffer; read() hands out a view of
// all of them, framed reads a view of one frame, and both stay valid until the
// next read. A drained socket gives the buffer back and waits by receiving into
// its small inline buffer (received_inline(); docs/design.md says why), so an idle
// socket holds no buffer.
//
// Writing. A write first tries the kernel directly; only what the kernel refuses
// is queued. One coroutine at a time (the flusher) drains the queue with gather
// writes; other writers wait on their sequence number. end() is a queue entry too.
//
// Cancellation (one contract for every operation, docs/guide.md states it): an
// operation whose cancellation was requested either completed, or left the socket
// as if it had never started. Each one reads the cancellation state before every
// suspension and after every resumption; a read that finds bytes after the
// request puts them back for the next read, and a write whose caller stops
// waiting copies what it still owes, so no caller's buffer is touched afterwards.
//
// Fairness. An operation that completes without waiting is charged to a budget;
// when it is spent the next operation first yields to the executor once, so one
// peer that sends faster than its handler consumes cannot starve timers and the
// other sockets of the same thread (tokio's cooperative budget is the model).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "../address.hpp"
#include "../decoder.hpp"
#include "../error.hpp"
#include "buffer_pool.hpp"
#include "connection_tracker.hpp"
#include "descriptor_hold.hpp"
#include "event.hpp"
#include "reactor.hpp"
#include "receive_buffer.hpp"
#include "secure_layer.hpp"
#include "write_queue.hpp"

namespace coronet::detail {

/// What a socket is told when it is created (by connect() or by a server's accept).
struct socket_settings {
  bool unix_domain = false;  // a Unix-domain connection: no TCP options, no remote address
  bool allow_half_open = false;
  bool paused = false;
  std::size_t high_water_mark = 64 * 1024;
};

/// The cooperative budget: how much one socket may do without waiting before its
/// next operation yields to the executor once. Measured on the benchmark rows
/// (docs/design.md): at these bounds the yields cost nothing visible, and a flood
/// delays a 10 ms timer on the same thread by about a millisecond.
inline constexpr int budget_operations = 64;
inline constexpr std::size_t budget_bytes = 512 * 1024;

/// Adds a duration to a time point without overflowing: a timeout of
/// milliseconds::max() means "never", not "at once".
template <typename Clock, typename Rep, typename Period>
typename Clock::time_point saturating_add(typename Clock::time_point at,
                                          std::chrono::duration<Rep, Period> d) {
  using namespace std::chrono;
  const auto left = Clock::time_point::max() - at;
  if (d >= duration_cast<duration<Rep, Period>>(left)) return Clock::time_point::max();
  return at + duration_cast<typename Clock::duration>(d);
}

template <typename Executor>
class socket_core : public std::enable_shared_from_this<socket_core<Executor>>,
                    public tracked_connection {
 public:
  /// One socket type for TCP and Unix-domain connections: the byte moving is the
  /// same, and only options and addresses differ (settings.unix_domain says which).
  using stream_socket = asio::basic_stream_socket<asio::generic::stream_protocol, Executor>;
  using endpoint = asio::ip::tcp::endpoint;
  using clock = std::chrono::steady_clock;
  using pointer = std::shared_ptr<socket_core>;
  using frame = std::optional<std::string_view>;

  /// `remote` is the peer of a TCP connection (unused for a Unix-domain one).
  /// `layer`, when given, moves the bytes (TLS, set up by coronet/tls.hpp); without
  /// one the socket reads and writes the descriptor itself.
  socket_core(stream_socket socket, const endpoint& remote, const socket_settings& settings,
              std::shared_ptr<connection_tracker> tracker,
              std::unique_ptr<secure_layer> layer = nullptr)
      : socket_(std::move(socket)),
        layer_(std::move(layer)),
        tracker_(std::move(tracker)),
        high_water_mark_(settings.high_water_mark),
        remote_(remote),
        unix_domain_(settings.unix_domain),
        allow_half_open_(settings.allow_half_open),
        paused_(settings.paused),
        single_threaded_reactor_(reactor_is_single_threaded(socket_.get_executor())) {
    make_non_blocking();
    if (tracker_) tracker_->opened();
  }

  ~socket_core() { close_descriptor(); }

  socket_core(const socket_core&) = delete;
  socket_core& operator=(const socket_core&) = delete;

  // ---------------------------------------------------------------- reading

  /// The next chunk of bytes (decoded text once an encoding is set), or nullopt
  /// once the peer has sent FIN.
  ///
  /// An idle connection keeps this frame for as long as it is idle, so it holds
  /// only what outlives a wait: the socket, where a failure goes, the cancellation
  /// state and the claim on the read side. Everything between two waits happens in
  /// read_steps(), a plain function, and every wait is one Asio operation started by
  /// read_wait(), whose outcome the core keeps (docs/design.md counts the bytes).
  static awaitable<frame> read(pointer self, failure* out = nullptr) {
    const auto cancel = co_await asio::this_coro::cancellation_state;
    if (!self->claim_read(out)) co_return std::nullopt;
    read_turn turn{*self};
    while (self->read_steps(cancel, out)) co_await self->read_wait();
    co_return self->read_result();
  }

  /// The next bytes up to and including `delimiter` (without it, and without a
  /// "\r" before it, when `strip` is set); nullopt at a clean FIN. Throws
  /// errc::frame_too_long once `max` bytes arrive without it (they stay buffered
  /// for read()), and errc::truncated_frame on FIN inside a frame.
  static awaitable<frame> read_until(pointer self, std::string_view delimiter, std::size_t max,
                                     const char* op, bool strip = false, failure* out = nullptr) {
    try {
      // An empty delimiter would match forever, and no frame fits in fewer bytes than
      // its delimiter: both are the caller's mistake, said before any I/O.
      if (delimiter.empty())
        throw error(errc::invalid_argument, std::string(": ") + op + " needs a delimiter");
      if (max < delimiter.size()) {
        throw error(errc::invalid_argument, std::string(": ") + op + " max (" +
                                                std::to_string(max) +
                                                ") is smaller than the delimiter");
      }
      self->begin_read(op);
      reading_guard guard{*self};
      const auto cancel = co_await asio::this_coro::cancellation_state;
      if (self->must_yield(op, cancel)) co_await self->yield_turn(op, cancel);
      std::size_t searched = 0;  // bytes at the front already known to hold no delimiter
      for (;;) {
        const std::string_view held = self->received_.data();
        const std::size_t at = find(held, delimiter, searched);
        if (at != std::string_view::npos) {
          const std::size_t length = at + delimiter.size();
          if (length > max) throw self->frame_too_long(op, max);
          std::string_view line = *self->take_frame(length);
          if (strip) {
            line.remove_suffix(delimiter.size());
            if (line.ends_with('\r')) line.remove_suffix(1);
          }
          co_return line;
        }
        if (held.size() >= max) throw self->frame_too_long(op, max);
        // A delimiter may straddle what we have and what comes next.
        searched = held.size() >= delimiter.size() ? held.size() - delimiter.size() + 1 : 0;
        if (!co_await self->fill(op, 1, cancel)) co_return self->end_of_frames(op);
      }
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
    co_return std::nullopt;
  }

  /// Exactly `n` bytes; nullopt at a clean FIN; errc::truncated_frame on FIN inside them.
  static awaitable<frame> read_exactly(pointer self, std::size_t n, failure* out = nullptr) {
    try {
      self->begin_read("read_exactly");
      reading_guard guard{*self};
      const auto cancel = co_await asio::this_coro::cancellation_state;
      if (self->must_yield("read_exactly", cancel))
        co_await self->yield_turn("read_exactly", cancel);
      while (self->received_.size() < n) {
        if (!co_await self->fill("read_exactly", n - self->received_.size(), cancel))
          co_return self->end_of_frames("read_exactly");
      }
      co_return self->take_frame(n);
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
    co_return std::nullopt;
  }

  /// Decodes what read() returns from now on (Node's setEncoding()).
  void set_encoding(encoding enc) { rarely().decoder.emplace(enc); }
  std::optional<encoding> get_encoding() const {
    if (!rarely_ || !rarely_->decoder) return std::nullopt;
    return rarely_->decoder->get_encoding();
  }

  /// Up to buffer.size() bytes into the caller's buffer; 0 once the peer has sent FIN.
  static awaitable<std::size_t> read_some(pointer self, asio::mutable_buffer buffer,
                                          failure* out = nullptr) {
    try {
      self->begin_read("read");
      reading_guard guard{*self};
      const auto cancel = co_await asio::this_coro::cancellation_state;
      if (self->must_yield("read", cancel)) co_await self->yield_turn("read", cancel);
      char* into = static_cast<char*>(buffer.data());
      if (!self->received_.empty())
        co_return self->charge(self->received_.take_into(into, buffer.size()));
      if (self->read_eof_ || buffer.size() == 0) co_return 0;
      for (;;) {
        if (self->paused_) co_await self->wait_until_resumed("read", cancel);
        if (!self->received_.empty())
          co_return self->charge(self->received_.take_into(into, buffer.size()));
        if (self->read_eof_) co_return 0;
        std::size_t n = 0;
        std::error_code ec = self->receive(into, buffer.size(), n);
        if (!ec) co_return self->charge(n);
        if (ec != asio::error::would_block) throw self->fail("read", ec);
        co_await self->wait_readable("read", cancel);
      }
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
    co_return 0;
  }

  /// Bytes received and not yet handed out (Node's readableLength).
  std::size_t readable_length() const { return received_.size(); }

  void pause() { paused_ = true; }
  void resume() {
    paused_ = false;
    resume_event_.notify_all();
  }
  bool is_paused() const { return paused_; }

  // ---------------------------------------------------------------- writing

  /// Completes once every byte of `data` is in the kernel's send buffer (at once
  /// while corked: the bytes are copied and leave at uncork()).
  /// `many`, or when it is empty the one buffer `single` (kept by value in this
  /// frame, so a caller may pass a temporary).
  ///
  /// The frame is small (write_at_once() does the work that never waits, and
  /// write_rest() the waiting) because Asio's frame cache hands a freed frame's
  /// block to the next frame that fits: an echo handler's idle read() takes the
  /// block its last write() freed, and keeps it while idle.
  static awaitable<void> write(pointer self, asio::const_buffer single,
                               std::span<const asio::const_buffer> many = {},
                               failure* out = nullptr) {
    const auto cancel = co_await asio::this_coro::cancellation_state;
    const std::size_t sent = self->write_at_once(single, many, cancel, out);
    if (sent != written) co_await self->write_rest(&single, &many, sent, cancel, out);
  }

  /// Node's write(): queues without waiting; false once the queue passes the high-water mark.
  bool write_nowait(std::span<const asio::const_buffer> data) {
    check_writable("write");
    std::size_t skip = 0;
    if (can_send_directly()) {
      if (std::error_code ec = send_now(data, skip)) throw fail("write", ec);
    }
    for (auto piece : data) {
      const std::size_t skipped = std::min(skip, piece.size());
      piece += skipped;
      skip -= skipped;
      if (piece.size() > 0) push_copy(piece);
    }
    return queue_.bytes() < high_water_mark_;
  }

  /// Node's cork(): writes are held in memory until as many uncork() calls.
  void cork() { ++corked_; }
  /// Node's uncork(): the last one sends everything held, in one gather write
  /// when the kernel takes it all.
  void uncork() {
    if (corked_ == 0 || --corked_ > 0) return;
    send_queued_now();
  }
  int corked() const { return corked_; }

  /// Completes when the write queue is empty (Node's 'drain').
  static awaitable<void> drain(pointer self, failure* out = nullptr) {
    try {
      const auto cancel = co_await asio::this_coro::cancellation_state;
      if (self->corked_ > 0 && !self->queue_.empty()) {
        throw error(errc::invalid_argument,
                    ": drain() on a corked socket would wait forever; uncork() first");
      }
      while (!self->queue_.empty()) {
        if (self->failure_) throw self->failure_error("drain");
        co_await self->wait_flushed(self->queue_.completed() + 1, "drain", cancel);
      }
      if (self->failure_) throw self->failure_error("drain");
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
    co_return;
  }

  /// Half-close: `last` (if any), then FIN, after everything queued. Reading goes
  /// on. The last bytes and the FIN are handed over together, so a cancelled end()
  /// still sends both: a copy of what the kernel did not take at once is queued.
  static awaitable<void> end(pointer self, asio::const_buffer last = {}, failure* out = nullptr) {
    try {
      const auto cancel = co_await asio::this_coro::cancellation_state;
      if (last.size() > 0) {
        self->check_writable("end");
        self->corked_ = 0;
        std::size_t sent = 0;
        if (self->can_send_directly()) {
          if (std::error_code ec = self->send_now({&last, 1}, sent)) throw self->fail("end", ec);
        }
        if (sent < last.size()) self->push_copy(last + sent);
      }
      self->corked_ = 0;  // as in Node, end() uncorks
      if (self->end_requested_) {
        // A second end(), or ours after the automatic one: wait for the same FIN.
        while (!self->fin_sent_ && !self->failure_) {
          self->throw_if_cancelled(cancel, "end");
          if (!co_await self->write_event_.wait(self->socket_.get_executor())) {
            self->throw_if_cancelled(cancel, "end");
          }
        }
        if (self->failure_) throw self->failure_error("end");
        co_return;
      }
      if (self->closed_) throw self->destroyed_error("end");
      if (auto seq = self->queue_end()) co_await self->wait_flushed(seq, "end", cancel);
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
    co_return;
  }

  /// Closes at once. Pending operations finish with operation_aborted; queued bytes are dropped.
  void destroy() {
    if (closed_) return;
    if (!failure_) failure_ = asio::error::operation_aborted;
    close_descriptor();
    received_.release();  // destroyed: what was not read is dropped, as in Node
  }

  /// Sends RST instead of FIN (Node's resetAndDestroy): SO_LINGER with a zero timeout.
  void reset_and_destroy() {
    if (!closed_) {
      std::error_code ignored;
      socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    }
    destroy();
  }

  // ---------------------------------------------------------------- timeouts

  /// Node's setTimeout(): after `idle` without I/O, a waiting read() reports errc::timeout.
  void set_timeout(std::chrono::milliseconds idle) {
    idle_expired_ = false;
    if (idle.count() == 0) {
      if (idle_) {
        idle_->timeout = idle;
        idle_->timer.cancel();
      }
      return;
    }
    if (!idle_) idle_ = std::make_unique<idle_timeout>(socket_.get_executor());
    idle_->timeout = idle;
    idle_->last_activity = clock::now();
    arm_idle_timer();
  }
  std::chrono::milliseconds timeout() const {
    return idle_ ? idle_->timeout : std::chrono::milliseconds(0);
  }

  // ---------------------------------------------------------------- server shutdown

  /// server.shutdown(): end this connection as soon as it is idle, now if it is.
  /// Ending it sends our FIN and the waiting read returns the end of the stream
  /// (nullopt, or 0 from read_some()), as if the peer had ended, so a handler's
  /// read loop finishes normally; then the descriptor closes.
  void end_when_idle() {
    end_when_idle_ = true;
    end_if_idle();
  }

  // ---------------------------------------------------------------- state

  std::string_view ready_state() const {
    const bool readable = !read_eof_ && !closed_;
    const bool writable = !end_requested_ && !closed_;
    if (readable && writable) return "open";
    if (readable) return "readOnly";
    if (writable) return "writeOnly";
    return "closed";
  }

  bool destroyed() const { return closed_; }
  bool read_ended() const { return read_eof_; }
  bool write_ended() const { return end_requested_; }
  bool allow_half_open() const { return allow_half_open_; }
  std::uint64_t bytes_read() const { return bytes_read_; }
  std::uint64_t bytes_written() const { return bytes_written_; }
  std::size_t writable_length() const { return queue_.bytes(); }
  std::size_t high_water_mark() const { return high_water_mark_; }
  void set_high_water_mark(std::size_t bytes) { high_water_mark_ = bytes; }
  /// Bytes of storage the read side holds now (the tests watch idle sockets with it).
  std::size_t receive_capacity() const { return received_.capacity(); }

  bool unix_domain() const { return unix_domain_; }
  /// The peer; {} for a Unix-domain connection (its peer has no name, as in Node).
  Address remote_address() const { return unix_domain_ ? Address{} : to_address(remote_); }
  /// Read from the kernel on first use and kept, so it still answers after close.
  Address local_address() {
    if ((!rarely_ || !rarely_->local) && !closed_) {
      std::error_code ec;
      auto ep = socket_.local_endpoint(ec);
      if (!ec) rarely().local = to_address(ep);
    }
    return rarely_ && rarely_->local ? *rarely_->local : Address{};
  }

  stream_socket& native() { return socket_; }
  /// What TLS negotiated; nullptr on a plain socket.
  const TlsInfo* tls() const { return layer_ ? &layer_->info() : nullptr; }
  Executor get_executor() { return socket_.get_executor(); }

  // ---------------------------------------------------------------- zero-copy hooks
  //
  // pipe() (pipe.hpp) and send_file() (detail/zero_copy.hpp) let the kernel move
  // bytes between descriptors (splice(2), sendfile(2)) without passing them through
  // the receive buffer or the write queue. These hooks are how they keep the core's
  // rules: the read side is claimed as read() claims it, waits follow the same
  // cancellation and idle-timeout rules, and moved bytes count as the core's own.
  // Nothing else in the core knows about them.

  /// True when the descriptor carries the stream's bytes as they are (TCP and Unix),
  /// so the kernel may splice or sendfile them. Over TLS it does not: the movers
  /// then copy through the core (read(), write_nowait(), send_some()) instead.
  bool plain_descriptor() const { return !layer_; }
  int descriptor() { return socket_.native_handle(); }

  /// The read side, claimed as read() claims it (errc::read_in_progress if a read
  /// waits), so the idle timer knows a reader is waiting.
  class read_claim {
   public:
    read_claim(socket_core& core, const char* op) : core_(core) {
      core_.check_readable(op);
      core_.reading_ = true;
    }
    ~read_claim() { core_.reading_ = false; }
    read_claim(const read_claim&) = delete;
    read_claim& operator=(const read_claim&) = delete;

   private:
    socket_core& core_;
  };
  /// Held by send_file(): writes made meanwhile queue behind it, as behind a flusher.
  /// release() lets them go (a frame destroyed unresumed only drops the claim).
  class write_claim {
   public:
    explicit write_claim(socket_core& core) : core_(core) { core_.flushing_ = true; }
    ~write_claim() {
      if (core_.flushing_) core_.flushing_ = false;
    }
    write_claim(const write_claim&) = delete;
    write_claim& operator=(const write_claim&) = delete;
    void release() {
      core_.flushing_ = false;
      core_.write_event_.notify_all();
      core_.ensure_flusher();
    }

   private:
    socket_core& core_;
  };
  void check_writable_for(const char* op) const { check_writable(op); }
  /// Nothing queued, no flush running, not corked: bytes sent now keep the queue's order.
  bool write_side_free() const { return can_send_directly(); }

  /// A FIN that a paused read met is taken now; true once the peer's FIN was read.
  bool take_fin() {
    if (fin_held_) {
      fin_held_ = false;
      on_peer_end();
    }
    return read_eof_;
  }
  /// The source's receive buffer, raw (no decoding), handed out as read() would.
  std::string_view take_received() { return received_.take(received_.size()); }
  void peer_ended() { on_peer_end(); }
  /// Bytes the kernel moved for us count as received or sent, and as activity.
  void count_received(std::size_t n) {
    bytes_read_ += n;
    budget_bytes_ += n;
    ++budget_ops_;
    idle_fired_for_reader_ = false;  // bytes moved: the idle period the timer saw is over
    note_activity();
  }
  void count_sent(std::size_t n) {
    bytes_written_ += n;
    note_activity();
  }
  /// One non-blocking send, as write() sends: `sent` may be short, 0 when the kernel is full.
  std::error_code send_some(asio::const_buffer data, std::size_t& sent) {
    sent = 0;
    return send_now({&data, 1}, sent);
  }
  /// A copy of bytes owed to the peer, queued behind what is queued (a cancelled mover's rest).
  void queue_copy(std::string_view bytes) { push_copy(asio::buffer(bytes)); }
  /// An I/O error on this socket: it is destroyed, and the error is returned to throw.
  error fail_with(const char* op, std::error_code ec) { return fail(op, ec); }

  /// The budget, for a mover that may never wait: when over_budget_for() says so
  /// (it throws if cancelled), co_await pace() before moving more.
  bool over_budget_for(const char* op, const asio::cancellation_state& cancel) const {
    return must_yield(op, cancel);
  }
  awaitable<void> pace(const char* op, const asio::cancellation_state& cancel) {
    return yield_turn(op, cancel);
  }
  /// Whether destroy() or an I/O error closed it (a graceful close is not a failure).
  bool failed() const { return static_cast<bool>(failure_); }
  awaitable<void> wait_to_read(const char* op, const asio::cancellation_state& cancel) {
    if (paused_)
      co_await wait_until_resumed(op, cancel);
    else
      co_await wait_readable(op, cancel);
  }
  /// Waits until the kernel takes more bytes, with a read's rules: throws when
  /// cancelled, destroyed, or when set_timeout()'s idle period passes meanwhile.
  awaitable<void> wait_writable(const char* op, const asio::cancellation_state& cancel) {
    // before_wait() without its trim(): a view that a read of this socket lent out
    // stays valid while bytes are written into it.
    throw_if_cancelled(cancel, op);
    if (idle_expired_) {
      idle_expired_ = false;
      idle_fired_for_reader_ = false;
      throw timeout_error(op);
    }
    rested();
    writer_guard waiting{writable_waiters_};
    // TLS may have to read before it can write on, as flush() knows.
    const bool needs_read = layer_ && layer_->blocked_on() == readiness::readable;
    auto [waited] = co_await socket_.async_wait(
        needs_read ? asio::socket_base::wait_read : asio::socket_base::wait_write,
        asio::experimental::as_tuple(asio::use_awaitable));
    after_wait(op, waited, cancel);
  }

 private:
  struct reading_guard {
    socket_core& core;
    explicit reading_guard(socket_core& c) : core(c) { core.reading_ = true; }
    ~reading_guard() { core.reading_ = false; }
  };

  struct flushing_guard {
    socket_core& core;
    explicit flushing_guard(socket_core& c) : core(c) { core.flushing_ = true; }
    ~flushing_guard() {
      core.flushing_ = false;
      core.write_event_.notify_all();  // a waiting writer may take over
    }
  };

  struct writer_guard {
    int& count;
    explicit writer_guard(int& c) : count(++c) {}
    ~writer_guard() { --count; }
  };

  /// A write's claim on the caller's buffers; see write().
  struct borrowed_bytes {
    socket_core& core;
    write_queue::sequence seq;
    ~borrowed_bytes() {
      if (core.queue_.completed() >= seq) return;
      core.queue_.own(seq);
      // Only a coroutine that is still running may start another; a frame being
      // destroyed with its io_context must not schedule work on it.
      if (std::uncaught_exceptions() > 0) core.ensure_flusher();
    }
  };

  // ---- state checks: the one place that decides what is allowed

  void check_readable(const char* op) const {
    if (closed_ && !read_eof_) throw destroyed_error(op);
    if (reading_) throw error(errc::read_in_progress);
  }

  void check_writable(const char* op) const {
    if (end_requested_ && ended_by_peer_) throw error(errc::ended_by_peer);
    if (end_requested_) throw error(errc::write_after_end);
    if (closed_) throw destroyed_error(op);
  }

  static error destroyed_error(const char* op) {
    return error(make_error_code(errc::socket_destroyed),
                 std::string("Cannot call ") + op + " after the socket was destroyed");
  }

  error failure_error(const char* op) const {
    if (failure_ == asio::error::operation_aborted) {
      return error(failure_, std::string(op) + " aborted: the socket was destroyed");
    }
    if (failure_.category() == coronet::category())
      return error(failure_, std::string(op) + ": " + failure_.message());
    return syscall_error(op, failure_);
  }

  /// An I/O error: the socket is done (as in Node, an error destroys it).
  error fail(const char* op, std::error_code ec) {
    // Already destroyed: what a late operation met (on io_uring, the placeholder of
    // detail/descriptor_hold.hpp) is the destruction, not a failure of its own.
    if (closed_ && failure_ == asio::error::operation_aborted) return failure_error(op);
    if (!failure_) failure_ = ec;
    close_descriptor();
    received_.release();
    if (ec.category() != coronet::category()) return syscall_error(op, ec);
    // A layer's own failure (TLS): its words, and OpenSSL's when it has some.
    std::string what = std::string(op) + ": " + ec.message();
    if (layer_ && !layer_->error_detail().empty()) what += ": " + layer_->error_detail();
    return error(ec, std::move(what));
  }

  // ---- cancellation and the cooperative budget

  static bool is_cancelled(const asio::cancellation_state& cancel) {
    return cancel.cancelled() != asio::cancellation_type::none;
  }

  /// The one way an operation reports that its caller cancelled it. Called before
  /// every suspension (so Asio never throws its own plain system_error from inside
  /// coronet) and after every resumption.
  void throw_if_cancelled(const asio::cancellation_state& cancel, const char* op) const {
    if (!is_cancelled(cancel)) return;
    if (failure_) throw failure_error(op);
    throw cancelled_error(op);
  }

  /// Where every operation starts: a cancelled caller goes no further, and a
  /// socket that has spent its budget must let the rest of the thread run first.
  /// (Not a coroutine: on the fast path a nested coroutine frame would cost more
  /// than a framed read of a short line.)
  bool must_yield(const char* op, const asio::cancellation_state& cancel) const {
    throw_if_cancelled(cancel, op);
    return over_budget();
  }

  bool over_budget() const {
    return budget_ops_ >= budget_operations || budget_bytes_ >= budget_bytes;
  }

  /// The yield itself: a turn of the executor, then a whole budget again. Two posts:
  /// Asio's scheduler puts its reactor back at the end of the queue after each poll,
  /// so what the first turn's poll makes ready (a due timer, another socket) queues
  /// behind a single post; the second lets it run before this socket goes on.
  awaitable<void> yield_turn(const char* op, const asio::cancellation_state& cancel) {
    co_await rest();
    throw_if_cancelled(cancel, op);
  }

  /// Two turns of the executor, then a whole budget again.
  awaitable<void> rest() {
    co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    rested();
  }

  /// An operation completed without waiting: charge it to the budget.
  std::size_t charge(std::size_t bytes) {
    ++budget_ops_;
    budget_bytes_ += bytes;
    return bytes;
  }

  /// The socket waited (or yielded): its budget is whole again.
  void rested() {
    budget_ops_ = 0;
    budget_bytes_ = 0;
  }

  /// Our own recv() and sendmsg() calls must never block. With Asio's epoll reactor
  /// we tell Asio so. Its io_uring backend (-Dio_uring=enabled) would then wait on
  /// the socket with a poll and a recv() of its own, and Asio 1.22 performs that
  /// recv() even once the poll was cancelled: a cancelled read would wait on, a
  /// destroyed one report EBADF. There the descriptor is made non-blocking behind
  /// Asio's back, and Asio's receives, sends and waits are io_uring's own, which
  /// end cleanly when cancelled.
  void make_non_blocking() {
#if defined(ASIO_HAS_IO_URING_AS_DEFAULT)
    const int fd = socket_.native_handle();
    if (const int flags = ::fcntl(fd, F_GETFL); flags != -1 && (flags & O_NONBLOCK) == 0)
      ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
#else
    std::error_code ignored;
    socket_.native_non_blocking(true, ignored);
#endif
  }

  // ---- reading internals

  /// Every read starts here: the state must allow it.
  void begin_read(const char* op) const { check_readable(op); }

  /// Everything received, as one chunk for read().
  std::string_view take_all() { return received_.take(received_.size()); }

  static std::size_t find(std::string_view held, std::string_view delimiter, std::size_t from) {
    if (from >= held.size()) return std::string_view::npos;
    if (delimiter.size() == 1) {
      const void* at = std::memchr(held.data() + from, delimiter[0], held.size() - from);
      return at ? static_cast<const char*>(at) - held.data() : std::string_view::npos;
    }
    return held.find(delimiter, from);
  }

  /// One recv() into the receive buffer, as much as fits. would_block when drained.
  std::error_code receive_more(std::size_t at_least = 1) {
    auto [at, room] = received_.prepare(at_least);
    std::size_t n = 0;
    std::error_code ec = receive(at, room, n);
    if (ec) return ec;
    received_.commit(n);
    // A short read drains the kernel, not a layer: it may hold more records.
    if (n > 0) drained_ = !layer_ && n < room;
    return {};
  }

  /// Receives at least one more byte into the receive buffer for a framed read,
  /// waiting if needed. False at FIN.
  awaitable<bool> fill(const char* op, std::size_t at_least,
                       const asio::cancellation_state& cancel) {
    for (;;) {
      if (read_eof_) co_return false;
      if (paused_) {
        co_await wait_until_resumed(op, cancel);
        continue;  // ended by shutdown() meanwhile, or paused again
      }
      // A long frame on a peer that never pauses must not hold the thread either.
      if (must_yield(op, cancel)) co_await yield_turn(op, cancel);
      const std::size_t before = received_.size();
      std::error_code ec = receive_more(at_least);
      if (!ec) {
        if (read_eof_) co_return false;
        budget_bytes_ += received_.size() - before;
        if (received_.size() > before) co_return true;
        continue;
      }
      if (ec != asio::error::would_block) throw fail(op, ec);
      co_await wait_readable(op, cancel);
    }
  }

  /// The first n buffered bytes become the frame the caller sees until its next read.
  /// (Its bytes were charged as fill() received them: a frame counts as an operation.)
  frame take_frame(std::size_t n) {
    ++budget_ops_;
    return received_.take(n);
  }

  /// FIN while a framed read waited: clean between frames, an error inside one.
  frame end_of_frames(const char* op) {
    if (received_.empty()) return std::nullopt;
    const std::size_t lost = received_.size();
    received_.release();
    throw error(make_error_code(errc::truncated_frame),
                std::string(op) + ": the peer ended the stream in the middle of a frame; " +
                    std::to_string(lost) + " bytes of it are lost");
  }

  static error frame_too_long(const char* op, std::size_t max) {
    return error(make_error_code(errc::frame_too_long),
                 std::string(op) + ": no delimiter within " + std::to_string(max) +
                     " bytes (they stay buffered for read())");
  }

  /// One non-blocking recv(). n == 0 with no error means FIN (and records it).
  std::error_code receive(char* data, std::size_t size, std::size_t& n) {
    if (layer_) {
      if (std::error_code ec = layer_->receive(data, size, n)) return ec;
    } else {
      ssize_t r;
      do r = ::recv(socket_.native_handle(), data, size, 0);
      while (r < 0 && errno == EINTR);
      if (r < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) return asio::error::would_block;
        return {e, std::system_category()};
      }
      n = static_cast<std::size_t>(r);
    }
    if (n == 0) {
      on_peer_end();
    } else {
      bytes_read_ += n;
      note_activity();
    }
    return {};
  }

  // Waiting for readability is written out in wait_readable() and read(),
  // and the single-threaded wait uses plain use_awaitable (errors arrive as
  // exceptions; they are rare): another coroutine frame, or as_tuple's adapter
  // frame, would push a waiting read past Asio's two-slot per-thread frame cache
  // and cost two heap allocations per round trip.

  /// An idle expiry that no read was waiting for is reported by the next read that waits.
  void before_wait(const char* op, const asio::cancellation_state& cancel) {
    throw_if_cancelled(cancel, op);
    if (idle_expired_) {
      idle_expired_ = false;
      idle_fired_for_reader_ = false;
      throw timeout_error(op);
    }
    received_.trim();  // a waiting socket holds only what it must
    rested();
  }

  /// A framed read's or read_some()'s wait, once a recv() found the socket drained.
  awaitable<void> wait_readable(const char* op, const asio::cancellation_state& cancel) {
    before_wait(op, cancel);
    waiting_for_bytes waiting{*this};
    if (end_if_idle()) co_return;
    std::error_code waited;
    try {
      co_await readable();
    } catch (const std::system_error& e) {
      waited = e.code();
    }
    after_wait(op, waited, cancel);
  }

  // ---- read(): its steps and its waits
  //
  // read()'s frame stays suspended for as long as a connection is idle, so the
  // read is a state machine in the core: read_steps() runs until read() is done
  // or must wait, and says which wait in read_wait_; read() then co_awaits
  // read_wait(), which starts that one Asio operation; its outcome is kept in
  // waited_ / waited_bytes_, and the next read_steps() goes on from there.

  /// What read() waits for, or none while it runs.
  enum class read_wait_kind : std::uint8_t {
    none,
    yield_first,  // the budget is spent: two turns of the executor (see rest())
    yield_second,
    yield_once,      // one turn before the inline receive (see receive_eagerly())
    resumed,         // paused: resume(), the idle timer or a cancellation
    readable,        // a layer's bytes: the descriptor becomes readable
    inline_receive,  // the idle wait: Asio receives into inline_
  };
  /// What read() returns once read_steps() is done.
  enum class read_outcome : std::uint8_t { nothing, bytes, text };

  /// read()'s claim on the read side, released however its frame ends (also when
  /// it is destroyed while it waits, with its io_context).
  struct read_turn {
    socket_core& core;
    explicit read_turn(socket_core& c) : core(c) { core.reading_ = true; }
    ~read_turn() {
      if (core.read_wait_ == read_wait_kind::resumed) core.resume_event_.stop_waiting();
      core.read_wait_ = read_wait_kind::none;
      core.waiting_for_bytes_ = false;
      core.reading_ = false;
    }
    read_turn(const read_turn&) = delete;
    read_turn& operator=(const read_turn&) = delete;
  };

  /// May a read start? False when it may not and the failure went to `out`.
  bool claim_read(failure* out) {
    try {
      begin_read("read");
      return true;
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
      return false;
    }
  }

  /// True when read() must wait for read_wait_; false when it is done and
  /// read_result() holds what it returns (nothing after a failure sent to `out`).
  bool read_steps(const asio::cancellation_state& cancel, failure* out) {
    try {
      return read_step(cancel);
    } catch (const error& e) {
      read_wait_ = read_wait_kind::none;
      waiting_for_bytes_ = false;
      read_outcome_ = read_outcome::nothing;
      if (!out) throw;
      *out = failure(e);
      return false;
    }
  }

  bool read_step(const asio::cancellation_state& cancel) {
    const read_wait_kind finished = std::exchange(read_wait_, read_wait_kind::none);
    if (finished == read_wait_kind::yield_first) return wait_for(read_wait_kind::yield_second);
    if (finished == read_wait_kind::none || finished == read_wait_kind::yield_second) {
      if (finished == read_wait_kind::none && must_yield("read", cancel))
        return wait_for(read_wait_kind::yield_first);
      if (finished == read_wait_kind::yield_second) {
        rested();
        throw_if_cancelled(cancel, "read");
      }
      // Bytes a framed read received beyond its frame come first, paused or not.
      if (!received_.empty() && deliver_all()) return false;
    } else if (finish_wait(finished, cancel)) {
      return true;
    }
    for (;;) {
      if (paused_ && !read_eof_) {
        before_wait("read", cancel);
        if (wait_for_bytes(read_wait_kind::resumed)) return true;
      }
      if (!received_.empty()) {
        if (deliver_all()) return false;
        continue;  // only part of a character: wait for the rest
      }
      if (read_eof_) {
        deliver_end();
        return false;
      }
      if (fin_held_) {
        fin_held_ = false;
        on_peer_end();
        continue;
      }
      if (drained_) {
        if (layer_) {
          // A layer's bytes must come through it: the inline receive would take them raw.
          before_wait("read", cancel);
          if (wait_for_bytes(read_wait_kind::readable)) return true;
          drained_ = false;
          continue;
        }
        // First one recv() of our own: a peer that answers while we write has its
        // next request here already (see receive_eagerly()).
        const eager tried = receive_eagerly("read");
        if (tried == eager::received) continue;
        throw_if_cancelled(cancel, "read");
        // After a miss the peer has not answered yet: a turn of the scheduler would
        // only poll epoll again.
        if (tried == eager::not_tried) return wait_for(read_wait_kind::yield_once);
        if (start_inline_wait(cancel)) return true;
        continue;
      }
      std::error_code ec = receive_more();
      if (ec == asio::error::would_block) {
        drained_ = true;
      } else if (ec) {
        throw fail("read", ec);
      }
    }
  }

  /// After a wait: true when read() must wait again at once.
  bool finish_wait(read_wait_kind finished, const asio::cancellation_state& cancel) {
    waiting_for_bytes_ = false;
    switch (finished) {
      case read_wait_kind::resumed:
        resume_event_.stop_waiting();
        // Node's 'timeout' fires on paused sockets too: the idle timer wakes us.
        after_wait("read", {}, cancel);
        return false;
      case read_wait_kind::readable:
        after_wait("read", waited_code(), cancel);
        drained_ = false;
        return false;
      case read_wait_kind::yield_once: return start_inline_wait(cancel);
      case read_wait_kind::inline_receive:
        received_inline("read", waited_code(), waited_bytes_, cancel);
        return false;
      default: return false;
    }
  }

  bool wait_for(read_wait_kind kind) {
    read_wait_ = kind;
    return true;
  }

  /// A wait for bytes (or resume()) is due: true when read() waits, false when
  /// server.shutdown() ended the connection instead (the read sees the end).
  bool wait_for_bytes(read_wait_kind kind) {
    waiting_for_bytes_ = true;
    if (!end_if_idle()) return wait_for(kind);
    waiting_for_bytes_ = false;
    return false;
  }

  /// The inline receive, once a recv() found the socket drained: false when read()
  /// goes on instead (paused meanwhile, or ended by shutdown()).
  bool start_inline_wait(const asio::cancellation_state& cancel) {
    if (!ready_to_receive_inline("read", cancel)) return false;
    if (wait_for_bytes(read_wait_kind::inline_receive) && !read_eof_) return true;
    read_wait_ = read_wait_kind::none;
    waiting_for_bytes_ = false;
    return false;
  }

  /// Everything received, as read() hands it out: charged to the budget, and
  /// decoded when an encoding is set. False when decoding produced nothing yet (a
  /// character split across reads).
  bool deliver_all() {
    charge(received_.size());
    if (!rarely_ || !rarely_->decoder) {
      read_outcome_ = read_outcome::bytes;
      return true;
    }
    std::string& text = rarely_->decoded;
    text.clear();
    rarely_->decoder->write(take_all(), text);
    if (text.empty()) return false;
    read_outcome_ = read_outcome::text;
    return true;
  }

  /// At FIN: what the decoder still holds (Node emits an incomplete UTF-8 tail as
  /// one U+FFFD), then nothing for good.
  void deliver_end() {
    read_outcome_ = read_outcome::nothing;
    if (!rarely_ || !rarely_->decoder) return;
    std::string& text = rarely_->decoded;
    text.clear();
    rarely_->decoder->end(text);
    if (!text.empty()) read_outcome_ = read_outcome::text;
  }

  frame read_result() {
    switch (std::exchange(read_outcome_, read_outcome::nothing)) {
      case read_outcome::bytes: return take_all();
      case read_outcome::text: return std::string_view(rarely_->decoded);
      case read_outcome::nothing: break;
    }
    return std::nullopt;
  }

  /// How a wait ended, kept for read_steps().
  void waited(std::error_code ec, std::size_t n) {
    // Asio's waits end with a system error or with eof: kept in four bytes.
    if (!ec)
      waited_error_ = 0;
    else if (ec == asio::error::eof)
      waited_error_ = -1;
    else
      waited_error_ = ec.category() == asio::error::get_system_category() ? ec.value() : EIO;
    waited_bytes_ = static_cast<std::uint16_t>(n);
  }
  std::error_code waited_code() const {
    if (waited_error_ == -1) return asio::error::eof;
    if (waited_error_ == 0) return {};
    return {waited_error_, asio::error::get_system_category()};
  }

  /// read()'s waits themselves. The inline receive is the idle one: Asio receives
  /// into the socket's small inline buffer, at once if bytes are there, else when
  /// epoll reports them. No buffer is held while idle, and a wake-up costs one
  /// recv() (a plain readiness wait re-arms epoll with epoll_ctl and then needs a
  /// recv() of its own). When the inline buffer fills, a burst is arriving: the
  /// rest of what the kernel holds is received behind it at once (keep_inline()),
  /// so the caller gets the burst as one chunk.
#if CORONET_ASIO_INTERNALS
  // With use_awaitable, Asio 1.22 runs every operation's initiation in a coroutine
  // of its own whose frame (224 bytes) takes the result, and an idle connection
  // would hold it for as long as it is idle. read() goes through the hook Asio's
  // own initiation uses instead (an awaitable frame runs a function given its frame
  // pointer once suspended), and the completion resumes read()'s frame directly.
  // Asio's awaitable internals are detail API: docs/design.md says what this ties
  // coronet to.
  using frame_base = asio::detail::awaitable_frame_base<asio::any_io_executor>;
  using awaitable_thread = asio::detail::awaitable_thread<asio::any_io_executor>;

  /// Completes a wait of read() whose coroutine runs on the socket's own executor,
  /// on an io_context run by one thread.
  /// It owns the suspended coroutine stack, as Asio's awaitable_handler does, but
  /// not publicly: Asio then sees a handler without an executor of its own, runs it
  /// on the socket's, and the pending operation carries no work tracker for it.
  class resume_here : protected awaitable_thread {
   public:
    using awaitable_thread::cancellation_slot_type;
    using awaitable_thread::get_cancellation_slot;
    resume_here(awaitable_thread&& thread, frame_base* frame, socket_core* core)
        : awaitable_thread(std::move(thread)), frame_(frame), core_(core) {}
    void operator()(std::error_code ec = {}, std::size_t n = 0) {
      core_->waited(ec, n);
      frame_->attach_thread(this);
      frame_->clear_cancellation_slot();
      this->pump();
    }

   private:
    frame_base* frame_;
    socket_core* core_;
  };

  /// The same for a coroutine on another executor (a strand, another io_context),
  /// or on an io_context run by several threads: it shows the stack's executor,
  /// so Asio dispatches the completion there.
  class resume_elsewhere : public resume_here {
   public:
    using awaitable_thread::executor_type;
    using awaitable_thread::get_executor;
    using resume_here::resume_here;
  };

  struct start_read_wait {
    socket_core* core;
    awaitable_thread* operator()(frame_base* frame) const {
      // What the two completions are for: Asio must see the stack's executor on
      // one and none on the other.
      using io_executor = asio::io_context::executor_type;
      static_assert(
          std::is_same_v<asio::associated_executor_t<resume_here, io_executor>, io_executor>);
      static_assert(std::is_same_v<asio::associated_executor_t<resume_elsewhere, io_executor>,
                                   asio::any_io_executor>);
      awaitable_thread* thread = frame->detach_thread();
      // Only where one thread runs the io_context: with several, a completion that
      // skips Asio's dispatch ran read()'s coroutine outside its strand (TSan saw
      // it race a strand-bound coroutine in test_socket's two-thread echo).
      if (core->single_threaded_reactor_ &&
          thread->get_executor() == asio::any_io_executor(core->socket_.get_executor()))
        core->start_wait(resume_here(std::move(*thread), frame, core));
      else
        core->start_wait(resume_elsewhere(std::move(*thread), frame, core));
      return nullptr;
    }
  };
  start_read_wait read_wait() { return {this}; }

  template <typename Handler>
  void start_wait(Handler handler) {
    switch (read_wait_) {
      case read_wait_kind::resumed:
        resume_event_.async_wait(socket_.get_executor(), std::move(handler));
        break;
      case read_wait_kind::readable:
        // TLS may have to write before it can read on (a key update's answer).
        if (layer_->blocked_on() == readiness::writable)
          socket_.async_wait(asio::socket_base::wait_write, std::move(handler));
        else if (single_threaded_reactor_)  // (see readable())
          socket_.async_wait(asio::socket_base::wait_read, std::move(handler));
        else
          start_receive(asio::buffer(inline_.data(), 1), asio::socket_base::message_peek, handler);
        break;
      case read_wait_kind::inline_receive: start_receive(asio::buffer(inline_), 0, handler); break;
      default:  // the yields
        asio::post(socket_.get_executor(), std::move(handler));
        break;
    }
  }

  /// async_receive() with the socket's io_context executor itself when that is
  /// what the socket runs on (the common case): a pending receive then carries no
  /// type-erased executor at all (Asio keeps work trackers only for other
  /// executors). basic_socket's implementation is protected; this reaches it.
  struct socket_access : stream_socket {
    using stream_socket::impl_;
  };
  template <typename Handler>
  void start_receive(asio::mutable_buffer buffer, asio::socket_base::message_flags flags,
                     Handler& handler) {
    auto& impl = socket_.*(&socket_access::impl_);
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
      if (auto* native = impl.get_executor().template target<asio::io_context::executor_type>()) {
        impl.get_service().async_receive(impl.get_implementation(), asio::mutable_buffers_1(buffer),
                                         flags, handler, *native);
        return;
      }
    }
    impl.get_service().async_receive(impl.get_implementation(), asio::mutable_buffers_1(buffer),
                                     flags, handler, impl.get_executor());
  }
#else
  /// The same through Asio's public API: one more frame while idle, so the idle
  /// wait has a coroutine of its own, as small as it can be.
  awaitable<void> read_wait() {
    if (read_wait_ == read_wait_kind::inline_receive) return receive_inline_portably();
    return wait_portably();
  }
  awaitable<void> receive_inline_portably() {
    std::error_code ec;
    const std::size_t n = co_await socket_.async_receive(
        asio::buffer(inline_), asio::redirect_error(asio::use_awaitable, ec));
    waited(ec, n);
  }
  awaitable<void> wait_portably() {
    std::error_code ec;
    std::size_t n = 0;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    switch (read_wait_) {
      case read_wait_kind::resumed:
        co_await resume_event_.async_wait(socket_.get_executor(), token);
        break;
      case read_wait_kind::readable:
        if (layer_->blocked_on() == readiness::writable)
          co_await socket_.async_wait(asio::socket_base::wait_write, token);
        else if (single_threaded_reactor_)
          co_await socket_.async_wait(asio::socket_base::wait_read, token);
        else
          n = co_await socket_.async_receive(asio::buffer(inline_.data(), 1),
                                             asio::socket_base::message_peek, token);
        break;
      default: co_await asio::post(socket_.get_executor(), asio::use_awaitable); break;
    }
    waited(ec, n);
  }
#endif

  bool ready_to_receive_inline(const char* op, const asio::cancellation_state& cancel) {
    if (failure_) throw failure_error(op);
    before_wait(op, cancel);
    return !paused_;
  }

  /// What the inline receive brought: bytes, FIN, an error, or a wake-up by our
  /// idle timer or a cancellation (operation_aborted).
  void received_inline(const char* op, const std::error_code& waited, std::size_t n,
                       const asio::cancellation_state& cancel) {
    if (waited == asio::error::eof) {
      // A paused socket does not see FIN: it is held until resume().
      if (paused_)
        fin_held_ = true;
      else
        on_peer_end();
      return;
    }
    if (waited && waited != asio::error::operation_aborted) throw fail(op, waited);
    if (n > 0) {
      // Kept before anything can throw: a cancelled or paused read hands these
      // bytes to the next read instead of dropping them.
      bytes_read_ += n;
      note_activity();
      keep_inline(n, op);
    }
    after_wait(op, waited, cancel);
  }

  /// Keeps the `n` bytes received into the inline buffer. When they fill it, a
  /// burst is arriving: the rest of what the kernel holds is received behind them.
  void keep_inline(std::size_t n, const char* op) {
    received_.append(inline_.data(), n);
    drained_ = n < inline_.size();
    if (drained_) return;
    const std::error_code more = receive_more();
    if (more == asio::error::would_block)
      drained_ = true;
    else if (more)
      throw fail(op, more);
  }

  /// read()'s try before it waits, for a peer that answers while we write: a
  /// ping-pong whose client shares our CPU has its next request queued by the time
  /// our reply is sent. Then one recv() takes it, where the inline receive would cost
  /// two turns of Asio's scheduler, each polling epoll (its yield, and the
  /// completion Asio posts for a receive that succeeds at once). After
  /// `eager_miss_limit` tries in a row found nothing, the peer answers later
  /// (another CPU, or a busy server serving others first) and each try would be a
  /// wasted EAGAIN: the socket waits the usual way and tries first again only every
  /// `eager_probe_interval` waits.
  enum class eager { received, missed, not_tried };
  eager receive_eagerly(const char* op) {
    if (eager_misses_ >= eager_miss_limit && ++waits_since_probe_ < eager_probe_interval)
      return eager::not_tried;
    waits_since_probe_ = 0;
    std::size_t n = 0;
    const std::error_code ec = receive(inline_.data(), inline_.size(), n);
    if (ec == asio::error::would_block) {
      eager_misses_ = static_cast<std::uint8_t>(std::min(eager_misses_ + 1, eager_miss_limit));
      return eager::missed;
    }
    if (ec) throw fail(op, ec);
    eager_misses_ = 0;
    if (n > 0) keep_inline(n, op);  // (0: FIN, which receive() recorded)
    return eager::received;
  }

  /// Completes when the socket is readable (or has FIN or an error pending, which
  /// the next recv() reports); throws only when cancelled. Not a coroutine itself,
  /// so the single-threaded path costs Asio's one operation frame and no more.
  awaitable<void> readable() {
    // TLS may have to write before it can read on (a key update's answer).
    if (layer_ && layer_->blocked_on() == readiness::writable)
      return socket_.async_wait(asio::socket_base::wait_write, asio::use_awaitable);
    // One thread runs the reactor (see reactor.hpp): wait for the edge our EAGAIN promised.
    if (single_threaded_reactor_)
      return socket_.async_wait(asio::socket_base::wait_read, asio::use_awaitable);
    return peek_wait();
  }

  /// The wait for io_contexts run by several threads: a one-byte MSG_PEEK receive,
  /// which Asio performs under the descriptor's lock, so no edge is lost.
  awaitable<void> peek_wait() {
    auto [ec, n] = co_await socket_.async_receive(
        asio::buffer(inline_.data(), 1), asio::socket_base::message_peek,
        asio::experimental::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec == asio::error::operation_aborted) throw std::system_error(ec);
  }

  /// Ready, EOF or an error are all seen by the next recv(); what ends the read
  /// here is destroy(), our idle timer, or the caller's cancellation.
  void after_wait(const char* op, const std::error_code& ec,
                  const asio::cancellation_state& cancel) {
    if (failure_) throw failure_error(op);  // destroyed or failed (a graceful close is not)
    if (ended_when_idle_) return;           // by shutdown(): the caller sees the end of the stream
    if (idle_fired_for_reader_) {
      idle_fired_for_reader_ = false;
      idle_expired_ = false;
      throw timeout_error(op);
    }
    throw_if_cancelled(cancel, op);
    if (ec == asio::error::operation_aborted) throw cancelled_error(op);
  }

  awaitable<void> wait_until_resumed(const char* op, const asio::cancellation_state& cancel) {
    while (paused_ && !read_eof_) {
      before_wait(op, cancel);
      waiting_for_bytes waiting{*this};
      if (end_if_idle()) co_return;
      co_await resume_event_.wait(socket_.get_executor());
      // Node's 'timeout' fires on paused sockets too: the idle timer wakes us.
      after_wait(op, {}, cancel);
    }
  }

  void on_peer_end() {
    read_eof_ = true;
    if (!allow_half_open_ && !end_requested_ && !auto_end_scheduled_) {
      // Node's allowHalfOpen=false: the peer ended, so we end too, after what is
      // queued. As Node runs its automatic end() after the 'end' handlers, ours
      // runs once the code that saw FIN suspends or returns: a reply written
      // straight after read() returned nullopt still goes out before our FIN.
      auto_end_scheduled_ = true;
      asio::post(socket_.get_executor(), [weak = this->weak_from_this()] {
        auto self = weak.lock();
        if (!self || self->end_requested_ || self->closed_) return;
        self->ended_by_peer_ = true;
        self->queue_end();
      });
    }
    finish_if_done();
  }

  // ---- writing internals

  /// write_at_once()'s answers besides the bytes the kernel took at once.
  static constexpr std::size_t written = std::size_t(-1);  // done (or failed into `out`)
  static constexpr std::size_t written_over_budget = std::size_t(-2);  // done; must rest()

  /// write()'s part that never waits: every byte sent (written), or how many the
  /// kernel took at once, the rest to be queued by write_rest().
  std::size_t write_at_once(const asio::const_buffer& single,
                            std::span<const asio::const_buffer> many,
                            const asio::cancellation_state& cancel, failure* out) {
    try {
      check_writable("write");
      const std::span<const asio::const_buffer> data =
          many.empty() ? std::span<const asio::const_buffer>(&single, 1) : many;
      throw_if_cancelled(cancel, "write");
      if (corked_ > 0) {
        for (const auto& piece : data) push_copy(piece);
        return written;
      }
      std::size_t total = 0;
      for (const auto& piece : data) total += piece.size();
      if (!can_send_directly()) return total == 0 ? written : 0;
      std::size_t skip = 0;  // bytes of `data` the kernel took at once
      if (std::error_code ec = send_now(data, skip)) throw fail("write", ec);
      if (skip < total) return skip;
      // Done: the bytes are the kernel's. A spent budget yields only now, so a
      // cancellation never leaves the caller unsure whether they were sent.
      charge(total);
      return over_budget() && !is_cancelled(cancel) ? written_over_budget : written;
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
      return written;
    }
  }

  /// write()'s part that waits: the budget's rest, or queueing what the kernel did
  /// not take (`skip` bytes of `data` it did) and waiting until it has left.
  /// (`single` and `many` point into write()'s frame, which waits for this one;
  /// copies of them would take room there.)
  awaitable<void> write_rest(const asio::const_buffer* single,
                             const std::span<const asio::const_buffer>* many, std::size_t skip,
                             const asio::cancellation_state& cancel, failure* out) {
    if (skip == written_over_budget) {
      co_await rest();
      co_return;
    }
    try {
      write_queue::sequence seq = 0;
      for (auto piece : many->empty() ? std::span<const asio::const_buffer>(single, 1) : *many) {
        const std::size_t skipped = std::min(skip, piece.size());
        piece += skipped;
        skip -= skipped;
        if (piece.size() > 0)
          seq = queue_.push_borrowed(static_cast<const char*>(piece.data()), piece.size());
      }
      if (seq == 0) co_return;
      // From here the queue points into the caller's buffers. Whatever way this
      // coroutine ends before they have left (an error, a cancellation, its frame
      // destroyed unresumed), the bytes still owed become the queue's own copy.
      borrowed_bytes borrowed{*this, seq};
      co_await wait_flushed(seq, "write", cancel);
    } catch (const error& e) {
      if (!out) throw;
      *out = failure(e);
    }
  }

  bool can_send_directly() const { return queue_.empty() && !flushing_ && corked_ == 0; }

  void push_copy(asio::const_buffer piece) {
    if (piece.size() == 0) return;
    queue_.push_owned({static_cast<const char*>(piece.data()), piece.size()});
    if (corked_ == 0) ensure_flusher();
  }

  /// The one place bytes leave: through the secure layer when there is one, else
  /// one non-blocking gather sendmsg (MSG_NOSIGNAL: a reset peer is an error on
  /// this socket, never a SIGPIPE for the process). `sent` may be short;
  /// would_block when the kernel takes nothing now.
  std::error_code transmit(const iovec* iov, std::size_t count, std::size_t& sent) {
    if (layer_) return layer_->send(iov, count, sent);
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = count;
    ssize_t r;
    do r = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return asio::error::would_block;
      return {e, std::system_category()};
    }
    sent = static_cast<std::size_t>(r);
    return {};
  }

  /// A write's first try, before anything is queued: `sent` may be short.
  std::error_code send_now(std::span<const asio::const_buffer> data, std::size_t& sent) {
    iovec iov[max_iov];
    std::size_t count = 0;
    for (const auto& piece : data) {
      if (count == max_iov) break;
      if (piece.size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(piece.data());
      iov[count].iov_len = piece.size();
      ++count;
    }
    if (count == 0) return {};
    std::error_code ec = transmit(iov, count, sent);
    if (ec == asio::error::would_block) return {};
    if (ec) return ec;
    bytes_written_ += sent;
    note_activity();
    return {};
  }

  /// uncork(): one gather write of what is queued now; a background flusher for the rest.
  void send_queued_now() {
    if (queue_.empty() || flushing_ || closed_) return;
    std::error_code ec = send_queued();
    if (ec && ec != asio::error::would_block) {
      fail("write", ec);
      return;
    }
    ensure_flusher();
  }

  /// Queues the FIN, or sends it now when nothing is queued. Returns the sequence to
  /// wait for, or 0 when it is already sent.
  write_queue::sequence queue_end() {
    end_requested_ = true;
    corked_ = 0;
    if (can_send_directly()) {
      std::error_code ec = layer_ ? layer_->shutdown_send() : std::error_code();
      if (ec != asio::error::would_block) {
        if (ec)
          fail("end", ec);
        else
          send_fin();
        return 0;
      }
      // TLS's close_notify found the kernel full: it leaves, then FIN, from the queue.
    }
    auto seq = queue_.push_end();
    ensure_flusher();
    return seq;
  }

  void send_fin() {
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_send, ec);
    fin_sent_ = true;
    write_event_.notify_all();
    if (ec && ec != asio::error::not_connected) {
      fail("end", ec);
      return;
    }
    finish_if_done();
  }

  /// Both directions ended: the connection is over, give the descriptor back.
  void finish_if_done() {
    if (read_eof_ && fin_sent_) close_descriptor();
  }

  /// Waits until entry `seq` has left; becomes the flusher when nobody else is.
  /// A cancellation stops the waiting, never the bytes: they leave in order.
  awaitable<void> wait_flushed(write_queue::sequence seq, const char* op,
                               const asio::cancellation_state& cancel) {
    writer_guard writing{waiting_writers_};
    for (;;) {
      if (failure_) throw failure_error(op);
      if (queue_.completed() >= seq) co_return;
      throw_if_cancelled(cancel, op);
      if (flushing_) {
        co_await write_event_.wait(socket_.get_executor());
      } else if (!co_await flush(seq, cancel)) {
        ensure_flusher();  // we stop waiting; a background flusher takes over
      }
    }
  }

  /// Drains the queue with gather writes. With `own` set, stops once that entry has
  /// left and another writer waits to take over, so no writer flushes for others
  /// forever. Returns false when its caller's cancellation stopped it first.
  awaitable<bool> flush(write_queue::sequence own, const asio::cancellation_state& cancel) {
    if (flushing_) co_return true;
    flushing_guard guard{*this};
    while (!queue_.empty() && !failure_) {
      if (own != 0 && queue_.completed() >= own && waiting_writers_ > 1) break;
      std::error_code ec = send_queued();
      if (!ec) continue;
      if (ec != asio::error::would_block) {
        fail("write", ec);
        break;
      }
      if (is_cancelled(cancel)) co_return false;
      const bool needs_read = layer_ && layer_->blocked_on() == readiness::readable;
      auto [waited] = co_await socket_.async_wait(
          needs_read ? asio::socket_base::wait_read : asio::socket_base::wait_write,
          asio::experimental::as_tuple(asio::use_awaitable));
      (void)waited;  // our idle timer's cancel or the caller's: the loop decides
      if (is_cancelled(cancel) && !queue_.empty()) co_return false;
    }
    co_return true;
  }

  /// One step of flushing: the FIN when it is next, else one gather write of what
  /// is queued. would_block when the kernel takes nothing now.
  std::error_code send_queued() {
    if (queue_.front_is_end()) {
      if (layer_) {
        if (std::error_code ec = layer_->shutdown_send()) return ec;  // close_notify first
      }
      queue_.pop_end();
      send_fin();
      return {};
    }
    iovec iov[max_iov];
    const std::size_t count = queue_.gather(iov, max_iov);
    std::size_t sent = 0;
    if (std::error_code ec = transmit(iov, count, sent)) return ec;
    queue_.consume(sent);
    bytes_written_ += sent;
    note_activity();
    write_event_.notify_all();
    if (queue_.empty()) end_if_idle();  // the last queued reply left: idle now?
    return {};
  }

  /// Makes sure queued bytes keep moving when no writer is waiting to flush them.
  void ensure_flusher() {
    if (flushing_ || queue_.empty() || flusher_spawned_ || closed_ || corked_ > 0) return;
    flusher_spawned_ = true;
    asio::co_spawn(socket_.get_executor(), background_flush(this->shared_from_this()),
                   asio::detached);
  }

  static awaitable<void> background_flush(pointer self) {
    self->flusher_spawned_ = false;
    co_await self->flush(0, asio::cancellation_state());
  }

  // ---- idle timer (Node's setTimeout)

  void note_activity() {
    if (!idle_ || idle_->timeout.count() == 0) return;
    idle_->last_activity = clock::now();
    idle_expired_ = false;
    if (!idle_armed_) arm_idle_timer();
  }

  clock::time_point idle_deadline() const {
    return saturating_add<clock>(idle_->last_activity, idle_->timeout);
  }

  void arm_idle_timer() {
    if (closed_) return;
    idle_armed_ = true;
    idle_->timer.expires_at(idle_deadline());
    idle_->timer.async_wait([weak = this->weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      self->idle_armed_ = false;
      if (!ec) self->on_idle_timer();
    });
  }

  void on_idle_timer() {
    if (closed_ || idle_->timeout.count() == 0) return;
    if (clock::now() < idle_deadline()) return arm_idle_timer();
    if (!queue_.empty() && !suppressed_once_) {
      // Node's rule: a write still in flight does not count as idle the first time.
      suppressed_once_ = true;
      idle_->last_activity = clock::now();
      return arm_idle_timer();
    }
    suppressed_once_ = false;
    idle_expired_ = true;  // once per idle period: not re-armed until I/O happens
    if (reading_ || writable_waiters_ > 0) {  // (a zero-copy mover's wait counts too)
      idle_fired_for_reader_ = true;
      std::error_code ignored;
      socket_.cancel(ignored);     // a read waiting on the socket ...
      resume_event_.notify_all();  // ... or on resume()
    }
  }

  error timeout_error(const char* op) const {
    return error(make_error_code(errc::timeout), std::string(op) + " timed out: no activity for " +
                                                     std::to_string(timeout().count()) + " ms");
  }

  // ---- closing

  void close_descriptor() {
    if (closed_) return;
    closed_ = true;
    hold_.close(socket_);
    if (idle_) idle_->timer.cancel();
    queue_.clear();  // (received bytes stay: after a graceful close they are still read)
    write_event_.notify_all();
    resume_event_.notify_all();
    if (tracker_) {
      tracker_->unlink(*this);
      std::exchange(tracker_, nullptr)->closed(bytes_read_, bytes_written_);
    }
  }

  // ---- server shutdown (see end_when_idle())

  /// Set while a read is suspended waiting for bytes: only then can it be idle.
  struct waiting_for_bytes {
    socket_core& core;
    explicit waiting_for_bytes(socket_core& c) : core(c) { core.waiting_for_bytes_ = true; }
    ~waiting_for_bytes() { core.waiting_for_bytes_ = false; }
  };

  /// Idle: a read waits with nothing received and unread, nothing queued to write,
  /// and no bytes waiting in the kernel (a request that arrived but was not read
  /// yet is mid-exchange). A handler busy between reads is not idle.
  bool idle() {
    return waiting_for_bytes_ && !closed_ && !read_eof_ && received_.empty() && queue_.empty() &&
           !kernel_has_bytes();
  }

  bool kernel_has_bytes() {
    char byte = 0;
    ssize_t r;
    do r = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    return r > 0;
  }

  /// Ends the connection if end_when_idle() asked for it and it is idle: our FIN
  /// now (nothing is queued), and the read side counts as ended, so the descriptor
  /// closes and the waiting read wakes to return the end of the stream.
  bool end_if_idle() {
    if (!end_when_idle_ || !idle()) return false;
    ended_when_idle_ = true;
    read_eof_ = true;
    end_requested_ = true;
    corked_ = 0;
    if (fin_sent_)
      finish_if_done();
    else
      send_fin();
    return true;
  }

  static constexpr std::size_t max_iov = 64;
  static constexpr int eager_miss_limit = 4;
  static constexpr int eager_probe_interval = 16;

  /// What few sockets use, allocated by the first use so that the many that never
  /// do (an idle connection) do not carry it: 120 bytes (docs/design.md).
  struct rarely_used {
    std::optional<Address> local;  // the local address, once asked for
    std::optional<Decoder> decoder;
    std::string decoded;  // the last text handed out (with an encoding)
  };
  rarely_used& rarely() {
    if (!rarely_) rarely_ = std::make_unique<rarely_used>();
    return *rarely_;
  }

  /// Node's setTimeout() state, which most sockets never need.
  struct idle_timeout {
    explicit idle_timeout(const Executor& executor) : timer(executor) {}
    asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor> timer;
    std::chrono::milliseconds timeout{0};
    clock::time_point last_activity{};
  };

  // Ordered by size so that no padding falls between them (docs/design.md counts
  // what an idle connection costs).
  stream_socket socket_;
  [[no_unique_address]] descriptor_hold hold_;  // closes socket_ (empty but on io_uring)
  std::unique_ptr<secure_layer> layer_;  // null for plain TCP and Unix: the descriptor moves bytes
  std::unique_ptr<rarely_used> rarely_;  // see rarely()
  std::unique_ptr<idle_timeout> idle_;   // made by the first set_timeout()
  std::shared_ptr<connection_tracker> tracker_;
  std::error_code failure_;  // why it closed, when not gracefully
  receive_buffer received_;  // received, not yet handed out; views lent from here
  write_queue queue_;
  event<Executor> write_event_;
  event<Executor> resume_event_;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
  std::size_t budget_bytes_ = 0;  // cooperative budget: bytes moved without waiting
  std::size_t high_water_mark_;

  endpoint remote_;
  int budget_ops_ = 0;  // cooperative budget: operations completed without waiting
  int corked_ = 0;
  int waiting_writers_ = 0;
  int writable_waiters_ = 0;        // zero-copy movers waiting for room (wait_writable())
  int waited_error_ = 0;            // how read()'s last wait ended; see waited()
  std::uint16_t waited_bytes_ = 0;  // ... and what it received (inline_ is small)
  std::uint8_t eager_misses_ = 0;   // receive_eagerly()'s tries in a row that found nothing
  std::uint8_t waits_since_probe_ = 0;
  read_wait_kind read_wait_ = read_wait_kind::none;
  read_outcome read_outcome_ = read_outcome::nothing;

  // Flags, one bit each: an idle connection carries every one of them.
  // state machine
  bool unix_domain_ : 1;
  bool allow_half_open_ : 1;
  bool paused_ : 1;
  bool read_eof_ : 1 = false;       // the peer's FIN was read
  bool end_requested_ : 1 = false;  // our side is ending (end() or the automatic end)
  bool ended_by_peer_ : 1 = false;  // ... and it was the automatic one
  bool auto_end_scheduled_ : 1 = false;
  bool fin_sent_ : 1 = false;
  bool closed_ : 1 = false;  // descriptor closed: graceful, destroyed or failed

  // read side
  bool reading_ : 1 = false;
  bool drained_ : 1 = true;    // the last recv() left nothing behind
  bool fin_held_ : 1 = false;  // FIN that read()'s inline receive met while paused

  // write side
  bool flushing_ : 1 = false;
  bool flusher_spawned_ : 1 = false;
  bool single_threaded_reactor_ : 1;

  // idle timeout
  bool idle_armed_ : 1 = false;
  bool idle_expired_ : 1 = false;
  bool suppressed_once_ : 1 = false;
  bool idle_fired_for_reader_ : 1 = false;

  // server shutdown
  bool end_when_idle_ : 1 = false;    // server.shutdown() asked: end at the next idle moment
  bool ended_when_idle_ : 1 = false;  // ... and it did: waiting reads return the end of the stream
  bool waiting_for_bytes_ : 1 = false;

  std::array<char, 256> inline_;  // what read()'s wait receives; see received_inline()
};

}  // namespace coronet::detail
