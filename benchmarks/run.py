#!/usr/bin/env python3
"""Runs coronet's benchmarks side by side with its peers and reports ratios.

Every server (benchmarks/coronet, benchmarks/peers/*) speaks one protocol and is
driven by one load client (benchmarks/peers/c/client.c), so the only thing that
changes between columns is the server. The machine is shared and noisy, so every
figure is also given as a ratio to the plain C epoll server measured in the same
run. Three steps measure coronet alone: heap allocations per round trip, framed
reads against read() + memchr (benchmarks/coronet/framing.cpp), whose ratio is to
coronet's own raw reads, and how late a 10 ms timer on the server's thread fires
under a 200 MB flood (benchmarks/coronet/lateness.cpp), with plain Asio as the
reference. The _unix rows repeat bulk and ping-pong over a Unix-domain socket (in a
temporary directory), their ratio to C on the same kind of socket. Prints a progress
line per step, then the tables and the goals; writes every sample to JSON and draws
an SVG chart with gnuplot.

    python3 benchmarks/run.py [--duration S] [--runs N] [--only LIST] [--json PATH] [--short]
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, label, how the server is started (filled in by find_systems)
SYSTEM_LABELS = {
    'c': 'C epoll (reference)',
    'coronet': 'coronet',
    'coronet_io_uring': 'coronet io_uring',
    'asio_callbacks': 'Asio callbacks',
    'asio_awaitable': 'Asio awaitable',
    'asio_awaitable_io_uring': 'Asio awaitable io_uring',
    'tokio': 'Rust tokio',
    'go': 'Go net',
    'node': 'Node.js net',
}
# The same servers built on Asio's io_uring backend (-Dio_uring=enabled for coronet,
# ASIO_HAS_IO_URING for both) run these workloads only: the latency and throughput rows.
IO_URING_SYSTEMS = {'coronet_io_uring': 'coronet_server_io_uring',
                    'asio_awaitable_io_uring': 'asio_awaitable_io_uring'}
IO_URING_WORKLOADS = {'bulk', 'pingpong', 'pingpong_pinned', 'concurrency_100'}


class Row:
    """One line of the table: a figure the client reports, per system.
    `baseline` names the row whose C figure the ratio is taken against (its own by default)."""

    def __init__(self, name, label, metric, unit, higher_is_better=True, baseline=None):
        self.name, self.label, self.metric, self.unit = name, label, metric, unit
        self.higher_is_better, self.baseline = higher_is_better, baseline or name


class Workload(Row):
    """What the client does to each server, and the row (or rows, `also`) it yields.
    `systems` limits it to the servers that speak its mode; `server_args` go to each;
    `unix`: over a Unix-domain socket instead of 127.0.0.1."""

    def __init__(self, name, label, mode, client_args, metric, unit, higher_is_better=True,
                 pinned=False, systems=None, server_args=(), also=(), baseline=None, unix=False):
        super().__init__(name, label, metric, unit, higher_is_better, baseline)
        self.mode, self.client_args, self.pinned, self.unix = mode, client_args, pinned, unix
        self.systems, self.server_args, self.also = systems, list(server_args), list(also)

    def rows(self):
        return [self, *self.also]

    def runs_on(self, system):
        if system in IO_URING_SYSTEMS and self.name not in IO_URING_WORKLOADS:
            return False
        return self.systems is None or system in self.systems


def fairness(name, label, systems=None, server_args=(), baseline=None):
    """A flood and a ping-pong on one server: the ping-pong's p99 and worst round trip."""
    return Workload(name, f'{label}: ping-pong p99', 'mixed', ['--workload', 'fairness'], 'p99_us', 'µs',
                    higher_is_better=False, systems=systems, server_args=server_args,
                    baseline=baseline,
                    also=[Row(f'{name}_worst', f'{label}: worst round trip', 'worst_us', 'µs',
                              higher_is_better=False, baseline=baseline and f'{baseline}_worst')])


# The framed-read row: coronet's readers against read() + memchr on the same stream.
FRAMED_LINE_BYTES = (10, 100)
FRAMED_READERS = {
    'read_memchr': 'read() + memchr',
    'read_line': 'read_line()',
    'read_until': 'read_until("\\n")',
    'read_exactly': 'read_exactly(L)',
}
# The timer-lateness table: a 10 ms timer on the flooded server's io_context{1}
# (benchmarks/coronet/lateness.cpp), per reader, without work and with 100 µs per chunk.
LATENESS_READERS = {
    'asio': 'Asio async_read_some (reference)',
    'read': 'read()',
    'read_some': 'read_some()',
    'read_line': 'read_line()',
    'read_until': 'read_until("\\n")',
    'read_exactly': 'read_exactly(100)',
}
LATENESS_WORK_US = (0, 100)
# The flood, in --short mode too: without work 200 MB lasts 0.2-0.5 s, 20-50
# ticks of the timer, and 50 MB would leave it 4. One run of each row takes about 10 s.
LATENESS_MEGABYTES = 200
LATENESS_GOAL_MS = 20
# Zero-copy rows (benchmarks/coronet/zero_copy.cpp): each pair runs in the same step,
# alternating, so both see the same machine. (row, label, the row it is compared with)
ZERO_COPY_ROWS = [
    ('pipe', 'proxy: pipe_both() (splice)', 'copy_loop'),
    ('pipe_copy', 'proxy: pipe_both(), zero_copy = false', 'copy_loop'),
    ('copy_loop', 'proxy: read() + write() loop', None),
    ('send_file', 'file: send_file() (sendfile)', 'read_write'),
    ('read_write', 'file: pread() + write() loop', None),
]
ZERO_COPY_MEGABYTES = 1024
EXTRAS = ('allocations', 'framed', 'lateness', 'zero_copy', 'tls')  # steps beside the table --only can name
# The tls step: TLS sinks driven by bench_tls_client (benchmarks/README.md, "TLS").
TLS_SYSTEMS = {'coronet': 'coronet tls', 'node': 'Node.js tls', 'go': 'Go crypto/tls',
               'openssl': 'openssl s_server'}
TLS_ROWS = [('bulk', 'bulk, 1 connection', 'gbytes_per_s', 'GB/s'),
            ('handshake', 'handshakes, 1 at a time', 'handshakes_per_s', '/s'),
            ('idle', 'memory per idle connection', 'bytes_per_connection', 'KiB')]
