// coronet/detail/socket_core.hpp - one connected TCP socket: its state machine,
// its read side and its write queue, in one place.
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
// Reading. read() receives into a buffer borrowed from the per-thread pool and
// lends the caller a view of it until the next read(). A drained socket gives the
// buffer back and waits by receiving into its small inline buffer instead
// (receive_small(); docs/design.md says why), so an idle socket holds no chunk.
//
// Writing. A write first tries the kernel directly; only what the kernel refuses
// is queued. One coroutine at a time (the flusher) drains the queue with gather
// writes; other writers wait on their sequence number. end() is a queue entry too.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../address.hpp"
#include "../decoder.hpp"
#include "../error.hpp"
#include "buffer_pool.hpp"
#include "connection_tracker.hpp"
#include "event.hpp"
#include "reactor.hpp"
#include "write_queue.hpp"

namespace coronet::detail {

/// What a socket is told when it is created (by connect() or by a server's accept).
struct socket_settings {
  bool allow_half_open = false;
  bool paused = false;
  std::size_t high_water_mark = 64 * 1024;
};

template <typename Executor>
class socket_core : public std::enable_shared_from_this<socket_core<Executor>> {
 public:
  using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, Executor>;
  using endpoint = asio::ip::tcp::endpoint;
  using clock = std::chrono::steady_clock;
  using pointer = std::shared_ptr<socket_core>;

  socket_core(tcp_socket socket, const endpoint& remote, const socket_settings& settings,
              std::shared_ptr<connection_tracker> tracker)
      : socket_(std::move(socket)),
        remote_(remote),
        allow_half_open_(settings.allow_half_open),
        paused_(settings.paused),
        high_water_mark_(settings.high_water_mark),
        single_threaded_reactor_(reactor_is_single_threaded(socket_.get_executor())),
        tracker_(std::move(tracker)) {
    std::error_code ignored;
    socket_.native_non_blocking(true, ignored);
    if (tracker_) tracker_->opened();
  }

  ~socket_core() { close_descriptor(); }

  socket_core(const socket_core&) = delete;
  socket_core& operator=(const socket_core&) = delete;

  // ---------------------------------------------------------------- reading

  /// The next chunk of bytes (decoded text once an encoding is set), or nullopt
  /// once the peer has sent FIN.
  static awaitable<std::optional<std::string_view>> read(pointer self) {
    self->begin_read("read");
    reading_guard guard{*self};
    if (!self->pending_.empty()) {
      // Bytes a framed read received beyond its frame come first.
      self->frame_.swap(self->pending_);
      self->pending_.clear();
      if (auto text = self->deliver(self->frame_)) co_return text;
    }
    for (;;) {
      if (self->read_eof_) co_return self->deliver_end();
      if (self->paused_) co_await self->wait_until_resumed("read");
      if (!self->pending_.empty()) {
        // What receive_small() received after a pause() is delivered after resume().
        self->frame_.swap(self->pending_);
        self->pending_.clear();
        if (auto text = self->deliver(self->frame_)) co_return text;
        continue;
      }
      if (std::exchange(self->fin_held_, false)) {
        self->on_peer_end();
        continue;
      }
      if (self->drained_) {
        if (auto text = co_await self->receive_small("read")) co_return text;
        continue;
      }
      if (!self->chunk_) self->chunk_ = buffer_pool::local().take();
      std::size_t n = 0;
      std::error_code ec = self->receive(self->chunk_.get(), read_buffer_size, n);
      if (!ec) {
        if (n == 0) continue;  // FIN: read_eof_ is set
        self->drained_ = n < read_buffer_size;
        if (auto text = self->deliver({self->chunk_.get(), n})) co_return text;
        continue;  // only part of a character: wait for the rest
      }
      self->release_chunk();  // idle sockets hold no chunk while they wait
      if (ec != asio::error::would_block) throw self->fail("read", ec);
      self->drained_ = true;
    }
  }

