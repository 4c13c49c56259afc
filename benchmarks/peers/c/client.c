/*
 * bench_client: the load generator every benchmark server is driven by.
 *
 *   bench_client --port P | --unix PATH
 *                --workload bulk|pingpong|concurrency|connrate|idle|fairness|http
 *                [--duration SECONDS] [--connections N] [--size BYTES] [--depth N]
 *
 * --port connects to 127.0.0.1:P with TCP_NODELAY; --unix to the Unix-domain
 * socket at PATH (no TCP options there).
 *
 * Plain C, one thread (two for fairness: the flood and the ping-pong), so the
 * client costs the same whichever server it drives. It prints exactly one JSON object on one line on stdout; on any
 * error it prints a message on stderr and exits 1. No run can hang: every
 * blocking socket carries a 10 s timeout and the epoll loop gives up after
 * 10 s without an event.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { BULK_CHUNK = 64 * 1024, STALL_SECONDS = 10, FD_HEADROOM = 32 };

/* The flood's lines: long enough that a line-framed server is not all
 * per-line overhead, and BULK_CHUNK / FLOOD_LINE whole lines per write so
 * every write continues the line structure. */
enum { FLOOD_LINE = 100, FLOOD_CHUNK = BULK_CHUNK / FLOOD_LINE * FLOOD_LINE };

struct options {
    int port;
    const char *workload;
    double duration;
    long connections; /* 0: the workload's default */
    size_t size;
    long depth; /* http: requests per pipelined batch */
};

/* Set by --unix: every connection of the run goes to this socket instead of
 * 127.0.0.1:port (one server per run, so one place to connect to). */
static const char *g_unix_path;

/* ---------------------------------------------------------------- helpers */

_Noreturn static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) fail("out of memory");
    return p;
}

/* Many connections need many descriptors: take everything the hard limit
 * allows, and refuse clearly when even that is not enough. */
static void raise_nofile(long needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) fail("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) fail("setrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < needed + FD_HEADROOM)
        fail("need %ld file descriptors but the hard limit is %ld (raise it with ulimit -Hn)",
             needed + FD_HEADROOM, (long)rl.rlim_cur);
}

static void set_sockopt_int(int fd, int level, int name, int value)
{
    if (setsockopt(fd, level, name, &value, sizeof value) < 0)
        fail("setsockopt: %s", strerror(errno));
}

/* On a blocking socket SO_SNDTIMEO also bounds connect(), and both timeouts
 * turn a server that stopped answering into EAGAIN instead of a hang. */
