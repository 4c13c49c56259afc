// coronet/tls.hpp - Node's `tls` module: TLS servers and connections whose sockets
// are the same coronet::Socket, over OpenSSL 3.
//
//     coronet::tls::Server server{{}, {.cert_file = "cert.pem", .key_file = "key.pem"}};
//     co_await server.listen(8443);
//     co_await server.serve(session);               // the handler sees a plain Socket
//
//     auto socket = co_await coronet::tls::connect({.host = "example.org", .port = 443}, {});
//
// Opt-in: coronet.hpp does not include this header, and only a program that does
// needs OpenSSL (Meson: dependency('coronet-tls'); pkg-config coronet-tls; CMake:
// coronet::tls). The handshake runs before the socket exists; afterwards every
// Socket operation works as on TCP, and socket.tls() says what was negotiated.
#pragma once

#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "connect.hpp"
#include "detail/secure_layer.hpp"
#include "detail/tls_engine.hpp"
#include "server.hpp"
#include "socket.hpp"

namespace coronet::tls {

/// Node's TLS options (tls.createSecureContext(), tls.connect(), tls.createServer()),
/// with C++ types. Trivially destructible, like every coronet options struct: the
/// strings are views that only need to live until the call that takes them.
struct Options {
  // ---- identity: a server's certificate, or a client's for request_cert servers
  std::string_view cert{};        ///< PEM text: the certificate, then its chain
  std::string_view cert_file{};   ///< ... or a PEM file holding them
  std::string_view key{};         ///< PEM text of the private key
  std::string_view key_file{};    ///< ... or a PEM file holding it
  std::string_view passphrase{};  ///< for an encrypted key
  // ---- trust
  /// PEM text of the certificates to trust, instead of the system's roots (as in
  /// Node, `ca` replaces the default list).
  std::string_view ca{};
  std::string_view ca_file{};  ///< ... or a PEM file holding them
  /// Node's rejectUnauthorized: a peer whose certificate fails verification (or,
  /// for a client, whose name does not match) is refused. With false the connection
  /// proceeds and socket.tls()->authorized says what was wrong.
  bool reject_unauthorized = true;
  /// Server: ask clients for a certificate (Node's requestCert); with
  /// reject_unauthorized, a client without a valid one is refused.
  bool request_cert = false;
  // ---- negotiation
  /// ALPN, in preference order ("h2", "http/1.1"): what a client offers, what a
  /// server accepts (the server's order wins). A server with a list refuses a
  /// client whose list shares nothing with it.
  std::span<const std::string_view> alpn_protocols{};
  std::string_view min_version = "TLSv1.2";  ///< "TLSv1", "TLSv1.1", "TLSv1.2" or "TLSv1.3"
  std::string_view max_version = "TLSv1.3";
  std::string_view ciphers{};  ///< an OpenSSL cipher list for TLS 1.2 and below; empty: OpenSSL's
  // ---- client only
  /// The SNI name to send and the name the certificate must carry. Empty: the
  /// connect host when it is a name (an IP address is checked but not sent).
  std::string_view servername{};
  /// A session from an earlier connection's socket.tls()->session, to resume it.
  std::string_view session{};
  /// Bounds the handshake; past it the connection is closed and errc::timeout
  /// thrown. 0: no bound. Node's default is 120 s.
  std::chrono::milliseconds handshake_timeout{120'000};
};
static_assert(std::is_trivially_destructible_v<Options>,
              "options must stay trivially destructible: see ConnectOptions");

namespace detail {
/// The OpenSSL context behind a Context, with what its callbacks point at.
struct context_state {
  SSL_CTX* ctx = nullptr;
  std::string alpn;  // the server's protocols in ALPN's wire format
  std::vector<std::pair<std::string, std::shared_ptr<context_state>>> by_servername;
  ~context_state() { SSL_CTX_free(ctx); }
};
}  // namespace detail

/// Node's SecureContext: certificates, trust and protocol settings loaded once
/// and shared by many connections. tls::Server makes its own; a client that
/// connects often can make one and pass it to connect().
class Context {
 public:
  /// Loads `options` for a server (`server` true) or a client. Throws coronet::error
  /// (errc::invalid_argument) naming what could not be loaded: "tls: cannot load
  /// cert_file 'x.pem': No such file or directory", "tls: key values mismatch".
  Context(const Options& options, bool server) : state_(std::make_shared<detail::context_state>()) {
    state_->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!state_->ctx) fail("cannot create an OpenSSL context");
    SSL_CTX* ctx = state_->ctx;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_min_proto_version(ctx, version(options.min_version, "min_version"));
    SSL_CTX_set_max_proto_version(ctx, version(options.max_version, "max_version"));
    if (!options.ciphers.empty() &&
        SSL_CTX_set_cipher_list(ctx, std::string(options.ciphers).c_str()) != 1)
      fail("no cipher in '" + std::string(options.ciphers) + "'");
    load_identity(options);
    load_trust(options, server);
    state_->alpn = wire_format(options.alpn_protocols);
    if (server) {
      static constexpr unsigned char id[] = "coronet";
      SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);  // resumption with client certs
      if (options.request_cert) {
        SSL_CTX_set_verify(
            ctx,
            SSL_VERIFY_PEER | (options.reject_unauthorized ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            coronet::detail::tls::continue_verifying);
      }
      if (!state_->alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, state_.get());
      SSL_CTX_set_tlsext_servername_callback(ctx, select_context);
      SSL_CTX_set_tlsext_servername_arg(ctx, state_.get());
    } else {
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, coronet::detail::tls::continue_verifying);
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
      SSL_CTX_sess_set_new_cb(ctx, keep_session);
    }
  }

