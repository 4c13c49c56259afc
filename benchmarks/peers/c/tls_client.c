// bench_tls_client: the TLS load client (OpenSSL, blocking sockets) that drives every
// TLS server of the benchmark (coronet, Node, Go, openssl s_server) the same way.
//
//   bench_tls_client --mode bulk --port P --duration S
//       one connection; 64 KiB SSL_write()s for S seconds, then close_notify and a
//       wait for the server's end; prints {"gbytes_per_s": ...}: the bytes over the
//       time from the first write to the server's end (its reply or close), so what
//       the kernel buffers at the end is counted as delivered only once it is.
//   bench_tls_client --mode handshake --port P --duration S
//       for S seconds, one connection at a time: TCP connect, a full handshake (no
//       resumption), one byte, close_notify, the server's end; prints
//       {"handshakes_per_s": ...}.
//   bench_tls_client --mode idle --port P --connections N
//       opens N connections, hand-shakes each and sends one byte, prints "ready",
//       then holds them until stdin ends.
// The server's certificate is not verified: the figure is the server's cost.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_tls_client: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(1);
}

static int tcp_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) die("connect failed");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static SSL *secure(SSL_CTX *ctx, int fd) {
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  if (SSL_connect(ssl) != 1) die("handshake failed");
  return ssl;
}

// close_notify, then whatever the server sends until its end (reply, close_notify, FIN).
static void finish(SSL *ssl, int fd) {
  SSL_shutdown(ssl);
  char buf[4096];
  while (SSL_read(ssl, buf, sizeof buf) > 0) {
  }
  SSL_free(ssl);
  close(fd);
}

int main(int argc, char **argv) {
  const char *mode = "bulk";
  int port = 0, connections = 1000;
  double duration = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
    else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--duration")) duration = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--connections")) connections = atoi(argv[i + 1]);
    else die("usage: bench_tls_client --mode bulk|handshake|idle --port P [--duration S] [--connections N]");
  }
  if (port <= 0) die("--port is required");
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // every handshake a full one
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

  if (!strcmp(mode, "bulk")) {
    static char chunk[64 * 1024];
    memset(chunk, 'x', sizeof chunk);
    int fd = tcp_connect(port);
    SSL *ssl = secure(ctx, fd);
    const double start = now();
    double bytes = 0;
    while (now() - start < duration) {
      if (SSL_write(ssl, chunk, sizeof chunk) != (int)sizeof chunk) die("write failed");
      bytes += sizeof chunk;
    }
    finish(ssl, fd);
    printf("{\"gbytes_per_s\": %.4f}\n", bytes / (now() - start) / 1e9);
  } else if (!strcmp(mode, "handshake")) {
    const double start = now();
    long count = 0;
    while (now() - start < duration) {
      int fd = tcp_connect(port);
      SSL *ssl = secure(ctx, fd);
      if (SSL_write(ssl, "x", 1) != 1) die("write failed");
      finish(ssl, fd);
      ++count;
    }
    printf("{\"handshakes_per_s\": %.1f}\n", count / (now() - start));
  } else if (!strcmp(mode, "idle")) {
    for (int i = 0; i < connections; ++i) {
      int fd = tcp_connect(port);
      SSL *ssl = secure(ctx, fd);
      if (SSL_write(ssl, "x", 1) != 1) die("write failed");
    }
    printf("ready\n");
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
  } else {
    die("--mode must be bulk, handshake or idle");
  }
  return 0;
}