static void set_stall_timeouts(int fd)
{
    struct timeval tv = { .tv_sec = STALL_SECONDS };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Blocking connect to 127.0.0.1:port, or to --unix's path. Returns -1 with
 * errno set on failure so callers can decide which errors are fatal. */
static int connect_to(int port)
{
    int fd = socket(g_unix_path ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket: %s", strerror(errno));
    set_stall_timeouts(fd);
    int rc;
    if (g_unix_path) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        strcpy(addr.sun_path, g_unix_path); /* its length was checked by parse_args */
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    } else {
        set_sockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
        struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    }
    if (rc == 0) return fd;
    int saved = errno;
    close(fd);
    /* A timed-out connect: EINPROGRESS for TCP, EAGAIN for a Unix socket whose backlog is full. */
    errno = saved == EINPROGRESS || (g_unix_path && saved == EAGAIN) ? ETIMEDOUT : saved;
    return -1;
}

_Noreturn static void fail_connect(int port)
{
    if (g_unix_path) fail("connect to unix:%s: %s", g_unix_path, strerror(errno));
    fail("connect to 127.0.0.1:%d: %s", port, strerror(errno));
}

static int connect_or_die(int port)
{
    int fd = connect_to(port);
    if (fd < 0) fail_connect(port);
    return fd;
}

_Noreturn static void fail_io(const char *what)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        fail("%s: server stopped answering for %d s", what, STALL_SECONDS);
    fail("%s: %s", what, strerror(errno));
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_io("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void read_exact(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n == 0) fail("read: server closed the connection early");
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_io("read");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* ------------------------------------------------------------------- bulk */

/* Reads the sink's "<count>\n" answer up to FIN. */
static unsigned long long read_count_line(int fd)
{
    char line[64];
    size_t len = 0;
    while (len < sizeof line - 1) {
        ssize_t n = recv(fd, line + len, sizeof line - 1 - len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_io("read count line");
        if (n == 0) break;
        len += (size_t)n;
        if (memchr(line, '\n', len)) break;
    }
    line[len] = '\0';
    char *end;
    unsigned long long count = strtoull(line, &end, 10);
    if (end == line || *end != '\n') fail("bulk: bad count line from server: \"%s\"", line);
    return count;
}

static void run_bulk(const struct options *o)
{
    int fd = connect_or_die(o->port);
    char *buf = xcalloc(1, BULK_CHUNK);
    unsigned long long sent = 0;
    double start = now_s(), deadline = start + o->duration;
    do {
        write_all(fd, buf, BULK_CHUNK);
        sent += BULK_CHUNK;
    } while (now_s() < deadline);
    if (shutdown(fd, SHUT_WR) < 0) fail("shutdown: %s", strerror(errno));
    unsigned long long counted = read_count_line(fd);
    double seconds = now_s() - start;
    if (counted != sent) fail("bulk: sent %llu bytes but the server counted %llu", sent, counted);
    close(fd);
    printf("{\"workload\":\"bulk\",\"bytes\":%llu,\"seconds\":%.6f,\"gbytes_per_s\":%.4f}\n",
           sent, seconds, (double)sent / seconds / 1e9);
}

/* --------------------------------------------------------------- pingpong */

/* Latency histogram: 100 ns buckets up to 100 ms, one overflow bucket.
 * Fixed memory, no allocation while timing, exact enough for p50/p99. */
enum { HIST_BUCKET_NS = 100, HIST_BUCKETS = 1000000 };

struct histogram {
    uint32_t *counts; /* HIST_BUCKETS + 1 entries, the last is overflow */
    uint64_t total;
    double worst;     /* seconds, exact: the overflow bucket hides it */
};

static struct histogram hist_new(void)
{
    return (struct histogram){ xcalloc(HIST_BUCKETS + 1, sizeof(uint32_t)), 0, 0.0 };
}

static void hist_add(struct histogram *h, double seconds)
{
    double bucket = seconds * 1e9 / HIST_BUCKET_NS;
    size_t i = bucket < HIST_BUCKETS ? (size_t)bucket : HIST_BUCKETS;
    h->counts[i]++;
    h->total++;
    if (seconds > h->worst) h->worst = seconds;
}

/* Upper edge of the bucket holding the q-quantile, in microseconds; past the
 * last bucket, the worst sample itself. */
static double hist_quantile_us(const struct histogram *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->total), seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen > rank) return (double)(i + 1) * HIST_BUCKET_NS / 1000.0;
    }
    return h->worst * 1e6;
}

/* One request of `size` bytes and its echo, timed into the histogram.
 * Returns the time it finished. */
static double timed_round_trip(int fd, const char *out, char *in, size_t size, struct histogram *h)
{
    double sent_at = now_s();
    write_all(fd, out, size); /* blocking: fine while size fits the socket buffers */
    read_exact(fd, in, size);
    double t = now_s();
    hist_add(h, t - sent_at);
    return t;
}

static void run_pingpong(const struct options *o)
{
    int fd = connect_or_die(o->port);
    char *out = xcalloc(1, o->size), *in = xcalloc(1, o->size);
    struct histogram h = hist_new();
    memset(out, 'p', o->size);
    double start = now_s(), deadline = start + o->duration, t = start;
    while (t < deadline) t = timed_round_trip(fd, out, in, o->size, &h);
    double seconds = t - start;
    close(fd);
    printf("{\"workload\":\"pingpong\",\"round_trips\":%llu,\"seconds\":%.6f,"
           "\"round_trips_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f}\n",
           (unsigned long long)h.total, seconds, (double)h.total / seconds,
           hist_quantile_us(&h, 0.50), hist_quantile_us(&h, 0.99));
}

