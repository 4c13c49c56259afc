// The exchange the consumer tests check, shared by their server and client.
//
// A client connects and sends "hello NAME VERSION\n", then a payload, then FIN.
// The server echoes the payload back as it arrives and, at the client's FIN, adds
// "NAME BYTES CHECKSUM\n" and its own FIN. Each side checks everything it gets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace exchange {

/// The payload a client named `name` sends: 256 KiB, more than one kernel buffer,
/// so both directions see backpressure; its bytes depend on the name.
inline std::string payload(std::string_view name) {
  std::string bytes(256 * 1024, '\0');
  std::uint32_t state = 2166136261u;
  for (char c : name) state = (state ^ static_cast<unsigned char>(c)) * 16777619u;
  for (char& b : bytes) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<char>(state >> 24);
  }
  return bytes;
}

/// FNV-1a, 64 bits, as 16 hex digits.
class checksum {
 public:
  void add(std::string_view bytes) {
    for (char c : bytes) hash_ = (hash_ ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash_));
    return text;
  }

 private:
  std::uint64_t hash_ = 14695981039346656037ull;
};

/// The server's last line for a client.
inline std::string summary(std::string_view name, std::size_t bytes, const checksum& sum) {
  return std::string(name) + ' ' + std::to_string(bytes) + ' ' + sum.hex();
}

}  // namespace exchange
