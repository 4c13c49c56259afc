// examples/echo_server through its command line: 10 MiB echoed with a checksum,
// the client's FIN mirrored, nc as a peer, --threads N on one port, --idle-timeout,
// and the graceful shutdown on SIGINT (--grace).
//   node echo_server.test.js ECHO_SERVER
'use strict';
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');
const { spawnSync } = require('child_process');
const h = require('./harness');
const { assert } = h;

const [echoPath] = process.argv.slice(2);

/// Bytes the kernel holds for a socket, received but unread (rx) or not yet sent
/// (tx), from /proc/net/tcp: `local` and `remote` are the socket's two ports.
function queues(local, remote) {
  const port = (n) => `:${n.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 4 && f[1].endsWith(port(local)) && f[2].endsWith(port(remote))) {
      const [tx, rx] = f[4].split(':').map((x) => parseInt(x, 16));
      return { tx, rx };
    }
  }
  return { tx: 0, rx: 0 };
}

/// Resolves once `check()` holds, looking every few milliseconds.
function until(check) {
  return new Promise((resolve) => {
    const look = () => (check() ? resolve() : setTimeout(look, 5));
    look();
  });
}

/// A client that stops reading and floods the server until the echo server is
/// stuck in a write: the client's kernel holds echoed bytes it has not read and the
/// server's holds bytes it has not read (it reads only once its echo is out).
async function stalledClient(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await h.once(socket, 'connect');
  socket.pause();
  socket.write(crypto.randomBytes(32 * 1024 * 1024));
  await h.within(10000, until(() => queues(socket.localPort, port).rx > 0 &&
                                    queues(port, socket.localPort).rx > 0), 'the server stuck in a write');
  return socket;
}

/// A client that has had one echo back, so the server has accepted it.
async function idleClient(port) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write('hi');
  await h.once(socket, 'data');
  return socket;
}

h.run({
  async 'echo_server --help and bad flags'() {
    const help = await h.start(echoPath, ['--help']).exited;
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^usage: echo_server/);
    const bad = await h.start(echoPath, ['--threads', '0']).exited;
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /--threads must be a number from 1 to 256, not '0'/);
  },

  async '10 MiB echoed intact, and the client FIN is mirrored'() {
    const server = await h.startServer(echoPath, ['--port', '0']);
    const data = crypto.randomBytes(10 * 1024 * 1024);
    const back = await h.roundTrip(server.port, data);  // resolves on the server's FIN
    assert.strictEqual(back.length, data.length);
    assert.strictEqual(h.sha256(back), h.sha256(data));
    server.child.kill('SIGTERM');
    assert.strictEqual((await server.exited).code, 0);
  },

  async 'nc as the peer: what it sends comes back, and it exits at our FIN'() {
    if (spawnSync('nc', ['-h']).error) {
      console.log('# skipped: nc not installed (apt-get install netcat-openbsd)');
      return;
    }
    const server = await h.startServer(echoPath, ['--port', '0']);
    // -N: shut down the socket (FIN) at the end of stdin, as netcat-openbsd needs.
    const nc = await h.start('nc', ['-N', '127.0.0.1', String(server.port)], { stdin: 'hello from nc\n' }).exited;
    assert.strictEqual(nc.code, 0, nc.stderr);
    assert.strictEqual(nc.stdout, 'hello from nc\n');
    server.child.kill('SIGKILL');
  },

  async '--threads 2: 20 connections at once, each echoed intact'() {
    const server = await h.startServer(echoPath, ['--port', '0', '--threads', '2']);
    const sent = [...Array(20)].map(() => crypto.randomBytes(256 * 1024));
    const back = await Promise.all(sent.map((d) => h.roundTrip(server.port, d)));
    back.forEach((b, i) => assert.strictEqual(h.sha256(b), h.sha256(sent[i]), `connection ${i}`));
    server.child.kill('SIGTERM');
    assert.strictEqual((await server.exited).code, 0);
  },

  async 'SIGINT: an idle client is ended at once, one whose request is in gets its whole echo'() {
    const server = await h.startServer(echoPath, ['--port', '0']);
    const idle = await idleClient(server.port);
    // The request is wholly in the server's hands (its kernel or its buffers) before
    // SIGINT: echo has no message boundaries, so a request still arriving could be cut
    // at any pause between chunks (docs/guide.md, "Graceful shutdown").
    const socket = net.connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    await h.once(socket, 'connect');
    socket.pause();
    const data = crypto.randomBytes(48 * 1024);
    await new Promise((resolve) => socket.write(data, resolve));
    await h.within(10000, until(() => queues(socket.localPort, server.port).tx === 0), 'request sent');
    server.child.kill('SIGINT');
    await h.once(idle, 'end');
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    const ended = h.once(socket, 'end');
    socket.resume();
    await ended;  // ended by the server once its echo was out, not by us
    const back = Buffer.concat(chunks);
    assert.strictEqual(back.length, data.length);
    assert.strictEqual(h.sha256(back), h.sha256(data));
    const r = await server.exited;
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, /^shutdown: 2 ended gracefully, 0 cut$/m);
  },

  async 'SIGINT --grace 200: a client that never reads is cut when the grace period ends'() {
    const server = await h.startServer(echoPath, ['--port', '0', '--grace', '200']);
    const idle = await idleClient(server.port);
    const socket = await stalledClient(server.port);
    const started = Date.now();
    server.child.kill('SIGINT');
    await h.once(idle, 'end');
    await h.once(socket, 'close');  // never read, never ended by us
    assert.ok(Date.now() - started >= 190, `cut after ${Date.now() - started} ms`);
    const r = await server.exited;
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, /^shutdown: 1 ended gracefully, 1 cut$/m);
  },

  async '--idle-timeout closes a silent connection, and a busy one stays'() {
    const server = await h.startServer(echoPath, ['--port', '0', '--idle-timeout', '200']);
    const quiet = net.connect(server.port, '127.0.0.1');
    quiet.on('error', () => {});
    await h.once(quiet, 'close');  // closed by the server, not by us
    const data = crypto.randomBytes(64 * 1024);
    assert.strictEqual(h.sha256(await h.roundTrip(server.port, data)), h.sha256(data));
    server.child.kill('SIGKILL');
  },
});
