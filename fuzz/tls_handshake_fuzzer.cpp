// fuzz/tls_handshake_fuzzer.cpp - libFuzzer target for the TLS handshake path
// (coronet/tls.hpp, detail/tls_engine.hpp) fed hostile bytes by a peer that is not
// TLS at all: the fuzzer's end of a connected socket pair.
//
// Input layout (fuzz/README.md has the details):
//   byte 0   flags: bit 0 coronet is the client (else the server); bit 1 the server
//            asks for a client certificate; bit 2 the server has an SNI context for
//            "other.test" and the client sends that name; bit 3 both offer ALPN
//            ("h2", "http/1.1"); bits 4-5 the minimum version (TLSv1, 1.1, 1.2, 1.3)
//   byte 1   c = value % 16 chunk lengths follow, each 1 + value (1..256)
//   the rest the bytes the hostile peer sends, in those chunk lengths (whole if c is
//            0; after the chunks the rest goes at once), then its FIN
//
// After each chunk the handshake runs until it waits again, so OpenSSL meets the
// records split where the input says. The properties:
//   - the handshake ends: with the peer's FIN after the last byte, it never waits
//     forever (a hang is reported after 5 s);
//   - it fails as coronet::error, with a code a user can act on (errc::tls_handshake
//     with OpenSSL's reason, or ECONNRESET "Client network socket disconnected before
//     secure TLS connection was established") and a non-empty message; no other
//     exception escapes, and no socket is handed out;
//   - nothing crashes, reads out of bounds or leaks (ASan, UBSan, LeakSanitizer).
// A peer that sends no TLS cannot complete a handshake (it would need the keys), so
// a success is a broken property too.
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/tls.hpp>

namespace {

using namespace std::chrono_literals;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "tls_handshake_fuzzer: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  __builtin_trap();
}