/* --------------------------------------------------------------- fairness */

/* A flood on one connection and a ping-pong on another, to the same server
 * in `mixed` mode: the flood's first byte ('F') makes the server discard that
 * connection, the ping-pong is echoed. A fair server keeps answering the
 * ping-pong within a few milliseconds however fast the flood arrives. */
struct flood {
    int port;
    double duration;
    pthread_mutex_t lock;
    pthread_cond_t started_cond;
    int started;         /* under lock: the first flood write is in     */
    atomic_int finished; /* the last flood write is in                  */
    unsigned long long sent;
    double seconds;      /* first write to last write                   */
};

static void flood_signal_started(struct flood *f)
{
    pthread_mutex_lock(&f->lock);
    f->started = 1;
    pthread_cond_signal(&f->started_cond);
    pthread_mutex_unlock(&f->lock);
}

static void flood_wait_started(struct flood *f)
{
    pthread_mutex_lock(&f->lock);
    while (!f->started) pthread_cond_wait(&f->started_cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

/* Writes newline-terminated lines as fast as the server takes them until
 * the duration is over, then FIN, and checks the server's byte count. */
static void *flood_main(void *arg)
{
    struct flood *f = arg;
    int fd = connect_or_die(f->port);
    char *buf = xcalloc(1, FLOOD_CHUNK);
    for (size_t i = 0; i < FLOOD_CHUNK; i++) buf[i] = (i + 1) % FLOOD_LINE == 0 ? '\n' : 'F';
    double start = now_s(), deadline = start + f->duration;
    write_all(fd, buf, FLOOD_CHUNK);
    f->sent = FLOOD_CHUNK;
    flood_signal_started(f);
    while (now_s() < deadline) {
        write_all(fd, buf, FLOOD_CHUNK);
        f->sent += FLOOD_CHUNK;
    }
    f->seconds = now_s() - start;
    atomic_store(&f->finished, 1);
    if (shutdown(fd, SHUT_WR) < 0) fail("shutdown: %s", strerror(errno));
    unsigned long long counted = read_count_line(fd);
    if (counted != f->sent) fail("fairness: flooded %llu bytes but the server counted %llu", f->sent, counted);
    close(fd);
    free(buf);
    return NULL;
}

static void run_fairness(const struct options *o)
{
    int fd = connect_or_die(o->port);
    char *out = xcalloc(1, o->size), *in = xcalloc(1, o->size);
    struct histogram h = hist_new(), warm = hist_new();
    memset(out, 'p', o->size);
    /* The first round trip proves the ping-pong connection is accepted and
     * served before the flood begins. */
    timed_round_trip(fd, out, in, o->size, &warm);

    struct flood f = { .port = o->port, .duration = o->duration };
    pthread_mutex_init(&f.lock, NULL);
    pthread_cond_init(&f.started_cond, NULL);
    pthread_t flooder;
    if (pthread_create(&flooder, NULL, flood_main, &f) != 0) fail("pthread_create failed");
    flood_wait_started(&f);
    /* A round trip that began during the flood counts, however late it ends:
     * the one a starved server answers only after the flood is the worst. */
    double start = now_s();
    while (!atomic_load(&f.finished)) timed_round_trip(fd, out, in, o->size, &h);
    double seconds = now_s() - start;
    pthread_join(flooder, NULL);
    close(fd);
    printf("{\"workload\":\"fairness\",\"round_trips\":%llu,\"seconds\":%.6f,"
           "\"round_trips_per_s\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"worst_us\":%.2f,"
           "\"flood_bytes\":%llu,\"flood_gbytes_per_s\":%.4f}\n",
           (unsigned long long)h.total, seconds, (double)h.total / seconds,
           hist_quantile_us(&h, 0.50), hist_quantile_us(&h, 0.99), h.worst * 1e6, f.sent,
           (double)f.sent / f.seconds / 1e9);
}

/* ------------------------------------------------------------ concurrency */

/* One connection's place in its current round trip (one message out, its
 * answer back; for http a batch of pipelined requests and their responses).
 * Reads continue while a large message is still being written, so a server
 * that respects backpressure can never deadlock against us. */
struct peer {
    int fd;
    size_t sent, received;
    int want_out; /* EPOLLOUT currently requested */
};

struct pool {
    int epoll;
    size_t out_size, in_size; /* bytes sent and expected back per round trip */
    const char *out;
    const char *expect;       /* what must come back, NULL: not checked    */
    char *scratch;
    unsigned long long round_trips;
    long in_flight; /* peers with a round trip under way             */
    int draining;   /* time is up: finish rounds, start no new ones */
};

static void peer_watch(struct pool *p, struct peer *peer, int op, int want_out)
{
    struct epoll_event ev = { .events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = peer };
    if (epoll_ctl(p->epoll, op, peer->fd, &ev) < 0) fail("epoll_ctl: %s", strerror(errno));
    peer->want_out = want_out;
}

/* Sends what the current message still lacks; asks for EPOLLOUT only while
 * the kernel is full. */
static void peer_send(struct pool *p, struct peer *peer)
{
    while (peer->sent < p->out_size) {
        ssize_t n = send(peer->fd, p->out + peer->sent, p->out_size - peer->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) fail("write: %s", strerror(errno));
        peer->sent += (size_t)n;
    }
    int want_out = peer->sent < p->out_size;
    if (want_out != peer->want_out) peer_watch(p, peer, EPOLL_CTL_MOD, want_out);
}

/* Drains the answer; a completed round trip immediately starts the next. */
static void peer_receive(struct pool *p, struct peer *peer)
{
    ssize_t n = recv(peer->fd, p->scratch, p->in_size - peer->received, 0);
    if (n == 0) fail("read: server closed the connection early");
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return;
        fail("read: %s", strerror(errno));
    }
    if (p->expect && memcmp(p->scratch, p->expect + peer->received, (size_t)n) != 0)
        fail("read: the server's answer differs from the expected one at byte %zu of the round trip",
             peer->received);
    peer->received += (size_t)n;
    if (peer->received < p->in_size) return;
    p->round_trips++;
    peer->sent = peer->received = 0;
    if (p->draining) p->in_flight--;
    else peer_send(p, peer);
}

static struct peer *connect_peers(struct pool *p, int port, long count)
{
    struct peer *peers = xcalloc((size_t)count, sizeof *peers);
    for (long i = 0; i < count; i++) {
        peers[i].fd = connect_or_die(port);
        int flags = fcntl(peers[i].fd, F_GETFL);
        fcntl(peers[i].fd, F_SETFL, flags | O_NONBLOCK);
        peer_watch(p, &peers[i], EPOLL_CTL_ADD, 0);
    }
    return peers;
}

/* Serves readiness events until the deadline (one batch when deadline is 0). */
static void pump_until(struct pool *p, double deadline)
{
    struct epoll_event events[256];
    do {
        int n = epoll_wait(p->epoll, events, 256, STALL_SECONDS * 1000);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("epoll_wait: %s", strerror(errno));
        if (n == 0) fail("server stopped answering for %d s", STALL_SECONDS);
        for (int i = 0; i < n; i++) {
            struct peer *peer = events[i].data.ptr;
            if (events[i].events & EPOLLOUT) peer_send(p, peer);
            if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) peer_receive(p, peer);
        }
    } while (now_s() < deadline);
}

