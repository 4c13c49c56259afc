// The Node.js side of tests/test_node_peer.cpp: a net client or server doing one
// scripted exchange with coronet, printing what it saw, one fact per line.
//   node peer.js server echo|end-first [PATH]    prints "listening PORT" (or PATH) first
//   node peer.js client PORT|PATH half-close|bulk|send-and-wait
// A PATH (anything not a number) is a Unix-domain socket.
'use strict';
const net = require('net');
const crypto = require('crypto');

const [role, a, b] = process.argv.slice(2);
const say = (line) => process.stdout.write(line + '\n');

// 10 MiB of reproducible bytes: byte i is the top byte of i * 2654435761 (mod 2^32),
// which the C++ side computes too.
const bulk = () => Buffer.alloc(10 * 1024 * 1024).map((_, i) => Math.imul(i, 2654435761) >>> 24);
const digest = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

if (role === 'server') {
  const mode = a;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks = [];
    if (mode === 'echo') {
      socket.pipe(socket);  // pipe() mirrors our FIN after the peer's, once flushed
    } else if (mode === 'end-first') {
      socket.end('hello from node');  // half-close first; keep reading
      socket.on('data', (d) => chunks.push(d));
      socket.on('end', () => say('received: ' + Buffer.concat(chunks).toString()));
    }
    socket.on('close', () => { say('closed'); server.close(); });
  });
  if (b) server.listen(b, () => say('listening ' + server.address()));
  else server.listen(0, '127.0.0.1', () => say('listening ' + server.address().port));
} else {
  const target = Number.isNaN(Number(a)) ? { path: a } : { port: Number(a), host: '127.0.0.1' };
  const mode = b;
  const socket = net.connect({ ...target, allowHalfOpen: true });
  const chunks = [];
  socket.on('data', (d) => chunks.push(d));
  socket.on('end', () => {
    const all = Buffer.concat(chunks);
    if (mode === 'bulk') say('echoed ' + all.length + ' ' + digest(all));
    else say('data: ' + all.toString());
    say('end');
  });
  socket.on('close', () => say('close'));
  socket.on('error', (e) => say('error: ' + e.message));
  socket.on('connect', () => {
    if (mode === 'half-close') {
      socket.end('ping');
    } else if (mode === 'bulk') {
      const data = bulk();
      say('sent ' + data.length + ' ' + digest(data));
      socket.end(data);
    } else if (mode === 'send-and-wait') {
      const data = bulk().subarray(0, 1024 * 1024);
      socket.write(data, () => {
        say('written ' + data.length + ' ' + digest(data));
        socket.end();
      });
    }
  });
}
