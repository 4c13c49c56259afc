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
    assert.strictEqual(await ann.next('* here:'), '* here: ann bob cat');
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

  async 'a stalled client is cut off while the others keep chatting'() {
    const server = await h.startServer(serverPath, ['--port', '0', '--max-queue', '16384']);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    const slow = await join(server.port, 'slow');
    slow.socket.pause();  // reads nothing more: the server's queue for it must grow
    await ann.next('* slow joined');
    await bob.next('* slow joined');

    const filler = 'x'.repeat(1000);
    let sent = 0;
    // Batches of 50 lines; bob reads each batch before the next, so only slow falls behind.
    for (let batch = 0; batch < 2000 && !ann.lines.some((l) => l.includes('slow was disconnected')); ++batch) {
      for (let i = 0; i < 50; ++i) ann.send(`${sent++} ${filler}`);
      await bob.next(`ann: ${sent - 1} `);
    }
    assert.strictEqual(await ann.next('* slow'), '* slow was disconnected: too far behind');
    // (bob's notice may come between ann's lines, so look at all bob received)
    await bob.until(() => bob.lines.includes('* slow was disconnected: too far behind'));
    // Bob got every one of ann's lines, in order, none lost while slow was stalled.
    const got = bob.lines.filter((l) => l.startsWith('ann: ')).map((l) => Number(l.split(' ')[1]));
    assert.deepStrictEqual(got, [...Array(sent).keys()]);
    console.log(`# slow was cut off after ${sent} lines of 1 KB`);

    ann.send('still here');
    assert.strictEqual(await bob.next('ann: still'), 'ann: still here');
    slow.socket.resume();
    await slow.until(() => slow.closed);
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
