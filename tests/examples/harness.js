// The little every example test needs: start a built example and learn its port
// from its first line, talk to it line by line, wait for events with a bound, and
// fail the whole test (with what was seen) rather than hang.
'use strict';
const net = require('net');
const tls = require('tls');
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const assert = require('assert');

const children = new Set();
function cleanUp() {
  for (const child of children) child.kill('SIGKILL');
}
process.on('exit', cleanUp);

/// Runs `steps` (async functions, by name) one after another; each is bounded by
/// `limitMs`. Exits 0 when all passed, 1 with the first failure.
async function run(steps, limitMs = 30000) {
  for (const [name, step] of Object.entries(steps)) {
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${limitMs} ms`)), limitMs);
    });
    try {
      await Promise.race([step(), deadline]);
      console.log(`ok - ${name}`);
    } catch (e) {
      console.log(`not ok - ${name}: ${e.stack || e}`);
      for (const child of children) {
        console.log(`# still running: ${child.spawnargs.join(' ')}\n# its stderr: ${child.stderrSoFar()}`);
      }
      cleanUp();
      process.exit(1);
    } finally {
      clearTimeout(timer);
    }
  }
  cleanUp();
  process.exit(0);
}

/// A running program: its stdout and stderr so far, and a promise of its exit.
function start(path, args, { stdin } = {}) {
  const child = spawn(path, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const proc = { child, stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { proc.stdout += d; });
  child.stderr.on('data', (d) => { proc.stderr += d; });
  child.stderrSoFar = () => proc.stderr;
  proc.exited = new Promise((resolve) => child.on('close', (code, signal) => {
    children.delete(child);
    resolve({ code, signal, stdout: proc.stdout, stderr: proc.stderr });
  }));
  // A program may exit without reading all its input (a refused connection): EPIPE
  // on its stdin is then expected, and what the test checks is its exit status.
  child.stdin.on('error', () => {});
  if (stdin !== undefined) child.stdin.end(stdin);
  return proc;
}

/// Starts a server example and resolves with its port, read from its first line
/// of stdout: "listening on HOST:PORT".
async function startServer(path, args = []) {
  const proc = start(path, args);
  const line = await new Promise((resolve, reject) => {
    const check = () => {
      const nl = proc.stdout.indexOf('\n');
      if (nl >= 0) resolve(proc.stdout.slice(0, nl));
    };
    proc.child.stdout.on('data', check);
    proc.exited.then((r) => reject(new Error(`${path} exited early: ${JSON.stringify(r)}`)));
  });
  const m = /^listening on (.+):(\d+)$/.exec(line);
  assert.ok(m, `first line should be "listening on HOST:PORT", got "${line}"`);
  proc.host = m[1];
  proc.port = Number(m[2]);
  return proc;
}

/// A line-oriented client: `next(pattern)` resolves with the next line matching
/// `pattern` (a string prefix or a RegExp), `lines` holds everything received.
/// With `options.tls` (tls.connect() options: ca, servername, ...) it speaks TLS.
function lineClient(port, options = {}) {
  const { tls: secure, ...rest } = options;
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', ...rest, ...secure })
    : net.connect({ port, host: '127.0.0.1', ...rest });
  const client = { socket, lines: [], ended: false, closed: false, error: null, waiters: [] };
  let partial = '';
  const wake = () => {
    client.waiters = client.waiters.filter((w) => !w());
  };
  socket.setEncoding('utf8');
  socket.on('data', (d) => {
    partial += d;
    let nl;
    while ((nl = partial.indexOf('\n')) >= 0) {
      client.lines.push(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    wake();
  });
  socket.on('end', () => { client.ended = true; wake(); });
  socket.on('close', () => { client.closed = true; wake(); });
  socket.on('error', (e) => { client.error = e; wake(); });
  let seen = 0;  // lines already handed out by next()
  client.next = (pattern) => new Promise((resolve, reject) => {
    const matches = (l) => (typeof pattern === 'string' ? l.startsWith(pattern) : pattern.test(l));
    const look = () => {
      while (seen < client.lines.length) {
        const l = client.lines[seen++];
        if (matches(l)) { resolve(l); return true; }
      }
      if (client.closed) {
        reject(new Error(`connection closed before a line matching ${pattern}; got ${JSON.stringify(client.lines)}`));
        return true;
      }
      return false;
    };
    if (!look()) client.waiters.push(look);
  });
  client.send = (line) => socket.write(line + '\n');
  client.until = (predicate) => new Promise((resolve) => {
    const look = () => { if (predicate()) { resolve(); return true; } return false; };
    if (!look()) client.waiters.push(look);
  });
  client.connected = new Promise((resolve, reject) => {
    socket.once(secure ? 'secureConnect' : 'connect', resolve);
    socket.once('error', reject);
  });
  return client;
}

/// `promise`, or a failure naming `what` once `ms` have passed without it.
function within(ms, promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/// Peak resident memory of a running process, in bytes (VmHWM in /proc/PID/status).
function peakRss(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/// Whether a program's memory can be held to its documented bound: not under a
/// sanitizer, whose shadow memory alone is several times a small server's heap.
const sanitizer = process.env.CORONET_SANITIZER || 'none';
const memoryBoundsApply = sanitizer === 'none';

/// Asserts `peak` < `bound` where that means something (see memoryBoundsApply).
function assertMemoryBound(peak, bound, what) {
  if (!memoryBoundsApply) {
    console.log(`# ${what}: memory bound not checked under -Db_sanitize=${sanitizer}`);
    return;
  }
  assert.ok(peak < bound, `${what}: peak ${peak} bytes, bound ${bound}`);
}

/// Resolves once `emitter` emits `event`.
const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));

const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/// A port nothing listens on: one the kernel handed out and took back.
async function closedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/// Sends `data` on a new connection, ends it, and resolves with everything that
/// came back and whether the other side's FIN arrived.
function roundTrip(port, data) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
    socket.end(data);
  });
}

module.exports = {
  run, start, startServer, lineClient, once, within, peakRss, assertMemoryBound, sha256, closedPort, roundTrip, assert,
};