  /// The next bytes up to and including `delimiter`; nullopt at a clean FIN.
  /// Throws errc::frame_too_long once `max` bytes arrive without it (they stay
  /// buffered for read()), and errc::truncated_frame on FIN inside a frame.
  static awaitable<std::optional<std::string_view>> read_until(pointer self,
                                                               std::string_view delimiter,
                                                               std::size_t max, const char* op) {
    // An empty delimiter would match forever, and no frame fits in fewer bytes than
    // its delimiter: both are the caller's mistake, said before any I/O.
    if (delimiter.empty())
      throw error(errc::invalid_argument, std::string(": ") + op + " needs a delimiter");
    if (max < delimiter.size()) {
      throw error(errc::invalid_argument, std::string(": ") + op + " max (" + std::to_string(max) +
                                              ") is smaller than the delimiter");
    }
    self->begin_read(op);
    reading_guard guard{*self};
    std::size_t searched = 0;
    for (;;) {
      auto at = self->pending_.find(delimiter, searched);
      if (at != std::string::npos) {
        const std::size_t length = at + delimiter.size();
        if (length > max) throw self->frame_too_long(op, max);
        co_return self->take_frame(length);
      }
      if (self->pending_.size() >= max) throw self->frame_too_long(op, max);
      // A delimiter may straddle what we have and what comes next.
      searched = self->pending_.size() >= delimiter.size()
                     ? self->pending_.size() - delimiter.size() + 1
                     : 0;
      if (!co_await self->fill(op)) co_return self->end_of_frames(op);
    }
  }

  /// Exactly `n` bytes; nullopt at a clean FIN; errc::truncated_frame on FIN inside them.
  static awaitable<std::optional<std::string_view>> read_exactly(pointer self, std::size_t n) {
    self->begin_read("read_exactly");
    reading_guard guard{*self};
    while (self->pending_.size() < n) {
      if (!co_await self->fill("read_exactly")) co_return self->end_of_frames("read_exactly");
    }
    co_return self->take_frame(n);
  }

  /// Decodes what read() returns from now on (Node's setEncoding()).
  void set_encoding(encoding enc) { decoder_.emplace(enc); }
  std::optional<encoding> get_encoding() const {
    return decoder_ ? std::optional(decoder_->get_encoding()) : std::nullopt;
  }

  /// Up to buffer.size() bytes into the caller's buffer; 0 once the peer has sent FIN.
  static awaitable<std::size_t> read_some(pointer self, asio::mutable_buffer buffer) {
    self->begin_read("read");
    if (!self->pending_.empty()) co_return self->copy_pending(buffer);
    if (self->read_eof_ || buffer.size() == 0) co_return 0;
    reading_guard guard{*self};
    for (;;) {
      if (self->paused_) co_await self->wait_until_resumed("read");
      std::size_t n = 0;
      std::error_code ec = self->receive(static_cast<char*>(buffer.data()), buffer.size(), n);
      if (!ec) co_return n;
      if (ec != asio::error::would_block) throw self->fail("read", ec);
      self->before_wait("read");
      std::error_code waited;
      try {
        co_await self->readable();
      } catch (const std::system_error& e) {
        waited = e.code();
      }
      self->after_wait("read", waited);
    }
  }

  void pause() { paused_ = true; }
  void resume() {
    paused_ = false;
    resume_event_.notify_all();
  }
  bool is_paused() const { return paused_; }

  // ---------------------------------------------------------------- writing

  /// Completes once every byte of `data` is in the kernel's send buffer.
  static awaitable<void> write(pointer self, asio::const_buffer data) {
    self->check_writable("write");
    if (data.size() == 0) co_return;
    if (self->can_send_directly()) {
      std::size_t sent = 0;
      if (std::error_code ec = self->send_now(data.data(), data.size(), sent)) {
        throw self->fail("write", ec);
      }
      if (sent == data.size()) co_return;
      data += sent;
    }
    auto seq = self->queue_.push_borrowed(static_cast<const char*>(data.data()), data.size());
    co_await self->wait_flushed(seq, "write");
  }

  /// Node's write(): queues without waiting; false once the queue passes the high-water mark.
  bool write_nowait(asio::const_buffer data) {
    check_writable("write");
    if (data.size() > 0 && can_send_directly()) {
      std::size_t sent = 0;
      if (std::error_code ec = send_now(data.data(), data.size(), sent)) throw fail("write", ec);
      data += sent;
    }
    if (data.size() > 0) {
      queue_.push_owned({static_cast<const char*>(data.data()), data.size()});
      ensure_flusher();
    }
    return queue_.bytes() < high_water_mark_;
  }

