// coronet/deadline.hpp - a deadline on one operation, in one line (Go's SetDeadline).
//
//     auto line = co_await coronet::timeout(5s, socket.read_line(1024));
//
// Asio 1.22 has no cancel_after. timeout() runs the operation as its own thread of
// execution with a cancellation signal of its own; only when the operation has to
// wait does a timer start, and when the timer fires it cancels the operation the
// way any other cancellation does. So a timeout leaves behind exactly what a
// cancellation leaves (docs/guide.md, "Cancellation"), and an operation that
// completes at once costs no timer at all.
#pragma once

#include <chrono>
#include <concepts>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include "config.hpp"
#include "error.hpp"

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>

namespace coronet {
namespace detail {

/// What timeout() shares with the operation it runs and with the timer.
template <typename T, typename Executor>
struct deadline_race {
  using clock = std::chrono::steady_clock;
  using timer_type = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor>;
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  explicit deadline_race(Executor executor) : executor(std::move(executor)) {}

  Executor executor;
  std::optional<timer_type> timer;   // made only when the operation has to wait
  asio::cancellation_signal signal;  // the operation's own cancellation
  std::optional<value_type> value;
  std::exception_ptr failure;
  bool finished = false;  // the operation has returned or thrown
  bool expired = false;   // the timer fired first and cancelled it
};

/// The operation, as the thread of execution timeout() starts: its outcome goes
/// into the race. (The race is a parameter, not a local: see the g++ 12 note in
/// server.hpp's serve_on.)
template <typename T, typename Executor>
asio::awaitable<void, Executor> run_operation(std::shared_ptr<deadline_race<T, Executor>> race,
                                              asio::awaitable<T, Executor> op) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(op);
      race->value.emplace();
    } else {
      race->value.emplace(co_await std::move(op));
    }
  } catch (...) {
    race->failure = std::current_exception();
  }
  race->finished = true;
}

/// When a span of `limit` from now passes; a span the clock cannot count is never.
template <typename Rep, typename Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> limit) {
  using clock = std::chrono::steady_clock;
  using limit_type = std::chrono::duration<Rep, Period>;
  const auto now = clock::now();
  const auto left = std::chrono::duration_cast<limit_type>(clock::time_point::max() - now);
  if (limit >= left) return clock::time_point::max();
  return now + std::chrono::duration_cast<clock::duration>(limit);
}

/// "5000 ms" (or "500 us" below a millisecond), as the timeout message says it.
template <typename Rep, typename Period>
std::string describe_limit(std::chrono::duration<Rep, Period> limit) {
  using namespace std::chrono;
  if (limit > limit.zero() && limit < milliseconds(1)) {
    return std::to_string(duration_cast<microseconds>(limit).count()) + " us";
  }
  return std::to_string(duration_cast<milliseconds>(limit).count()) + " ms";
}

/// The operation's failure, seen after the deadline cancelled it: its
/// cancellation becomes errc::timeout naming the operation; any other failure (a
/// reset that arrived meanwhile) is reported as it is.
[[noreturn]] inline void rethrow_after_deadline(const std::exception_ptr& failure,
                                                const std::string& limit) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::system_error& e) {
    const bool cancelled =
        e.code() == std::errc::operation_canceled || e.code() == asio::error::operation_aborted;
    if (!cancelled) throw;
    std::string_view op = cancelled_operation(e);
    if (op.empty()) op = "operation";
    throw error(make_error_code(errc::timeout), std::string(op) + " timed out after " + limit);
  }
}

/// Starts the operation, and the timer only if the operation has to wait.
template <typename T, typename Executor, typename TimePoint>
struct start_race {
  std::shared_ptr<deadline_race<T, Executor>> race;
  asio::awaitable<T, Executor> op;
  TimePoint deadline;

  template <typename Handler>
  void operator()(Handler handler) {
    // A cancellation of timeout() itself reaches the operation as it is.
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) {
      slot.assign([race = race](asio::cancellation_type type) { race->signal.emit(type); });
    }
    auto finished = [race = race, handler = std::move(handler)](std::exception_ptr) mutable {
      if (race->timer) race->timer->cancel();
      std::move(handler)();
    };
    asio::co_spawn(race->executor, run_operation(race, std::move(op)),
                   asio::bind_cancellation_slot(race->signal.slot(), std::move(finished)));
    if (race->finished) return;  // completed without waiting: no timer needed
    race->timer.emplace(race->executor, deadline);
    race->timer->async_wait([race = race](const std::error_code& ec) {
      if (ec || race->finished) return;  // the operation won, even if only just
      race->expired = true;
      race->signal.emit(asio::cancellation_type::terminal);
    });
  }
};

