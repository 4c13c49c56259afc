// coronet/detail/reactor.hpp - which way a socket may wait for readability.
//
// The fast way to read is "recv(); on EAGAIN, wait for readability; recv() again":
// one system call per chunk, no buffer held while idle. Asio's epoll reactor is
// edge-triggered and its plain wait operation does not look at readiness it saw
// before the wait was queued. With one thread running the io_context that cannot
// matter (the reactor does not run between our EAGAIN and our wait), but with
// several threads another one may consume the edge in between and the wait would
// sleep until the peer sends again. So coronet waits the fast way only when the
// io_context promised a single thread (Asio's concurrency hint 1, which also turns
// off Asio's own locking), and otherwise waits with a one-byte MSG_PEEK receive,
// which Asio performs under the descriptor's lock and so never misses data.
#pragma once

#include "../config.hpp"

namespace coronet::detail {

template <typename Executor>
bool reactor_is_single_threaded(const Executor& executor) {
  asio::execution_context& context = asio::query(executor, asio::execution::context);
  if (!asio::has_service<asio::detail::scheduler>(context)) return false;
  const int hint = asio::use_service<asio::detail::scheduler>(context).concurrency_hint();
  if (hint == 1) return true;
  return ASIO_CONCURRENCY_HINT_IS_SPECIAL(hint) &&
         !ASIO_CONCURRENCY_HINT_IS_LOCKING(REACTOR_IO, hint);
}

}  // namespace coronet::detail
