// coronet/coronet.hpp - one include for everything.
//
// coronet gives C++ the TCP model of Node.js's `net` module as co_await-able
// operations on standalone Asio: servers that listen and accept, duplex sockets
// that read, write, half-close, pause and resume, with Node's errors and options.
#pragma once

#include "address.hpp"
#include "config.hpp"
#include "connect.hpp"
#include "decoder.hpp"
#include "error.hpp"
#include "server.hpp"
#include "socket.hpp"
#include "version.hpp"
