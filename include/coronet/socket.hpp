// coronet/socket.hpp - a connected socket, TCP or Unix-domain: Node's net.Socket as
// co_await-able calls.
//
//     while (auto chunk = co_await socket.read())   // nullopt once the peer sent FIN
//       co_await socket.write(*chunk);              // waits while the kernel is full
//     co_await socket.end();                        // flush, then FIN; reading goes on
//
// A socket comes from coronet::connect() or from a server's accept(). It is a
// move-only handle; dropping it destroys the connection (Node's destroy()), so
// call end() first for a graceful close. Operations already waiting elsewhere keep
// what they need alive and finish with operation_aborted.
//
// Threading: a socket is used from the thread (or strand) that runs its executor.
// Construct the io_context with a concurrency hint of 1 when a single thread runs
// it (`asio::io_context io{1}`), as Asio itself advises; coronet then reads with
// one system call per chunk (see detail/reactor.hpp for why that needs the hint).
#pragma once

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "address.hpp"
#include "config.hpp"
#include "decoder.hpp"
#include "detail/socket_core.hpp"
#include "detail/zero_copy.hpp"
#include "error.hpp"
#include "tcp_info.hpp"

namespace coronet {

namespace detail {
/// A connection before it is a socket: what a TLS handshake runs on.
template <typename Executor>
struct connected_stream {
  asio::basic_stream_socket<local_protocol, Executor> stream;
  asio::ip::tcp::endpoint remote;  // unused for a Unix-domain connection
  bool unix_domain = false;
};
}  // namespace detail

/// A connected TCP or Unix-domain socket, Node's net.Socket, whose I/O runs on `Executor`
/// (Socket is the usual one, on asio::any_io_executor). A move-only handle:
/// dropping it destroys the connection as destroy() does, so end() first for a
/// graceful close.
template <typename Executor = asio::any_io_executor>
class basic_socket {
  using core_type = detail::socket_core<Executor>;

 public:
  /// The executor type its I/O runs on.
  using executor_type = Executor;
  /// The Asio socket type that native() returns: a generic stream socket, since
  /// the same type carries TCP and Unix-domain connections.
  using native_socket_type = asio::basic_stream_socket<asio::generic::stream_protocol, Executor>;

  /// A socket with no connection; every operation on it throws errc::not_connected.
  basic_socket() = default;
  /// Wraps a connection's internal state: how connect() and accept() make sockets.
  /// Not for use outside coronet.
  explicit basic_socket(std::shared_ptr<core_type> core) : core_(std::move(core)) {}

  /// Takes over the connection; the moved-from socket has none (its operations
  /// throw errc::not_connected).
  basic_socket(basic_socket&&) noexcept = default;
  /// Destroys this socket's connection, as destroy() does, then takes over
  /// `other`'s; `other` is left with none.
  basic_socket& operator=(basic_socket&& other) noexcept {
    if (this != &other) {
      close_quietly();
      core_ = std::move(other.core_);
    }
    return *this;
  }
  ~basic_socket() { close_quietly(); }

  // ------------------------------------------------------------------ reading

  /// The next chunk the peer sent, as a view into the socket's read buffer that stays
  /// valid until the next read on this socket (any read, even one that then reports
  /// FIN: copy what you keep beyond it); nullopt once the peer has sent FIN
  /// (and on every read after it).
  /// Completes as soon as any bytes arrive. Throws coronet::error: "read ECONNRESET"
  /// when the peer resets (the socket is then destroyed), errc::timeout when
  /// set_timeout()'s idle period passes (the socket stays open),
  /// errc::read_in_progress when another read is already waiting, errc::socket_destroyed
  /// after destroy(). destroy() while it waits: operation_aborted. Cancelled (a
  /// deadline through `||`, a cancellation slot), it throws operation_aborted and loses
  /// no bytes: what arrived meanwhile is kept for the next read. Every read form below
  /// cancels the same way.
  awaitable<std::optional<std::string_view>> read() { return core_type::read(core()); }

  ///@{
  /// Reads up to buffer.size() bytes into the caller's buffer, which must stay
  /// valid until completion; returns 0 at FIN. Completes, throws and cancels like
  /// read(), but never decodes.
  awaitable<std::size_t> read_some(asio::mutable_buffer buffer) {
    return core_type::read_some(core(), buffer);
  }
  awaitable<std::size_t> read_some(std::span<char> buffer) {
    return read_some(asio::buffer(buffer.data(), buffer.size()));
  }
  awaitable<std::size_t> read_some(std::span<std::byte> buffer) {
    return read_some(asio::buffer(buffer.data(), buffer.size()));
  }
  ///@}

