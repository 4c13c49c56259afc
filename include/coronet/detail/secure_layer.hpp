// coronet/detail/secure_layer.hpp - what socket_core asks of a byte mover other
// than the descriptor itself (TLS, in coronet/tls.hpp).
//
// socket_core keeps deciding every "may I read / may I write?"; a layer only moves
// bytes. A plain TCP or Unix socket has no layer (socket_core's pointer is null)
// and pays one predictable branch per system call. This header names no OpenSSL
// type, so socket.hpp can hand out what a TLS socket negotiated without making
// every program that includes coronet depend on OpenSSL.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace coronet {

/// What a TLS socket negotiated (Node's tlsSocket.getProtocol(), alpnProtocol,
/// getCipher(), getPeerCertificate(), authorized, authorizationError, ...).
/// Socket::tls() hands it out; a plain socket has none.
struct TlsInfo {
  std::string protocol;       ///< "TLSv1.3", "TLSv1.2" (Node's getProtocol())
  std::string cipher;         ///< OpenSSL's name: "TLS_AES_256_GCM_SHA384"
  std::string alpn_protocol;  ///< what ALPN chose ("h2"); empty when none (Node's false)
  std::string servername;     ///< the SNI name: sent (client) or received (server); may be empty
  /// The peer certificate's subject, one line, RFC 2253 ("CN=localhost,O=coronet");
  /// empty when the peer sent none.
  std::string peer_subject;
  std::string peer_issuer;  ///< its issuer, the same way
  bool authorized =
      false;  ///< the peer's certificate verified (and, on a client, its name matched)
  /// Why not, in Node's words ("unable to verify the first certificate",
  /// "Hostname/IP does not match certificate's altnames: ..."); empty when authorized.
  std::string authorization_error;
  bool session_reused = false;  ///< the handshake resumed an earlier session
  /// Client only: the newest session the server offered, DER-encoded (Node's
  /// tlsSocket.getSession()); pass it as the next connect()'s `session` to resume.
  /// A TLS 1.3 server sends it after the handshake, so it appears once something
  /// has been read; empty until then.
  std::string session;
};

namespace detail {

/// The readiness a layer's would_block waits for.
enum class readiness { readable, writable };

/// A byte mover beneath socket_core. Every call is non-blocking: would_block
/// (asio::error::would_block) means "nothing moved; wait for blocked_on(), then
/// call again with the same bytes".
class secure_layer {
 public:
  virtual ~secure_layer() = default;
  secure_layer() = default;
  secure_layer(const secure_layer&) = delete;
  secure_layer& operator=(const secure_layer&) = delete;

  /// Up to `size` bytes of the peer's data into `data`. `got` 0 with no error is the
  /// peer's orderly end of stream. Bytes the layer already holds are returned before
  /// anything is read from the descriptor: the descriptor's readiness says nothing
  /// about them, so a caller keeps calling until would_block before it waits.
  virtual std::error_code receive(char* data, std::size_t size, std::size_t& got) = 0;

  /// Takes as much of the gather list as the descriptor accepts now. After
  /// would_block the next call must start with the same bytes (the write queue's
  /// front does not move until bytes are reported sent, so it does).
  virtual std::error_code send(const iovec* pieces, std::size_t count, std::size_t& sent) = 0;

  /// Ends our side of the secure stream (TLS close_notify) before the TCP FIN.
  virtual std::error_code shutdown_send() = 0;

  /// What the last would_block waits for (TLS may need to write in order to read).
  virtual readiness blocked_on() const = 0;

  /// More about the last failure, in the layer's words (OpenSSL's "tlsv13 alert
  /// certificate required"); empty when there is nothing to add.
  virtual const std::string& error_detail() const = 0;

  /// What was negotiated.
  virtual const TlsInfo& info() const = 0;
};

}  // namespace detail
}  // namespace coronet