/* Runs round trips on every connection for the duration, then lets the
 * rounds under way come home. Returns the round trips done in time and sets
 * *seconds to the time they took. */
static unsigned long long run_pool(struct pool *p, int port, long count, double duration,
                                   double *seconds)
{
    raise_nofile(count);
    p->epoll = epoll_create1(EPOLL_CLOEXEC);
    if (p->epoll < 0) fail("epoll_create1: %s", strerror(errno));
    p->scratch = xcalloc(1, p->in_size);
    struct peer *peers = connect_peers(p, port, count);

    double start = now_s();
    for (long i = 0; i < count; i++) peer_send(p, &peers[i]);
    p->in_flight = count;
    pump_until(p, start + duration);
    unsigned long long round_trips = p->round_trips;
    *seconds = now_s() - start;

    /* Let the rounds under way come home before closing, so no socket is
     * closed with unread data (which would reset it instead of a FIN). */
    p->draining = 1;
    while (p->in_flight > 0) pump_until(p, 0);
    for (long i = 0; i < count; i++) close(peers[i].fd);
    close(p->epoll);
    free(peers);
    return round_trips;
}

static void run_concurrency(const struct options *o)
{
    long count = o->connections ? o->connections : 100;
    char *out = xcalloc(1, o->size);
    memset(out, 'c', o->size);
    struct pool p = { .out_size = o->size, .in_size = o->size, .out = out };
    double seconds;
    unsigned long long round_trips = run_pool(&p, o->port, count, o->duration, &seconds);
    printf("{\"workload\":\"concurrency\",\"connections\":%ld,\"round_trips\":%llu,"
           "\"seconds\":%.6f,\"round_trips_per_s\":%.1f}\n",
           count, round_trips, seconds, (double)round_trips / seconds);
}

