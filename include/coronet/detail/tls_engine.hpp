// coronet/detail/tls_engine.hpp - OpenSSL beneath a socket: the TLS byte mover
// (tls_layer), the handshake that runs before a socket exists, and the checks
// that decide whether a peer is authorized. Only coronet/tls.hpp includes it.
//
// OpenSSL reads and writes the descriptor itself, through a BIO of ours: it
// sends with MSG_NOSIGNAL (OpenSSL's socket BIO uses write(), and a reset peer
// would raise SIGPIPE), and it keeps the errno of the last failed call, which
// OpenSSL's error queue does not.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "../address.hpp"
#include "../config.hpp"
#include "../error.hpp"
#include "secure_layer.hpp"

namespace coronet::detail::tls {

struct ssl_free {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

/// The reason of OpenSSL's oldest queued error ("certificate verify failed"), and
/// the queue emptied: a stale entry must not be blamed on the next call.
inline std::string take_openssl_error(std::string_view fallback = "unknown error") {
  const unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return std::string(fallback);
  if (const char* reason = ERR_reason_error_string(first)) return reason;
  char text[256];
  ERR_error_string_n(first, text, sizeof text);
  return text;
}

/// True when OpenSSL's oldest queued error says the peer closed TCP mid-record
/// or before close_notify (OpenSSL 3 reports that as an SSL error, not EOF).
inline bool queued_unexpected_eof() {
  const unsigned long first = ERR_peek_error();
  return ERR_GET_LIB(first) == ERR_LIB_SSL &&
         ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

// ------------------------------------------------------------ the descriptor BIO

/// What our BIO reads and writes: the descriptor, and the errno of its last failure.
struct descriptor_io {
  int fd = -1;
  int last_errno = 0;
  bool eof = false;  // recv() returned 0: the peer's FIN has arrived
};

inline int bio_write(BIO* bio, const char* data, int size) {
  auto* io = static_cast<descriptor_io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t r;
  do r = ::send(io->fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    io->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
  }
  return static_cast<int>(r);
}

inline int bio_read(BIO* bio, char* data, int size) {
  auto* io = static_cast<descriptor_io*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  ssize_t r;
  do r = ::recv(io->fd, data, static_cast<std::size_t>(size), 0);
  while (r < 0 && errno == EINTR);
  if (r == 0) io->eof = true;
  if (r < 0) {
    io->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
  }
  return static_cast<int>(r);
}

inline long bio_control(BIO*, int command, long, void*) {
  return command == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

inline int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

inline BIO_METHOD* descriptor_bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "coronet descriptor");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_control);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

// ------------------------------------------------------------ peer identity

/// The index under which an SSL object points at its layer (for OpenSSL's callbacks).
inline int layer_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

inline std::string one_line(const X509_NAME* name) {
  if (!name) return {};
  BIO* out = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(out, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  std::string text(data, static_cast<std::size_t>(std::max(size, 0L)));
  BIO_free(out);
  return text;
}

/// The certificate's subjectAltName as Node prints it: "DNS:localhost, IP Address:127.0.0.1".
inline std::string alt_names(X509* cert, bool ip_only = false) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  std::string text;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    std::string entry;
    if (name->type == GEN_DNS && !ip_only) {
      const ASN1_IA5STRING* dns = name->d.dNSName;
      entry = "DNS:" + std::string(reinterpret_cast<const char*>(dns->data),
                                   static_cast<std::size_t>(dns->length));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      asio::ip::address address;
      if (ip->length == 4) {
        asio::ip::address_v4::bytes_type b;
        std::memcpy(b.data(), ip->data, 4);
        address = asio::ip::address_v4(b);
      } else if (ip->length == 16) {
        asio::ip::address_v6::bytes_type b;
        std::memcpy(b.data(), ip->data, 16);
        address = asio::ip::address_v6(b);
      }
      entry = (ip_only ? "" : "IP Address:") + address.to_string();
    }
    if (entry.empty()) continue;
    if (!text.empty()) text += ", ";
    text += entry;
  }
  GENERAL_NAMES_free(names);
  return text;
}

/// Node's checkServerIdentity(): empty when `host` is a name or an address the
/// certificate was issued for, else Node's message.
inline std::string identity_mismatch(X509* cert, std::string_view host) {
  const std::string name(host);
  if (is_ip(host)) {
    if (X509_check_ip_asc(cert, name.c_str(), 0) == 1) return {};
    return "Hostname/IP does not match certificate's altnames: IP: " + name +
           " is not in the cert's list: " + alt_names(cert, true);
  }
  if (X509_check_host(cert, name.data(), name.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                      nullptr) == 1)
    return {};
  return "Hostname/IP does not match certificate's altnames: Host: " + name +
         ". is not in the cert's altnames: " + alt_names(cert);
}

/// Accepts every certificate during the handshake, as Node does: the outcome is
/// read afterwards (SSL_get_verify_result) so that it can be reported, or
/// tolerated with reject_unauthorized off.
inline int continue_verifying(int, X509_STORE_CTX*) { return 1; }

// ------------------------------------------------------------ the layer

/// One TLS connection's OpenSSL state over a connected, non-blocking descriptor.
class tls_layer final : public secure_layer {
 public:
  /// `fd` must outlive the layer's I/O (the socket that owns it closes it later).
  tls_layer(SSL_CTX* context, int fd, bool server) : io_{fd} {
    ssl_.reset(SSL_new(context));
    BIO* bio = ssl_ ? BIO_new(descriptor_bio_method()) : nullptr;
    if (!bio) throw error(make_error_code(errc::tls_handshake), "tls: " + take_openssl_error());
    BIO_set_data(bio, &io_);
    SSL_set_bio(ssl_.get(), bio, bio);
    SSL_set_ex_data(ssl_.get(), layer_index(), this);
    SSL_set_mode(ssl_.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    if (server)
      SSL_set_accept_state(ssl_.get());
    else
      SSL_set_connect_state(ssl_.get());
  }

  SSL* ssl() const { return ssl_.get(); }
  TlsInfo& mutable_info() { return info_; }
  const TlsInfo& info() const override { return info_; }
  readiness blocked_on() const override { return blocked_on_; }

  /// One step of the handshake: done, would_block (see blocked_on()), or the failure.
  std::error_code handshake_step(std::string& why) {
    prepare_call();
    const int r = SSL_do_handshake(ssl_.get());
    if (r == 1) return {};
    const int kind = SSL_get_error(ssl_.get(), r);
    if (std::error_code ec = would_block(kind)) return ec;
    if (kind == SSL_ERROR_SSL && !queued_unexpected_eof()) {
      why = take_openssl_error();
      return make_error_code(errc::tls_handshake);
    }
    // The peer closed or reset TCP before the handshake finished.
    ERR_clear_error();
    why = "Client network socket disconnected before secure TLS connection was established";
    return {ECONNRESET, std::system_category()};
  }

  std::error_code receive(char* data, std::size_t size, std::size_t& got) override {
    prepare_call();
    got = 0;
    const int r = SSL_read_ex(ssl_.get(), data, size, &got);
    if (r == 1) return {};
    const int kind = SSL_get_error(ssl_.get(), r);
    if (kind == SSL_ERROR_ZERO_RETURN) return {};  // close_notify: the orderly end
    if (fin_between_records(kind)) return {};
    return failure(kind);
  }

  /// With true, a FIN without close_notify is errc::tls_truncated even between
  /// records (the default reads it as the end of the stream, as Node does).
  void require_close_notify(bool required) { require_close_notify_ = required; }

  std::error_code send(const iovec* pieces, std::size_t count, std::size_t& sent) override {
    sent = 0;
    std::size_t at = 0, offset = 0;  // the next unsent byte: pieces[at], offset into it
    while (at < count) {
      if (offset == pieces[at].iov_len) {
        ++at;
        offset = 0;
        continue;
      }
      const char* data = static_cast<const char*>(pieces[at].iov_base) + offset;
      std::size_t size = pieces[at].iov_len - offset;
      if (size < record_size && at + 1 < count) {
        // Small pieces in a row become one record, not one record (and one
        // system call) each. Built only from the bytes at the front, so a retry
        // after would_block stages the same bytes again, as OpenSSL requires.
        size = stage(pieces, count, at, offset);
        data = staging_.get();
      }
      prepare_call();
      std::size_t written = 0;
      const int r = SSL_write_ex(ssl_.get(), data, size, &written);
      if (r != 1) {
        std::error_code ec = failure(SSL_get_error(ssl_.get(), r));
        if (ec == asio::error::would_block && sent > 0) return {};
        return ec;
      }
      sent += written;
      advance(pieces, count, at, offset, written);
    }
    return {};
  }

  std::error_code shutdown_send() override {
    if (SSL_get_shutdown(ssl_.get()) & SSL_SENT_SHUTDOWN && !shutdown_pending_) return {};
    prepare_call();
    const int r = SSL_shutdown(ssl_.get());
    if (r >= 0) {
      shutdown_pending_ = false;
      return {};
    }
    shutdown_pending_ = true;
    return failure(SSL_get_error(ssl_.get(), r));
  }

 private:
  static constexpr std::size_t record_size = 16 * 1024;

  void prepare_call() {
    ERR_clear_error();
    io_.last_errno = 0;
  }

  /// A FIN without close_notify after the last whole record: Node's TLSSocket
  /// emits 'end' for it, and many servers close that way (Node's own, when it
  /// end()s before the handshake settles), so it is the end of the stream unless
  /// close_notify is required. A FIN inside a record stays a truncation: bytes the
  /// peer meant to send are certainly missing.
  bool fin_between_records(int kind) {
    if (require_close_notify_ || !io_.eof || SSL_has_pending(ssl_.get())) return false;
    if (kind != SSL_ERROR_SYSCALL && !queued_unexpected_eof()) return false;
    ERR_clear_error();
    return true;
  }

  std::error_code would_block(int kind) {
    if (kind == SSL_ERROR_WANT_READ) {
      blocked_on_ = readiness::readable;
      return asio::error::would_block;
    }
    if (kind == SSL_ERROR_WANT_WRITE) {
      blocked_on_ = readiness::writable;
      return asio::error::would_block;
    }
    return {};
  }

  /// An SSL_read/SSL_write/SSL_shutdown failure as an error code.
  std::error_code failure(int kind) {
    if (std::error_code ec = would_block(kind)) return ec;
    if (kind == SSL_ERROR_SYSCALL && io_.last_errno != 0 && io_.last_errno != EAGAIN) {
      ERR_clear_error();
      return {io_.last_errno, std::system_category()};
    }
    if (kind == SSL_ERROR_SYSCALL || queued_unexpected_eof()) {
      ERR_clear_error();
      return make_error_code(errc::tls_truncated);
    }
    last_reason_ = take_openssl_error();
    return make_error_code(errc::tls_protocol);
  }

  /// Copies up to one record's worth of bytes from the front of the gather list.
  std::size_t stage(const iovec* pieces, std::size_t count, std::size_t at, std::size_t offset) {
    if (!staging_) staging_ = std::make_unique<char[]>(record_size);
    std::size_t size = 0;
    while (at < count && size < record_size) {
      const std::size_t take = std::min(pieces[at].iov_len - offset, record_size - size);
      std::memcpy(staging_.get() + size, static_cast<const char*>(pieces[at].iov_base) + offset,
                  take);
      size += take;
      ++at;
      offset = 0;
    }
    return size;
  }

  static void advance(const iovec* pieces, std::size_t count, std::size_t& at, std::size_t& offset,
                      std::size_t n) {
    while (n > 0 && at < count) {
      const std::size_t take = std::min(n, pieces[at].iov_len - offset);
      offset += take;
      n -= take;
      if (offset == pieces[at].iov_len) {
        ++at;
        offset = 0;
      }
    }
  }

 public:
  /// OpenSSL's words for the last tls_protocol failure ("tlsv13 alert certificate required").
  const std::string& error_detail() const override { return last_reason_; }

 private:
  descriptor_io io_;
  ssl_ptr ssl_;
  TlsInfo info_;
  readiness blocked_on_ = readiness::readable;
  bool shutdown_pending_ = false;
  bool require_close_notify_ = false;
  std::unique_ptr<char[]> staging_;  // made by the first run of small pieces
  std::string last_reason_;
};

/// Fills in what the handshake negotiated, and whether the peer is authorized.
/// `expected_host` (a client's servername or host) is checked against the
/// certificate; empty (a server) checks the chain only.
inline void record_outcome(tls_layer& layer, std::string_view expected_host, bool server) {
  SSL* ssl = layer.ssl();
  TlsInfo& info = layer.mutable_info();
  info.protocol = SSL_get_version(ssl);
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl))
    info.cipher = SSL_CIPHER_get_name(cipher);
  const unsigned char* alpn = nullptr;
  unsigned alpn_size = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_size);
  info.alpn_protocol.assign(reinterpret_cast<const char*>(alpn), alpn_size);
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.servername = name;
  info.session_reused = SSL_session_reused(ssl) == 1;

  X509* peer = SSL_get1_peer_certificate(ssl);
  if (!peer) {
    info.authorized = false;
    info.authorization_error =
        server ? "peer did not return a certificate" : "the server sent no certificate";
    return;
  }
  info.peer_subject = one_line(X509_get_subject_name(peer));
  info.peer_issuer = one_line(X509_get_issuer_name(peer));
  const long verified = SSL_get_verify_result(ssl);
  if (verified != X509_V_OK) {
    info.authorization_error = X509_verify_cert_error_string(verified);
  } else if (!server && !info.session_reused && !expected_host.empty()) {
    info.authorization_error = identity_mismatch(peer, expected_host);
  }
  info.authorized = info.authorization_error.empty();
  X509_free(peer);
}

}  // namespace coronet::detail::tls
