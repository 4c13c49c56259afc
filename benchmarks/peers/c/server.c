/*
 * Reference benchmark server: plain C, epoll, non-blocking sockets, one thread.
 *
 *   server --mode echo|sink|mixed|http --port PORT | --unix PATH
 *
 * --port listens on 127.0.0.1 (0: the kernel picks); --unix on a Unix-domain
 * socket file at PATH, which must not exist yet and is removed at SIGTERM.
 * echo:  every byte read is written back in order; after the peer's FIN the
 *        server flushes what it still owes and closes.
 * sink:  counts bytes until FIN, then answers "<count>\n" and closes.
 * mixed: a connection whose first byte is 'F' is a sink, any other an echo.
 * http:  answers every request head (up to "\r\n\r\n") with one fixed
 *        HTTP/1.1 response; all the responses to one read leave in one send.
 *
 * This is the baseline every other server (coronet, Node, Go) is compared to,
 * so it does the plain, fast thing: level-triggered epoll, a 64 KiB buffer per
 * connection, and no more work per event than the protocol needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { BUF_SIZE = 64 * 1024, MAX_EVENTS = 256, BACKLOG = 4096 };

/* Reads per readiness event: bounded so one busy peer cannot starve the rest. */
enum { READS_PER_EVENT = 16 };

enum mode { MODE_ECHO, MODE_SINK, MODE_MIXED, MODE_HTTP };

static const char HTTP_RESPONSE[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
enum { HTTP_RESPONSE_LEN = sizeof HTTP_RESPONSE - 1, HTTP_OUT_SIZE = 64 * 1024 };
enum kind { KIND_LISTENER, KIND_SIGNAL, KIND_CONN };

/* Every epoll registration points at a struct starting with its kind. */
struct handle {
    enum kind kind;
    int fd;
};

struct conn {
    struct handle h;     /* must stay first: epoll data.ptr is cast back */
    enum mode mode;      /* mixed until the first byte decides           */
    char *out;           /* buf, or http's own response buffer           */
    size_t out_off;      /* bytes of out already written back            */
    size_t out_len;      /* bytes of out owed to the peer                */
    size_t in_len;       /* http: request bytes kept at the front of buf */
    unsigned long long received;
    int peer_eof;        /* FIN seen: close once nothing is owed         */
    char buf[BUF_SIZE];
};

static enum mode g_mode;
static int g_epoll;
static int g_spare_fd = -1; /* reserved fd so EMFILE can be shed, see accept_all */
static const char *g_unix_path; /* set: a Unix-domain listener, no TCP options */

static void usage(FILE *out)
{
    fputs("usage: server --mode echo|sink|mixed|http --port PORT | --unix PATH\n", out);
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int parse_mode(const char *val)
{
    if (strcmp(val, "echo") == 0) return MODE_ECHO;
    if (strcmp(val, "sink") == 0) return MODE_SINK;
    if (strcmp(val, "mixed") == 0) return MODE_MIXED;
    if (strcmp(val, "http") == 0) return MODE_HTTP;
    return -1;
}

static int parse_port(const char *val)
{
    char *end;
    long p = strtol(val, &end, 10);
    if (*val == '\0' || *end != '\0' || p < 0 || p > 65535) return -1;
    return (int)p;
}

/* Anything unexpected ends in the usage message and exit status 2. */
static void parse_args(int argc, char **argv, int *port)
{
    int mode = -1, bad = 0;
    *port = -1;
    for (int i = 1; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) bad = 1;
        else if (strcmp(argv[i], "--mode") == 0) bad = (mode = parse_mode(argv[++i])) < 0;
        else if (strcmp(argv[i], "--port") == 0) bad = (*port = parse_port(argv[++i])) < 0;
        else if (strcmp(argv[i], "--unix") == 0) bad = *(g_unix_path = argv[++i]) == '\0';
        else bad = 1;
    }
    int targets = (*port >= 0) + (g_unix_path != NULL); /* exactly one of --port, --unix */
    if (bad || mode < 0 || targets != 1) {
        usage(stderr);
        exit(2);
    }
    g_mode = (enum mode)mode;
}

static void watch(int op, struct handle *h, unsigned events)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };
    if (epoll_ctl(g_epoll, op, h->fd, &ev) < 0) die("epoll_ctl");
}