/* ------------------------------------------------------------------- http */

/* What wrk's pipeline script does: each connection sends `depth` GET requests
 * in one write, waits for all their responses, and starts over. Every server
 * in `http` mode answers each request with exactly HTTP_RESPONSE, so the
 * responses are counted and checked byte for byte without an HTTP parser. */
static const char HTTP_REQUEST[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
static const char HTTP_RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static char *repeat(const char *text, long times)
{
    size_t len = strlen(text);
    char *out = xcalloc((size_t)times, len);
    for (long i = 0; i < times; i++) memcpy(out + (size_t)i * len, text, len);
    return out;
}

static void run_http(const struct options *o)
{
    long count = o->connections ? o->connections : 50;
    long depth = o->depth;
    struct pool p = { .out_size = (size_t)depth * strlen(HTTP_REQUEST),
                      .in_size = (size_t)depth * strlen(HTTP_RESPONSE),
                      .out = repeat(HTTP_REQUEST, depth),
                      .expect = repeat(HTTP_RESPONSE, depth) };
    double seconds;
    unsigned long long batches = run_pool(&p, o->port, count, o->duration, &seconds);
    unsigned long long responses = batches * (unsigned long long)depth;
    printf("{\"workload\":\"http\",\"connections\":%ld,\"depth\":%ld,\"responses\":%llu,"
           "\"seconds\":%.6f,\"responses_per_s\":%.1f}\n",
           count, depth, responses, seconds, (double)responses / seconds);
}

/* --------------------------------------------------------------- connrate */

/* One full connection life: connect, one byte there and back, close.
 * Returns 0 when the kernel ran out of ephemeral ports. */
static int one_connection(int port)
{
    int fd = connect_to(port);
    if (fd < 0 && errno == EADDRNOTAVAIL) return 0;
    if (fd < 0) fail_connect(port);
    char byte = 'r';
    write_all(fd, &byte, 1);
    read_exact(fd, &byte, 1);
    close(fd); /* plain FIN: we take the TIME_WAIT, not an RST */
    return 1;
}

static void run_connrate(const struct options *o)
{
    unsigned long long done = 0;
    double start = now_s(), deadline = start + o->duration, t = start;
    while (t < deadline) {
        if (!one_connection(o->port)) {
            fprintf(stderr, "bench_client: out of ephemeral ports (TIME_WAIT), stopping early\n");
            break;
        }
        done++;
        t = now_s();
    }
    double seconds = now_s() - start;
    printf("{\"workload\":\"connrate\",\"connections\":%llu,\"seconds\":%.6f,"
           "\"connections_per_s\":%.1f}\n",
           done, seconds, (double)done / seconds);
}

/* ------------------------------------------------------------------- idle */

/* Blocks until whoever started us closes our stdin. */
static void wait_for_stdin_eof(void)
{
    char buf[256];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) return;
    }
}

