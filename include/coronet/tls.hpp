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
  std::string_view max_version = "TLSv1.3";  ///< the newest version offered or accepted
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
  /// After the handshake, a peer that closes TCP without TLS close_notify: false
  /// (Node's behaviour) reads a FIN after a whole record as the end of the stream;
  /// true makes it errc::tls_truncated, for protocols whose messages do not say
  /// where they end (a truncation attack cuts them short undetected otherwise). A
  /// FIN in the middle of a record is errc::tls_truncated either way.
  bool require_close_notify = false;
  /// A client's prebuilt Context (many connections, one load of the trust store):
  /// when set, connect() uses it instead of the identity, trust and negotiation
  /// fields above. It must outlive the connect() call.
  const class Context* context = nullptr;
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
      if (!state_->alpn.empty() &&
          SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(state_->alpn.data()),
                                  static_cast<unsigned>(state_->alpn.size())) != 0)
        fail("cannot set alpn_protocols");
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
/// when cancelled; the caller closes the stream. (Not `||` with a timer: Asio's
/// operator waits for the first *success*, so a failed handshake would wait out
/// the timer.)
template <typename Stream>
awaitable<void> handshake(Stream& stream, tls_layer& layer, std::chrono::milliseconds timeout) {
  if (timeout.count() == 0) co_return co_await drive_handshake(stream, layer);
  struct deadline {
    asio::basic_waitable_timer<std::chrono::steady_clock,
                               asio::wait_traits<std::chrono::steady_clock>,
                               typename Stream::executor_type>
        timer;
    bool armed = true;  // false once the handshake ended: a late expiry touches nothing
    bool expired = false;
  };
  auto bound =
      std::make_shared<deadline>(deadline{decltype(deadline::timer)(stream.get_executor())});
  coronet::detail::expire_after(bound->timer, timeout);
  bound->timer.async_wait([bound, &stream](std::error_code ec) {
    if (ec || !bound->armed) return;
    bound->expired = true;
    std::error_code ignored;
    stream.cancel(ignored);  // the handshake's wait ends with operation_aborted
  });
  struct disarm {
    deadline& d;
    ~disarm() {
      d.armed = false;
      d.timer.cancel();
    }
  } guard{*bound};
  try {
    co_await drive_handshake(stream, layer);
  } catch (const error&) {
    if (!bound->expired) throw;
  }
  if (bound->expired)
    throw error(make_error_code(errc::timeout),
                "TLS handshake timeout (" + std::to_string(timeout.count()) + " ms)");
}

/// After the handshake: refuse an unauthorized peer when asked to, in Node's words.
inline void authorize(const tls_layer& layer, bool reject_unauthorized) {
  const TlsInfo& info = layer.info();
  if (reject_unauthorized && !info.authorized)
    throw error(make_error_code(errc::tls_unauthorized), info.authorization_error);
}

/// Hand-shakes on a connected stream and returns the layer that becomes the
/// socket's byte mover. A client sends `sni` (when not empty), offers `session`,
/// and checks the certificate against `expected_host`.
template <typename Stream>
awaitable<std::unique_ptr<tls_layer>> secure(Stream& stream, std::shared_ptr<context_state> context,
                                             bool server, std::string sni, std::string session,
                                             std::string expected_host,
                                             std::chrono::milliseconds timeout) {
  std::error_code ec;
  stream.native_non_blocking(true, ec);
  if (ec) throw coronet::detail::syscall_error("TLS handshake", ec);
  auto layer = std::make_unique<tls_layer>(context->ctx, stream.native_handle(), server);
  SSL* ssl = layer->ssl();
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (!session.empty()) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(session.data());
    if (SSL_SESSION* saved = d2i_SSL_SESSION(nullptr, &bytes, static_cast<long>(session.size()))) {
      SSL_set_session(ssl, saved);
      SSL_SESSION_free(saved);
    }
    ERR_clear_error();  // an unusable session is a full handshake, not an error
  }
  co_await handshake(stream, *layer, timeout);
  coronet::detail::tls::record_outcome(*layer, expected_host, server);
  co_return layer;
}

/// connect()'s own copies of the caller's strings and block list (the options
/// hold views and a pointer).
struct connect_strings {
  std::string host, local_address, path, servername, session;
  std::optional<BlockList> block_list;
  connect_strings(const ConnectOptions& net, const Options& tls)
      : host(net.host),
        local_address(net.local_address),
        path(net.path),
        servername(tls.servername),
        session(tls.session),
        block_list(coronet::detail::own_block_list(net)) {}
};

