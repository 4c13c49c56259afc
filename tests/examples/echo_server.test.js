// examples/echo_server through its command line: 10 MiB echoed with a checksum,
// the client's FIN mirrored, nc as a peer, --threads N on one port, --idle-timeout.
//   node echo_server.test.js ECHO_SERVER
'use strict';
const net = require('net');
const crypto = require('crypto');
const { spawnSync } = require('child_process');
const h = require('./harness');
const { assert } = h;

const [echoPath] = process.argv.slice(2);

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