  /// Completes when the write queue is empty (Node's 'drain').
  static awaitable<void> drain(pointer self) {
    while (!self->queue_.empty()) {
      if (self->failure_) throw self->failure_error("drain");
      co_await self->wait_flushed(self->queue_.completed() + 1, "drain");
    }
    if (self->failure_) throw self->failure_error("drain");
  }

  /// Half-close: FIN after everything queued. Reading goes on.
  static awaitable<void> end(pointer self) {
    if (self->end_requested_) {
      // A second end(), or ours after the automatic one: wait for the same FIN.
      while (!self->fin_sent_ && !self->failure_) {
        if (!co_await self->write_event_.wait(self->socket_.get_executor())) {
          throw error(asio::error::operation_aborted, "end cancelled");
        }
      }
      if (self->failure_) throw self->failure_error("end");
      co_return;
    }
    if (self->closed_) throw self->destroyed_error("end");
    if (auto seq = self->queue_end()) co_await self->wait_flushed(seq, "end");
  }

  /// Closes at once. Pending operations finish with operation_aborted; queued bytes are dropped.
  void destroy() {
    if (closed_) return;
    if (!failure_) failure_ = asio::error::operation_aborted;
    close_descriptor();
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
    timeout_ = idle;
    idle_expired_ = false;
    if (idle.count() == 0) {
      if (idle_timer_) idle_timer_->cancel();
      return;
    }
    last_activity_ = clock::now();
    arm_idle_timer();
  }
  std::chrono::milliseconds timeout() const { return timeout_; }

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

  const endpoint& remote_endpoint() const { return remote_; }
  /// Read from the kernel on first use and kept, so it still answers after close.
  std::optional<endpoint> local_endpoint() {
    if (!local_ && !closed_) {
      std::error_code ec;
      auto ep = socket_.local_endpoint(ec);
      if (!ec) local_ = ep;
    }
    return local_;
  }

  tcp_socket& native() { return socket_; }
  Executor get_executor() { return socket_.get_executor(); }

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
    return syscall_error(op, failure_);
  }

  /// An I/O error: the socket is done (as in Node, an error destroys it).
  error fail(const char* op, std::error_code ec) {
    if (!failure_) failure_ = ec;
    close_descriptor();
    return syscall_error(op, ec);
  }

  // ---- reading internals

  void release_chunk() {
    if (chunk_) buffer_pool::local().give(std::move(chunk_));
  }

  /// Every read starts here: the previous view ends, and the state must allow it.
  void begin_read(const char* op) {
    release_chunk();
    check_readable(op);
  }

  /// Raw bytes as read() hands them out: as they are, or decoded. nullopt when
  /// decoding produced nothing yet (a character split across reads).
  std::optional<std::string_view> deliver(std::string_view raw) {
    if (!decoder_) return raw;
    decoded_.clear();
    decoder_->write(raw, decoded_);
    if (decoded_.empty()) return std::nullopt;
    return std::string_view(decoded_);
  }

  /// At FIN: what the decoder still holds (Node emits an incomplete UTF-8 tail as
  /// one U+FFFD), then nullopt for good.
  std::optional<std::string_view> deliver_end() {
    if (!decoder_) return std::nullopt;
    decoded_.clear();
    decoder_->end(decoded_);
    if (decoded_.empty()) return std::nullopt;
    return std::string_view(decoded_);
  }

  /// Receives one chunk into pending_ for a framed read. False at FIN.
  awaitable<bool> fill(const char* op) {
    for (;;) {
      if (read_eof_) co_return false;
      if (paused_) co_await wait_until_resumed(op);
      if (!chunk_) chunk_ = buffer_pool::local().take();
      std::size_t n = 0;
      std::error_code ec = receive(chunk_.get(), read_buffer_size, n);
      if (!ec) {
        pending_.append(chunk_.get(), n);
        release_chunk();
        co_return n > 0;
      }
      release_chunk();
      if (ec != asio::error::would_block) throw fail(op, ec);
      before_wait(op);
      std::error_code waited;
      try {
        co_await readable();
      } catch (const std::system_error& e) {
        waited = e.code();
      }
      after_wait(op, waited);
    }
  }

  /// The first n buffered bytes become the frame the caller sees until its next read.
  std::optional<std::string_view> take_frame(std::size_t n) {
    frame_.assign(pending_, 0, n);
    pending_.erase(0, n);
    return std::string_view(frame_);
  }

