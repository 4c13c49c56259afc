// examples/cat (coronet-cat) through its command line against Node.js servers:
// stdin to the socket and the socket to stdout, half-close on stdin's end, and a
// clear message with a non-zero status on refused and reset connections.
//   node cat.test.js CORONET_CAT
'use strict';
const net = require('net');
const crypto = require('crypto');
const h = require('./harness');
const { assert } = h;

const [catPath] = process.argv.slice(2);

async function nodeServer(onConnection) {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

h.run({
  async 'coronet-cat --help and bad arguments'() {
    const help = await h.start(catPath, ['--help']).exited;
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^usage: coronet-cat .*HOST PORT/);
    const none = await h.start(catPath, []).exited;
    assert.strictEqual(none.code, 2);
    assert.match(none.stderr, /expected HOST and PORT/);
    const port = await h.start(catPath, ['127.0.0.1', 'http']).exited;
    assert.strictEqual(port.code, 2);
    assert.match(port.stderr, /PORT must be a number, not 'http'/);
    const range = await h.start(catPath, ['127.0.0.1', '70000'], { stdin: '' }).exited;
    assert.strictEqual(range.code, 1);
    assert.match(range.stderr, /70000/);
  },

  async 'stdin reaches the server, its FIN follows, and the answer after it is printed'() {
    const server = await nodeServer((socket) => {
      const hash = crypto.createHash('sha256');
      let length = 0;
      socket.on('data', (d) => { hash.update(d); length += d.length; });
      socket.on('end', () => socket.end(`${length} ${hash.digest('hex')}\n`));
    });
    const input = crypto.randomBytes(1024 * 1024);
    const result = await h.start(catPath, ['127.0.0.1', String(server.address().port)], { stdin: input }).exited;
    server.close();
    assert.strictEqual(result.code, 0, result.stderr);
    assert.strictEqual(result.stdout, `${input.length} ${h.sha256(input)}\n`);
  },

  async '10 MiB from the server reaches stdout intact'() {
    const data = crypto.randomBytes(10 * 1024 * 1024);
    const server = await nodeServer((socket) => {
      socket.on('data', () => {});
      socket.end(data);
    });
    const proc = h.start(catPath, ['127.0.0.1', String(server.address().port)], { stdin: '' });
    const chunks = [];
    proc.child.stdout.on('data', (d) => chunks.push(d));
    const result = await proc.exited;
    server.close();
    assert.strictEqual(result.code, 0, result.stderr);
    assert.strictEqual(h.sha256(Buffer.concat(chunks)), h.sha256(data));
  },

  async 'a refused connection: status 1 and the reason'() {
    const port = await h.closedPort();
    const result = await h.start(catPath, ['127.0.0.1', String(port)], { stdin: '' }).exited;
    assert.strictEqual(result.code, 1);
    assert.strictEqual(result.stderr, `coronet-cat: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  },

  async 'a reset connection: status 1 and the reason'() {
    // The reset comes once the server has our first line, so the connection was surely
    // up (a reset racing the handshake is reported as "connect ECONNRESET", as in Node).
    const server = await nodeServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    const proc = h.start(catPath, ['127.0.0.1', String(server.address().port)]);
    proc.child.stdin.write('ping\n');  // and stdin stays open: only the reset can end it
    const result = await proc.exited;
    server.close();
    assert.strictEqual(result.code, 1);
    assert.strictEqual(result.stderr, 'coronet-cat: read ECONNRESET\n');
  },
});
