// coronet/coronet.hpp - one include for everything.
//
// coronet gives C++ the TCP model of Node.js's `net` module as co_await-able
// operations on standalone Asio: servers that listen and accept, duplex sockets
// that read, write, half-close, pause and resume, with Node's errors and options.
//
// Besides coronet, it gives the parts of Asio a program on coronet uses around it:
// io_context, co_spawn, detached, steady_timer, post (through config.hpp), and
// signal_set and strands here, for they cost next to nothing. Anything else of
// Asio's (async_read/async_write on raw sockets, files, UDP, posix descriptors)
// is the program's own #include <asio/...>; <asio.hpp> gives all of it at the
// price of 0.6 s of compile time per file.
#pragma once

#include "address.hpp"
#include "block_list.hpp"
#include "config.hpp"
#include "connect.hpp"
#include "deadline.hpp"
#include "decoder.hpp"
#include "error.hpp"
#include "pipe.hpp"
#include "server.hpp"
#include "socket.hpp"
#include "version.hpp"

// After config.hpp, which must be the first to let Asio see its settings.
#include <asio/bind_cancellation_slot.hpp>  // the cancellation contract names it
#include <asio/signal_set.hpp>
#include <asio/strand.hpp>