  std::size_t copy_pending(asio::mutable_buffer buffer) {
    const std::size_t n = std::min(buffer.size(), pending_.size());
    pending_.copy(static_cast<char*>(buffer.data()), n);
    pending_.erase(0, n);
    return n;
  }

  /// FIN while a framed read waited: clean between frames, an error inside one.
  std::optional<std::string_view> end_of_frames(const char* op) {
    if (pending_.empty()) return std::nullopt;
    const std::size_t lost = pending_.size();
    pending_.clear();
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
    ssize_t r;
    do r = ::recv(socket_.native_handle(), data, size, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return asio::error::would_block;
      return {e, std::system_category()};
    }
    n = static_cast<std::size_t>(r);
    if (n == 0) {
      on_peer_end();
    } else {
      bytes_read_ += n;
      note_activity();
    }
    return {};
  }

  // Waiting for readability is written out at each read site, not wrapped in a
  // coroutine of its own, and the single-threaded wait uses plain use_awaitable
  // (errors arrive as exceptions; they are rare): another coroutine frame, or
  // as_tuple's adapter frame, would push a waiting read past Asio's two-slot
  // per-thread frame cache and cost two heap allocations per round trip.

  /// An idle expiry that no read was waiting for is reported by the next read that waits.
  void before_wait(const char* op) {
    if (idle_expired_) {
      idle_expired_ = false;
      idle_fired_for_reader_ = false;
      throw timeout_error(op);
    }
  }

  /// read()'s wait, once a recv() has found the socket drained. First it lets the
  /// io_context run what else is ready: a server with many connections serves the
  /// others while this peer answers, so the recv() below mostly finds bytes instead
  /// of EAGAIN. Then Asio receives into the socket's small inline buffer, at once
  /// if bytes are there, else when epoll reports them. No chunk is held while
  /// idle, and a wake-up costs one recv() (a plain readiness wait re-arms epoll
  /// with epoll_ctl and then needs a recv() of its own). A full inline buffer means
  /// more may be waiting: the next read() receives the rest into a chunk directly.
  awaitable<std::optional<std::string_view>> receive_small(const char* op) {
    co_await asio::post(socket_.get_executor(), asio::use_awaitable);
    if (closed_) throw failure_error(op);  // destroyed meanwhile
    before_wait(op);                       // or timed out meanwhile
    if (paused_) co_return std::nullopt;   // or paused meanwhile: read() waits for resume()
    std::error_code waited;
    const std::size_t n = co_await socket_.async_receive(
        asio::buffer(inline_), asio::redirect_error(asio::use_awaitable, waited));
    if (waited == asio::error::eof) {
      // A paused socket does not see FIN: it is held until resume().
      if (paused_)
        fin_held_ = true;
      else
        on_peer_end();
      co_return std::nullopt;
    }
    if (waited && waited != asio::error::operation_aborted) throw fail(op, waited);
    after_wait(op, waited);
    bytes_read_ += n;
    note_activity();
    drained_ = n < inline_.size();
    if (paused_) {
      // pause() came while this receive waited: the bytes are held until resume().
      pending_.append(inline_.data(), n);
      co_return std::nullopt;
    }
    co_return deliver({inline_.data(), n});
  }

  /// Completes when the socket is readable (or has FIN or an error pending, which
  /// the next recv() reports); throws only when cancelled. Not a coroutine itself,
  /// so the single-threaded path costs Asio's one operation frame and no more.
  awaitable<void> readable() {
    // One thread runs the reactor (see reactor.hpp): wait for the edge our EAGAIN promised.
    if (single_threaded_reactor_)
      return socket_.async_wait(asio::socket_base::wait_read, asio::use_awaitable);
    return peek_wait();
  }

  /// The wait for io_contexts run by several threads: a one-byte MSG_PEEK receive,
  /// which Asio performs under the descriptor's lock, so no edge is lost.
  awaitable<void> peek_wait() {
    auto [ec, n] = co_await socket_.async_receive(
        asio::buffer(&peek_byte_, 1), asio::socket_base::message_peek,
        asio::experimental::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec == asio::error::operation_aborted) throw std::system_error(ec);
  }

