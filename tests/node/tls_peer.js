// The Node.js side of tests/test_tls.cpp: a tls client or server doing one scripted
// exchange with coronet, printing what it saw, one fact per line.
//   node tls_peer.js server '{"cert": FILE, "key": FILE, "mode": "echo"|"reply"|"end-first", ...}'
//       prints "listening PORT" first; other keys are tls.createServer() options
//       (ca, requestCert, rejectUnauthorized, ALPNProtocols)
//   node tls_peer.js client '{"port": N, "ca": FILE, "mode": "half-close"|"bulk", ...}'
//       other keys are tls.connect() options (servername, ALPNProtocols, cert, key)
'use strict';
const tls = require('tls');
const fs = require('fs');
const crypto = require('crypto');

const [role, json] = process.argv.slice(2);
const config = JSON.parse(json);
const say = (line) => process.stdout.write(line + '\n');

// 10 MiB of reproducible bytes, as in peer.js (the C++ side computes them too).
const bulk = () => Buffer.alloc(10 * 1024 * 1024).map((_, i) => Math.imul(i, 2654435761) >>> 24);
const digest = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// File names become the PEM text tls expects.
const options = { ...config };
for (const key of ['cert', 'key', 'ca']) if (options[key]) options[key] = fs.readFileSync(options[key]);
delete options.mode;
delete options.port;

if (role === 'server') {
  const server = tls.createServer({ allowHalfOpen: true, ...options }, (socket) => {
    say(`secure ${socket.getProtocol()} alpn=${socket.alpnProtocol} authorized=${socket.authorized}`);
    const chunks = [];
    if (config.mode === 'echo') {
      socket.pipe(socket);
    } else if (config.mode === 'reply') {
      // Ends after the handshake has settled: a Node 20 server that calls end() in
      // its connection handler sends FIN without close_notify.
      socket.once('data', (d) => socket.end('hello from node to ' + d));
    } else if (config.mode === 'end-first') {
      socket.end('hello from node');
      socket.on('data', (d) => chunks.push(d));
      socket.on('end', () => say('received: ' + Buffer.concat(chunks).toString()));
    }
    socket.on('error', (e) => say('error: ' + e.message));
    socket.on('close', () => { say('closed'); server.close(); });
  });
  server.on('tlsClientError', (e) => { say('client error: ' + e.message); server.close(); });
  server.listen(0, '127.0.0.1', () => say('listening ' + server.address().port));
} else {
  const socket = tls.connect({ host: '127.0.0.1', allowHalfOpen: true, ...options, port: config.port });
  const chunks = [];
  socket.on('data', (d) => chunks.push(d));
  socket.on('end', () => {
    const all = Buffer.concat(chunks);
    if (config.mode === 'bulk') say('echoed ' + all.length + ' ' + digest(all));
    else say('data: ' + all.toString());
    say('end');
  });
  socket.on('close', () => say('close'));
  socket.on('error', (e) => say('error: ' + e.message));
  socket.on('secureConnect', () => {
    say(`secure ${socket.getProtocol()} alpn=${socket.alpnProtocol} authorized=${socket.authorized}`);
    if (config.mode === 'half-close') {
      socket.end('ping');
    } else if (config.mode === 'bulk') {
      const data = bulk();
      say('sent ' + data.length + ' ' + digest(data));
      socket.end(data);
    }
  });
}