static int open_listener(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR");
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(fd, BACKLOG) < 0) die("listen");
    return fd;
}

static int open_unix_listener(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path) {
        fprintf(stderr, "server: --unix path longer than %zu bytes\n", sizeof addr.sun_path - 1);
        exit(2);
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(fd, BACKLOG) < 0) die("listen");
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0) die("getsockname");
    return ntohs(addr.sin_port);
}

/* SIGTERM/SIGINT arrive as readable data on a signalfd, so shutdown is just
 * another event in the loop and no handler has to be async-signal-safe. */
static int open_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) die("sigprocmask");
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) die("signalfd");
    return fd;
}

static void conn_close(struct conn *c)
{
    close(c->h.fd); /* closing also removes it from the epoll set */
    if (c->out != c->buf) free(c->out);
    free(c);
}

/* Writes what is owed. Returns 0 when all is flushed, 1 when the socket is
 * full (caller waits for EPOLLOUT), -1 on a fatal error. */
static int flush_output(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->h.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Output could not be flushed: stop reading (that is the backpressure) and
 * wait until the kernel has room again. */
static void wait_writable(struct conn *c)
{
    watch(EPOLL_CTL_MOD, &c->h, EPOLLOUT);
}

/* The peer has sent FIN. Echo closes once it owes nothing; sink answers with
 * its count first. */
static void on_peer_eof(struct conn *c)
{
    c->peer_eof = 1;
    if (c->mode == MODE_SINK) {
        int len = snprintf(c->buf, sizeof c->buf, "%llu\n", c->received);
        c->out_off = 0;
        c->out_len = (size_t)len;
    }
    int rc = flush_output(c);
    if (rc == 1) wait_writable(c);
    else conn_close(c);
}

static void on_readable(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = recv(c->h.fd, c->buf, sizeof c->buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c);
            return;
        }
        if (n == 0) {
            on_peer_eof(c);
            return;
        }
        if (c->mode == MODE_MIXED) c->mode = c->buf[0] == 'F' ? MODE_SINK : MODE_ECHO;
        c->received += (unsigned long long)n;
        if (c->mode == MODE_SINK) continue;
        c->out_off = 0;
        c->out_len = (size_t)n;
        int rc = flush_output(c);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        if (rc == 1) {
            wait_writable(c);
            return;
        }
        if ((size_t)n < sizeof c->buf) return; /* short read: socket is drained */
    }
}

/* Answers the complete requests at the front of buf while the output
 * buffer has room, and keeps what is left (a partial request, or requests
 * still to answer) at the front. Returns 1 when it stopped for room. */
static int http_answer(struct conn *c)
{
    size_t done = 0;
    int full = 0;
    for (;;) {
        char *end = memmem(c->buf + done, c->in_len - done, "\r\n\r\n", 4);
        if (!end) break;
        if (c->out_len + HTTP_RESPONSE_LEN > HTTP_OUT_SIZE) {
            full = 1;
            break;
        }
        memcpy(c->out + c->out_len, HTTP_RESPONSE, HTTP_RESPONSE_LEN);
        c->out_len += HTTP_RESPONSE_LEN;
        done = (size_t)(end - c->buf) + 4;
    }
    memmove(c->buf, c->buf + done, c->in_len - done);
    c->in_len -= done;
    return full;
}

/* Answers and sends until no complete request is left. Returns 0 when all
 * is sent, 1 when waiting for EPOLLOUT, -1 when the connection is closed. */
static int http_respond(struct conn *c)
{
    int more;
    do {
        more = http_answer(c);
        int rc = flush_output(c);
        if (rc < 0) {
            conn_close(c);
            return -1;
        }
        if (rc == 1) {
            wait_writable(c);
            return 1;
        }
    } while (more);
    return 0;
}