static void run_idle(const struct options *o)
{
    long count = o->connections ? o->connections : 10000;
    raise_nofile(count);
    int *fds = xcalloc((size_t)count, sizeof *fds);
    for (long i = 0; i < count; i++) {
        /* The echo proves the server accepted this one and holds its state. */
        char byte = 'i';
        fds[i] = connect_or_die(o->port);
        write_all(fds[i], &byte, 1);
        read_exact(fds[i], &byte, 1);
    }
    printf("{\"workload\":\"idle\",\"held\":%ld}\n", count);
    fflush(stdout);
    wait_for_stdin_eof();
    for (long i = 0; i < count; i++) close(fds[i]);
}

/* ------------------------------------------------------------------- main */

static void usage(FILE *out)
{
    fputs("usage: bench_client --port P | --unix PATH\n"
          "                    --workload bulk|pingpong|concurrency|connrate|idle|fairness|http\n"
          "                    [--duration SECONDS] [--connections N] [--size BYTES] [--depth N]\n"
          "  --port:     the server on 127.0.0.1:P (TCP_NODELAY on every connection)\n"
          "  --unix:     the server on the Unix-domain socket at PATH\n"
          "  fairness: a flood of 100-byte lines (first byte 'F') on one connection and a\n"
          "            ping-pong of --size bytes on another; needs a server in mixed mode\n"
          "  http:     --connections (50) each send --depth (16) pipelined GETs per batch;\n"
          "            needs a server in http mode\n",
          out);
}

_Noreturn static void bad_usage(void)
{
    usage(stderr);
    exit(2);
}

static double parse_number(const char *text, double min, double max)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(v >= min && v <= max)) bad_usage();
    return v;
}

static long parse_integer(const char *text, long min, long max)
{
    double v = parse_number(text, (double)min, (double)max);
    if (v != (double)(long)v) bad_usage();
    return (long)v;
}

static void parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){ .port = -1, .duration = 3.0, .size = 64, .depth = 16 };
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) bad_usage();
        const char *val = argv[++i];
        if (strcmp(arg, "--port") == 0) o->port = (int)parse_integer(val, 1, 65535);
        else if (strcmp(arg, "--unix") == 0) g_unix_path = val;
        else if (strcmp(arg, "--workload") == 0) o->workload = val;
        else if (strcmp(arg, "--duration") == 0) o->duration = parse_number(val, 1e-3, 86400);
        else if (strcmp(arg, "--connections") == 0) o->connections = parse_integer(val, 1, 10000000);
        else if (strcmp(arg, "--size") == 0) o->size = (size_t)parse_integer(val, 1, 1L << 30);
        else if (strcmp(arg, "--depth") == 0) o->depth = parse_integer(val, 1, 4096);
        else bad_usage();
    }
    int targets = (o->port >= 0) + (g_unix_path != NULL); /* exactly one of --port, --unix */
    if (targets != 1 || !o->workload) bad_usage();
    struct sockaddr_un probe;
    if (g_unix_path && (*g_unix_path == '\0' || strlen(g_unix_path) >= sizeof probe.sun_path))
        fail("--unix: the path must be 1 to %zu bytes", sizeof probe.sun_path - 1);
}

int main(int argc, char **argv)
{
    struct options o;
    parse_args(argc, argv, &o);
    static const struct {
        const char *name;
        void (*run)(const struct options *);
    } workloads[] = {
        { "bulk", run_bulk },           { "pingpong", run_pingpong }, { "concurrency", run_concurrency },
        { "connrate", run_connrate },   { "idle", run_idle },         { "fairness", run_fairness },
        { "http", run_http },
    };
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        if (strcmp(o.workload, workloads[i].name) == 0) {
            workloads[i].run(&o);
            return 0;
        }
    }
    bad_usage();
}