TLS_IDLE_CONNECTIONS = 1000


def workloads(short):
    idle_connections = 2000 if short else 10000
    return [
        Workload('bulk', 'bulk, 64 KiB writes', 'sink', ['--workload', 'bulk'], 'gbytes_per_s', 'GB/s'),
        Workload('pingpong', 'ping-pong, 64 B', 'echo', ['--workload', 'pingpong'],
                 'round_trips_per_s', 'round trips/s'),
        # The same two over a Unix-domain socket; the ratio is to C on the same socket.
        Workload('bulk_unix', 'bulk over a Unix socket', 'sink', ['--workload', 'bulk'], 'gbytes_per_s',
                 'GB/s', unix=True),
        Workload('pingpong_unix', 'ping-pong over a Unix socket', 'echo', ['--workload', 'pingpong'],
                 'round_trips_per_s', 'round trips/s', unix=True),
        Workload('pingpong_pinned', 'ping-pong, both on CPU 0', 'echo', ['--workload', 'pingpong'],
                 'round_trips_per_s', 'round trips/s', pinned=True),
        Workload('concurrency_100', '100 connections', 'echo',
                 ['--workload', 'concurrency', '--connections', '100'], 'round_trips_per_s', 'round trips/s'),
        Workload('concurrency_1000', '1,000 connections', 'echo',
                 ['--workload', 'concurrency', '--connections', '1000'], 'round_trips_per_s', 'round trips/s'),
        Workload('connrate', 'connection rate', 'echo', ['--workload', 'connrate'],
                 'connections_per_s', 'connections/s'),
        Workload('idle_memory', f'idle memory, {idle_connections:,} connections', 'echo',
                 ['--workload', 'idle', '--connections', str(idle_connections)], 'bytes_per_connection',
                 'bytes/conn', higher_is_better=False),
        fairness('fairness', 'flood + ping-pong'),
        # Only coronet reads its flood with read_line(); its ratio is to C's fairness row.
        fairness('fairness_read_line', 'flood read by read_line()', systems=['coronet'],
                 server_args=['--sink-reader', 'read_line'], baseline='fairness'),
        Workload('http_pipelined', 'HTTP, 50 conns x 16 pipelined', 'http',
                 ['--workload', 'http', '--connections', '50', '--depth', '16'], 'responses_per_s',
                 'responses/s', systems=['c', 'coronet', 'node']),
    ]


def say(line):
    print(line, flush=True)


# ---------------------------------------------------------------- building

def build(build_dir):
    """Builds the C and C++ programs with Meson (release), Go's and tokio's with their tools.
    Returns {system: argv prefix} for every system that could be built."""
    say(f'== building into {build_dir}')
    if not (build_dir / 'build.ninja').exists():
        run_quietly(['meson', 'setup', str(build_dir), '-Dbenchmarks=enabled', '-Dtests=disabled',
                     '-Dexamples=disabled', '-Dbuildtype=release', '-Db_ndebug=true'], 'meson setup')
    # Only the benchmark programs: the library's own checks are the test suite's job.
    targets = [f'benchmarks/{t}' for t in ('c_server', 'bench_client', 'coronet_server', 'coronet_framing',
                                            'coronet_lateness', 'coronet_zero_copy', 'asio_callbacks',
                                            'asio_awaitable')]
    # The TLS programs exist where Meson found OpenSSL 3.
    if 'coronet_tls_server' in (build_dir / 'build.ninja').read_text():
        targets += ['benchmarks/coronet_tls_server', 'benchmarks/bench_tls_client']
    io_uring = io_uring_targets(build_dir)
    run_quietly(['ninja', '-C', str(build_dir), *targets, *(f'benchmarks/{t}' for t in io_uring.values())],
                'ninja')
    b = build_dir / 'benchmarks'
    systems = {
        'c': [str(b / 'c_server')],
        'coronet': [str(b / 'coronet_server')],
        'asio_callbacks': [str(b / 'asio_callbacks')],
        'asio_awaitable': [str(b / 'asio_awaitable')],
    }
    systems.update({name: [str(b / target)] for name, target in io_uring.items()})
    go = shutil.which('go')
    if go:
        out = build_dir / 'go_server'
        env = dict(os.environ, GOCACHE=str(build_dir / 'go-cache'), GOFLAGS='-mod=mod', GO111MODULE='on')
        run_quietly([go, 'build', '-o', str(out), '.'], 'go build', cwd=ROOT / 'benchmarks/peers/go', env=env)
        systems['go'] = [str(out)]
    else:
        say('   skipping Go: no `go` on PATH (bash scripts/setup.sh --bench installs golang-go)')
    tokio = build_tokio(build_dir)
    if tokio:
        systems['tokio'] = [tokio]
    node = shutil.which('node') or shutil.which('nodejs')
    if node:
        systems['node'] = [node, str(ROOT / 'benchmarks/peers/node/server.js')]
    else:
        say('   skipping Node.js: no `node` on PATH (apt-get install nodejs)')
    return systems


