'use strict';
// Benchmark server on Node's `net`: the same protocol as peers/c/server.c.
//
//   node server.js --mode echo|sink|mixed|http --port PORT | --unix PATH
//
// --unix listens on a Unix-domain socket file (server.listen(path)) instead of
// 127.0.0.1; the file must not exist and is removed when the server stops.
//
// echo:  every byte read is written back; after the peer's FIN the server
//        flushes what it owes, then closes.
// sink:  counts bytes until FIN, then answers "<count>\n" and closes.
// mixed: a connection whose first byte is 'F' is a sink, any other an echo.
// http:  one fixed HTTP/1.1 response per request head, keep-alive.
//
// It is written the way a Node user would write it, because that is what the
// benchmark compares against: pipe() for echo, 'data'/'end' for sink.

const fs = require('fs');
const net = require('net');

const USAGE = 'usage: node server.js --mode echo|sink|mixed|http --port PORT | --unix PATH\n';
const MODES = ['echo', 'sink', 'mixed', 'http'];

function usageError() {
  process.stderr.write(USAGE);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { mode: null, port: null, path: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const value = argv[++i];
    if (value === undefined) usageError();
    if (arg === '--mode' && MODES.includes(value)) options.mode = value;
    else if (arg === '--port' && /^\d+$/.test(value) && Number(value) <= 65535) options.port = Number(value);
    else if (arg === '--unix' && value !== '') options.path = value;
    else usageError();
  }
  // Exactly one of --port and --unix.
  if (options.mode === null || (options.port === null) === (options.path === null)) usageError();
  return options;
}

// pipe() pauses reading while the write side is above its high-water mark
// and, with allowHalfOpen, ends the socket only after the echo is flushed.
function echo(socket) {
  socket.pipe(socket);
}

function sink(socket, received = 0) {
  socket.on('data', (chunk) => { received += chunk.length; });
  socket.on('end', () => socket.end(`${received}\n`));
}

// The fairness row's server: the flood starts with 'F' and is discarded, the
// ping-pong beside it is echoed.
function mixed(socket) {
  socket.once('data', (first) => {
    if (first[0] === 0x46) return sink(socket, first.length);
    socket.write(first);
    echo(socket);
  });
}

// A keep-alive HTTP/1.1 server as a Node user writes it on `net`: split the
// stream on the blank line that ends each request head, one write() per response.
const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
const MAX_REQUEST_HEAD = 8192;

function http(socket) {
  let pending = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk) => {
    pending += chunk;
    let end;
    while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
      pending = pending.slice(end + 4);
      socket.write(RESPONSE);
    }
    if (pending.length > MAX_REQUEST_HEAD) socket.destroy();
  });
  socket.on('end', () => socket.end());
}

function main() {
  const { mode, port, path } = parseArgs(process.argv.slice(2));
  const handler = { echo, sink, mixed, http }[mode];
  // allowHalfOpen: the peer's FIN must not close our side before we answer.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    // One broken connection (ECONNRESET, EPIPE...) must not take the server down.
    socket.on('error', () => socket.destroy());
    handler(socket);
  });
  server.on('error', (err) => {
    process.stderr.write(`server: ${err.message}\n`);
    process.exit(1);
  });
  // libuv sets SO_REUSEADDR on every listening TCP socket; noDelay does nothing on a pipe.
  const where = path === null ? { host: '127.0.0.1', port } : { path };
  server.listen({ ...where, backlog: 4096 }, () => {
    // stdout to a pipe or file is synchronous on Linux, so this is flushed.
    const address = server.address();
    const shown = path === null ? `127.0.0.1:${address.port}` : `unix:${address}`;
    process.stdout.write(`listening on ${shown}\n`);
  });
  // process.exit() skips server.close(), which is what removes the socket file.
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (path !== null) fs.rmSync(path, { force: true });
      process.exit(0);
    });
  }
}

main();