  /// The next line, without its "\n" (or "\r\n"); nullopt at FIN between lines.
  /// Completes when a whole line has arrived. Throws errc::frame_too_long when
  /// `max` bytes arrive without a newline (never unbounded memory; the bytes stay
  /// buffered for read()), errc::truncated_frame when FIN cuts a line short (the
  /// message says how many bytes were lost), and what read() throws. The view lives
  /// until the next read on this socket. Works on raw bytes, ignoring set_encoding().
  awaitable<std::optional<std::string_view>> read_line(std::size_t max = 64 * 1024) {
    return core_type::read_until(core(), "\n", max, "read_line", true);
  }

  /// The next bytes up to and including `delimiter`; completes and throws like read_line().
  /// `delimiter` must stay valid until completion. An empty delimiter, or a `max`
  /// smaller than the delimiter, is errc::invalid_argument before any I/O.
  awaitable<std::optional<std::string_view>> read_until(std::string_view delimiter,
                                                        std::size_t max) {
    return core_type::read_until(core(), delimiter, max, "read_until");
  }

  /// Exactly n bytes; nullopt at FIN before the first of them; errc::truncated_frame
  /// when FIN comes in the middle. Completes and cancels like read().
  awaitable<std::optional<std::string_view>> read_exactly(std::size_t n) {
    return core_type::read_exactly(core(), n);
  }

  /// From now on read() yields text decoded from `enc` (Node's setEncoding()): a
  /// UTF-8 character split across TCP segments is never cut, and an incomplete one
  /// at FIN becomes a single U+FFFD. Framed reads and read_some() stay raw.
  basic_socket& set_encoding(encoding enc) {
    core()->set_encoding(enc);
    return *this;
  }
  /// The encoding set_encoding() chose; nullopt while read() yields raw bytes.
  std::optional<encoding> get_encoding() const { return core()->get_encoding(); }

  /// Stops reading from the kernel: a waiting read() waits until resume(), and TCP
  /// flow control pushes back on the peer. As in Node, a paused socket does not see FIN.
  void pause() { core()->pause(); }
  /// Reading from the kernel goes on; a read() waiting since pause() proceeds.
  void resume() { core()->resume(); }
  /// True after pause() (or ServerOptions::pause_on_connect) until resume().
  bool is_paused() const { return core()->is_paused(); }

  // ------------------------------------------------------------------ writing

  ///@{
  /// Sends `data`, completing once every byte is in the kernel's send buffer (it
  /// waits while the kernel is full: that is the backpressure). Writes from several
  /// coroutines never interleave; what is queued together leaves in one writev.
  /// `data` must stay valid until completion. Throws: "write after end" after end(),
  /// errc::ended_by_peer after the automatic end (allow_half_open false),
  /// errc::socket_destroyed after destroy(), "write EPIPE"/"write ECONNRESET" when the
  /// peer is gone. destroy() while it waits: operation_aborted. A cancelled write's
  /// bytes still go out, in order (nothing is half-sent): what the kernel had not taken
  /// is copied before it returns, so `data` is never read after a cancellation.
  awaitable<void> write(asio::const_buffer data) { return core_type::write(core(), data); }
  awaitable<void> write(std::string_view data) { return write(asio::buffer(data)); }
  awaitable<void> write(std::span<const std::byte> data) {
    return write(asio::buffer(data.data(), data.size()));
  }
  ///@}

  /// Sends several buffers as one write: the kernel gets them in one sendmsg() when
  /// it has room (Asio's buffer sequences, Node's writev()). Completes, throws and
  /// cancels like write(data); the buffers and the array naming them must stay
  /// valid until completion:
  ///
  ///     const asio::const_buffer reply[] = {asio::buffer(head), asio::buffer(body)};
  ///     co_await socket.write(reply);
  ///
  /// (A braced list written inside the co_await, `write({head, body})`, is what
  /// g++ 12 cannot compile in a coroutine, so there is no overload for one.)
  awaitable<void> write(std::span<const asio::const_buffer> buffers) {
    return core_type::write(core(), {}, buffers);
  }

