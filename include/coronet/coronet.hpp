// coronet/coronet.hpp - one include for everything.
//
// coronet gives C++ the TCP model of Node.js's `net` module as co_await-able
// operations on standalone Asio: servers that listen and accept, duplex sockets
// that read, write, half-close, pause and resume, with Node's errors and options.
#pragma once

#include "config.hpp"
#include "error.hpp"
#include "address.hpp"
#include "decoder.hpp"
#include "socket.hpp"
#include "connect.hpp"
#include "server.hpp"
