// coronet/tcp_info.hpp - a TCP connection's health, as the kernel measures it.
//
//     if (auto info = socket.info())            // nullopt on a Unix-domain socket
//       log(info->rtt, info->retransmits, info->delivery_rate);
//
// One getsockopt(TCP_INFO) into a stack buffer: no allocation, cheap enough to call
// per request (docs/guide.md gives the cost measured here).
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace coronet {

/// The TCP states of RFC 793 as Linux numbers them (tcp_states.h).
enum class TcpState : std::uint8_t {
  established = 1,
  syn_sent,
  syn_recv,
  fin_wait1,
  fin_wait2,
  time_wait,
  close,
  close_wait,
  last_ack,
  listen,
  closing,
  new_syn_recv,
};

/// The state's name as netstat and ss print it: "ESTABLISHED", "CLOSE_WAIT", ...
constexpr std::string_view to_string(TcpState state) {
  constexpr std::string_view names[] = {
      "UNKNOWN", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",    "TIME_WAIT",
      "CLOSE",   "CLOSE_WAIT",  "LAST_ACK", "LISTEN",   "CLOSING",   "NEW_SYN_RECV",
  };
  const auto i = static_cast<std::size_t>(state);
  return i < std::size(names) ? names[i] : names[0];
}

/// What TCP_INFO says about one connection, in C++ types. Counters the running
/// kernel does not report (older than the field) read 0.
struct TcpInfo {
  TcpState state{};                        ///< to_string(state) gives "ESTABLISHED" and the like
  std::chrono::microseconds rtt{};         ///< smoothed round-trip time
  std::chrono::microseconds rtt_var{};     ///< its mean deviation
  std::chrono::microseconds min_rtt{};     ///< the lowest seen recently (the path's floor)
  std::chrono::microseconds rto{};         ///< the retransmission timeout in force
  std::uint32_t congestion_window = 0;     ///< segments the sender may have in flight
  std::uint32_t slow_start_threshold = 0;  ///< segments; a huge value until the first loss
  std::uint32_t mss = 0;                   ///< bytes per segment we send
  std::uint32_t retransmits = 0;           ///< segments retransmitted over the connection's life
  std::uint32_t unacked = 0;               ///< segments sent and not acknowledged (in flight)
  std::uint32_t lost = 0;                  ///< segments the sender believes lost
  std::uint32_t not_sent_bytes = 0;        ///< bytes in the send buffer not yet sent
  std::uint32_t peer_window = 0;           ///< the peer's advertised receive window, bytes
  std::uint64_t bytes_sent = 0;            ///< data bytes sent, retransmissions included
  /// Bytes the peer acknowledged (the kernel counts SYN and FIN as one byte each).
  std::uint64_t bytes_acked = 0;
  std::uint64_t bytes_received = 0;       ///< data bytes received in order
  std::uint64_t bytes_retransmitted = 0;  ///< data bytes sent again after a loss
  std::uint64_t delivery_rate = 0;  ///< bytes/s delivered, as the last acknowledgements measured it
  /// True when the application, not the path, set the pace of that measurement.
  bool delivery_rate_app_limited = false;
  std::uint64_t pacing_rate = 0;                   ///< bytes/s the kernel paces sends at
  std::chrono::milliseconds since_last_send{};     ///< since data was last sent
  std::chrono::milliseconds since_last_receive{};  ///< since data last arrived
};

namespace detail {

/// The kernel's struct tcp_info (linux/tcp.h). glibc's <netinet/tcp.h> stops at
/// tcpi_total_retrans and clashes with <linux/tcp.h>, so the fields the kernel has
/// added since (it only ever appends) follow glibc's struct here.
struct kernel_tcp_info {
  ::tcp_info base;
  std::uint64_t pacing_rate;
  std::uint64_t max_pacing_rate;
  std::uint64_t bytes_acked;
  std::uint64_t bytes_received;
  std::uint32_t segs_out;
  std::uint32_t segs_in;
  std::uint32_t notsent_bytes;
  std::uint32_t min_rtt;
  std::uint32_t data_segs_in;
  std::uint32_t data_segs_out;
  std::uint64_t delivery_rate;
  std::uint64_t busy_time;
  std::uint64_t rwnd_limited;
  std::uint64_t sndbuf_limited;
  std::uint32_t delivered;
  std::uint32_t delivered_ce;
  std::uint64_t bytes_sent;
  std::uint64_t bytes_retrans;
  std::uint32_t dsack_dups;
  std::uint32_t reord_seen;
  std::uint32_t rcv_ooopack;
  std::uint32_t snd_wnd;
};
// Linux's layout (offsetof in linux/tcp.h, kernel 6.x): a mismatch would read garbage.
static_assert(sizeof(::tcp_info) == 104);
static_assert(offsetof(kernel_tcp_info, pacing_rate) == 104);
static_assert(offsetof(kernel_tcp_info, delivery_rate) == 160);
static_assert(offsetof(kernel_tcp_info, snd_wnd) == 228);

/// The byte after tcpi_snd_wscale: bit 0 is tcpi_delivery_rate_app_limited.
inline bool app_limited_bit(const ::tcp_info& base) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(&base);
  return (bytes[offsetof(::tcp_info, tcpi_options) + 2] & 1) != 0;
}

inline TcpInfo to_tcp_info(const kernel_tcp_info& k) {
  using std::chrono::microseconds;
  using std::chrono::milliseconds;
  const ::tcp_info& b = k.base;
  TcpInfo info;
  info.state = static_cast<TcpState>(b.tcpi_state);
  info.rtt = microseconds(b.tcpi_rtt);
  info.rtt_var = microseconds(b.tcpi_rttvar);
  info.min_rtt = microseconds(k.min_rtt);
  info.rto = microseconds(b.tcpi_rto);
  info.congestion_window = b.tcpi_snd_cwnd;
  info.slow_start_threshold = b.tcpi_snd_ssthresh;
  info.mss = b.tcpi_snd_mss;
  info.retransmits = b.tcpi_total_retrans;
  info.unacked = b.tcpi_unacked;
  info.lost = b.tcpi_lost;
  info.not_sent_bytes = k.notsent_bytes;
  info.peer_window = k.snd_wnd;
  info.bytes_sent = k.bytes_sent;
  info.bytes_acked = k.bytes_acked;
  info.bytes_received = k.bytes_received;
  info.bytes_retransmitted = k.bytes_retrans;
  info.delivery_rate = k.delivery_rate;
  info.delivery_rate_app_limited = app_limited_bit(b);
  info.pacing_rate = k.pacing_rate;
  info.since_last_send = milliseconds(b.tcpi_last_data_sent);
  info.since_last_receive = milliseconds(b.tcpi_last_data_recv);
  return info;
}

}  // namespace detail

/// TCP_INFO for the TCP socket `descriptor`: one system call, no allocation.
/// nullopt when it is not a TCP socket (a Unix-domain one: EOPNOTSUPP) or not open
/// (EBADF): health is a question a closed or non-TCP socket has no answer to, so it
/// is not an error.
inline std::optional<TcpInfo> read_tcp_info(int descriptor) noexcept {
  detail::kernel_tcp_info k{};
  socklen_t length = sizeof k;
  if (descriptor < 0 || ::getsockopt(descriptor, IPPROTO_TCP, TCP_INFO, &k, &length) != 0) {
    return std::nullopt;
  }
  return detail::to_tcp_info(k);
}

}  // namespace coronet