  /// Writes text given in `enc` (Node's write(string, encoding)): "hex" and "base64"
  /// text is decoded to bytes, "latin1" text to one byte per character. `text`
  /// must stay valid until completion; completes and throws like write(data).
  awaitable<void> write(std::string_view text, encoding enc) {
    return write_encoded(core(), text, enc);
  }

  ///@{
  /// Node's write(): queues a copy without waiting and returns false once
  /// writable_length() reaches high_water_mark(); co_await drain() then waits for
  /// the queue to empty. Throws like write() for a socket that cannot write.
  bool write_nowait(asio::const_buffer data) {
    return core()->write_nowait(std::span<const asio::const_buffer>(&data, 1));
  }
  bool write_nowait(std::string_view data) { return write_nowait(asio::buffer(data)); }
  bool write_nowait(std::span<const std::byte> data) {
    return write_nowait(asio::buffer(data.data(), data.size()));
  }
  bool write_nowait(std::span<const asio::const_buffer> buffers) {
    return core()->write_nowait(buffers);
  }
  ///@}

  /// Node's cork(): from now on writes are held in memory instead of sent, until
  /// as many uncork() calls as cork() calls. While corked, write() copies its
  /// bytes and completes at once, and write_nowait() never sends. Use it to turn
  /// the replies to a batch of pipelined requests into one system call.
  void cork() { core()->cork(); }
  /// Node's uncork(): the last one sends what cork() held, in one gather write when
  /// the kernel has room (the rest follows in the background, in order). end()
  /// uncorks too.
  void uncork() { core()->uncork(); }
  /// How many cork() calls are still to be matched (Node's writableCorked).
  int writable_corked() const { return core_ ? core_->corked() : 0; }

  ///@{
  /// Sends `length` bytes of a file from `offset` (default: to its end) with
  /// sendfile(2): the kernel copies them from the page cache, the program never
  /// sees them. Bytes written before it leave first; once the file moves, writes
  /// made meanwhile queue behind it, so it is never cut into (one made while it
  /// still waits for earlier bytes to leave may go before it). Completes when its last byte
  /// is in the kernel's send buffer, with the count sent. Where sendfile cannot be
  /// used (a transport that transforms bytes, such as TLS) the file is read and
  /// written in 64 KiB pieces; a pipe, socket or device descriptor is read as it
  /// comes, until its EOF or `length` (its O_NONBLOCK flag is restored afterwards).
  /// The descriptor form reads at `offset` without moving the descriptor's position
  /// and leaves it open; the path form opens the file read-only for the call.
  /// Throws, before sending anything: "send_file ENOENT /path" (or EACCES, EISDIR,
  /// "EBADF fd 7"), errc::out_of_range when offset or offset + length is past the
  /// file's end, errc::invalid_argument for an offset on a descriptor that cannot
  /// seek or on a corked socket, what write() throws when the socket cannot write.
  /// Part-way: "send_file EPIPE" when the peer is gone (the socket is destroyed);
  /// errc::truncated_frame when the file shrank meanwhile; errc::timeout when
  /// set_timeout()'s period passes while the peer takes nothing; operation_aborted
  /// when cancelled. Then the bytes sent stay sent, the rest of the range is not
  /// sent, the socket stays open, and the message says how far it got
  /// ("send_file cancelled after 1048576 bytes of /srv/big.iso were sent"): a peer
  /// that expects the whole range cannot tell, so end or reset the socket then.
  awaitable<std::uint64_t> send_file(std::string_view path, std::uint64_t offset = 0,
                                     std::optional<std::uint64_t> length = std::nullopt) {
    return detail::send_file_at(core(), std::string(path), offset, length);
  }
  awaitable<std::uint64_t> send_file(int fd, std::uint64_t offset = 0,
                                     std::optional<std::uint64_t> length = std::nullopt) {
    return detail::send_file(core(), fd, std::string(), offset, length);
  }
  ///@}

  /// Completes when nothing is queued any more (Node's 'drain'). Throws the
  /// socket's failure, or operation_aborted on destroy().
  awaitable<void> drain() { return core_type::drain(core()); }

