// fuzz/decoder_fuzzer.cpp - libFuzzer target for coronet::Decoder (and encode()).
//
// Input layout (fuzz/README.md has the details):
//   byte 0        the encoding: utf8, latin1, ascii, hex, base64 (value % 5)
//   byte 1        how many chunk lengths follow (value % 16)
//   next k bytes  the chunk lengths, 0..255 each (0 is an empty write())
//   the rest      the bytes to decode; what the lengths do not cover is the last chunk
//
// Properties, each a __builtin_trap() when broken:
//   1. the bytes fed in the fuzz-chosen chunks (write() per chunk, then end()) decode
//      to exactly what one write() of the whole input and end() gives, and so does
//      one byte per write() on the same Decoder after its end() (end() resets it);
//   2. that text equals an independent reference decoder's: WHATWG's UTF-8 decoder
//      (maximal subparts become one U+FFFD each, an incomplete tail one more), one
//      character per byte for latin1, the low 7 bits for ascii, lowercase hex, and
//      padded standard base64;
//   3. output never grows without bound: each write()+end() stays within what
//      max_output_size() promised, the whole within 3 * n + 4 bytes, and the text
//      is always valid UTF-8;
//   4. encode() undoes decode() for hex, base64 and latin1, and encode() of any
//      bytes as text never yields more bytes than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/decoder.hpp>

namespace {

using coronet::Decoder;
using coronet::encoding;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "decoder_fuzzer: %s\n", what);
  __builtin_trap();
}

void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18);
    out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The WHATWG Encoding Standard's UTF-8 decoder, step by step as the spec writes it
// (https://encoding.spec.whatwg.org/#utf-8-decoder), written apart from coronet's.
std::string reference_utf8(std::string_view bytes) {
  std::string out;
  char32_t cp = 0;
  int needed = 0, seen = 0;
  unsigned lower = 0x80, upper = 0xBF;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const unsigned b = static_cast<unsigned char>(bytes[i]);
    if (needed == 0) {
      if (b <= 0x7F) {
        out += static_cast<char>(b);
      } else if (b >= 0xC2 && b <= 0xDF) {
        needed = 1;
        cp = b & 0x1F;
      } else if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lower = 0xA0;
        if (b == 0xED) upper = 0x9F;
        needed = 2;
        cp = b & 0xF;
      } else if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lower = 0x90;
        if (b == 0xF4) upper = 0x8F;
        needed = 3;
        cp = b & 0x7;
      } else {
        append_utf8(0xFFFD, out);
      }
      continue;
    }
    if (b < lower || b > upper) {
      cp = 0;
      needed = seen = 0;
      lower = 0x80;
      upper = 0xBF;
      append_utf8(0xFFFD, out);
      --i;  // the byte is processed again, as the start of what follows
      continue;
    }
    lower = 0x80;
    upper = 0xBF;
    cp = cp << 6 | (b & 0x3F);
    if (++seen != needed) continue;
    append_utf8(cp, out);
    cp = 0;
    needed = seen = 0;
  }
  if (needed != 0) append_utf8(0xFFFD, out);
  return out;
}

std::string reference(encoding enc, std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  switch (enc) {
    case encoding::utf8: return reference_utf8(bytes);
    case encoding::latin1:
      for (unsigned char b : bytes) append_utf8(b, out);
      return out;
    case encoding::ascii:
      for (unsigned char b : bytes) out += static_cast<char>(b & 0x7F);
      return out;
    case encoding::hex:
      for (unsigned char b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 15];
      }
      return out;
    case encoding::base64:
      for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t k = bytes.size() - i < 3 ? bytes.size() - i : 3;
        std::uint32_t v = 0;
        for (std::size_t j = 0; j < 3; ++j)
          v = v << 8 | (j < k ? static_cast<unsigned char>(bytes[i + j]) : 0);
        out += alphabet[v >> 18 & 63];
        out += alphabet[v >> 12 & 63];
        out += k > 1 ? alphabet[v >> 6 & 63] : '=';
        out += k > 2 ? alphabet[v & 63] : '=';
      }
      return out;
  }
  fail("unknown encoding");
}

// Strict UTF-8: no overlongs, no surrogates, nothing past U+10FFFF, nothing cut short.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned b = static_cast<unsigned char>(s[i]);
    std::size_t len;
    char32_t cp;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t j = 1; j < len; ++j) {
      const unsigned c = static_cast<unsigned char>(s[i + j]);
      if ((c & 0xC0) != 0x80) return false;
      cp = cp << 6 | (c & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// One write() of `chunk`, checking it and the end() that may follow against
// max_output_size() (on a copy: a Decoder is its few bytes of state).
void write_checked(Decoder& d, std::string_view chunk, std::string& out) {
  const std::size_t bound = d.max_output_size(chunk.size());
  Decoder ended = d;
  std::string alone;
  ended.write(chunk, alone);
  ended.end(alone);
  check(alone.size() <= bound, "write() + end() appended more than max_output_size()");
  const std::size_t before = out.size();
  d.write(chunk, out);
  check(out.size() - before <= bound, "write() appended more than max_output_size()");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto enc = static_cast<encoding>(data[0] % 5);
  const std::size_t cuts = data[1] % 16;
  if (size < 2 + cuts) return 0;
  std::vector<std::size_t> lengths(data + 2, data + 2 + cuts);
  const std::string_view input(reinterpret_cast<const char*>(data) + 2 + cuts, size - 2 - cuts);
  const std::size_t n = input.size();

  // Whole.
  Decoder whole(enc);
  check(whole.get_encoding() == enc, "get_encoding() is not the encoding it was made with");
  std::string expected;
  write_checked(whole, input, expected);
  whole.end(expected);
  check(expected.size() <= whole.max_output_size(n), "output exceeds max_output_size(n)");
  check(expected.size() <= 3 * n + 4, "output grew past 3 * n + 4 bytes");

  // In the fuzz-chosen chunks.
  Decoder split(enc);
  std::string text;
  std::size_t at = 0;
  for (std::size_t length : lengths) {
    const std::size_t take = length < n - at ? length : n - at;
    write_checked(split, input.substr(at, take), text);
    at += take;
  }
  write_checked(split, input.substr(at), text);
  split.end(text);
  check(text == expected, "chunked input decoded differently from whole input");
  std::string again;
  split.end(again);
  check(again.empty(), "a second end() produced output");

  // One byte at a time, on the same decoder: end() must have made it fresh.
  std::string bytewise;
  for (std::size_t i = 0; i < n; ++i) write_checked(split, input.substr(i, 1), bytewise);
  split.end(bytewise);
  check(bytewise == expected, "byte-by-byte input decoded differently from whole input");

  // Against the reference, and always valid UTF-8.
  check(expected == reference(enc, input), "decoded text differs from the reference decoder");
  check(valid_utf8(expected), "decoded text is not valid UTF-8");

  // encode() undoes decode(), and never expands arbitrary text.
  if (enc == encoding::hex || enc == encoding::base64 || enc == encoding::latin1) {
    std::string bytes;
    coronet::encode(expected, enc, bytes);
    check(bytes == input, "encode(decode(bytes)) != bytes");
  }
  for (encoding e :
       {encoding::utf8, encoding::latin1, encoding::ascii, encoding::hex, encoding::base64}) {
    std::string bytes;
    coronet::encode(input, e, bytes);
    check(bytes.size() <= n, "encode() made more bytes than the text had");
  }
  return 0;
}