def io_uring_targets(build_dir):
    """{system: target} for the io_uring builds, or {} (saying why) where there are none."""
    probe = subprocess.run([sys.executable, str(ROOT / 'scripts/io_uring_probe.py')], stdout=subprocess.PIPE,
                           text=True)
    if probe.returncode != 0:
        say(f'   skipping the io_uring columns: {probe.stdout.strip()}')
        return {}
    declared = (build_dir / 'build.ninja').read_text()
    if 'benchmarks/coronet_server_io_uring' not in declared:
        # The build dir may predate benchmarks/meson.build's io_uring targets: regenerate once.
        subprocess.run(['meson', 'setup', '--reconfigure', str(build_dir)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        declared = (build_dir / 'build.ninja').read_text()
    if 'benchmarks/coronet_server_io_uring' not in declared:
        say('   skipping the io_uring columns: no liburing (bash scripts/setup.sh --bench installs liburing-dev),'
            ' or this build is -Dio_uring=enabled already')
        return {}
    return dict(IO_URING_SYSTEMS)


def build_tokio(build_dir):
    manifest = ROOT / 'benchmarks/peers/tokio/Cargo.toml'
    cargo = shutil.which('cargo')
    if not cargo or not Path('/usr/share/cargo/registry').is_dir():
        say('   skipping tokio: needs cargo and Debian\'s crates (bash scripts/setup.sh --bench '
            'installs cargo and librust-tokio-dev)')
        return None
    target = build_dir / 'tokio-target'
    # The crates come from Debian's librust-*-dev packages, never from the network.
    run_quietly([cargo, 'build', '--release', '--offline', '--quiet', '--manifest-path', str(manifest),
                 '--target-dir', str(target)], 'cargo build', cwd=manifest.parent)
    name = re.search(r'^name\s*=\s*"([^"]+)"', manifest.read_text(), re.M).group(1)
    return str(target / 'release' / name)


def run_quietly(argv, what, **kwargs):
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f'{what} failed:\n{result.stdout}')


# ---------------------------------------------------------------- running

def read_line(stream, seconds, what):
    """The next line of a child's pipe, waiting at most `seconds`."""
    ready, _, _ = select.select([stream], [], [], seconds)
    if not ready:
        raise RuntimeError(f'{what}: no output within {seconds} s')
    line = stream.readline()
    if not line:
        raise RuntimeError(f'{what}: exited without output')
    return line.strip()


class Server:
    """A server process in one mode, started and stopped around one sample: on
    127.0.0.1 with a port the kernel picks, or on the Unix-domain socket `unix_path`.
    `target` is what tells the client where it is."""

    def __init__(self, argv, mode, pinned, extra=(), unix_path=None):
        prefix = ['taskset', '-c', '0'] if pinned else []
        env = dict(os.environ, GOMAXPROCS='1')  # every server runs one event loop
        where = ['--unix', str(unix_path)] if unix_path else ['--port', '0']
        self.unix_path = unix_path
        self.process = subprocess.Popen(prefix + argv + ['--mode', mode, *where, *extra],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        first = read_line(self.process.stdout, 20, argv[-1])
        expected = (re.escape(f'listening on unix:{unix_path}') if unix_path
                    else r'listening on 127\.0\.0\.1:(\d+)')
        match = re.fullmatch(expected, first)
        if not match:
            self.stop()
            raise RuntimeError(f'{argv[-1]}: first line was {first!r}')
        self.port = None if unix_path else int(match.group(1))
        self.target = ['--unix', str(unix_path)] if unix_path else ['--port', str(self.port)]

    def rss(self):
        status = Path(f'/proc/{self.process.pid}/status').read_text()
        return int(re.search(r'VmRSS:\s+(\d+) kB', status).group(1)) * 1024

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.unix_path:
            # A server killed, or one that leaves its file, must not fail the next sample.
            Path(self.unix_path).unlink(missing_ok=True)


def client(client_path, target, workload, duration, pinned):
    prefix = ['taskset', '-c', '0'] if pinned else []
    argv = prefix + [client_path, *target, *workload.client_args, '--duration', str(duration)]
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            timeout=duration + 60)
    if result.returncode != 0:
        raise RuntimeError(f'client: {result.stderr.strip()}')
    return json.loads(result.stdout.strip().splitlines()[-1])


def sample(systems, name, workload, client_path, duration, socket_dir):
    """One measurement of one system on one workload: (value, the client's JSON).
    A Unix-socket workload's socket file goes in `socket_dir`."""
    unix_path = socket_dir / f'{name}.sock' if workload.unix else None
    server = Server(systems[name], workload.mode, workload.pinned, workload.server_args, unix_path)
    try:
        if workload.name == 'idle_memory':
            return idle_sample(server, client_path, workload)
        out = client(client_path, server.target, workload, duration, workload.pinned)
        return out[workload.metric], out
    finally:
        server.stop()


def idle_sample(server, client_path, workload):
    before = server.rss()
    held = subprocess.Popen([client_path, *server.target, *workload.client_args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = json.loads(read_line(held.stdout, 120, 'idle client'))
        after = server.rss()
    finally:
        held.stdin.close()
        held.wait(60)
    out.update(rss_before=before, rss_after=after, bytes_per_connection=(after - before) / out['held'])
    return out['bytes_per_connection'], out


def allocations(systems, client_path, duration):
    """Heap allocations per round trip on coronet's server in steady state."""
    server = Server(systems['coronet'], 'echo', False, ['--count-allocations'])
    try:
        ping = Workload('pingpong', '', 'echo', ['--workload', 'pingpong'], 'round_trips_per_s', '')
        client(client_path, server.target, ping, duration, False)
        line = read_line(server.process.stdout, 20, 'coronet_server --count-allocations')
        count, reads = map(int, re.fullmatch(r'allocations (\d+) reads (\d+)', line).groups())
        return count, reads
    finally:
        server.stop()


def framed_reads(build_dir, duration, runs):
    """coronet's framed reads against read() + memchr on the same stream, in lines/s:
    {(line_bytes, reader): [the program's JSON per run]}."""
    program = str(build_dir / 'benchmarks' / 'coronet_framing')
    out = {}
    for size in FRAMED_LINE_BYTES:
        for reader in FRAMED_READERS:
            for run in range(runs):
                result = subprocess.run([program, '--reader', reader, '--line-bytes', str(size),
                                         '--duration', str(duration)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, timeout=duration + 60)
                if result.returncode != 0:
                    say(f'[framed] {size}-byte lines · {reader}: FAILED: {result.stderr.strip()}')
                    continue
                sample = json.loads(result.stdout.strip().splitlines()[-1])
                out.setdefault((size, reader), []).append(sample)
                say(f'[framed] {size}-byte lines · {FRAMED_READERS[reader]} · run {run + 1}/{runs}: '
                    f'{sample["lines_per_s"]:,.0f} lines/s')
    return out


def framed_summary(framed):
    """{(line_bytes, reader): (median, min, max, ratio to read() + memchr or None)}."""
    summary = {}
    for (size, reader), samples in framed.items():
        values = [s['lines_per_s'] for s in samples]
        summary[(size, reader)] = [statistics.median(values), min(values), max(values), None]
    for (size, reader), entry in summary.items():
        base = summary.get((size, 'read_memchr'))
        if base:
            entry[3] = entry[0] / base[0]
    return summary


def zero_copy_runs(build_dir, megabytes, runs):
    """{row: [the program's JSON per run]}; the rows take turns within each run."""
    program = str(build_dir / 'benchmarks' / 'coronet_zero_copy')
    out = {}
    for run in range(runs):
        for row, label, _ in ZERO_COPY_ROWS:
            result = subprocess.run([program, '--row', row, '--megabytes', str(megabytes)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
            if result.returncode != 0:
                say(f'[zero_copy] {label}: FAILED: {result.stderr.strip()}')
                continue
            sample = json.loads(result.stdout.strip().splitlines()[-1])
            out.setdefault(row, []).append(sample)
            say(f'[zero_copy] {label} · run {run + 1}/{runs}: {sample["gbytes_per_s"]:.2f} GB/s, '
                f'{sample["cpu_s_per_gb"]:.3f} CPU s per GB ({sample["process_cpu_s_per_gb"]:.3f} '
                f'with the peers)')
    return out


def zero_copy_summary(raw):
    """{row: (median GB/s, min, max, median CPU s per GB, the same for the whole process)}.
    The whole process includes the client and sink threads: on one machine the work a
    proxy leaves undone can land on them (the sink then copies bytes no one has touched
    since the client wrote them, from colder memory)."""
    return {row: (statistics.median(s['gbytes_per_s'] for s in samples),
                  min(s['gbytes_per_s'] for s in samples), max(s['gbytes_per_s'] for s in samples),
                  statistics.median(s['cpu_s_per_gb'] for s in samples),
                  statistics.median(s['process_cpu_s_per_gb'] for s in samples))
            for row, samples in raw.items() if samples}


def zero_copy_table(summary, megabytes):
    lines = [f'{f"zero-copy, {megabytes} MiB per sample":<40} {"GB/s":>8} {"min - max":>15} '
             f'{"CPU s/GB":>9} {"+ peers":>8} {"vs copy":>16}']
    for row, label, other in ZERO_COPY_ROWS:
        entry = summary.get(row)
        if not entry:
            continue
        versus = ''
        if other and summary.get(other):
            versus = f'{entry[0] / summary[other][0]:.2f}x, CPU {entry[3] / summary[other][3]:.2f}x'
        lines.append(f'{label:<40} {entry[0]:>8.2f} {f"{entry[1]:.2f} - {entry[2]:.2f}":>15} '
                     f'{entry[3]:>9.3f} {entry[4]:>8.3f} {versus:>16}')
    return '\n'.join(lines)


# ---------------------------------------------------------------- TLS

def tls_servers(build_dir, directory):
    """{system: argv without the port}, for the TLS peers found; a certificate for
    them is made in `directory` with `openssl req` (no key material is checked in)."""
    openssl = shutil.which('openssl')
    if not openssl:
        say('[tls] skipped: no openssl command')
        return {}
    cert, key = str(directory / 'cert.pem'), str(directory / 'key.pem')
    run_quietly([openssl, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
                 '-keyout', key, '-out', cert, '-subj', '/CN=localhost', '-days', '2'], 'openssl req')
    identity = ['--cert', cert, '--key', key]
    b = build_dir / 'benchmarks'
    servers = {}
    if (b / 'coronet_tls_server').exists():
        servers['coronet'] = [str(b / 'coronet_tls_server'), *identity]
    node = shutil.which('node') or shutil.which('nodejs')
    if node:
        servers['node'] = [node, str(ROOT / 'benchmarks/peers/node/tls_server.js'), *identity]
    go = shutil.which('go')
    if go:
        out = build_dir / 'go_tls_server'
        env = dict(os.environ, GOCACHE=str(build_dir / 'go-cache'), GOFLAGS='-mod=mod', GO111MODULE='on')
        run_quietly([go, 'build', '-o', str(out), './tls'], 'go build', cwd=ROOT / 'benchmarks/peers/go', env=env)
        servers['go'] = [str(out), *identity]
    # s_server in its default mode is a sink: it prints what it reads (to /dev/null
    # here) and, at the client's close_notify, closes and accepts the next client.
    servers['openssl'] = [openssl, 's_server', '-quiet', '-cert', cert, '-key', key, '-accept']
    return servers


class TlsServer:
    """A TLS peer on 127.0.0.1. openssl s_server cannot say which port the kernel
    picked, so it gets one the kernel handed out and took back."""

    def __init__(self, system, argv):
        env = dict(os.environ, GOMAXPROCS='1')
        if system == 'openssl':
            with socket.socket() as probe:
                probe.bind(('127.0.0.1', 0))
                self.port = probe.getsockname()[1]
            # Its stdin stays open and silent: at stdin's end s_server spins (and stops serving).
            self.process = subprocess.Popen(argv + [f'127.0.0.1:{self.port}'], stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(200):
                try:
                    socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)  # polling a child process's start, not synchronising a test
            return
        self.process = subprocess.Popen(argv + ['--port', '0'], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env=env)
        first = read_line(self.process.stdout, 20, argv[0])
        self.port = int(re.fullmatch(r'listening on 127\.0\.0\.1:(\d+)', first).group(1))

    rss = Server.rss
    stop = Server.stop
    unix_path = None


def tls_sample(client_path, system, argv, row, duration):
    server = TlsServer(system, argv)
    try:
        base = [client_path, '--port', str(server.port)]
        if row == 'idle':
            before = server.rss()
            held = subprocess.Popen(base + ['--mode', 'idle', '--connections', str(TLS_IDLE_CONNECTIONS)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                read_line(held.stdout, 120, 'idle TLS client')
                after = server.rss()
            finally:
                held.stdin.close()
                held.wait(60)
            return {'bytes_per_connection': (after - before) / TLS_IDLE_CONNECTIONS,
                    'rss_before': before, 'rss_after': after}
        result = subprocess.run(base + ['--mode', row, '--duration', str(duration)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, timeout=duration + 60)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip())
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        server.stop()


def tls_runs(build_dir, duration, runs):
    """{(row, system): [figures]}; the systems take turns within each run."""
    client_path = str(build_dir / 'benchmarks' / 'bench_tls_client')
    if not Path(client_path).exists():
        say('[tls] skipped: bench_tls_client was not built (no OpenSSL 3?)')
        return {}
    out = {}
    with tempfile.TemporaryDirectory(prefix='coronet-bench-tls-') as directory:
        servers = tls_servers(build_dir, Path(directory))
        for run in range(runs):
            for row, label, metric, unit in TLS_ROWS:
                for system, argv in servers.items():
                    if row == 'idle' and system == 'openssl':
                        continue  # s_server serves one connection at a time
                    try:
                        figure = tls_sample(client_path, system, argv, row, duration)[metric]
                    except (RuntimeError, subprocess.TimeoutExpired) as e:
                        say(f'[tls] {label}, {TLS_SYSTEMS[system]}: FAILED: {e}')
                        continue
                    out.setdefault((row, system), []).append(figure)
                    shown = f'{figure / 1024:.1f} KiB' if row == 'idle' else f'{figure:,.2f} {unit}'
                    say(f'[tls] {label}, {TLS_SYSTEMS[system]} · run {run + 1}/{runs}: {shown}')
    return out


def tls_table(raw):
    systems = [s for s in TLS_SYSTEMS if any(k[1] == s for k in raw)]
    lines = [f'{"TLS (median; coronet / other)":<34}' + ''.join(f'{TLS_SYSTEMS[s]:>20}' for s in systems)]
    for row, label, _, unit in TLS_ROWS:
        cells = []
        mine = raw.get((row, 'coronet'))
        for s in systems:
            samples = raw.get((row, s))
            if not samples:
                cells.append(f'{"-":>20}')
                continue
            value = statistics.median(samples)
            text = f'{value / 1024:.1f}' if row == 'idle' else (f'{value:.2f}' if unit == 'GB/s' else f'{value:,.0f}')
            if s != 'coronet' and mine:
                text += f' ({statistics.median(mine) / value:.2f}x)'
            cells.append(f'{text:>20}')
        lines.append(f'{label + " (" + unit + ")":<34}' + ''.join(cells))
    return '\n'.join(lines)


def tls_goals(raw):
    """The TLS issue's goals: >= 1.5x Node and >= Go on bulk and handshakes, >= 0.9x
    openssl s_server on bulk."""
    def ratio(row, other):
        a, b = raw.get((row, 'coronet')), raw.get((row, other))
        return statistics.median(a) / statistics.median(b) if a and b else None
    out = []
    for row in ('bulk', 'handshake'):
        r = ratio(row, 'node')
        out.append((f'TLS {row}: coronet >= 1.5x Node', r or 0, None if r is None else r >= 1.5))
        r = ratio(row, 'go')
        out.append((f'TLS {row}: coronet >= Go', r or 0, None if r is None else r >= 1.0))
    r = ratio('bulk', 'openssl')
    out.append(('TLS bulk: coronet >= 0.9x openssl s_server', r or 0, None if r is None else r >= 0.9))
    return out


def lateness_label(work_us):
    return 'no work' if work_us == 0 else f'{work_us} µs per chunk'


def lateness_runs(build_dir, megabytes, runs):
    """A 10 ms timer's lateness while one client floods the server on the timer's thread:
    {(reader, work_us): [the program's JSON per run]}. "Per chunk" is per read for
    read(), read_some() and Asio, and once per 655 lines (about 64 KiB) for the framed readers."""
    program = str(build_dir / 'benchmarks' / 'coronet_lateness')
    out = {}
    for reader, label in LATENESS_READERS.items():
        for work in LATENESS_WORK_US:
            for run in range(runs):
                result = subprocess.run([program, '--reader', reader, '--work-us', str(work),
                                         '--megabytes', str(megabytes)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, timeout=120)
                if result.returncode != 0:
                    say(f'[lateness] {label} · {lateness_label(work)}: FAILED: {result.stderr.strip()}')
                    continue
                sample = json.loads(result.stdout.strip().splitlines()[-1])
                out.setdefault((reader, work), []).append(sample)
                say(f'[lateness] {label} · {lateness_label(work)} · run {run + 1}/{runs}: worst '
                    f'{sample["worst_lateness_ms"]:.1f} ms, p99 {sample["p99_lateness_ms"]:.1f} ms, '
                    f'{sample["firings"]} of {sample["expected_firings"]:.0f} firings in '
                    f'{sample["seconds"]:.2f} s')
    return out


def lateness_summary(lateness):
    """{(reader, work_us): the worst lateness (median, min, max) over runs; the medians over
    runs of the p99 and median lateness, the flood's seconds and the server thread's CPU
    share; the firings and expected firings summed over runs}."""
    summary = {}
    for key, samples in lateness.items():
        worst = [s['worst_lateness_ms'] for s in samples]
        summary[key] = {
            'worst': (statistics.median(worst), min(worst), max(worst)),
            'p99': statistics.median(s['p99_lateness_ms'] for s in samples),
            'median_lateness': statistics.median(s['median_lateness_ms'] for s in samples),
            'cpu_share': statistics.median(s['server_cpu_share'] for s in samples),
            'firings': sum(s['firings'] for s in samples),
            'expected': sum(s['expected_firings'] for s in samples),
            'seconds': statistics.median(s['seconds'] for s in samples),
        }
    return summary


# ---------------------------------------------------------------- reporting

def summarise(samples):
    values = [s['value'] for s in samples]
    return statistics.median(values), min(values), max(values)


def fmt(value, unit):
    if unit == 'GB/s':
        return f'{value:.2f}'
    return f'{value:,.0f}'


def all_rows(loads):
    return [row for w in loads for row in w.rows()]


def ratio_to_c(results, row, system):
    """The system's figure over C's on the row's baseline (>1 is better), or None."""
    mine, base = results.get((row.name, system)), results.get((row.baseline, 'c'))
    if not mine or not base:
        return None
    return mine['median'] / base['median'] if row.higher_is_better else base['median'] / mine['median']


def table(results, loads, systems):
    width = max([20] + [len(SYSTEM_LABELS[name]) for name in systems])
    lines = [f'{"workload":<48} {"system":<{width}} {"median":>12} {"min - max":>25} {"vs C":>7}']
    for row in all_rows(loads):
        first = True
        for name in systems:
            r = results.get((row.name, name))
            if not r:
                continue
            head = f'{row.label} ({row.unit})' if first else ''
            first = False
            ratio = ratio_to_c(results, row, name)
            ratio = '' if ratio is None else f'{ratio:.2f}x'
            lines.append(f'{head:<48} {SYSTEM_LABELS[name]:<{width}} {fmt(r["median"], row.unit):>12} '
                         f'{fmt(r["min"], row.unit) + " - " + fmt(r["max"], row.unit):>25} {ratio:>7}')
    return '\n'.join(lines)


def framed_table(summary):
    lines = [f'{"coronet framed reads (lines/s)":<34} {"reader":<20} {"median":>12} {"min - max":>25} '
             f'{"vs read() + memchr":>19}']
    for size in FRAMED_LINE_BYTES:
        first = True
        for reader, label in FRAMED_READERS.items():
            entry = summary.get((size, reader))
            if not entry:
                continue
            median, lo, hi, ratio = entry
            head = f'{size}-byte lines' if first else ''
            first = False
            lines.append(f'{head:<34} {label:<20} {median:>12,.0f} {f"{lo:,.0f} - {hi:,.0f}":>25} '
                         f'{"" if ratio is None else f"{ratio:.2f}x":>19}')
    return '\n'.join(lines)


def lateness_table(summary, megabytes):
    lines = [f'{f"timer lateness under a {megabytes} MB flood (ms)":<36} {"work":<16} '
             f'{"worst: median":>13} {"min - max":>15} {"p99":>7} {"p50":>6} {"firings/expected":>17} '
             f'{"flood s":>8} {"server CPU":>10}']
    for reader, label in LATENESS_READERS.items():
        first = True
        for work in LATENESS_WORK_US:
            entry = summary.get((reader, work))
            if not entry:
                continue
            median, lo, hi = entry['worst']
            spread = f'{lo:.1f} - {hi:.1f}'
            firings = f'{entry["firings"]} / {entry["expected"]:.0f}'
            lines.append(f'{label if first else "":<36} {lateness_label(work):<16} {median:>13.1f} '
                         f'{spread:>15} {entry["p99"]:>7.1f} {entry["median_lateness"]:>6.1f} {firings:>17} '
                         f'{entry["seconds"]:>8.2f} {entry["cpu_share"]:>10.0%}')
            first = False
    return '\n'.join(lines)


def goals(results, alloc, framed, lateness=None, zero_copy=None):
    """The goals of the benchmark issues: (text, value, met or None when not measured)."""
    def ratio(workload, other):
        a, b = results.get((workload, 'coronet')), results.get((workload, other))
        return a['median'] / b['median'] if a and b else None

    out = []
    for w in ['bulk', 'concurrency_100', 'connrate', 'pingpong_pinned']:
        r = ratio(w, 'c')
        out.append((f'coronet >= 0.95x C on {w}', r, None if r is None else r >= 0.95))
    # Issue 16: the pinned ping-pong goal may be met on io_uring, offered as a build option.
    mine, c = results.get(('pingpong_pinned', 'coronet_io_uring')), results.get(('pingpong_pinned', 'c'))
    r = mine['median'] / c['median'] if mine and c else None
    out.append(('coronet built with -Dio_uring=enabled >= 0.95x C on pingpong_pinned', r,
                None if r is None else r >= 0.95))
    for w in ['bulk', 'pingpong', 'pingpong_pinned', 'concurrency_100', 'concurrency_1000', 'connrate']:
        r = ratio(w, 'tokio')
        out.append((f'coronet >= 1.0x tokio on {w}', r, None if r is None else r >= 1.0))
    for w in ['concurrency_100', 'connrate']:
        r = ratio(w, 'node')
        out.append((f'coronet >= 2x Node on {w}', r, None if r is None else r >= 2.0))
    mine = results.get(('idle_memory', 'coronet'))
    if mine:
        others = [v['median'] for (w, s), v in results.items() if w == 'idle_memory' and s != 'coronet']
        worst = min(others) if others else None
        out.append(('coronet uses less memory per idle connection than every peer',
                    mine['median'] / worst if worst else None, bool(others) and mine['median'] < worst))
    if alloc:
        count, reads = alloc
        out.append((f'zero allocations per round trip ({count} in {reads:,} reads)', count / max(reads, 1),
                    count == 0))
    # Issue 12: fairness, framed reads, pipelined HTTP. Starving is not "usually fine":
    # the fairness goal holds only if it holds in every run, so it takes the max.
    for row, reader in [('fairness_worst', 'read()'), ('fairness_read_line_worst', 'read_line()')]:
        mine = results.get((row, 'coronet'))
        if mine:
            worst_ms = mine['max'] / 1000
            out.append((f'coronet: worst ping-pong round trip during a flood read by {reader} < 50 ms '
                        f'in every run (ms)', worst_ms, worst_ms < 50))
    for size in FRAMED_LINE_BYTES:
        for reader in ('read_line', 'read_until', 'read_exactly'):
            entry = framed.get((size, reader))
            if entry and entry[3] is not None:
                out.append((f'{FRAMED_READERS[reader]} >= 0.5x read() + memchr on {size}-byte lines',
                            entry[3], entry[3] >= 0.5))
    r = ratio('http_pipelined', 'node')
    out.append(('coronet >= 1.0x Node on 16-deep pipelined HTTP', r, None if r is None else r >= 1.0))
    # As for the fairness row, a timer is on time only if it is in every run: the max.
    for reader, label in LATENESS_READERS.items():
        for work in LATENESS_WORK_US:
            entry = (lateness or {}).get((reader, work))
            if reader != 'asio' and entry:
                worst = entry['worst'][2]
                out.append((f'{label}, {lateness_label(work)}: a 10 ms timer\'s worst lateness under '
                            f'the flood < {LATENESS_GOAL_MS} ms in every run (ms)', worst,
                            worst < LATENESS_GOAL_MS))
    zero_copy = zero_copy or {}
    if zero_copy.get('pipe') and zero_copy.get('copy_loop'):
        speed = zero_copy['pipe'][0] / zero_copy['copy_loop'][0]
        cpu = zero_copy['pipe'][3] / zero_copy['copy_loop'][3]
        out.append(('proxy with pipe_both() (splice) >= 1.3x the copy-loop proxy (GB/s)', speed, speed >= 1.3))
        out.append(('proxy with pipe_both() uses less CPU per GB than the copy loop (ratio)', cpu, cpu < 1.0))
    if zero_copy.get('send_file') and zero_copy.get('read_write'):
        cpu = zero_copy['send_file'][3] / zero_copy['read_write'][3]
        out.append(('send_file() uses less CPU per GB than pread() + write() (ratio)', cpu, cpu < 1.0))
    return out


def chart(results, loads, systems, path):
    """Grouped bars: each system's ratio to C, per workload (gnuplot, SVG)."""
    gnuplot = shutil.which('gnuplot')
    if not gnuplot:
        say('   no chart: gnuplot missing (apt-get install gnuplot-nox)')
        return None
    if not any(results.get((row.baseline, 'c')) for row in all_rows(loads)):
        return None  # only coronet-only steps ran (--only framed,lateness): no bars to draw
    data = path.with_suffix('.dat')
    others = [s for s in systems if s != 'c']
    with open(data, 'w') as f:
        f.write('workload ' + ' '.join(f'"{SYSTEM_LABELS[s]}"' for s in others) + '\n')
        for row in all_rows(loads):
            if not results.get((row.baseline, 'c')):
                continue
            ratios = [ratio_to_c(results, row, s) for s in others]
            f.write(f'"{row.name}" ' + ' '.join('0' if r is None else f'{r:.3f}' for r in ratios) + '\n')
    script = f'''
set terminal svg size 1100,500 dynamic font "sans,11"
set output "{path}"
set title "Each server's figure relative to the plain C epoll server (1.0 = as fast; for memory, as small)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:2.5]
set label "bars past 2.5 are cut (idle memory: up to 25x)" at graph 0.01, graph 0.96
set grid ytics
set key outside right top
set xtics rotate by -20 noenhanced
set key noenhanced
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "black"
plot for [i=2:{len(others) + 1}] "{data}" using i:xtic(1) title columnhead(i)
'''
    subprocess.run([gnuplot], input=script, text=True, check=True)
    return path


def markdown(results, loads, order, framed, checks, heading, lateness=None, megabytes=None):
    """The tables as Markdown, for the README: each cell is the median and its ratio to C."""
    lines = [heading, '',
             '| workload | ' + ' | '.join(SYSTEM_LABELS[s] for s in order) + ' |',
             '|---|' + '---:|' * len(order)]
    for row in all_rows(loads):
        cells = []
        for s in order:
            r = results.get((row.name, s))
            if not r:
                cells.append('—')
                continue
            cell = fmt(r['median'], row.unit)
            ratio = ratio_to_c(results, row, s)
            if ratio is not None and s != 'c':
                cell += f' ({ratio:.2f}x)'
            cells.append(f'**{cell}**' if s == 'coronet' else cell)
        lines.append(f'| {row.label} ({row.unit}) | ' + ' | '.join(cells) + ' |')
    if framed:
        lines += ['', '| coronet framed reads (lines/s) | ' + ' | '.join(FRAMED_READERS.values()) + ' |',
                  '|---|' + '---:|' * len(FRAMED_READERS)]
        for size in FRAMED_LINE_BYTES:
            cells = []
            for reader in FRAMED_READERS:
                entry = framed.get((size, reader))
                cells.append('—' if not entry else f'{entry[0]:,.0f}' + (
                    '' if reader == 'read_memchr' or entry[3] is None else f' ({entry[3]:.2f}x)'))
            lines.append(f'| {size}-byte lines | ' + ' | '.join(cells) + ' |')
    if lateness:
        lines += ['', f'| timer lateness under a {megabytes} MB flood: worst (p99), ms | '
                  + ' | '.join(lateness_label(w) for w in LATENESS_WORK_US) + ' |',
                  '|---|' + '---:|' * len(LATENESS_WORK_US)]
        for reader, label in LATENESS_READERS.items():
            cells = []
            for work in LATENESS_WORK_US:
                entry = lateness.get((reader, work))
                cells.append('—' if not entry else f'{entry["worst"][0]:.1f} ({entry["p99"]:.1f})')
            lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines += ['', 'Goals:', '']
    for text, value, met in checks:
        if met is not None:
            lines.append(f'- {"pass" if met else "**short**"}: {text} ({value:.3f})')
    return '\n'.join(lines) + '\n'


def machine():
    cpu = ''
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            cpu = line.split(':', 1)[1].strip()
            break
    return {'cores': os.cpu_count(), 'cpu': cpu, 'kernel': platform.release(),
            'os': platform.freedesktop_os_release().get('PRETTY_NAME', '') if hasattr(
                platform, 'freedesktop_os_release') else ''}


# ---------------------------------------------------------------- main

def run_workloads(loads, order, systems, client_path, duration, runs, socket_dir):
    """Every workload on every system that speaks it, `runs` samples each (idle memory once):
    ({(row, system): {'median', 'min', 'max'}}, every sample for the JSON)."""
    results, raw = {}, []
    steps = sum((1 if w.name == 'idle_memory' else runs) * sum(map(w.runs_on, order)) for w in loads)
    step = 0
    for w in loads:
        for name in filter(w.runs_on, order):
            samples = []
            for run in range(1 if w.name == 'idle_memory' else runs):
                step += 1
                try:
                    value, out = sample(systems, name, w, client_path, duration, socket_dir)
                except Exception as e:  # a peer failing must not lose the others' figures
                    say(f'[{step}/{steps}] {w.name} · {SYSTEM_LABELS[name]} · run {run + 1}: FAILED: {e}')
                    continue
                samples.append(out)
                also = ''.join(f', {row.metric} {fmt(out[row.metric], row.unit)} {row.unit}' for row in w.also)
                say(f'[{step}/{steps}] {w.name} · {SYSTEM_LABELS[name]} · run {run + 1}/{runs}: '
                    f'{fmt(value, w.unit)} {w.unit}{also}')
            if not samples:
                continue
            for row in w.rows():
                values = [{'value': out[row.metric], 'client': out} for out in samples]
                median, lo, hi = summarise(values)
                results[(row.name, name)] = {'median': median, 'min': lo, 'max': hi}
                raw.append({'workload': row.name, 'system': name, 'metric': row.metric, 'unit': row.unit,
                            'higher_is_better': row.higher_is_better, 'samples': values,
                            'median': median, 'min': lo, 'max': hi})
    return results, raw


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--duration', type=float, help='seconds per sample (default 2; 0.5 with --short)')
    parser.add_argument('--runs', type=int, help='samples per workload and system (default 3; 1 with --short)')
    parser.add_argument('--only', help='comma-separated workloads and/or systems to run, e.g. '
                        'bulk,pingpong or coronet,c (C is always kept: it is the reference). '
                        f'Workloads: {", ".join(w.name for w in workloads(False))} '
                        '(the _unix ones over a Unix-domain socket); '
                        f'{", ".join(EXTRAS)} name the coronet-only steps; '
                        f'systems: {", ".join(SYSTEM_LABELS)}')
    parser.add_argument('--json', type=Path, default=ROOT / 'build/bench/results.json',
                        help='where to write every sample (default build/bench/results.json)')
    parser.add_argument('--short', action='store_true', help='one short sample each: about a minute')
    parser.add_argument('--build-dir', type=Path, default=ROOT / 'build/bench')
    args = parser.parse_args()
    duration = args.duration or (0.5 if args.short else 2.0)
    runs = args.runs or (1 if args.short else 3)

    # 10,000 idle connections need more descriptors than the default soft limit:
    # raised for this run (and its children) only, never for the machine.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    build_dir = args.build_dir.resolve()
    systems = build(build_dir)
    loads = workloads(args.short)
    wanted_steps = set()  # workloads and coronet-only steps named by --only; empty: all
    if args.only:
        wanted = set(args.only.split(','))
        unknown = wanted - {w.name for w in loads} - set(SYSTEM_LABELS) - set(EXTRAS)
        if unknown:
            sys.exit(f'--only: unknown {", ".join(sorted(unknown))}; workloads are '
                     f'{", ".join(w.name for w in loads)}, {", ".join(EXTRAS)}; '
                     f'systems are {", ".join(SYSTEM_LABELS)}')
        wanted_steps = wanted & ({w.name for w in loads} | set(EXTRAS))
        if wanted_steps:
            loads = [w for w in loads if w.name in wanted_steps]
        if wanted & set(SYSTEM_LABELS):
            systems = {k: v for k, v in systems.items() if k in wanted or k == 'c'}
    order = [s for s in SYSTEM_LABELS if s in systems]
    client_path = str(build_dir / 'benchmarks' / 'bench_client')

    def step_wanted(name):
        return 'coronet' in systems and (not wanted_steps or name in wanted_steps)

    started = time.monotonic()
    # The _unix rows' socket files live here, and go with it whatever happens.
    with tempfile.TemporaryDirectory(prefix='coronet-bench-') as socket_dir:
        results, raw = run_workloads(loads, order, systems, client_path, duration, runs, Path(socket_dir))

    alloc = None
    if step_wanted('allocations'):
        alloc = allocations(systems, client_path, max(duration, 1.0))
        say(f'[allocations] coronet: {alloc[0]} heap allocations in {alloc[1]:,} steady-state reads')
    framed_raw, framed = {}, {}
    if step_wanted('framed'):
        framed_raw = framed_reads(build_dir, duration, runs)
        framed = framed_summary(framed_raw)
    lateness_mb = LATENESS_MEGABYTES
    lateness_raw, lateness = {}, {}
    if step_wanted('lateness'):
        lateness_raw = lateness_runs(build_dir, lateness_mb, runs)
        lateness = lateness_summary(lateness_raw)

    zero_copy_raw, zero_copy = {}, {}
    if step_wanted('zero_copy'):
        zero_copy_raw = zero_copy_runs(build_dir, ZERO_COPY_MEGABYTES // 2 if args.short else ZERO_COPY_MEGABYTES,
                                       runs)
        zero_copy = zero_copy_summary(zero_copy_raw)

    tls_raw = {}
    if step_wanted('tls'):
        tls_raw = tls_runs(build_dir, duration, runs)

    elapsed = time.monotonic() - started
    info = machine()
    when = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    say('')
    say(f'coronet benchmarks, {when}, {info["cores"]} cores ({info["cpu"]}), Linux {info["kernel"]}, '
        f'{runs} run(s) of {duration:g} s each, {elapsed:.0f} s in all')
    say(f'every server is driven by the same C client over 127.0.0.1 with TCP_NODELAY'
        + ('; the _unix rows over a Unix-domain socket' if any(w.unix for w in loads) else ''))
    if results:
        say('')
        say(table(results, loads, order))
    if framed:
        say('')
        say(framed_table(framed))
    if lateness:
        say('')
        say(lateness_table(lateness, lateness_mb))
    if zero_copy:
        say('')
        say(zero_copy_table(zero_copy, ZERO_COPY_MEGABYTES // 2 if args.short else ZERO_COPY_MEGABYTES))
    if tls_raw:
        say('')
        say(tls_table(tls_raw))
    say('')
    say('goals:')
    checks = goals(results, alloc, framed, lateness, zero_copy) + tls_goals(tls_raw)
    for text, value, met in checks:
        if met is not None:
            say(f'  {"pass " if met else "short"}  {text} ({value:.3f})')
    if any(met is None for _, _, met in checks):
        say('  (goals whose workloads or peers did not run are left out)')

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        'date': when, 'machine': info, 'duration': duration, 'runs': runs,
        'results': raw,
        'allocations': None if not alloc else {'count': alloc[0], 'reads': alloc[1]},
        'framed_reads': [{'line_bytes': size, 'reader': reader, 'metric': 'lines_per_s', 'unit': 'lines/s',
                          'samples': framed_raw[(size, reader)], 'median': entry[0], 'min': entry[1],
                          'max': entry[2], 'ratio_to_read_memchr': entry[3]}
                         for (size, reader), entry in framed.items()],
        'timer_lateness': [{'reader': reader, 'work_us': work, 'megabytes': lateness_mb,
                            'metric': 'worst_lateness_ms', 'unit': 'ms',
                            'samples': lateness_raw[(reader, work)], 'median': entry['worst'][0],
                            'min': entry['worst'][1], 'max': entry['worst'][2],
                            'p99_median': entry['p99']}
                           for (reader, work), entry in lateness.items()],
        'zero_copy': [{'row': row, 'metric': 'gbytes_per_s', 'unit': 'GB/s', 'samples': zero_copy_raw[row],
                       'median': entry[0], 'min': entry[1], 'max': entry[2], 'cpu_s_per_gb_median': entry[3],
                       'process_cpu_s_per_gb_median': entry[4]}
                      for row, entry in zero_copy.items()],
        'tls': [{'row': row, 'system': system, 'samples': samples, 'median': statistics.median(samples)}
                for (row, system), samples in tls_raw.items()],
        'goals': [{'goal': t, 'value': v, 'met': m} for t, v, m in checks],
    }, indent=1))
    say(f'\nwrote {args.json}')
    md = args.json.with_suffix('.md')
    md.write_text(markdown(results, loads, order, framed, checks,
                           f'{when[:10]}, {info["cores"]} cores ({info["cpu"]}), Linux {info["kernel"]}, '
                           f'{runs} x {duration:g} s per cell; median (ratio to C, higher is better)',
                           lateness, lateness_mb))
    say(f'wrote {md}')
    svg = chart(results, loads, order, args.json.with_suffix('.svg'))
    if svg:
        say(f'wrote {svg}')


if __name__ == '__main__':
    main()
