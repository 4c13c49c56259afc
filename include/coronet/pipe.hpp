// coronet/pipe.hpp - Node's readable.pipe(writable) for sockets: every byte `from`
// sends goes to `to`, and `from`'s FIN becomes `to`'s end().
//
//     co_await coronet::pipe(client, upstream);              // one way
//     auto moved = co_await coronet::pipe_both(client, upstream);  // a proxy
//
// Between two plain sockets (TCP or Unix-domain) the bytes never enter the
// program: splice(2) moves them from one socket into a kernel pipe and from it into
// the other, so a proxy costs the kernel's page moves and no copies. Otherwise (a
// socket whose transport transforms bytes, such as TLS; an encoding set on `from`;
// no descriptor left for a kernel pipe) it copies through read() and write_nowait(),
// as Node's pipe() does. Both ways keep every rule a read and a write keep.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>

#include "config.hpp"
#include "deadline.hpp"
#include "detail/zero_copy.hpp"
#include "error.hpp"
#include "socket.hpp"

namespace coronet {

/// How pipe() and pipe_both() run. Trivially destructible, so it can be a default argument.
struct PipeOptions {
  /// When `to` takes no byte for this long while bytes wait for it, the pipe ends
  /// with errc::timeout (both sockets stay open: the caller decides, e.g. resets
  /// both). 0: wait as long as it takes. Unlike set_timeout(), an idle connection
  /// with nothing to deliver never times out this way.
  std::chrono::milliseconds write_timeout{0};
  /// false: copy through the program even where splice(2) could move the bytes
  /// (to compare the two; the benchmark does).
  bool zero_copy = true;
};

/// What one direction of a pipe moved.
struct PipeResult {
  /// Bytes read from `from` and handed to `to` (all of them in `to`'s kernel once
  /// the pipe has completed).
  std::uint64_t bytes = 0;
  /// Whether the kernel spliced them (false: they were copied through the program).
  bool zero_copy = false;
};

/// What pipe_both() moved each way.
struct DuplexResult {
  PipeResult a_to_b;  ///< from the first socket to the second
  PipeResult b_to_a;  ///< from the second socket to the first
};

namespace detail {

/// `op`, bounded through timeout(): not completed within `limit` (0: no bound), it
/// is cancelled and errc::timeout is thrown, naming what the pipe waited for.
inline awaitable<void> within(awaitable<void> op, std::chrono::milliseconds limit) {
  if (limit.count() == 0) {
    co_await std::move(op);
    co_return;
  }
  try {
    co_await coronet::timeout(limit, std::move(op));
    co_return;
  } catch (const error& e) {
    if (e.code() != errc::timeout) throw;
  }
  throw error(make_error_code(errc::timeout), "pipe timed out: the destination took no byte for " +
                                                  std::to_string(limit.count()) + " ms");
}

/// A wait for room in `to`, on its own cancellation state (within() runs it as a
/// child operation that its timer may cancel).
template <typename Core>
awaitable<void> room_in(std::shared_ptr<Core> to) {
  const auto cancel = co_await asio::this_coro::cancellation_state;
  co_await to->wait_writable("write", cancel);
}

template <typename Core>
awaitable<void> drained(std::shared_ptr<Core> to, const PipeOptions& options) {
  return within(Core::drain(to), options.write_timeout);
}

/// Hands `bytes` to `to` as Node's pipe() does: write(), and when it says the
/// queue is full, wait for 'drain'. A copy is queued, so `bytes` may be a view
/// that the next read invalidates.
template <typename Core>
awaitable<void> hand_over(std::shared_ptr<Core> to, std::string_view bytes,
                          const PipeOptions& options) {
  const asio::const_buffer piece = asio::buffer(bytes);
  if (!to->write_nowait(std::span<const asio::const_buffer>(&piece, 1)))
    co_await drained(to, options);
}

/// The copy loop: read() from `from`, write into `to`, wait for 'drain' when full.
/// Memory: one chunk and `to`'s high-water mark.
template <typename Core>
awaitable<void> copy_all(std::shared_ptr<Core> from, std::shared_ptr<Core> to,
                         const PipeOptions& options, PipeResult& result) {
  while (auto chunk = co_await Core::read(from)) {
    result.bytes += chunk->size();
    co_await hand_over(to, *chunk, options);
  }
}

/// What the splice loop waits for once no byte can move without waiting.
enum class splice_wait { source, destination, destination_queue, turn, none };

/// Moves bytes without waiting: fills the kernel pipe from `from` while it has
/// room and `from` has bytes, and drains it into `to` while `to` takes them, until
/// neither can go on. Says what to wait for (none: `from` ended and all is in `to`).
/// SIGPIPE is blocked once for the whole stretch, not per splice.
template <typename Core>
splice_wait splice_ready(Core& from, Core& to, spliced_bytes& spliced, bool& source_ended,
                         PipeResult& result, const asio::cancellation_state& cancel) {
  std::optional<sigpipe_blocked> quiet;
  for (;;) {
    bool moved = false;
    if (!source_ended && from.take_fin()) source_ended = true;
    if (!source_ended && !from.is_paused() && spliced.room() > 0) {
      if (from.over_budget_for("read", cancel)) return splice_wait::turn;
      const ssize_t n = spliced.fill_from(from.descriptor());
      if (n > 0) {
        from.count_received(static_cast<std::size_t>(n));
        moved = true;
      } else if (n == 0) {
        from.peer_ended();
        source_ended = true;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        throw from.fail_with("read", {errno, std::system_category()});
      }
    }
    if (spliced.held() > 0) {
      // Bytes written into `to` meanwhile (write(), write_nowait()) leave first.
      to.check_writable_for("write");
      if (!to.write_side_free()) return splice_wait::destination_queue;
      if (!quiet) quiet.emplace();
      const ssize_t n = spliced.drain_to(to.descriptor(), *quiet);
      if (n > 0) {
        to.count_sent(static_cast<std::size_t>(n));
        result.bytes += static_cast<std::uint64_t>(n);
        moved = true;
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        throw to.fail_with("write", {n == 0 ? EPIPE : errno, std::system_category()});
      }
    }
    if (moved) continue;
    if (spliced.held() > 0) return splice_wait::destination;
    return source_ended ? splice_wait::none : splice_wait::source;
  }
}

/// The splice loop. At most one kernel pipe's worth of bytes is read from `from`
/// and not yet taken by `to`: that is the backpressure, and the bound.
template <typename Core>
awaitable<void> splice_all(std::shared_ptr<Core> from, std::shared_ptr<Core> to,
                           spliced_bytes& spliced, const PipeOptions& options, PipeResult& result) {
  const auto cancel = co_await asio::this_coro::cancellation_state;
  // Bytes a framed read left in `from`'s buffer come before those still in its kernel.
  if (from->readable_length() > 0) {
    const std::string_view buffered = from->take_received();
    result.bytes += buffered.size();
    co_await hand_over(to, buffered, options);
  }
  bool source_ended = false;
  for (;;) {
    switch (splice_ready(*from, *to, spliced, source_ended, result, cancel)) {
      case splice_wait::none: co_return;
      case splice_wait::turn: co_await from->pace("read", cancel); break;
      case splice_wait::destination_queue: co_await drained(to, options); break;
      case splice_wait::destination:
        if (options.write_timeout.count() == 0)
          co_await to->wait_writable("write", cancel);
        else
          co_await within(room_in(to), options.write_timeout);
        break;
      case splice_wait::source:
        spliced.give_back_if_empty();  // an idle pipe holds no kernel pipe
        co_await from->wait_to_read("read", cancel);
        if (!spliced.ready()) throw syscall_error("pipe2", {errno, std::system_category()});
        break;
    }
  }
}

/// What a failed pipe leaves: an error on either side (an I/O error, or destroy())
/// ends both; a cancellation, a timeout or a refusal leaves both open, and bytes
/// already taken from `from` are queued on `to`, so none is lost.
template <typename Core>
void settle(Core& from, Core& to, spliced_bytes& spliced) {
  if (from.failed() || to.failed()) {
    // A FIN would tell the other peer its stream was complete: it is reset instead
    // (a Unix-domain socket has no reset, so it is closed).
    for (Core* side : {&from, &to}) {
      if (side->failed()) continue;
      if (side->unix_domain())
        side->destroy();
      else
        side->reset_and_destroy();
    }
    return;
  }
  if (spliced.held() == 0) return;
  std::string rest = spliced.take_all();
  if (!to.destroyed() && !to.write_ended()) to.queue_copy(rest);
}

template <typename Core>
awaitable<PipeResult> run_pipe(std::shared_ptr<Core> from, std::shared_ptr<Core> to,
                               PipeOptions options) {
  if (to->corked() > 0) {
    throw error(errc::invalid_argument,
                ": pipe() into a corked socket would hold every byte in memory; uncork() first");
  }
  to->check_writable_for("pipe");
  from->resume();  // as Node's pipe(): the source flows
  PipeResult result;
  spliced_bytes spliced;
  try {
    if (options.zero_copy && from->plain_descriptor() && to->plain_descriptor() &&
        !from->get_encoding() && spliced.ready()) {
      result.zero_copy = true;
      typename Core::read_claim reading{*from, "pipe"};
      co_await splice_all(from, to, spliced, options, result);
    } else {
      co_await copy_all(from, to, options, result);
    }
    co_await Core::end(to);
  } catch (...) {
    settle(*from, *to, spliced);
    throw;
  }
  co_return result;
}

template <typename Executor>
using core_ptr = std::shared_ptr<socket_core<Executor>>;

}  // namespace detail

/// Every byte `from` sends goes to `to`, until `from`'s FIN, which becomes
/// `to.end()` (Node's readable.pipe(writable) with `end: true`). Bytes a framed
/// read left in `from`'s buffer go first; bytes already queued on `to` leave
/// before any piped byte (and writes made into `to` meanwhile are not cut into).
/// Backpressure both ways: nothing more is read from `from` until `to` has taken
/// what was read, so memory stays bounded (one kernel pipe of 256 KiB, or one
/// chunk and `to`'s high-water mark when copying) and `from`'s peer is slowed by TCP.
/// `from` is resumed if it was paused, as in Node; a later pause() stops the flow.
///
/// Completes once `to`'s FIN is handed to the kernel, with the bytes moved.
/// Throws:
/// - an I/O error on either side ("read ECONNRESET" from `from`, "write EPIPE"
///   into `to`), or either being destroyed meanwhile: the failing side is already
///   destroyed, and the other is reset (RST, so its peer cannot take the cut
///   stream for a complete one; a Unix-domain socket is closed). Bytes in flight
///   between them are dropped.
/// - errc::timeout: `from`'s set_timeout() period passed while the pipe waited for
///   it to send (as a read reports it); when splicing, `to`'s while the pipe waited
///   for room in it; options.write_timeout either way.
/// - operation_aborted when cancelled (`||`, a cancellation slot).
/// - errc::read_in_progress if a read already waits on `from`; write after end
///   (or errc::socket_destroyed) if `to` cannot be written; invalid_argument if `to`
///   is corked.
/// After a timeout, a cancellation or a refusal both sockets stay open, and no
/// byte is lost or doubled: bytes already read from `from` that `to`'s kernel has
/// not taken are queued on `to` (they leave in order, as a cancelled write's do,
/// and show in to.writable_length()). from.bytes_read() and to.bytes_written()
/// say how far it got.
/// An encoding set on `from` is applied (the decoded text is written), as in Node.
template <typename Executor>
awaitable<PipeResult> pipe(basic_socket<Executor>& from, basic_socket<Executor>& to,
                           PipeOptions options = {}) {
  return detail::run_pipe(zero_copy_core(from), zero_copy_core(to), options);
}

/// Both directions at once: a to b and b to a, each as pipe() (each FIN is passed
/// on as the other's end(), so give the sockets allow_half_open, or the first FIN
/// ends both ways as in Node). Completes when both directions have, with what each
/// moved. The first failure ends both directions and is what it throws: an I/O
/// error ends both sockets as pipe() says; after a timeout or a cancellation both
/// stay open, with every byte taken from one side queued on the other.
template <typename Executor>
awaitable<DuplexResult> pipe_both(basic_socket<Executor>& a, basic_socket<Executor>& b,
                                  PipeOptions options = {}) {
  auto executor = co_await asio::this_coro::executor;
  auto core_a = zero_copy_core(a);
  auto core_b = zero_copy_core(b);
  auto [order, a_failed, a_to_b, b_failed, b_to_a] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, detail::run_pipe(core_a, core_b, options),
                         asio::experimental::deferred),
          asio::co_spawn(executor, detail::run_pipe(core_b, core_a, options),
                         asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one_error(), asio::use_awaitable);
  // The direction that failed first is the cause; the other was stopped by it.
  const auto first = order[0] == 0 ? a_failed : b_failed;
  if (first) std::rethrow_exception(first);
  if (a_failed) std::rethrow_exception(a_failed);
  if (b_failed) std::rethrow_exception(b_failed);
  co_return DuplexResult{a_to_b, b_to_a};
}

}  // namespace coronet