static void http_on_readable(struct conn *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        size_t room = sizeof c->buf - c->in_len;
        if (room == 0) { /* a request head longer than the buffer */
            conn_close(c);
            return;
        }
        ssize_t n = recv(c->h.fd, c->buf + c->in_len, room, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) conn_close(c);
            return;
        }
        if (n == 0) {
            on_peer_eof(c);
            return;
        }
        c->in_len += (size_t)n;
        if (http_respond(c) != 0) return;
        if ((size_t)n < room) return; /* short read: socket is drained */
    }
}

static void on_writable(struct conn *c)
{
    int rc = flush_output(c);
    if (rc == 1) return;
    if (rc < 0 || c->peer_eof) {
        conn_close(c);
        return;
    }
    /* Requests that arrived while output was blocked are answered first. */
    if (c->mode == MODE_HTTP && http_respond(c) != 0) return;
    watch(EPOLL_CTL_MOD, &c->h, EPOLLIN); /* caught up: resume reading */
}

static void on_conn_event(struct conn *c, unsigned events)
{
    /* EPOLLERR/EPOLLHUP are reported whatever we asked for; the failing
     * recv/send then tells us what happened and closes the connection. */
    if (c->out_len > c->out_off) on_writable(c);
    else if (c->mode == MODE_HTTP) http_on_readable(c);
    else on_readable(c);
    (void)events;
}

static void add_conn(int fd)
{
    int one = 1;
    if (!g_unix_path) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = malloc(sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    memset(c, 0, offsetof(struct conn, buf)); /* the buffer needs no zeroing */
    c->h.kind = KIND_CONN;
    c->h.fd = fd;
    c->mode = g_mode;
    c->out = g_mode == MODE_HTTP ? malloc(HTTP_OUT_SIZE) : c->buf;
    if (!c->out) {
        close(fd);
        free(c);
        return;
    }
    watch(EPOLL_CTL_ADD, &c->h, EPOLLIN);
}

/* Out of descriptors: the pending connection would keep the level-triggered
 * listener readable forever, so free the spare fd, accept and drop it. */
static void shed_connection(int listener)
{
    close(g_spare_fd);
    int fd = accept(listener, NULL, NULL);
    if (fd >= 0) close(fd);
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    fputs("server: out of file descriptors, dropped a connection\n", stderr);
}

static void accept_all(int listener)
{
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_conn(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) shed_connection(listener);
        else if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept");
        return;
    }
}

static void run_loop(struct handle *listener, struct handle *sig)
{
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(g_epoll, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct handle *h = events[i].data.ptr;
            if (h == sig) return;
            if (h == listener) accept_all(listener->fd);
            else on_conn_event((struct conn *)h, events[i].events);
        }
    }
}

int main(int argc, char **argv)
{
    int port = 0;
    parse_args(argc, argv, &port);
    signal(SIGPIPE, SIG_IGN); /* belt and braces next to MSG_NOSIGNAL */

    g_epoll = epoll_create1(EPOLL_CLOEXEC);
    if (g_epoll < 0) die("epoll_create1");
    g_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    struct handle sig = { KIND_SIGNAL, open_signalfd() };
    int listen_fd = g_unix_path ? open_unix_listener(g_unix_path) : open_listener(port);
    struct handle listener = { KIND_LISTENER, listen_fd };
    watch(EPOLL_CTL_ADD, &sig, EPOLLIN);
    watch(EPOLL_CTL_ADD, &listener, EPOLLIN);

    if (g_unix_path) printf("listening on unix:%s\n", g_unix_path);
    else printf("listening on 127.0.0.1:%d\n", bound_port(listener.fd));
    fflush(stdout);

    run_loop(&listener, &sig);
    /* SIGTERM/SIGINT: the kernel reclaims every socket, but not the socket's file. */
    if (g_unix_path) unlink(g_unix_path);
    return 0;
}