  /// Half-close: sends what is queued, then FIN. Reading still works afterwards.
  /// Completes when the FIN is handed to the kernel. A second end() waits for the
  /// same FIN. Throws errc::socket_destroyed after destroy(), or the write error
  /// that stopped the queue.
  awaitable<void> end() { return core_type::end(core()); }
  /// `data`, then FIN, handed over together: completes and throws like end(), and
  /// a cancelled end(data) still sends both. "write after end" if the socket has
  /// already ended. What the kernel does not take at once is copied, so `data` need
  /// only stay valid until the co_await begins.
  awaitable<void> end(std::string_view data) { return core_type::end(core(), asio::buffer(data)); }

  /// Closes at once. Waiting operations finish with operation_aborted; bytes still
  /// queued are dropped. Idempotent.
  void destroy() {
    if (core_) core_->destroy();
  }
  /// Closes with RST instead of FIN; the peer sees ECONNRESET (Node's resetAndDestroy).
  /// A Unix-domain socket has no RST: errc::invalid_argument, as Node's
  /// ERR_INVALID_HANDLE_TYPE, and the socket stays as it was.
  void reset_and_destroy() {
    if (core_ && core_->unix_domain()) {
      throw error(errc::invalid_argument,
                  ": reset_and_destroy() needs a TCP socket (a Unix-domain socket has no RST)");
    }
    if (core_) core_->reset_and_destroy();
  }

  // ------------------------------------------------------------ without throwing
  //
  // Each awaitable above has a form that reports its failure in `failed` instead of
  // throwing (Asio's redirect_error shape): it completes when the throwing form
  // would, and on failure returns what the throwing form returns at FIN (nullopt,
  // 0, or nothing) with `failed` holding the code and the same message. C++ allows
  // no co_await in a catch block, so this is the form for "answer the peer, then
  // close" and for loops that must go on past one failed socket. `failed` must stay
  // valid until completion; it is left alone on success, so clear() it to reuse it.

  ///@{
  /// read(), read_some(), read_line(), read_until() and read_exactly(), reporting
  /// failure in `failed`.
  awaitable<std::optional<std::string_view>> read(failure& failed) {
    return core_type::read(core(), &failed);
  }
  awaitable<std::size_t> read_some(asio::mutable_buffer buffer, failure& failed) {
    return core_type::read_some(core(), buffer, &failed);
  }
  awaitable<std::optional<std::string_view>> read_line(std::size_t max, failure& failed) {
    return core_type::read_until(core(), "\n", max, "read_line", true, &failed);
  }
  awaitable<std::optional<std::string_view>> read_until(std::string_view delimiter, std::size_t max,
                                                        failure& failed) {
    return core_type::read_until(core(), delimiter, max, "read_until", false, &failed);
  }
  awaitable<std::optional<std::string_view>> read_exactly(std::size_t n, failure& failed) {
    return core_type::read_exactly(core(), n, &failed);
  }
  ///@}

  ///@{
  /// write(), drain(), end() and end(data), reporting failure in `failed`.
  awaitable<void> write(std::string_view data, failure& failed) {
    return core_type::write(core(), asio::buffer(data), {}, &failed);
  }
  awaitable<void> write(std::span<const asio::const_buffer> buffers, failure& failed) {
    return core_type::write(core(), {}, buffers, &failed);
  }
  awaitable<void> drain(failure& failed) { return core_type::drain(core(), &failed); }
  awaitable<void> end(failure& failed) { return core_type::end(core(), {}, &failed); }
  awaitable<void> end(std::string_view data, failure& failed) {
    return core_type::end(core(), asio::buffer(data), &failed);
  }
  ///@}

  /// write_nowait() reporting failure in `failed` (and returning false) instead of
  /// throwing: a fan-out loop needs no try around each subscriber.
  bool write_nowait(std::string_view data, failure& failed) noexcept {
    try {
      return write_nowait(data);
    } catch (const error& e) {
      failed = failure(e);
      return false;
    }
  }

  // ------------------------------------------------------------------ options

  /// Node's setTimeout(): after `idle` with no bytes moving either way, a waiting
  /// read() throws errc::timeout (or the next read() that would wait does). The
  /// socket stays open; it fires once per idle period and I/O re-arms it. 0 disables.
  basic_socket& set_timeout(std::chrono::milliseconds idle) {
    if (idle.count() < 0) throw error(errc::invalid_argument, ": timeout must not be negative");
    core()->set_timeout(idle);
    return *this;
  }
  /// The idle period set_timeout() set (or ConnectOptions::timeout); 0 when disabled.
  std::chrono::milliseconds timeout() const { return core()->timeout(); }

