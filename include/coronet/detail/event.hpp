// coronet/detail/event.hpp - a broadcast wake-up for coroutines on one executor.
//
// Waiters re-check their own condition after every wake-up (like a condition
// variable), so notify_all() never needs to know who waits or why. It is built on
// a timer that never expires: cancelling it resumes every waiter. The timer is
// created on first use, so objects that never wait carry no timer at all.
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
    if (!timer_) timer_ = std::make_unique<timer>(executor, clock::time_point::max());
    const auto generation = generation_;
    ++waiters_;
    waiting_guard guard{waiters_};
    co_await timer_->async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    co_return generation_ != generation;
  }

  /// wait() as an Asio operation, for a caller that is not a coroutine of its own
  /// (socket_core's read()): `token` completes with operation_aborted at the next
  /// notify_all(). The caller counts as waiting until it calls stop_waiting().
  template <typename Token>
  auto async_wait(const Executor& executor, Token&& token) {
    if (!timer_) timer_ = std::make_unique<timer>(executor, clock::time_point::max());
    ++waiters_;
    return timer_->async_wait(std::forward<Token>(token));
  }
  void stop_waiting() { --waiters_; }

  void notify_all() {
    if (waiters_ == 0) return;
    ++generation_;
    timer_->cancel();
  }

  bool has_waiters() const { return waiters_ > 0; }

 private:
  using clock = std::chrono::steady_clock;
  using timer = asio::basic_waitable_timer<clock, asio::wait_traits<clock>, Executor>;

  struct waiting_guard {
    int& count;
    ~waiting_guard() { --count; }
  };

  std::unique_ptr<timer> timer_;  // most objects never wait: 8 bytes, not a timer
  int waiters_ = 0;
  unsigned generation_ = 0;
};

}  // namespace coronet::detail