void check(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

/// A self-signed P-256 certificate for `name`, made in memory at start-up (no key
/// material is checked in), as the PEM texts tls::Options takes.
struct identity {
  std::string cert, key;
};

std::string pem_of(int (*write)(BIO*, void*), void* object) {
  BIO* out = BIO_new(BIO_s_mem());
  check(out && write(out, object) == 1, "cannot write PEM");
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  std::string text(data, static_cast<std::size_t>(size));
  BIO_free(out);
  return text;
}

identity make_identity(const char* name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  check(key && cert, "cannot make a key");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(name), -1, -1, 0);
  X509_set_issuer_name(cert, subject);
  X509_set_pubkey(cert, key);
  check(X509_sign(cert, key, EVP_sha256()) > 0, "cannot sign");
  identity made{
      pem_of([](BIO* b, void* x) { return PEM_write_bio_X509(b, static_cast<X509*>(x)); }, cert),
      pem_of(
          [](BIO* b, void* k) {
            return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0,
                                            nullptr, nullptr);
          },
          key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return made;
}

constexpr std::array<std::string_view, 2> alpn{"h2", "http/1.1"};
constexpr std::array<std::string_view, 4> versions{"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"};

struct scenario {
  std::uint8_t flags = 0;  // byte 0, which names its context
  bool client = false;
  bool request_cert = false;
  bool sni = false;
  bool alpn = false;
  std::string_view min_version;
  std::vector<std::size_t> chunks;
  std::string_view bytes;
};

std::optional<scenario> parse(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return std::nullopt;
  scenario s;
  s.flags = data[0] & 0x3F;  // bits 6-7 are unused
  s.client = (data[0] & 1) != 0;
  s.request_cert = (data[0] & 2) != 0;
  s.sni = (data[0] & 4) != 0;
  s.alpn = (data[0] & 8) != 0;
  s.min_version = versions[(data[0] >> 4) & 3];
  const std::size_t count = std::min<std::size_t>(data[1] % 16, size - 2);
  for (std::size_t i = 0; i < count; ++i) s.chunks.push_back(1 + std::size_t{data[2 + i]});
  s.bytes = {reinterpret_cast<const char*>(data) + 2 + count, size - 2 - count};
  return s;
}

struct fixture {
  asio::io_context io{1};
  identity main = make_identity("localhost");
  identity other = make_identity("other.test");
  std::map<std::uint8_t, coronet::tls::Context> contexts;  // by the flags byte
};

/// The context the input's flags ask for. Made once per flags value and kept:
/// OpenSSL 3's SSL_CTX_new costs more than a failed handshake (under ASan, most of
/// an input's time and, through ASan's quarantine, hundreds of megabytes).
coronet::tls::Context make_context(const fixture& f, const scenario& s) {
  coronet::tls::Options o{.cert = s.client ? std::string_view() : f.main.cert,
                          .key = s.client ? std::string_view() : f.main.key,
                          .ca = f.main.cert,
                          .request_cert = s.request_cert,
                          .min_version = s.min_version};
  if (s.alpn) o.alpn_protocols = alpn;
  coronet::tls::Context context(o, !s.client);
  if (!s.client && s.sni) {
    context.add_context("other.test",
                        coronet::tls::Context({.cert = f.other.cert, .key = f.other.key}, true));
  }
  return context;
}

const coronet::tls::Context& context_for(fixture& f, const scenario& s) {
  auto found = f.contexts.find(s.flags);
  if (found == f.contexts.end()) found = f.contexts.emplace(s.flags, make_context(f, s)).first;
  return found->second;
}

using stream_type = asio::generic::stream_protocol::socket;

/// What secure() ended with: the error, or nothing when it (wrongly) succeeded.
struct outcome {
  bool finished = false;
  std::optional<coronet::error> failure;
  std::string other;  // an exception that is not coronet::error
};

coronet::awaitable<void> handshake(stream_type& stream, const coronet::tls::Context& context,
                                   const scenario& s, outcome& result) {
  try {
    auto layer = co_await coronet::tls::detail::secure(
        stream, context.state(), !s.client, s.client && s.sni ? "other.test" : "", "",
        s.client ? "localhost" : "", std::chrono::milliseconds(0));
    (void)layer;
  } catch (const coronet::error& e) {
    result.failure = e;
  } catch (const std::exception& e) {
    result.other = e.what();
  }
  result.finished = true;
}

/// Runs the handshake's handlers until it waits for the peer again (or ends).
void settle(asio::io_context& io) {
  io.restart();
  while (io.poll() > 0) {
  }
}

void send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    // The handshake may have failed and closed its end already: the rest is moot.
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void check_failure(const outcome& result) {
  check(result.other.empty(), "an exception other than coronet::error:", result.other);
  check(result.failure.has_value(), "the handshake succeeded against a peer with no keys");
  const coronet::error& e = *result.failure;
  const std::string_view what = e.what();
  check(!what.empty(), "an error without a message");
  const bool handshake_failed = e.code() == coronet::errc::tls_handshake;
  const bool disconnected =
      e.code() == std::errc::connection_reset &&
      what.find(
          "Client network socket disconnected before secure TLS connection was "
          "established") != std::string_view::npos;
  check(handshake_failed || disconnected, "an unexpected error:", what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture f;
  const std::optional<scenario> s = parse(data, size);
  if (!s) return 0;
  const coronet::tls::Context& context = context_for(f, *s);
  int pair[2];
  check(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0, "socketpair failed");
  const int hostile = pair[1];
  outcome result;
  {
    stream_type stream(f.io, asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), pair[0]);
    asio::co_spawn(f.io, handshake(stream, context, *s, result), asio::detached);
    settle(f.io);
    std::string_view rest = s->bytes;
    for (std::size_t chunk : s->chunks) {
      if (rest.empty() || result.finished) break;
      const std::size_t n = std::min(chunk, rest.size());
      send_all(hostile, rest.substr(0, n));
      rest.remove_prefix(n);
      settle(f.io);
    }
    if (!result.finished) {
      send_all(hostile, rest);
      ::shutdown(hostile, SHUT_WR);
      f.io.restart();
      for (auto until = std::chrono::steady_clock::now() + 5s;
           !result.finished && std::chrono::steady_clock::now() < until;)
        f.io.run_one_for(100ms);
    }
    check(result.finished, "hung: the handshake neither finished nor failed within 5 s");
  }
  ::close(hostile);
  check_failure(result);
  return 0;
}
