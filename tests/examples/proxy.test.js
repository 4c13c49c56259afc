// examples/proxy through its command line, between a Node.js client and a Node.js
// upstream: 10 MiB with a checksum, half-close in each direction, bounded memory
// on 64 MiB, an upstream that refuses, resets passed on as resets, and a client
// that stops reading cut off by --write-timeout.
//   node proxy.test.js PROXY
'use strict';
const net = require('net');
const crypto = require('crypto');
const h = require('./harness');
const { assert } = h;

const [proxyPath] = process.argv.slice(2);

/// A Node.js upstream running `onConnection` for each socket; resolves with its port.
async function upstream(onConnection) {
  const server = net.createServer({ allowHalfOpen: true }, onConnection);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function proxyTo(port, flags = []) {
  return h.startServer(proxyPath, ['--listen', '0', '--to', `127.0.0.1:${port}`, ...flags]);
}

/// How a connection ended: the error code it saw ('ECONNRESET') or null, whether
/// a clean FIN ('end') came first, and how many bytes arrived. Reads what arrives,
/// unless the socket was paused before.
function outcome(socket) {
  const seen = { error: null, ended: false, bytes: 0 };
  socket.on('data', (d) => { seen.bytes += d.length; });
  socket.on('error', (e) => { seen.error = e.code; });
  socket.on('end', () => { seen.ended = true; });
  return h.once(socket, 'close').then(() => seen);
}

h.run({
  async 'proxy --help and missing flags'() {
    const help = await h.start(proxyPath, ['--help']).exited;
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^usage: proxy/);
    assert.match(help.stdout, /--write-timeout/);
    const missing = await h.start(proxyPath, ['--listen', '0']).exited;
    assert.strictEqual(missing.code, 2);
    assert.match(missing.stderr, /--to HOST:PORT is required/);
  },

  async 'client FIN first: 10 MiB through, and the answer after the FIN comes back'() {
    // The upstream answers only once it has the client's FIN, with a digest of all it got.
    const up = await upstream((socket) => {
      const hash = crypto.createHash('sha256');
      let length = 0;
      socket.on('data', (d) => { hash.update(d); length += d.length; });
      socket.on('end', () => socket.end(`${length} ${hash.digest('hex')}\n`));
    });
    const proxy = await proxyTo(up.address().port);
    const data = crypto.randomBytes(10 * 1024 * 1024);
    const answer = await h.roundTrip(proxy.port, data);  // resolves at the upstream's FIN
    assert.strictEqual(answer.toString(), `${data.length} ${h.sha256(data)}\n`);
    proxy.child.kill('SIGKILL');
    up.close();
  },

  async 'upstream FIN first: the client still sends after it, and the upstream gets it'() {
    let heard;
    const heardAll = new Promise((r) => { heard = r; });
    const up = await upstream((socket) => {
      socket.end('goodbye first\n');  // half-close before the client has said anything
      const chunks = [];
      socket.on('data', (d) => chunks.push(d));
      socket.on('end', () => heard(Buffer.concat(chunks).toString()));
    });
    const proxy = await proxyTo(up.address().port);
    const client = net.connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
    const closed = h.once(client, 'close');
    let got = '';
    client.on('data', (d) => { got += d; });
    await h.once(client, 'end');
    assert.strictEqual(got, 'goodbye first\n');
    client.end('still talking after your FIN');
    assert.strictEqual(await heardAll, 'still talking after your FIN');
    await closed;
    proxy.child.kill('SIGKILL');
    up.close();
  },

  async '64 MiB from the upstream: intact, and the proxy never holds more than a little of it'() {
    const size = 64 * 1024 * 1024;
    const data = crypto.randomBytes(size);
    const up = await upstream((socket) => {
      socket.on('data', () => {});
      socket.end(data);
    });
    const proxy = await proxyTo(up.address().port);
    const back = await h.roundTrip(proxy.port, Buffer.alloc(0));
    assert.strictEqual(h.sha256(back), h.sha256(data));
    const peak = h.peakRss(proxy.child.pid);
    console.log(`# proxy peak resident memory: ${(peak / 1048576).toFixed(1)} MiB for 64 MiB forwarded`);
    h.assertMemoryBound(peak, 32 * 1024 * 1024, 'proxy');
    proxy.child.kill('SIGKILL');
    up.close();
  },

  async 'an upstream that refuses: the client is reset at once, and the proxy goes on'() {
    const port = await h.closedPort();
    const proxy = await proxyTo(port);
    for (let i = 0; i < 2; ++i) {
      const client = net.connect(proxy.port, '127.0.0.1');
      let error = null;
      client.on('error', (e) => { error = e; });
      await h.once(client, 'close');
      assert.strictEqual(error && error.code, 'ECONNRESET');
    }
    assert.match(proxy.stderr, new RegExp(`proxy: connect ECONNREFUSED 127.0.0.1:${port}\n`));
    proxy.child.kill('SIGKILL');
  },

  async 'an upstream that resets mid-response: the client is reset too, not sent a FIN'() {
    let upstreamSocket;
    const up = await upstream((socket) => {
      upstreamSocket = socket;
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial');
    });
    const proxy = await proxyTo(up.address().port);
    const client = net.connect(proxy.port, '127.0.0.1');
    const seen = outcome(client);
    // The reset only once the client has the partial response: when both arrive in one
    // wake-up, libuv reports the hang-up as a clean end, whatever the proxy sent.
    await h.once(client, 'data');
    upstreamSocket.resetAndDestroy();
    const { error, ended } = await h.within(5000, seen, 'the client\'s close');
    assert.deepStrictEqual({ error, ended }, { error: 'ECONNRESET', ended: false });
    proxy.child.kill('SIGKILL');
    up.close();
  },

  async '--write-timeout: a client that stops reading gets both sides reset'() {
    const data = Buffer.alloc(32 * 1024 * 1024);  // far more than the kernels between hold
    let upstreamConnected;
    const upstreamSide = new Promise((resolve) => { upstreamConnected = resolve; });
    const up = await upstream((socket) => {
      upstreamConnected(outcome(socket));
      socket.write(data);
    });
    const proxy = await proxyTo(up.address().port, ['--write-timeout', '1']);
    const client = net.connect(proxy.port, '127.0.0.1');
    client.pause();  // connected, reads nothing
    const clientSide = outcome(client);
    await h.once(client, 'connect');
    const started = Date.now();
    const { error, ended } = await h.within(5000, upstreamSide, 'the upstream\'s close');
    assert.deepStrictEqual({ error, ended }, { error: 'ECONNRESET', ended: false });
    const after = Date.now() - started;
    console.log(`# both sides reset ${after} ms after the client stopped reading (--write-timeout 1)`);
    assert.ok(after > 500, `reset after ${after} ms: too soon for a 1 s timeout`);
    assert.match(proxy.stderr, /proxy: a write waited 1 s for a peer that does not read; both sides reset/);
    // The client gets what its kernel held, then the connection is gone. (Node reports
    // a reset that came while paused as a clean end: libuv sees the hang-up after a
    // short read. So check that it was cut short.)
    client.resume();
    const seen = await h.within(5000, clientSide, 'the client\'s close');
    assert.ok(seen.bytes < data.length, `the client got ${seen.bytes} bytes`);
    proxy.child.kill('SIGKILL');
    up.close();
  },
});
