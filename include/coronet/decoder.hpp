// coronet/decoder.hpp - bytes to text and back, the way Node's socket.setEncoding()
// and Buffer.from(string, encoding) do it.
//
// A TCP read can end anywhere: in the middle of a UTF-8 character or of a base64
// group. Decoder (Node's StringDecoder) holds such a tail back until the next write()
// completes it, so the text never depends on where the stream was split, and end()
// flushes it at EOF the way Node does. Decoded text is always UTF-8.
//
//     coronet::Decoder decoder(coronet::encoding::utf8);
//     std::string text;
//     decoder.write(chunk, text);   // for every chunk read
//     decoder.end(text);            // at EOF
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace coronet {

/// The encodings of set_encoding(), write(text, enc), Decoder and encode(), named as
/// in Node (see parse_encoding()). Decoding turns bytes into UTF-8 text: as is
/// (utf8), one character per byte (latin1), each byte's low 7 bits (ascii), two
/// hex digits per byte (hex) or base64 text (base64). Encoding does the reverse,
/// except that ascii encodes as latin1 does (as in Node).
enum class encoding { utf8, latin1, ascii, hex, base64 };

/// Node's canonical name for the encoding.
constexpr std::string_view to_string(encoding enc) noexcept {
  switch (enc) {
    case encoding::utf8: return "utf8";
    case encoding::latin1: return "latin1";
    case encoding::ascii: return "ascii";
    case encoding::hex: return "hex";
    case encoding::base64: return "base64";
  }
  return {};
}

namespace detail {

/// `name` equals `lower` ignoring ASCII case (locale-free, unlike std::tolower).
constexpr bool equals_lowercase(std::string_view name, std::string_view lower) noexcept {
  if (name.size() != lower.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace detail

/// The encoding Node accepts under `name` ("utf-8" and "binary" are aliases Node
/// keeps); nullopt for one coronet does not support (ucs2, base64url, ...).
constexpr std::optional<encoding> parse_encoding(std::string_view name) noexcept {
  struct alias {
    std::string_view name;
    encoding enc;
  };
  constexpr alias aliases[] = {
      {"utf8", encoding::utf8},     {"utf-8", encoding::utf8},  {"latin1", encoding::latin1},
      {"binary", encoding::latin1}, {"ascii", encoding::ascii}, {"hex", encoding::hex},
      {"base64", encoding::base64},
  };
  for (const alias& a : aliases) {
    if (detail::equals_lowercase(name, a.name)) return a.enc;
  }
  return std::nullopt;
}

namespace detail::utf8 {

inline constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD

/// The length a lead byte announces; 0 for bytes no character starts with:
/// continuations, and C0, C1, F5..FF, which could only begin overlong forms or
/// values past U+10FFFF.
inline std::size_t sequence_length(unsigned char lead) noexcept {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return lead < 0xF5 ? 4 : 0;
}

/// Whether `b` may stand at position `pos` (1..3) after `lead`. Some leads narrow
/// the second byte's range to rule out overlongs, surrogates and values past
/// U+10FFFF; a byte rejected here is where WHATWG's "maximal subpart" ends.
inline bool continues(unsigned char lead, std::size_t pos, unsigned char b) noexcept {
  unsigned char low = 0x80, high = 0xBF;
  if (pos == 1) {
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  }
  return b >= low && b <= high;
}

enum class scan { complete, incomplete, invalid };

/// Classifies the sequence that starts [p, p + n), n > 0. `len` becomes the
/// character's length (complete), the bytes there are, all a valid prefix
/// (incomplete), or how many bytes one U+FFFD stands for (invalid).
inline scan classify(const unsigned char* p, std::size_t n, std::size_t& len) noexcept {
  const std::size_t need = sequence_length(p[0]);
  len = 1;
  if (need == 0) return scan::invalid;
  while (len < need && len < n && continues(p[0], len, p[len])) ++len;
  if (len == need) return scan::complete;
  return len == n ? scan::incomplete : scan::invalid;
}

/// The code point of a complete sequence.
inline char32_t code_point(const unsigned char* p, std::size_t len) noexcept {
  char32_t cp = p[0] & (len == 1 ? 0x7F : 0xFF >> (len + 1));
  for (std::size_t i = 1; i < len; ++i) cp = cp << 6 | (p[i] & 0x3F);
  return cp;
}

}  // namespace detail::utf8

namespace detail {

inline constexpr char hex_digits[] = "0123456789abcdef";
inline constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

inline const unsigned char* bytes_of(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

/// Encodes 1..3 bytes as one base64 group, padded with '=' as Node pads.
inline void base64_group(const unsigned char* p, std::size_t k, std::string& out) {
  const std::uint32_t v =
      std::uint32_t{p[0]} << 16 | (k > 1 ? std::uint32_t{p[1]} << 8 : 0) | (k > 2 ? p[2] : 0);
  const char group[4] = {base64_alphabet[v >> 18], base64_alphabet[v >> 12 & 63],
                         k > 1 ? base64_alphabet[v >> 6 & 63] : '=',
                         k > 2 ? base64_alphabet[v & 63] : '='};
  out.append(group, 4);
}

}  // namespace detail

/// Node's StringDecoder: turns a byte stream, in chunks split anywhere, into text.
/// Its whole state is the (at most 3-byte) tail a chunk left incomplete, so a
/// decoder costs a few bytes and never allocates; write() and end() append to `out`
/// and allocate only when `out` lacks the capacity (see max_output_size()).
class Decoder {
 public:
  /// A decoder for bytes in `enc`, holding nothing back yet.
  explicit Decoder(encoding enc) noexcept : enc_(enc) {}

  /// The encoding it decodes.
  encoding get_encoding() const noexcept { return enc_; }

  /// Appends the text of `bytes` to `out`, keeping back a tail that the next
  /// write() may complete: part of a UTF-8 character, or 1-2 bytes of a base64 group.
  void write(std::string_view bytes, std::string& out) {
    switch (enc_) {
      case encoding::utf8: return write_utf8(bytes, out);
      case encoding::latin1: return write_latin1(bytes, out);
      case encoding::ascii: return write_ascii(bytes, out);
      case encoding::hex: return write_hex(bytes, out);
      case encoding::base64: return write_base64(bytes, out);
    }
  }

  /// End of stream: flushes the held-back tail and makes the decoder fresh again.
  void end(std::string& out) {
    if (held_ > 0) {
      // However many bytes a truncated character had, it is one U+FFFD (WHATWG, Node).
      if (enc_ == encoding::utf8) out += detail::utf8::replacement;
      if (enc_ == encoding::base64) detail::base64_group(tail_, held_, out);
    }
    held_ = 0;
  }

  /// At most how many bytes write() of `n` bytes followed by end() appends.
  std::size_t max_output_size(std::size_t n) const noexcept {
    switch (enc_) {
      case encoding::utf8: return 3 * (n + held_);  // every byte may become a U+FFFD
      case encoding::latin1:
      case encoding::hex: return 2 * n;
      case encoding::ascii: return n;
      case encoding::base64: return (n + held_ + 2) / 3 * 4;
    }
    return 0;
  }

 private:
  void hold(const unsigned char* p, std::size_t n) noexcept {
    std::copy_n(p, n, tail_);
    held_ = static_cast<std::uint8_t>(n);
  }

  // Valid runs are appended as they are, so well-formed text costs one copy.
  void write_utf8(std::string_view bytes, std::string& out) {
    namespace u = detail::utf8;
    const unsigned char* p = detail::bytes_of(bytes);
    const std::size_t n = bytes.size();
    std::size_t i = held_ > 0 ? finish_held(p, n, out) : 0;
    if (held_ > 0) return;  // the input ended before the held character did
    std::size_t run = i;
    while (i < n) {
      if (p[i] < 0x80) {
        ++i;
        continue;
      }
      std::size_t len;
      const u::scan kind = u::classify(p + i, n - i, len);
      if (kind == u::scan::complete) {
        i += len;
        continue;
      }
      out.append(bytes.data() + run, i - run);
      if (kind == u::scan::incomplete) return hold(p + i, len);
      out += u::replacement;
      i += len;
      run = i;
    }
    out.append(bytes.data() + run, n - run);
  }

  /// Continues the character held back by the last write() with the start of `p`;
  /// returns how many of those bytes it used (0 when the first one cannot continue
  /// it, so that byte gets decoded afresh, as WHATWG requires).
  std::size_t finish_held(const unsigned char* p, std::size_t n, std::string& out) {
    namespace u = detail::utf8;
    unsigned char seq[4];
    const std::size_t held = held_, take = std::min<std::size_t>(n, 4 - held);
    std::copy_n(tail_, held, seq);
    std::copy_n(p, take, seq + held);
    std::size_t len;
    const u::scan kind = u::classify(seq, held + take, len);
    held_ = 0;
    if (kind == u::scan::incomplete) {
      hold(seq, len);
      return n;
    }
    if (kind == u::scan::complete) {
      out.append(reinterpret_cast<const char*>(seq), len);
    } else {
      out += u::replacement;
    }
    return len - held;
  }

  void write_latin1(std::string_view bytes, std::string& out) {
    const unsigned char* p = detail::bytes_of(bytes);
    std::size_t run = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if (p[i] < 0x80) continue;
      out.append(bytes.data() + run, i - run);
      const char pair[2] = {static_cast<char>(0xC0 | p[i] >> 6),
                            static_cast<char>(0x80 | (p[i] & 0x3F))};
      out.append(pair, 2);
      run = i + 1;
    }
    out.append(bytes.data() + run, bytes.size() - run);
  }

  // Node's 'ascii' clears the high bit rather than replacing the byte.
  void write_ascii(std::string_view bytes, std::string& out) {
    const std::size_t from = out.size();
    out.append(bytes);
    for (std::size_t i = from; i < out.size(); ++i) out[i] = static_cast<char>(out[i] & 0x7F);
  }

  void write_hex(std::string_view bytes, std::string& out) {
    const unsigned char* p = detail::bytes_of(bytes);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      const char pair[2] = {detail::hex_digits[p[i] >> 4], detail::hex_digits[p[i] & 15]};
      out.append(pair, 2);
    }
  }

  // Only whole groups go out: a group's last character depends on bytes not yet read.
  void write_base64(std::string_view bytes, std::string& out) {
    const unsigned char* p = detail::bytes_of(bytes);
    const std::size_t n = bytes.size();
    std::size_t i = 0;
    if (held_ > 0) {
      while (held_ < 3 && i < n) tail_[held_++] = p[i++];
      if (held_ < 3) return;
      detail::base64_group(tail_, 3, out);
      held_ = 0;
    }
    for (; n - i >= 3; i += 3) detail::base64_group(p + i, 3, out);
    hold(p + i, n - i);
  }

  encoding enc_;
  std::uint8_t held_ = 0;
  unsigned char tail_[3] = {};
};

namespace detail {

// A JS string is UTF-16 and Node keeps the low byte of each code unit, so a
// character past U+FFFF gives two bytes (its surrogates') and malformed UTF-8 gives
// 0xFD, the low byte of the U+FFFD it would have become.
inline void encode_latin1(std::string_view text, std::string& out) {
  const unsigned char* p = bytes_of(text);
  std::size_t len = 1;
  for (std::size_t i = 0; i < text.size(); i += len) {
    char32_t cp = p[i];
    len = 1;
    if (cp >= 0x80) {
      const bool whole = utf8::classify(p + i, text.size() - i, len) == utf8::scan::complete;
      cp = whole ? utf8::code_point(p + i, len) : 0xFFFD;
    }
    if (cp >= 0x10000) out += static_cast<char>((cp - 0x10000) >> 10 & 0xFF);  // high surrogate
    out += static_cast<char>(cp & 0xFF);  // the low surrogate's low byte is the same
  }
}

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Node stops at the first pair that is not hex, and drops an odd last digit.
inline void encode_hex(std::string_view text, std::string& out) {
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    const int high = hex_value(text[i]), low = hex_value(text[i + 1]);
    if (high < 0 || low < 0) return;
    out += static_cast<char>(high << 4 | low);
  }
}

/// A character's value in either base64 alphabet (standard or URL-safe); -1 if none.
inline int base64_value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

// Node's lenient decoder: characters of neither alphabet (whitespace, line breaks)
// are skipped, the first '=' ends the data, and leftover bits short of a byte are
// dropped.
inline void encode_base64(std::string_view text, std::string& out) {
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    if (c == '=') return;
    const int value = base64_value(c);
    if (value < 0) continue;
    bits = (bits << 6 | static_cast<std::uint32_t>(value)) & 0xFFF;  // never more than 12 bits pend
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>(bits >> count & 0xFF);
    }
  }
}

}  // namespace detail

/// Appends `text` (UTF-8) encoded as `enc`, as Node's Buffer.from(text, enc) does.
/// Encoding never fails: as in Node, what cannot be encoded is truncated or dropped.
inline void encode(std::string_view text, encoding enc, std::string& out) {
  switch (enc) {
    case encoding::utf8: out.append(text); return;
    case encoding::latin1:
    case encoding::ascii: return detail::encode_latin1(text, out);  // Node treats both alike
    case encoding::hex: return detail::encode_hex(text, out);
    case encoding::base64: return detail::encode_base64(text, out);
  }
}

}  // namespace coronet
