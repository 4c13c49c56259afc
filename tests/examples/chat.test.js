// examples/chat_server and examples/chat_client, driven through their command
// lines by Node.js clients: nicknames, broadcast, join/leave, /who, /nick, /quit,
// a stalled client cut off while the others chat on, over-long lines, idle
// clients, SIGINT, and chat_client in a pipeline and after its half-close.
//   node chat.test.js CHAT_SERVER CHAT_CLIENT
'use strict';
const net = require('net');
const h = require('./harness');
const { assert } = h;

const [serverPath, clientPath] = process.argv.slice(2);

const mib = (bytes) => (bytes / 1048576).toFixed(1);

/// The memory bound chat_server --help states, for `clients` clients at default flags.
async function memoryBound(clients) {
  const help = (await h.start(serverPath, ['--help']).exited).stdout;
  const m = /(\d+) MiB \+ CLIENTS x (\d+) KiB at the defaults/.exec(help);
  assert.ok(m, `--help states the memory bound: ${help}`);
  return (Number(m[1]) * 1024 + clients * Number(m[2])) * 1024;
}

/// Connects and joins under `name`, resolving once the server has listed who is here.
async function join(port, name) {
  const c = h.lineClient(port);
  await c.next('* welcome');
  c.send(name);
  await c.next('* here:');
  return c;
}

