// coronet/detail/event.hpp - a broadcast wake-up for coroutines on one executor.
//
// Waiters re-check their own condition after every wake-up (like a condition
// variable), so notify_all() never needs to know who waits or why. It is built on
// a timer that never expires: cancelling it resumes every waiter. The timer and
// the count of waiters are made on first use, so objects that never wait carry one
// pointer.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include "../config.hpp"

namespace coronet::detail {

template <typename Executor>
class event {
 public:
  /// Suspends until the next notify_all() (true), or until the wait itself is
  /// cancelled through Asio's per-operation cancellation (false). The executor is
  /// the one the owner runs on; it is only needed for the first wait.
  awaitable<bool> wait(const Executor& executor) {
    state& s = made(executor);
    const auto generation = s.generation;
    ++s.waiters;
    waiting_guard guard{s.waiters};
    co_await s.timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    co_return s.generation != generation;
  }

  /// wait() as an Asio operation, for a caller that is not a coroutine of its own
  /// (socket_core's read()): `token` completes with operation_aborted at the next
  /// notify_all(). The caller counts as waiting until it calls stop_waiting().
  template <typename Token>
  auto async_wait(const Executor& executor, Token&& token) {
    state& s = made(executor);
    ++s.waiters;
    return s.timer.async_wait(std::forward<Token>(token));
  }
  void stop_waiting() { --state_->waiters; }

  void notify_all() {
    if (!has_waiters()) return;
    ++state_->generation;
    state_->timer.cancel();
  }

  bool has_waiters() const { return state_ && state_->waiters > 0; }

 private:
  using clock = std::chrono::steady_clock;

  struct state {
    explicit state(const Executor& executor) : timer(executor, clock::time_point::max()) {}
    asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor> timer;
    int waiters = 0;
    unsigned generation = 0;
  };

  struct waiting_guard {
    int& count;
    ~waiting_guard() { --count; }
  };

  state& made(const Executor& executor) {
    if (!state_) state_ = std::make_unique<state>(executor);
    return *state_;
  }

  std::unique_ptr<state> state_;  // most objects never wait: 8 bytes, not a timer
};

}  // namespace coronet::detail
