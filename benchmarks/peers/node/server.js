'use strict';
// Benchmark server on Node's `net`: the same protocol as peers/c/server.c.
//
//   node server.js --mode echo|sink --port PORT
//
// echo: every byte read is written back; after the peer's FIN the server
//       flushes what it owes, then closes.
// sink: counts bytes until FIN, then answers "<count>\n" and closes.
//
// It is written the way a Node user would write it, because that is what the
// benchmark compares against: pipe() for echo, 'data'/'end' for sink.

const net = require('net');

const USAGE = 'usage: node server.js --mode echo|sink --port PORT\n';

function usageError() {
  process.stderr.write(USAGE);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { mode: null, port: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const value = argv[++i];
    if (value === undefined) usageError();
    if (arg === '--mode' && (value === 'echo' || value === 'sink')) options.mode = value;
    else if (arg === '--port' && /^\d+$/.test(value) && Number(value) <= 65535) options.port = Number(value);
    else usageError();
  }
  if (options.mode === null || options.port === null) usageError();
  return options;
}

// pipe() pauses reading while the write side is above its high-water mark
// and, with allowHalfOpen, ends the socket only after the echo is flushed.
function echo(socket) {
  socket.pipe(socket);
}

function sink(socket) {
  let received = 0;
  socket.on('data', (chunk) => { received += chunk.length; });
  socket.on('end', () => socket.end(`${received}\n`));
}

function main() {
  const { mode, port } = parseArgs(process.argv.slice(2));
  const handler = mode === 'echo' ? echo : sink;
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
  // libuv sets SO_REUSEADDR on every listening TCP socket.
  server.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
    // stdout to a pipe or file is synchronous on Linux, so this is flushed.
    process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
}

main();