  /// TCP_NODELAY: small writes leave at once instead of waiting to be coalesced.
  /// This and the keep-alive and user-timeout setters do nothing on a Unix-domain
  /// socket (Node's on a pipe neither); out-of-range values are refused all the same.
  basic_socket& set_no_delay(bool enable = true) {
    set_int_option(IPPROTO_TCP, TCP_NODELAY, enable ? 1 : 0);
    return *this;
  }

  /// The longest keep-alive delay and probe interval Linux takes (MAX_TCP_KEEPIDLE,
  /// MAX_TCP_KEEPINTVL).
  static constexpr std::chrono::seconds max_keep_alive_delay{32767};
  /// The most keep-alive probes Linux sends before giving up (MAX_TCP_KEEPCNT).
  static constexpr int max_keep_alive_probes = 127;
  /// The longest TCP_USER_TIMEOUT: the kernel holds it in an int of milliseconds.
  static constexpr std::chrono::milliseconds max_user_timeout{2147483647};

  /// SO_KEEPALIVE with Node's probe settings: the first probe after `initial_delay`
  /// (whole seconds; 0 keeps the system's), then one per second, 10 before giving up.
  /// A delay outside 0..max_keep_alive_delay is errc::out_of_range before any system
  /// call ("The value of "initial_delay" is out of range. It must be >= 0 && <= 32767
  /// (seconds). Received 40000"): the kernel would refuse it, or keep it truncated.
  basic_socket& set_keep_alive(bool enable, std::chrono::seconds initial_delay = {}) {
    return set_keep_alive(enable, initial_delay, std::chrono::seconds(1), 10);
  }
  /// The same with the probe interval and count that Node users asked for for years:
  /// `interval` 1..max_keep_alive_delay, `count` 1..max_keep_alive_probes, else
  /// errc::out_of_range, checked before anything is set.
  basic_socket& set_keep_alive(bool enable, std::chrono::seconds initial_delay,
                               std::chrono::seconds interval, int count) {
    const auto longest = max_keep_alive_delay.count();
    const auto delay =
        detail::checked_range("initial_delay", initial_delay.count(), 0, longest, "seconds");
    const auto every = detail::checked_range("interval", interval.count(), 1, longest, "seconds");
    detail::checked_range("count", count, 1, max_keep_alive_probes, "probes");
    set_int_option(SOL_SOCKET, SO_KEEPALIVE, enable ? 1 : 0);
    if (!enable) return *this;
    if (delay > 0) set_int_option(IPPROTO_TCP, TCP_KEEPIDLE, static_cast<int>(delay));
    set_int_option(IPPROTO_TCP, TCP_KEEPINTVL, static_cast<int>(every));
    set_int_option(IPPROTO_TCP, TCP_KEEPCNT, count);
    return *this;
  }

  /// TCP_USER_TIMEOUT: how long sent data may stay unacknowledged before the kernel
  /// drops the connection (the next operation then fails with ETIMEDOUT). 0 = system
  /// default. Outside 0..max_user_timeout it is errc::out_of_range before any system
  /// call, never a truncated value.
  basic_socket& set_user_timeout(std::chrono::milliseconds limit) {
    const auto ms = detail::checked_range("user_timeout", limit.count(), 0,
                                          max_user_timeout.count(), "milliseconds");
    set_int_option(IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(ms));
    return *this;
  }

  /// Bytes queued beyond which write_nowait() returns false (default 64 KiB, as Node 22).
  std::size_t high_water_mark() const { return core()->high_water_mark(); }
  /// Sets high_water_mark() for the write_nowait() calls that follow.
  basic_socket& set_high_water_mark(std::size_t bytes) {
    core()->set_high_water_mark(bytes);
    return *this;
  }

  // ------------------------------------------------------------------ state

  /// "open", "readOnly" (we ended), "writeOnly" (the peer ended) or "closed".
  std::string_view ready_state() const { return core_ ? core_->ready_state() : "closed"; }
  /// True once the connection is over: destroyed, failed, or ended both ways.
  bool destroyed() const { return !core_ || core_->destroyed(); }
  /// Whether it stays writable after the peer's FIN (ServerOptions::allow_half_open).
  bool allow_half_open() const { return core()->allow_half_open(); }