  /// Ready, EOF or an error are all seen by the next recv(); only a cancellation
  /// (destroy(), our idle timer, or the caller's) ends the read here.
  void after_wait(const char* op, const std::error_code& ec) {
    if (ec != asio::error::operation_aborted) return;
    if (closed_) throw failure_error(op);
    if (std::exchange(idle_fired_for_reader_, false)) {
      idle_expired_ = false;
      throw timeout_error(op);
    }
    throw error(ec, std::string(op) + " cancelled");
  }

  awaitable<void> wait_until_resumed(const char* op) {
    while (paused_) {
      bool woken = co_await resume_event_.wait(socket_.get_executor());
      if (closed_) throw failure_error(op);
      if (!woken) throw error(asio::error::operation_aborted, std::string(op) + " cancelled");
    }
  }

  void on_peer_end() {
    read_eof_ = true;
    release_chunk();
    if (!allow_half_open_ && !end_requested_) {
      // Node's allowHalfOpen=false: the peer ended, so we end too, after what is queued.
      ended_by_peer_ = true;
      queue_end();
    }
    finish_if_done();
  }

  // ---- writing internals

  bool can_send_directly() const { return queue_.empty() && !flushing_; }

  /// One non-blocking send(); `sent` may be short. MSG_NOSIGNAL: a reset peer is an
  /// error on this socket, never a SIGPIPE for the process.
  std::error_code send_now(const void* data, std::size_t size, std::size_t& sent) {
    ssize_t r;
    do r = ::send(socket_.native_handle(), data, size, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return {};
      return {e, std::system_category()};
    }
    sent = static_cast<std::size_t>(r);
    bytes_written_ += sent;
    note_activity();
    return {};
  }

  /// Queues the FIN, or sends it now when nothing is queued. Returns the sequence to
  /// wait for, or 0 when it is already sent.
  write_queue::sequence queue_end() {
    end_requested_ = true;
    if (can_send_directly()) {
      send_fin();
      return 0;
    }
    auto seq = queue_.push_end();
    ensure_flusher();
    return seq;
  }

  void send_fin() {
    std::error_code ec;
    socket_.shutdown(asio::socket_base::shutdown_send, ec);
    fin_sent_ = true;
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
  awaitable<void> wait_flushed(write_queue::sequence seq, const char* op) {
    writer_guard writing{waiting_writers_};
    for (;;) {
      if (failure_) throw failure_error(op);
      if (queue_.completed() >= seq) co_return;
      bool progressed =
          flushing_ ? co_await write_event_.wait(socket_.get_executor()) : co_await flush(seq);
      if (!progressed && !failure_ && queue_.completed() < seq) {
        // Cancelled by the caller: the bytes stay queued and still go out in order,
        // as a copy, since the caller's buffer may be gone once we return.
        queue_.own(seq);
        if (!flushing_) ensure_flusher();
        throw error(asio::error::operation_aborted,
                    std::string(op) + " cancelled; its bytes stay queued");
      }
    }
  }

  /// Drains the queue with gather writes. With `own` set, stops once that entry has
  /// left and another writer waits to take over, so no writer flushes for others forever.
  /// Returns false when the caller's cancellation stopped it.
  awaitable<bool> flush(write_queue::sequence own) {
    if (flushing_) co_return true;
    flushing_guard guard{*this};
    while (!queue_.empty() && !failure_) {
      if (own != 0 && queue_.completed() >= own && waiting_writers_ > 1) break;
      if (queue_.front_is_end()) {
        queue_.pop_end();
        send_fin();
        continue;
      }
      iovec iov[max_iov];
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = queue_.gather(iov, max_iov);
      ssize_t r = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
      if (r >= 0) {
        queue_.consume(static_cast<std::size_t>(r));
        bytes_written_ += static_cast<std::size_t>(r);
        note_activity();
        write_event_.notify_all();
        continue;
      }
      int e = errno;
      if (e == EINTR) continue;
      if (e != EAGAIN && e != EWOULDBLOCK) {
        fail("write", {e, std::system_category()});
        break;
      }
      auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_write,
                                              asio::experimental::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted && !closed_) {
        // Our own idle timer cancels every wait on the socket; only a cancellation
        // the caller asked for stops the flush.
        if (!std::exchange(idle_cancelled_writer_, false)) co_return false;
      }
    }
    co_return true;
  }