/// tls::connect()'s coroutine: `o` is re-pointed at `own` before anything else.
template <typename Executor>
awaitable<basic_socket<Executor>> connect(Executor executor, ConnectOptions o, Options t,
                                          std::shared_ptr<context_state> context,
                                          connect_strings own) {
  o.host = own.host;
  o.local_address = own.local_address;
  o.path = own.path;
  o.block_list = own.block_list ? &*own.block_list : nullptr;
  auto connection = co_await coronet::detail::open_connection(executor, o);
  // Node sends SNI only for a name, and checks the certificate against the
  // servername when one is given, else against the host.
  std::string sni =
      !own.servername.empty() ? own.servername : (is_ip(own.host) ? std::string() : own.host);
  std::string expected = own.servername.empty() ? own.host : own.servername;
  auto layer = co_await secure(connection.stream, std::move(context), false, std::move(sni),
                               std::move(own.session), std::move(expected), t.handshake_timeout);
  authorize(*layer, t.reject_unauthorized);
  layer->require_close_notify(t.require_close_notify);
  co_return coronet::detail::make_socket(std::move(connection), o, std::move(layer));
}

inline void validate(const Options& o) {
  if (o.handshake_timeout.count() < 0)
    throw error(errc::invalid_argument, ": handshake_timeout must not be negative");
}

inline std::shared_ptr<context_state> client_context(const Options& tls) {
  validate(tls);
  return tls.context ? tls.context->state() : Context(tls, false).state();
}

inline awaitable<Socket> connect_here(ConnectOptions net, Options tls,
                                      std::shared_ptr<context_state> context, connect_strings own) {
  auto executor = co_await asio::this_coro::executor;
  co_return co_await connect(executor, net, tls, std::move(context), std::move(own));
}

}  // namespace detail

/// Node's tls.connect(): a connection as coronet::connect() makes it (`net`: host
/// and port, or a Unix-domain path; timeouts, ...), then the TLS handshake, on the
/// awaiting coroutine's executor. Completes once the handshake is done and the
/// server is authorized. Throws what connect() throws; errc::invalid_argument when
/// `tls` cannot be loaded (a missing file, a bad version name); ECONNRESET "Client
/// network socket disconnected before secure TLS connection was established";
/// errc::tls_handshake with OpenSSL's reason ("wrong version number", "tlsv1 alert
/// protocol version"); errc::tls_unauthorized with Node's reason ("unable to
/// verify the first certificate", "Hostname/IP does not match certificate's
/// altnames: ...") unless reject_unauthorized is off; errc::timeout when
/// handshake_timeout passes. Cancelled, it throws operation_aborted and closes
/// the connection; no socket is handed out from an unauthorized peer.
inline awaitable<Socket> connect(const ConnectOptions& net, const Options& tls = {}) {
  return detail::connect_here(net, tls, detail::client_context(tls),
                              detail::connect_strings(net, tls));
}

/// The same on an explicit executor, for a socket of a concrete executor type.
template <typename Executor>
awaitable<basic_socket<Executor>> connect(Executor executor, const ConnectOptions& net,
                                          const Options& tls = {}) {
  return detail::connect(std::move(executor), net, tls, detail::client_context(tls),
                         detail::connect_strings(net, tls));
}

/// Node's tls.Server: a coronet::basic_server whose connections hand-shake before
/// accept() or serve() hands them out. Failed handshakes (a plain-text client, a
/// refused certificate, handshake_timeout) close that connection only, as Node
/// reports them to 'tlsClientError' and goes on.
template <typename Executor = asio::any_io_executor>
class basic_server {
 public:
  using executor_type = Executor;              ///< as coronet::basic_server's
  using socket_type = basic_socket<Executor>;  ///< what accept() and serve() hand out

  /// A server that does not listen yet. `tls` is loaded now: a missing file or a
  /// key that does not match its certificate throws errc::invalid_argument here.
  basic_server(ServerOptions options = {}, const Options& tls = {})
      : tcp_(options), state_(std::make_shared<state>(tls)) {}

  /// Connections that ask for `servername` through SNI get these certificates
  /// (Node's server.addContext()); "*.example.org" matches one label.
  void add_context(std::string_view servername, const Options& tls) {
    state_->context.add_context(servername, Context(tls, true));
  }

  ///@{
  /// As coronet::basic_server::listen().
  awaitable<void> listen(int port = 0, std::string_view host = {}, int backlog = 511) {
    return tcp_.listen(port, host, backlog);
  }
  awaitable<void> listen(const ListenOptions& options) { return tcp_.listen(options); }
  void listen(const executor_type& executor, const ListenOptions& options) {
    tcp_.listen(executor, options);
  }
  ///@}