h.run({
  async 'chat_server --help and bad flags'() {
    const help = await h.start(serverPath, ['--help']).exited;
    assert.strictEqual(help.code, 0);
    assert.match(help.stdout, /^usage: chat_server/);
    const bad = await h.start(serverPath, ['--port', '70000']).exited;
    assert.strictEqual(bad.code, 2);
    assert.match(bad.stderr, /--port must be a number from 0 to 65535, not '70000'/);
    const unknown = await h.start(serverPath, ['--colour', 'red']).exited;
    assert.strictEqual(unknown.code, 2);
    assert.match(unknown.stderr, /unknown flag --colour/);
  },

  async 'three clients: names, broadcast, join and leave, /who, /nick, /quit'() {
    const server = await h.startServer(serverPath, ['--port', '0']);
    assert.strictEqual(server.host, '127.0.0.1');
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    await ann.next('* bob joined');
    const cat = await join(server.port, 'cat');
    await ann.next('* cat joined');
    await bob.next('* cat joined');

    ann.send('hello everyone');
    assert.strictEqual(await bob.next('ann:'), 'ann: hello everyone');
    assert.strictEqual(await cat.next('ann:'), 'ann: hello everyone');

    ann.send('/who');
    // Each user with the round-trip time the kernel measures (TCP_INFO), in ms.
    const rtt = '\\(rtt \\d+\\.\\d\\d ms\\)';
    assert.match(await ann.next('* here:'), new RegExp(`^\\* here: ann ${rtt} bob ${rtt} cat ${rtt}$`));
    assert.ok(!ann.lines.some((l) => l.startsWith('ann:')), 'a sender does not get its own line back');

    bob.send('/nick robert');
    assert.strictEqual(await ann.next('* bob'), '* bob is now robert');
    cat.send('hi robert');
    assert.strictEqual(await bob.next('cat:'), 'cat: hi robert');

    cat.send('/quit');
    await cat.next('* bye');
    await cat.until(() => cat.ended);
    assert.strictEqual(await ann.next('* cat'), '* cat left');
    assert.strictEqual(await bob.next('* cat'), '* cat left');
    server.child.kill('SIGKILL');
  },

  async 'a burst of 20,000 lines: the reader gets all, the stalled client is cut off in time'() {
    const writeTimeout = 1;  // seconds
    const server = await h.startServer(serverPath, ['--port', '0', '--write-timeout', String(writeTimeout)]);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    const slow = await join(server.port, 'slow');
    slow.socket.pause();  // connected, reads nothing more
    await ann.next('* slow joined');
    await bob.next('* slow joined');

    const lines = 20000;
    const filler = 'x'.repeat(1000);
    const started = Date.now();
    for (let i = 0; i < lines; ++i) ann.send(`${i} ${filler}`);  // as fast as Node can queue them
    const notice = '* slow was disconnected: too slow';
    await h.within(10000, bob.until(() => bob.lines.includes(notice) || bob.closed), 'the cut-off');
    const cutOffAfter = Date.now() - started;
    await h.within(20000, bob.next(`ann: ${lines - 1} `), 'the last line');

    // Bob, reading as fast as Node can, got every line in order and was never cut off.
    const got = bob.lines.filter((l) => l.startsWith('ann: ')).map((l) => Number(l.split(' ')[1]));
    assert.deepStrictEqual(got, [...Array(lines).keys()]);
    assert.ok(!bob.lines.some((l) => l.startsWith('* bob was')), 'bob kept up and stays');
    // Slow was cut off once it had not caught up for --write-timeout, and everyone heard.
    console.log(`# slow was cut off ${cutOffAfter} ms into the burst (--write-timeout ${writeTimeout} s)`);
    assert.ok(cutOffAfter < writeTimeout * 1000 + 3000, `cut off after ${cutOffAfter} ms`);
    assert.strictEqual(await ann.next('* slow'), notice);
    slow.socket.resume();
    await h.within(5000, slow.until(() => slow.closed), 'slow\'s close');

    const peak = h.peakRss(server.child.pid);
    const bound = await memoryBound(3);
    console.log(`# server peak resident memory ${mib(peak)} MiB, --help's bound for 3 clients ${mib(bound)} MiB`);
    h.assertMemoryBound(peak, bound, 'chat_server');
    ann.send('still here');
    assert.strictEqual(await bob.next('ann: still'), 'ann: still here');
    server.child.kill('SIGKILL');
  },

  async 'a client that asks and never reads is cut off, and the server stays small'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--write-timeout', '1']);
    const ann = await join(server.port, 'ann');
    // A long name makes each answer long, so the kernel's buffers fill after fewer of them.
    const name = `flood${'d'.repeat(59)}`;
    const flood = await join(server.port, name);
    flood.socket.pause();  // asks, never reads the answers
    await ann.next(`* ${name} joined`);
    const asks = '/who\n'.repeat(64 * 1024);
    const started = Date.now();
    for (let sent = 0; sent < 20 * 1024 * 1024; sent += asks.length) flood.socket.write(asks);
    assert.strictEqual(await h.within(10000, ann.next('* flood'), 'the cut-off'),
      `* ${name} was disconnected: too slow`);
    console.log(`# the flood was cut off after ${Date.now() - started} ms (--write-timeout 1 s)`);
    const peak = h.peakRss(server.child.pid);
    const bound = await memoryBound(2);
    console.log(`# server peak resident memory ${mib(peak)} MiB after 20 MB of /who, bound ${mib(bound)} MiB`);
    h.assertMemoryBound(peak, bound, 'chat_server');
    flood.socket.resume();
    await h.within(5000, flood.until(() => flood.closed), 'flood\'s close');
    server.child.kill('SIGKILL');
  },

  async 'a stalled client that also sends does not wedge the room'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--write-timeout', '1']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    const slow = await join(server.port, 'slow');
    slow.socket.pause();
    await ann.next('* slow joined');
    await bob.next('* slow joined');
    // All three at once: ann and bob wait on slow, and slow on its own unread queue.
    const lines = 3000;
    const filler = 'z'.repeat(1000);
    for (let i = 0; i < lines; ++i) {
      for (const c of [ann, bob, slow]) c.send(`${i} ${filler}`);
    }
    await h.within(10000, bob.next(`ann: ${lines - 1} `), 'ann\'s last line at bob');
    await h.within(10000, ann.next(`bob: ${lines - 1} `), 'bob\'s last line at ann');
    const from = (c, name) => c.lines.filter((l) => l.startsWith(`${name}: `)).map((l) => Number(l.split(' ')[1]));
    assert.deepStrictEqual(from(bob, 'ann'), [...Array(lines).keys()]);
    assert.deepStrictEqual(from(ann, 'bob'), [...Array(lines).keys()]);
    assert.ok(ann.lines.includes('* slow was disconnected: too slow'));
    const relayed = from(ann, 'slow');  // what got through before the cut-off, in order
    assert.deepStrictEqual(relayed, [...Array(relayed.length).keys()]);
    server.child.kill('SIGKILL');
  },

  async '--max-queue is a hard limit: past it a client is cut off at once, not at --write-timeout'() {
    const server = await h.startServer(serverPath,
      ['--port', '0', '--max-line', String(16 << 20), '--max-queue', String(1 << 20), '--write-timeout', '60']);
    const ann = await join(server.port, 'ann');
    const slow = await join(server.port, 'slow');
    slow.socket.pause();
    await ann.next('* slow joined');
    // More than the kernel's buffers take (4 MiB + 128 KiB here): most of it must queue.
    ann.send('y'.repeat(12 << 20));
    assert.strictEqual(await h.within(5000, ann.next('* slow'), 'the cut-off'),
      '* slow was disconnected: too slow');
    server.child.kill('SIGKILL');
  },

  async 'an over-long line gets an error line, and the others are unaffected'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--max-line', '64']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    bob.send('y'.repeat(100));
    assert.strictEqual(await bob.next('* error'), '* error: line longer than 64 bytes; goodbye');
    await bob.until(() => bob.ended);
    assert.strictEqual(await ann.next('* bob left'), '* bob left');
    const cat = await join(server.port, 'cat');
    cat.send('fine');
    assert.strictEqual(await ann.next('cat:'), 'cat: fine');
    server.child.kill('SIGKILL');
  },

  async '--idle-timeout disconnects a silent client'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--idle-timeout', '1']);
    const quiet = await join(server.port, 'quiet');
    assert.strictEqual(await quiet.next('* idle'), '* idle too long; goodbye');
    await quiet.until(() => quiet.ended);
    server.child.kill('SIGKILL');
  },

  async 'SIGINT tells every client and ends their sockets'() {
    const server = await h.startServer(serverPath, ['--port', '0']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    server.child.kill('SIGINT');
    for (const c of [ann, bob]) {
      assert.strictEqual(await c.next('* server'), '* server shutting down');
      await c.until(() => c.ended);
    }
    const { code, signal } = await server.exited;
    assert.deepStrictEqual({ code, signal }, { code: 0, signal: null });
  },

  async 'SIGINT: an idle client leaves at once, one in mid-line finishes it and gets its answer'() {
    const server = await h.startServer(serverPath, ['--port', '0']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    await ann.next('* bob joined');
    // Half of bob's second line arrives with his first, which the answer confirms.
    bob.socket.write('/who\n/wh');
    await bob.next('* here:');
    server.child.kill('SIGINT');
    assert.strictEqual(await ann.next('* server'), '* server shutting down');
    await ann.until(() => ann.ended);
    assert.strictEqual(await bob.next('* server'), '* server shutting down');
    assert.ok(!bob.ended, 'bob, in the middle of a line, is still connected');
    bob.socket.write('o\n');
    assert.match(await bob.next('* here:'), /^\* here:/);
    await bob.until(() => bob.ended);
    const r = await server.exited;
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, /^shutdown: 2 ended gracefully, 0 cut$/m);
  },

  async 'SIGINT --grace 0: a client in mid-line is cut off at once'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--grace', '0']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    bob.socket.write('/who\n/wh');
    await bob.next('* here:');
    server.child.kill('SIGINT');
    await ann.until(() => ann.ended);
    await bob.until(() => bob.closed);
    const r = await server.exited;
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, /^shutdown: 1 ended gracefully, 1 cut$/m);
  },

  async 'chat_client in a pipeline: sends its name and stdin, prints the room'() {
    const server = await h.startServer(serverPath, ['--port', '0']);
    const ann = await join(server.port, 'ann');
    const client = h.start(clientPath, ['--port', String(server.port), '--name', 'pipe'],
      { stdin: 'hello from a pipe\n/who\n' });
    assert.strictEqual(await ann.next('* pipe joined'), '* pipe joined');
    assert.strictEqual(await ann.next('pipe:'), 'pipe: hello from a pipe');
    assert.strictEqual(await ann.next('* pipe left'), '* pipe left');
    const result = await client.exited;
    assert.strictEqual(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\* welcome! send your name\n\* here: ann pipe\n/);
    server.child.kill('SIGKILL');
  },

  async 'chat_client keeps printing after its half-close until the server ends'() {
    let received = '';
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('data', (d) => { received += d; });
      socket.on('end', () => socket.end('after your FIN\n'));  // only after the client's FIN
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const client = h.start(clientPath, ['--port', String(server.address().port), '--name', 'ann'],
      { stdin: 'last words\n' });
    const result = await client.exited;
    server.close();
    assert.strictEqual(result.code, 0, result.stderr);
    assert.strictEqual(result.stdout, 'after your FIN\n');
    assert.strictEqual(received, 'ann\nlast words\n');
  },

  async 'chat_client: a refused connection is a clear error'() {
    const port = await h.closedPort();
    const result = await h.start(clientPath, ['--port', String(port), '--name', 'ann'], { stdin: '' }).exited;
    assert.strictEqual(result.code, 1);
    assert.strictEqual(result.stderr, `chat_client: connect ECONNREFUSED 127.0.0.1:${port}\n`);
    const missing = await h.start(clientPath, ['--name', 'ann']).exited;
    assert.strictEqual(missing.code, 2);
    assert.match(missing.stderr, /--port is required/);
  },
});