  /// Makes sure queued bytes keep moving when no writer is waiting to flush them.
  void ensure_flusher() {
    if (flushing_ || queue_.empty() || flusher_spawned_) return;
    flusher_spawned_ = true;
    asio::co_spawn(socket_.get_executor(), background_flush(this->shared_from_this()),
                   asio::detached);
  }

  static awaitable<void> background_flush(pointer self) {
    self->flusher_spawned_ = false;
    co_await self->flush(0);
  }

  // ---- idle timer (Node's setTimeout)

  void note_activity() {
    if (timeout_.count() == 0) return;
    last_activity_ = clock::now();
    idle_expired_ = false;
    if (!idle_armed_) arm_idle_timer();
  }

  void arm_idle_timer() {
    if (closed_) return;
    if (!idle_timer_) idle_timer_ = std::make_unique<timer>(socket_.get_executor());
    idle_armed_ = true;
    idle_timer_->expires_at(last_activity_ + timeout_);
    idle_timer_->async_wait([weak = this->weak_from_this()](std::error_code ec) {
      auto self = weak.lock();
      if (!self) return;
      self->idle_armed_ = false;
      if (!ec) self->on_idle_timer();
    });
  }

  void on_idle_timer() {
    if (closed_ || timeout_.count() == 0) return;
    if (clock::now() < last_activity_ + timeout_) return arm_idle_timer();
    if (!queue_.empty() && !suppressed_once_) {
      // Node's rule: a write still in flight does not count as idle the first time.
      suppressed_once_ = true;
      last_activity_ = clock::now();
      return arm_idle_timer();
    }
    suppressed_once_ = false;
    idle_expired_ = true;  // once per idle period: not re-armed until I/O happens
    if (reading_) {
      idle_fired_for_reader_ = true;
      idle_cancelled_writer_ = flushing_;
      std::error_code ignored;
      socket_.cancel(ignored);
    }
  }

  error timeout_error(const char* op) const {
    return error(make_error_code(errc::timeout), std::string(op) + " timed out: no activity for " +
                                                     std::to_string(timeout_.count()) + " ms");
  }

  // ---- closing

  void close_descriptor() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    socket_.close(ignored);
    if (idle_timer_) idle_timer_->cancel();
    queue_.clear();
    write_event_.notify_all();
    resume_event_.notify_all();
    if (tracker_) std::exchange(tracker_, nullptr)->closed();
  }

  static constexpr std::size_t max_iov = 64;

  tcp_socket socket_;
  endpoint remote_;
  std::optional<endpoint> local_;

  // state machine
  bool allow_half_open_;
  bool paused_;
  bool read_eof_ = false;       // the peer's FIN was read
  bool end_requested_ = false;  // our side is ending (end() or the automatic end)
  bool ended_by_peer_ = false;  // ... and it was the automatic one
  bool fin_sent_ = false;
  bool closed_ = false;      // descriptor closed: graceful, destroyed or failed
  std::error_code failure_;  // why it closed, when not gracefully

  // read side
  buffer_pool::buffer chunk_;  // lent to the caller by read(), pooled
  std::string pending_;        // received, not yet handed out (framed reads)
  std::string frame_;          // the last frame handed out
  std::string decoded_;        // the last text handed out (with an encoding)
  std::optional<Decoder> decoder_;
  bool reading_ = false;
  char peek_byte_ = 0;
  std::array<char, 256> inline_;  // what read()'s wait receives; see receive_small()
  bool drained_ = true;           // the last recv() left nothing behind
  bool fin_held_ = false;         // FIN that receive_small() met while paused
  std::uint64_t bytes_read_ = 0;

  // write side
  write_queue queue_;
  std::size_t high_water_mark_;
  bool flushing_ = false;
  bool flusher_spawned_ = false;
  int waiting_writers_ = 0;
  std::uint64_t bytes_written_ = 0;

  bool single_threaded_reactor_;
  event<Executor> write_event_;
  event<Executor> resume_event_;

  // idle timeout
  using timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor>;
  std::unique_ptr<timer> idle_timer_;  // created by the first set_timeout()
  std::chrono::milliseconds timeout_{0};
  clock::time_point last_activity_{};
  bool idle_armed_ = false;
  bool idle_expired_ = false;
  bool suppressed_once_ = false;
  bool idle_fired_for_reader_ = false;
  bool idle_cancelled_writer_ = false;

  std::shared_ptr<connection_tracker> tracker_;
};

}  // namespace coronet::detail