  /// Server: connections that ask for `servername` (SNI) get `other`'s certificate
  /// (Node's server.addContext()). "*.example.org" matches one label.
  void add_context(std::string_view servername, const Context& other) {
    state_->by_servername.emplace_back(std::string(servername), other.state_);
  }

  /// The OpenSSL context, for settings coronet does not offer.
  SSL_CTX* native_handle() const { return state_->ctx; }
  /// Shares ownership of the OpenSSL state (what a connection in flight holds).
  std::shared_ptr<detail::context_state> state() const { return state_; }

 private:
  [[noreturn]] static void fail(const std::string& what) {
    throw error(make_error_code(errc::invalid_argument), "tls: " + what);
  }

  static int version(std::string_view name, const char* option) {
    if (name == "TLSv1") return TLS1_VERSION;
    if (name == "TLSv1.1") return TLS1_1_VERSION;
    if (name == "TLSv1.2") return TLS1_2_VERSION;
    if (name == "TLSv1.3") return TLS1_3_VERSION;
    fail(std::string(option) + ": '" + std::string(name) +
         "' is not a valid TLS protocol version (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)");
  }

  /// A BIO reading PEM text that the caller owns.
  struct pem_text {
    BIO* bio;
    explicit pem_text(std::string_view text)
        : bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))) {}
    ~pem_text() { BIO_free(bio); }
    pem_text(const pem_text&) = delete;
    pem_text& operator=(const pem_text&) = delete;
  };

  static int give_passphrase(char* buffer, int size, int, void* user) {
    const auto* passphrase = static_cast<const std::string*>(user);
    const int n = std::min(size, static_cast<int>(passphrase->size()));
    std::memcpy(buffer, passphrase->data(), static_cast<std::size_t>(n));
    return n;
  }

  void load_identity(const Options& o) {
    SSL_CTX* ctx = state_->ctx;
    if (!o.cert.empty()) {
      pem_text pem(o.cert);
      X509* leaf = PEM_read_bio_X509(pem.bio, nullptr, nullptr, nullptr);
      if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        X509_free(leaf);
        fail("cannot load cert: " + coronet::detail::tls::take_openssl_error());
      }
      X509_free(leaf);
      while (X509* link = PEM_read_bio_X509(pem.bio, nullptr, nullptr, nullptr)) {
        SSL_CTX_add0_chain_cert(ctx, link);  // the context owns it from here
      }
      ERR_clear_error();  // the end of the PEM text reads as an error
    } else if (!o.cert_file.empty() &&
               SSL_CTX_use_certificate_chain_file(ctx, std::string(o.cert_file).c_str()) != 1) {
      fail("cannot load cert_file '" + std::string(o.cert_file) +
           "': " + coronet::detail::tls::take_openssl_error());
    }
    std::string passphrase(o.passphrase);
    SSL_CTX_set_default_passwd_cb(ctx, give_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &passphrase);
    if (!o.key.empty()) {
      pem_text pem(o.key);
      EVP_PKEY* key = PEM_read_bio_PrivateKey(pem.bio, nullptr, give_passphrase, &passphrase);
      const bool used = key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
      EVP_PKEY_free(key);
      if (!used) fail("cannot load key: " + coronet::detail::tls::take_openssl_error());
    } else if (!o.key_file.empty() &&
               SSL_CTX_use_PrivateKey_file(ctx, std::string(o.key_file).c_str(),
                                           SSL_FILETYPE_PEM) != 1) {
      fail("cannot load key_file '" + std::string(o.key_file) +
           "': " + coronet::detail::tls::take_openssl_error());
    }
    SSL_CTX_set_default_passwd_cb_userdata(ctx, nullptr);
    const bool has_cert = !o.cert.empty() || !o.cert_file.empty();
    const bool has_key = !o.key.empty() || !o.key_file.empty();
    if (has_cert != has_key) fail(has_cert ? "cert given without key" : "key given without cert");
    if (has_cert && SSL_CTX_check_private_key(ctx) != 1)
      fail(coronet::detail::tls::take_openssl_error());
  }

  void load_trust(const Options& o, bool server) {
    SSL_CTX* ctx = state_->ctx;
    if (!o.ca.empty()) {
      pem_text pem(o.ca);
      X509_STORE* store = SSL_CTX_get_cert_store(ctx);
      int added = 0;
      while (X509* cert = PEM_read_bio_X509(pem.bio, nullptr, nullptr, nullptr)) {
        X509_STORE_add_cert(store, cert);
        if (server) SSL_CTX_add_client_CA(ctx, cert);
        X509_free(cert);
        ++added;
      }
      ERR_clear_error();
      if (added == 0) fail("ca holds no PEM certificate");
    } else if (!o.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, std::string(o.ca_file).c_str(), nullptr) != 1) {
        fail("cannot load ca_file '" + std::string(o.ca_file) +
             "': " + coronet::detail::tls::take_openssl_error());
      }
      if (server) {
        if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(std::string(o.ca_file).c_str()))
          SSL_CTX_set_client_CA_list(ctx, names);
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      fail("cannot load the system's trusted certificates: " +
           coronet::detail::tls::take_openssl_error());
    }
  }

  static std::string wire_format(std::span<const std::string_view> protocols) {
    std::string wire;
    for (auto name : protocols) {
      if (name.empty() || name.size() > 255)
        fail("an ALPN protocol name must be 1 to 255 bytes long");
      wire += static_cast<char>(name.size());
      wire += name;
    }
    return wire;
  }

  /// The server's first protocol the client also offers; none in common is a
  /// fatal no_application_protocol alert, as in Node.
  static int select_alpn(SSL*, const unsigned char** out, unsigned char* out_size,
                         const unsigned char* offered, unsigned offered_size, void* arg) {
    const auto& mine = static_cast<detail::context_state*>(arg)->alpn;
    unsigned char* chosen = nullptr;
    if (SSL_select_next_proto(
            &chosen, out_size, reinterpret_cast<const unsigned char*>(mine.data()),
            static_cast<unsigned>(mine.size()), offered, offered_size) != OPENSSL_NPN_NEGOTIATED)
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }

  static bool name_matches(std::string_view pattern, std::string_view name) {
    if (pattern.size() == name.size() &&
        std::equal(pattern.begin(), pattern.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return true;
    if (!pattern.starts_with("*.")) return false;
    const auto dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 &&
           name_matches(pattern.substr(2), name.substr(dot + 1));
  }

  static int select_context(SSL* ssl, int*, void* arg) {
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_OK;
    for (const auto& [pattern, other] : static_cast<detail::context_state*>(arg)->by_servername) {
      if (name_matches(pattern, name)) {
        SSL_set_SSL_CTX(ssl, other->ctx);
        break;
      }
    }
    return SSL_TLSEXT_ERR_OK;
  }

  /// A client's new session (TLS 1.3 sends them after the handshake): kept,
  /// encoded, in the connection's TlsInfo.
  static int keep_session(SSL* ssl, SSL_SESSION* session) {
    auto* layer = static_cast<coronet::detail::tls::tls_layer*>(
        SSL_get_ex_data(ssl, coronet::detail::tls::layer_index()));
    const int size = i2d_SSL_SESSION(session, nullptr);
    if (!layer || size <= 0) return 0;
    std::string& kept = layer->mutable_info().session;
    kept.resize(static_cast<std::size_t>(size));
    auto* out = reinterpret_cast<unsigned char*>(kept.data());
    i2d_SSL_SESSION(session, &out);
    return 0;  // we did not keep a reference to `session`
  }

  std::shared_ptr<detail::context_state> state_;
};

namespace detail {

using coronet::detail::tls::tls_layer;

/// Waits until the descriptor is ready the way the layer needs. With several
/// threads on the io_context a readability wait is a one-byte MSG_PEEK receive
/// (coronet/detail/reactor.hpp says why).
template <typename Stream>
awaitable<std::error_code> wait_ready(Stream& stream, coronet::detail::readiness need,
                                      bool single_threaded) {
  using asio::experimental::as_tuple;
  if (need == coronet::detail::readiness::writable) {
    auto [ec] = co_await stream.async_wait(Stream::wait_write, as_tuple(asio::use_awaitable));
    co_return ec;
  }
  if (single_threaded) {
    auto [ec] = co_await stream.async_wait(Stream::wait_read, as_tuple(asio::use_awaitable));
    co_return ec;
  }
  char byte = 0;
  auto [ec, n] = co_await stream.async_receive(asio::buffer(&byte, 1), Stream::message_peek,
                                               as_tuple(asio::use_awaitable));
  (void)n;
  co_return ec;
}

/// Runs the handshake to its end on the connected, non-blocking `stream`.
template <typename Stream>
awaitable<void> drive_handshake(Stream& stream, tls_layer& layer) {
  const bool single_threaded = coronet::detail::reactor_is_single_threaded(stream.get_executor());
  for (;;) {
    std::string why;
    const std::error_code ec = layer.handshake_step(why);
    if (!ec) co_return;
    if (ec != asio::error::would_block) throw error(ec, why);
    if (auto waited = co_await wait_ready(stream, layer.blocked_on(), single_threaded))
      throw error(waited, waited == asio::error::operation_aborted
                              ? std::string("TLS handshake cancelled")
                              : coronet::detail::syscall_error("TLS handshake", waited).what());
  }
}

/// The handshake, bounded by `timeout` (0: unbounded). Throws errc::timeout
/// ("TLS handshake timeout"), the handshake's own failure, or operation_aborted
/// when cancelled; the caller closes the stream.
template <typename Stream>
awaitable<void> handshake(Stream& stream, tls_layer& layer, std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  if (timeout.count() == 0) co_return co_await drive_handshake(stream, layer);
  asio::basic_waitable_timer<std::chrono::steady_clock,
                             asio::wait_traits<std::chrono::steady_clock>,
                             typename Stream::executor_type>
      timer(stream.get_executor());
  coronet::detail::expire_after(timer, timeout);
  auto outcome = co_await (drive_handshake(stream, layer) || timer.async_wait(asio::use_awaitable));
  if (outcome.index() == 1)
    throw error(make_error_code(errc::timeout),
                "TLS handshake timeout (" + std::to_string(timeout.count()) + " ms)");
}

/// After the handshake: refuse an unauthorized peer when asked to, in Node's words.
inline void authorize(const tls_layer& layer, bool reject_unauthorized) {
  const TlsInfo& info = layer.info();
  if (reject_unauthorized && !info.authorized)
    throw error(make_error_code(errc::tls_unauthorized), info.authorization_error);
}

}  // namespace detail
}  // namespace coronet::tls