  /// The next connection whose handshake succeeded. Handshakes run one at a time
  /// here, each bounded by handshake_timeout; serve() runs them side by side.
  /// Throws and cancels as coronet::basic_server::accept().
  awaitable<socket_type> accept() { return accept_on(tcp_.state_, state_); }

  /// As coronet::basic_server::serve(), with each connection's handshake run in
  /// its own coroutine before `handler` sees the socket.
  template <typename Handler>
  requires connection_handler<Handler, socket_type>
      // NOLINTNEXTLINE(performance-unnecessary-value-param): a coroutine must own its arguments
      awaitable<void> serve(Handler handler) {
    return serve_on(tcp_.state_, state_, std::move(handler));
  }

  ///@{
  /// As coronet::basic_server's.
  void close() { tcp_.close(); }
  awaitable<void> wait_closed() { return tcp_.wait_closed(); }
  /// As coronet::basic_server::shutdown(): an idle connection ends (close_notify,
  /// then FIN) at once, a busy one when it goes idle, the rest are destroyed after
  /// `grace`. A connection still in its handshake is closed when the handshake
  /// ends, never handed out.
  awaitable<ShutdownResult> shutdown(std::chrono::milliseconds grace) {
    return tcp_.shutdown(grace);
  }
  std::optional<Address> address() const { return tcp_.address(); }
  bool listening() const { return tcp_.listening(); }
  std::size_t connections() const { return tcp_.connections(); }
  executor_type get_executor() const { return tcp_.get_executor(); }
  ///@}
  /// The server's own Context (its certificate, trust, ALPN).
  const Context& context() const { return state_->context; }

 private:
  using tcp_server = coronet::basic_server<Executor>;
  using tcp_state = typename tcp_server::state_ptr;

  struct state {
    explicit state(const Options& o)
        : context(o, true),
          reject_unauthorized(o.reject_unauthorized && o.request_cert),
          handshake_timeout(o.handshake_timeout),
          require_close_notify(o.require_close_notify) {
      detail::validate(o);
    }
    Context context;
    bool reject_unauthorized;
    std::chrono::milliseconds handshake_timeout;
    bool require_close_notify;
  };
  using state_ptr = std::shared_ptr<state>;

  /// Hand-shakes on an accepted connection; nullopt when it failed (the
  /// connection is closed: its stream goes out of scope).
  static awaitable<std::optional<socket_type>> secure_on(
      tcp_state s, state_ptr t, coronet::detail::connected_stream<Executor> c) {
    std::unique_ptr<detail::tls_layer> layer;
    try {
      layer = co_await detail::secure(c.stream, t->context.state(), true, {}, {}, {},
                                      t->handshake_timeout);
      detail::authorize(*layer, t->reject_unauthorized);
      layer->require_close_notify(t->require_close_notify);
    } catch (const error& e) {
      if (e.code() == std::errc::operation_canceled) throw;
      co_return std::nullopt;
    }
    std::optional<socket_type> socket = tcp_server::adopt(*s, std::move(c), std::move(layer));
    tcp_server::start_dropping_if_full(s);
    co_return socket;
  }

  static awaitable<socket_type> accept_on(tcp_state s, state_ptr t) {
    for (;;) {
      auto connection = co_await tcp_server::accept_stream_on(s);
      std::optional<socket_type> socket = co_await secure_on(s, t, std::move(connection));
      if (socket) co_return std::move(*socket);
    }
  }

  template <typename Handler>
  static awaitable<void> serve_on(tcp_state s, state_ptr t, Handler handler) {
    for (;;) {
      std::optional<coronet::detail::connected_stream<Executor>> connection;
      bool exhausted = false;
      try {
        connection.emplace(co_await tcp_server::accept_stream_on(s));
      } catch (const error& e) {
        if (!s->listening()) co_return;
        if (!tcp_server::is_resource_exhaustion(e.code())) throw;
        exhausted = true;
      }
      if (exhausted) {
        co_await tcp_server::pause_accepting(s);
        continue;
      }
      asio::co_spawn(s->executor(), run_handler(s, t, handler, std::move(*connection)),
                     asio::detached);
    }
  }

  template <typename Handler>
  static awaitable<void> run_handler(tcp_state s, state_ptr t, Handler handler,
                                     coronet::detail::connected_stream<Executor> connection) {
    try {
      std::optional<socket_type> socket = co_await secure_on(s, t, std::move(connection));
      if (socket) co_await handler(std::move(*socket));
    } catch (const std::exception&) {
      // As in coronet::basic_server::serve(): an error ends that connection only.
    }
  }

  tcp_server tcp_;
  state_ptr state_;
};

/// A TLS server on asio::any_io_executor, the one most programs use.
using Server = basic_server<>;

}  // namespace coronet::tls
