// coronet/detail/unix_path.hpp - Node's `path` option: Unix-domain socket names.
//
// A path names a socket file ("/run/app.sock"). On Linux a name may instead live
// in the abstract namespace, which has no file: Node writes it with a leading
// "\0"; coronet takes that and also a leading '@' (how `ss` prints it, and easier
// to write in C++, where "\0name" is an empty C string). A file whose name really
// starts with '@' is reached as "./@name".
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "../config.hpp"
#include "../error.hpp"

namespace coronet::detail {

using local_protocol = asio::generic::stream_protocol;

/// The longest name sun_path holds: 108 bytes with the file name's terminating
/// NUL, or after the abstract marker. Node (libuv) truncates a longer path and
/// binds somewhere else; coronet refuses it, naming the limit.
inline constexpr std::size_t max_unix_path = sizeof(sockaddr_un::sun_path) - 1;

inline bool is_abstract(std::string_view path) {
  return !path.empty() && (path.front() == '\0' || path.front() == '@');
}

/// The endpoint a path names. Throws coronet::error before any system call for an
/// empty path, a NUL inside a file name, or a name longer than max_unix_path.
inline local_protocol::endpoint unix_endpoint(std::string_view path, const char* op) {
  if (path.empty()) throw error(errc::invalid_argument, std::string(": ") + op + " needs a path");
  const bool abstract = is_abstract(path);
  const std::string_view name = abstract ? path.substr(1) : path;
  if (name.size() > max_unix_path) {
    throw error(make_error_code(std::errc::filename_too_long),
                std::string(op) + " ENAMETOOLONG: the Unix socket path is " +
                    std::to_string(name.size()) + " bytes long; Linux allows at most " +
                    std::to_string(max_unix_path) + " (" + std::string(path.substr(0, 40)) +
                    "...)");
  }
  if (!abstract && name.find('\0') != std::string_view::npos) {
    throw error(errc::invalid_argument, std::string(": ") + op + " path contains a NUL byte");
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  char* at = address.sun_path + (abstract ? 1 : 0);  // abstract: sun_path[0] stays '\0'
  std::memcpy(at, name.data(), name.size());
  // A file name is counted with its NUL, an abstract one exactly (its bytes are the name).
  const std::size_t length =
      offsetof(sockaddr_un, sun_path) + (abstract ? 1 : 0) + name.size() + (abstract ? 0 : 1);
  return local_protocol::endpoint(&address, length);
}

/// The path an endpoint names, abstract names with '@'; empty when unnamed (a
/// client's end of a connection).
inline std::string unix_path(const local_protocol::endpoint& endpoint) {
  const auto* address = reinterpret_cast<const sockaddr_un*>(endpoint.data());
  const std::size_t header = offsetof(sockaddr_un, sun_path);
  if (endpoint.size() <= header) return {};
  std::size_t length = endpoint.size() - header;
  if (address->sun_path[0] == '\0') return "@" + std::string(address->sun_path + 1, length - 1);
  return std::string(address->sun_path, strnlen(address->sun_path, length));
}

}  // namespace coronet::detail
