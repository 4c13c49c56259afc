// The examples' TLS modes through their command lines, against Node.js's tls
// module: chat_server --tls-cert/--tls-key with Node tls clients and chat_client
// --tls --ca, coronet-cat --tls against a Node tls server. The certificate is made
// here with `openssl req` (no key material is checked in).
//   node tls.test.js CHAT_SERVER CHAT_CLIENT CORONET_CAT
'use strict';
const tls = require('tls');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const h = require('./harness');
const { assert } = h;

const [serverPath, clientPath, catPath] = process.argv.slice(2);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coronet-example-tls-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
const certFile = path.join(dir, 'cert.pem');
const keyFile = path.join(dir, 'key.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
  '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=localhost', '-days', '2',
  '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
const ca = fs.readFileSync(certFile);

const tlsServerArgs = ['--port', '0', '--tls-cert', certFile, '--tls-key', keyFile];

/// A Node tls client that joins the chat under `name`.
async function join(port, name) {
  const c = h.lineClient(port, { tls: { ca, servername: 'localhost' } });
  await c.connected;
  await c.next('* welcome');
  c.send(name);
  await c.next('* here:');
  return c;
}

h.run({
  async 'chat_server and chat_client --help name the TLS flags; bad combinations are refused'() {
    const help = await h.start(serverPath, ['--help']).exited;
    assert.match(help.stdout, /--tls-cert FILE --tls-key FILE/);
    const clientHelp = await h.start(clientPath, ['--help']).exited;
    assert.match(clientHelp.stdout, /--tls \[--ca FILE\]/);
    const catHelp = await h.start(catPath, ['--help']).exited;
    assert.match(catHelp.stdout, /--tls \[--ca FILE\]/);
    const half = await h.start(serverPath, ['--tls-cert', certFile]).exited;
    assert.strictEqual(half.code, 2);
    assert.match(half.stderr, /--tls-cert and --tls-key go together/);
    const missing = await h.start(serverPath, ['--tls-cert', certFile, '--tls-key', path.join(dir, 'none.pem')]).exited;
    assert.strictEqual(missing.code, 1);
    assert.match(missing.stderr, /cannot load key_file '.*none\.pem'/);
    const caAlone = await h.start(clientPath, ['--port', '1', '--name', 'x', '--ca', certFile]).exited;
    assert.strictEqual(caAlone.code, 2);
    assert.match(caAlone.stderr, /--ca goes with --tls/);
  },

  async 'chat_server --tls-cert/--tls-key: Node tls clients chat over TLS 1.3, verified'() {
    const server = await h.startServer(serverPath, tlsServerArgs);
    const ann = await join(server.port, 'ann');
    const bob = await join(server.port, 'bob');
    await ann.next('* bob joined');
    assert.strictEqual(ann.socket.getProtocol(), 'TLSv1.3');
    assert.strictEqual(ann.socket.authorized, true);
    ann.send('hello over tls');
    assert.strictEqual(await bob.next('ann:'), 'ann: hello over tls');
    bob.send('/quit');
    await ann.next('* bob left');
    await bob.until(() => bob.ended);
    assert.strictEqual(bob.error, null);
    ann.socket.end();
    await ann.until(() => ann.closed);
  },

  async 'a plain TCP client is not a TLS client: the server drops it and goes on'() {
    const server = await h.startServer(serverPath, tlsServerArgs);
    const plain = h.lineClient(server.port);
    plain.send('not a handshake');
    await plain.until(() => plain.closed);
    assert.deepStrictEqual(plain.lines, []);
    const ann = await join(server.port, 'ann');  // still serving
    ann.socket.end();
  },

  async 'chat_client --tls --ca joins; its line reaches a Node tls client; FIN ends it'() {
    const server = await h.startServer(serverPath, tlsServerArgs);
    const ann = await join(server.port, 'ann');
    const bob = h.start(clientPath, ['--port', String(server.port), '--name', 'bob', '--tls', '--ca', certFile],
      { stdin: 'hi from chat_client\n' });
    assert.strictEqual(await ann.next('bob:'), 'bob: hi from chat_client');
    await ann.next('* bob left');
    const r = await bob.exited;
    assert.strictEqual(r.code, 0, r.stderr);
    assert.match(r.stdout, /\* welcome! send your name/);
    ann.socket.end();
  },

  async 'chat_client --tls without --ca refuses the self-signed server, in Node words'() {
    const server = await h.startServer(serverPath, tlsServerArgs);
    const r = await h.start(clientPath, ['--port', String(server.port), '--name', 'eve', '--tls'],
      { stdin: '' }).exited;
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /^chat_client: self-signed certificate/);
  },

  async 'coronet-cat --tls against a Node tls server: stdin, close_notify, the answer after it'() {
    const server = tls.createServer({ cert: ca, key: fs.readFileSync(keyFile), allowHalfOpen: true }, (socket) => {
      const chunks = [];
      socket.on('data', (d) => chunks.push(d));
      socket.on('end', () => {
        const all = Buffer.concat(chunks);
        socket.end(`${all.length} ${h.sha256(all)} ${socket.getProtocol()}\n`);
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const input = Buffer.alloc(1 << 20, 'coronet ');
    const cat = h.start(catPath, ['--tls', '--ca', certFile, '--servername', 'localhost', '127.0.0.1',
      String(server.address().port)], { stdin: input });
    const r = await cat.exited;
    server.close();
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.stdout, `${input.length} ${h.sha256(input)} TLSv1.3\n`);
  },
});