template <typename Rep, typename Period>
void check_limit(std::chrono::duration<Rep, Period> limit) {
  if (limit < limit.zero()) {
    throw error(errc::invalid_argument, ": timeout() needs a limit of zero or more");
  }
}

}  // namespace detail

/// Runs `op` (any awaitable: a socket's read forms, write(), drain(), end(),
/// connect(), accept(), wait_closed(), or your own) with a deadline `limit` from
/// now, and returns what `op` returns.
///
/// Completes when `op` completes: with its value, or with what it threw. When
/// `limit` passes first, `op` is cancelled through Asio's per-operation
/// cancellation and timeout() throws coronet::error with code()
/// coronet::errc::timeout and a message naming the operation and the limit:
/// "read_line timed out after 5000 ms" ("operation ..." for an awaitable that is
/// not coronet's). If `op` fails otherwise meanwhile (a reset), that failure is
/// thrown instead; if it completes in the same instant the deadline passes, its
/// value is returned. Throws errc::invalid_argument for a negative `limit`; 0
/// lets `op` finish only what it can do without waiting. A `limit` longer than the
/// clock can count means no deadline.
///
/// What a timeout leaves behind is what a cancellation leaves: a read has lost no
/// byte (what arrived stays for the next read, and the socket reads on); a write's
/// bytes still go out in order and your buffer is no longer used; a connect() or
/// accept() leaves no descriptor open. The socket stays open: a timeout is a
/// notice, as in Go, not a close. Cancelling timeout() cancels `op`, which reports
/// that as it always does ("read_line cancelled"). An operation that ignores
/// cancellation is bounded only by its own completion.
///
/// `op` runs as a thread of execution of its own on the awaiting coroutine's
/// executor, so, as for every coronet call, that is one thread or a strand. When
/// `op` completes at once, timeout() costs a coroutine spawn and one turn of the
/// executor and starts no timer (benchmarks/coronet/deadline.cpp: about 3 us over a
/// bare read_line(), against 18 us for `op || timer`); when it has to wait, a timer.
///
/// Unlike set_timeout() (Node's idle notice, which watches the whole socket),
/// this bounds one call. Give it the throwing form of a socket operation: a
/// non-throwing one reports the deadline as "read_line cancelled" in its own
/// failure; use the timeout() overload that takes a failure instead.
template <typename T, typename Executor, typename Rep, typename Period>
asio::awaitable<T, Executor> timeout(std::chrono::duration<Rep, Period> limit,
                                     asio::awaitable<T, Executor> op) {
  detail::check_limit(limit);
  using race_type = detail::deadline_race<T, Executor>;
  auto race = std::make_shared<race_type>(co_await asio::this_coro::executor);
  const auto deadline = detail::deadline_after(limit);
  // Built before the co_await: g++ 12 miscompiles a braced temporary inside one.
  detail::start_race<T, Executor, decltype(deadline)> start{race, std::move(op), deadline};
  co_await asio::async_initiate<const asio::use_awaitable_t<Executor>&, void()>(
      std::move(start), asio::use_awaitable_t<Executor>());
  if (race->failure) {
    if (race->expired) detail::rethrow_after_deadline(race->failure, detail::describe_limit(limit));
    std::rethrow_exception(race->failure);
  }
  if constexpr (!std::is_void_v<T>) co_return std::move(*race->value);
}

/// The same without throwing coronet::error: on a timeout or any other failure it
/// returns T{} (nullopt for a read, 0 for read_some(), nothing for void) and
/// `failed` holds the code and the message the throwing form would have thrown
/// ("read_line timed out after 5000 ms"). `failed` is left alone on success.
template <typename T, typename Executor, typename Rep, typename Period>
requires std::is_void_v<T> || std::default_initializable<T> asio::awaitable<T, Executor> timeout(
    std::chrono::duration<Rep, Period> limit, asio::awaitable<T, Executor> op, failure& failed) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await timeout(limit, std::move(op));
      co_return;
    } else {
      co_return co_await timeout(limit, std::move(op));
    }
  } catch (const error& e) {
    failed = failure(e);
  }
  if constexpr (!std::is_void_v<T>) co_return T{};
}

}  // namespace coronet