  ///@{
  /// Bytes received from, and handed to the kernel for, this connection.
  std::uint64_t bytes_read() const { return core_ ? core_->bytes_read() : 0; }
  std::uint64_t bytes_written() const { return core_ ? core_->bytes_written() : 0; }
  ///@}
  /// Bytes received and not yet handed out by a read (Node's readableLength): a
  /// framed server that answers a batch of pipelined requests can uncork() when
  /// this is 0, so the batch's replies leave together.
  std::size_t readable_length() const { return core_ ? core_->readable_length() : 0; }
  /// Bytes queued and not yet taken by the kernel (Node's writableLength).
  std::size_t writable_length() const { return core_ ? core_->writable_length() : 0; }

  /// The local end, as Node's socket.address(); empty fields when unknown. On a
  /// Unix-domain socket: {path, "Unix", 0} for the server's end, {} for the client's.
  Address address() const { return core_ ? core_->local_address() : Address{}; }
  /// True for a Unix-domain connection (listen()/connect() with a path).
  bool is_unix_domain() const { return core_ && core_->unix_domain(); }
  /// The connection's health from TCP_INFO (round-trip time, congestion window,
  /// retransmits, bytes in flight, delivery rate, state): one system call, no
  /// allocation, so it may be asked per request. nullopt on a Unix-domain socket and
  /// once the connection is closed (destroyed, failed, or ended both ways).
  std::optional<TcpInfo> info() const {
    if (!core_ || core_->destroyed() || core_->unix_domain()) return std::nullopt;
    return read_tcp_info(core_->native().native_handle());
  }
  ///@{
  /// One field of address() (Node's localAddress, localFamily, localPort).
  std::string local_address() const { return address().address; }
  std::string local_family() const { return address().family; }
  std::uint16_t local_port() const { return address().port; }
  ///@}

  /// The peer, known from connect or accept, so it still answers after close.
  /// {} on a Unix-domain socket (Node's remoteAddress is undefined there).
  Address remote() const { return core_ ? core_->remote_address() : Address{}; }
  ///@{
  /// One field of remote() (Node's remoteAddress, remoteFamily, remotePort).
  std::string remote_address() const { return remote().address; }
  std::string remote_family() const { return remote().family; }
  std::uint16_t remote_port() const { return remote().port; }
  ///@}

  /// The executor its I/O runs on.
  executor_type get_executor() const { return core()->get_executor(); }
  /// The Asio socket underneath, for options coronet does not wrap.
  native_socket_type& native() { return core()->native(); }

  /// What TLS negotiated (protocol, cipher, ALPN, the peer's certificate and
  /// whether it was authorized) for a socket from coronet/tls.hpp; nullptr for a
  /// plain TCP or Unix-domain socket.
  const TlsInfo* tls() const { return core()->tls(); }

 private:
  /// How pipe() (pipe.hpp) reaches both sockets' cores.
  friend const std::shared_ptr<core_type>& zero_copy_core(const basic_socket& socket) {
    return socket.core();
  }

  const std::shared_ptr<core_type>& core() const {
    if (!core_) {
      throw error(make_error_code(errc::not_connected),
                  "the socket is not connected (default-constructed or moved from)");
    }
    return core_;
  }

  void close_quietly() noexcept {
    if (core_) core_->destroy();
  }

  void set_int_option(int level, int name, int value) {
    auto& c = core();
    if (c->destroyed()) return;  // as in Node, setters on a closed socket are harmless
    // Node's setNoDelay()/setKeepAlive() do nothing on a pipe: there is no TCP below.
    if (c->unix_domain() && (level == IPPROTO_TCP || name == SO_KEEPALIVE)) return;
    if (::setsockopt(c->native().native_handle(), level, name, &value, sizeof value) != 0) {
      throw detail::syscall_error("setsockopt", {errno, std::system_category()});
    }
  }

  static awaitable<void> write_encoded(std::shared_ptr<core_type> core, std::string_view text,
                                       encoding enc) {
    if (enc == encoding::utf8) co_return co_await core_type::write(core, asio::buffer(text));
    std::string bytes;
    coronet::encode(text, enc, bytes);
    co_await core_type::write(core, asio::buffer(bytes));
  }

  std::shared_ptr<core_type> core_;
};

/// A socket on asio::any_io_executor: what connect() and Server hand out.
using Socket = basic_socket<>;

}  // namespace coronet

#include "connect.hpp"
