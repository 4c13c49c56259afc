// coronet/config.hpp - the one place that includes Asio and settles the toolchain.
#pragma once

// Asio 1.22 only detects coroutine support for g++; clang++ with libstdc++ has it
// too but Asio's probe misses the pair below. Defining them before Asio is seen
// lets clang users include coronet without knowing that.
#if defined(__clang__) && !defined(ASIO_HAS_CO_AWAIT)
#define ASIO_HAS_CO_AWAIT 1
#endif
#if defined(__clang__) && !defined(ASIO_HAS_STD_COROUTINE)
#define ASIO_HAS_STD_COROUTINE 1
#endif

// g++ 12 reports -Wmismatched-new-delete on every coroutine frame whose promise
// has its own operator new/delete, as Asio's awaitable frames do (GCC PR 109224,
// fixed in g++ 13). It is a false positive, and it would break -Werror builds of
// any program that writes coroutines on coronet, so it is silenced for g++ 12. It is
// deliberately not pushed and popped: the user's own coroutines, after this header,
// are the frames that trip it.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// The parts of Asio the library itself uses, and no more: <asio.hpp> would parse
// every facility Asio has (UDP, local sockets, serial ports, files, futures, ...),
// which costs each program that includes coronet 0.6 s and 55 MiB of compiler
// (scripts/compile_cost.sh measures it). A facility a header starts to use is
// added here. coronet.hpp adds the few more that every program on it uses.
#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/error.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/version.hpp>

// Two places save an idle connection two coroutine frames by going beneath Asio's
// public API (socket_core's inline receive, serve()'s handler spawn; docs/design.md
// counts them). They are used only with the Asio they were written and tested
// against; any other version, or -DCORONET_PORTABLE_ASIO, takes the public API.
#if ASIO_VERSION == 102201 && !defined(CORONET_PORTABLE_ASIO)
#define CORONET_ASIO_INTERNALS 1
#else
#define CORONET_ASIO_INTERNALS 0
#endif

#if !defined(ASIO_HAS_CO_AWAIT)
#error "coronet needs C++20 coroutines (compile with -std=c++20)"
#endif

/// Node.js's `net` module for C++20: TCP servers (basic_server, Server) and duplex
/// sockets (basic_socket, Socket, connect()) as co_await-able operations on
/// standalone Asio, with Node's options, addresses and errors (coronet::error).
/// Include <coronet/coronet.hpp> for all of it.
namespace coronet {
/// Every awaitable coronet hands out runs on Asio's type-erased executor.
template <typename T>
using awaitable = asio::awaitable<T>;
}  // namespace coronet
