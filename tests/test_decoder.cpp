// Decoder and encode(): Node's StringDecoder and Buffer.from(string, encoding).
// Expected values come from Node 20 (string_decoder, Buffer); when CORONET_NODE names
// a node binary, random inputs are also checked against it live.
#include <doctest/doctest.h>

#include <coronet/decoder.hpp>

#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using coronet::Decoder;
using coronet::encoding;

namespace {

const std::string fffd = "\xEF\xBF\xBD";

/// Decodes `bytes` in one write() and end().
std::string decode(encoding enc, std::string_view bytes) {
  Decoder d(enc);
  std::string out;
  d.write(bytes, out);
  d.end(out);
  return out;
}

/// Decodes `bytes` cut at each of `cuts` (ascending offsets).
std::string decode_split(encoding enc, std::string_view bytes,
                         const std::vector<std::size_t>& cuts) {
  Decoder d(enc);
  std::string out;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    d.write(bytes.substr(from, cut - from), out);
    from = cut;
  }
  d.write(bytes.substr(from), out);
  d.end(out);
  return out;
}

/// A literal's bytes, NULs included.
template <std::size_t N>
std::string raw(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string encode(std::string_view text, encoding enc) {
  std::string out;
  coronet::encode(text, enc, out);
  return out;
}

std::string all_bytes() {
  std::string s;
  for (int b = 0; b < 256; ++b) s += static_cast<char>(b);
  return s;
}

/// Checks that every split of `bytes` into two and into three pieces decodes like
/// the whole does.
void check_every_split(encoding enc, std::string_view bytes) {
  const std::string whole = decode(enc, bytes);
  for (std::size_t i = 0; i <= bytes.size(); ++i) {
    CAPTURE(i);
    REQUIRE(decode_split(enc, bytes, {i}) == whole);
    for (std::size_t j = i; j <= bytes.size(); ++j) {
      CAPTURE(j);
      REQUIRE(decode_split(enc, bytes, {i, j}) == whole);
    }
  }
}

std::string to_hex(std::string_view s) {
  std::string out;
  coronet::Decoder(encoding::hex).write(s, out);
  return out;
}

}  // namespace

TEST_CASE("encoding names are Node's, aliases and case included") {
  for (encoding e :
       {encoding::utf8, encoding::latin1, encoding::ascii, encoding::hex, encoding::base64}) {
    CHECK(coronet::parse_encoding(coronet::to_string(e)) == e);
  }
  CHECK(coronet::to_string(encoding::utf8) == "utf8");
  CHECK(coronet::to_string(encoding::base64) == "base64");
  CHECK(coronet::parse_encoding("UTF-8") == encoding::utf8);
  CHECK(coronet::parse_encoding("Utf8") == encoding::utf8);
  CHECK(coronet::parse_encoding("binary") == encoding::latin1);
  CHECK(coronet::parse_encoding("LATIN1") == encoding::latin1);
  CHECK(coronet::parse_encoding("ASCII") == encoding::ascii);
  CHECK(coronet::parse_encoding("Hex") == encoding::hex);
  CHECK(coronet::parse_encoding("BASE64") == encoding::base64);
  CHECK_FALSE(coronet::parse_encoding("ucs2").has_value());
  CHECK_FALSE(coronet::parse_encoding("utf 8").has_value());
  CHECK_FALSE(coronet::parse_encoding("").has_value());
  CHECK(Decoder(encoding::hex).get_encoding() == encoding::hex);
}

TEST_CASE("utf8: a character split at any point, or two, is never cut") {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";  // "aé€😀z": 1-, 2-, 3-, 4-byte
  CHECK(decode(encoding::utf8, text) == text);
  check_every_split(encoding::utf8, text);

  const std::string dense = "\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xE2\x82\xAC\xC3\xA9\xE2\x82\xAC";
  CHECK(decode(encoding::utf8, dense) == dense);
  check_every_split(encoding::utf8, dense);

  // One byte per write(): the worst case for holding back.
  Decoder d(encoding::utf8);
  std::string out;
  for (char c : text) d.write(std::string_view(&c, 1), out);
  d.write({}, out);
  d.end(out);
  CHECK(out == text);
}

TEST_CASE("utf8: an incomplete character at end() is exactly one U+FFFD") {
  for (std::string_view tail :
       {"\xC3", "\xE2\x82", "\xE2", "\xF0\x9F\x98", "\xF0\x9F", "\xF4\x8F\xBF"}) {
    CAPTURE(to_hex(tail));
    Decoder d(encoding::utf8);
    std::string out;
    d.write("ok", out);
    for (char c : tail) d.write(std::string_view(&c, 1), out);
    CHECK(out == "ok");  // nothing of the partial character leaks before end()
    d.end(out);
    CHECK(out == "ok" + fffd);

    // end() starts afresh: nothing of the old tail reaches the next stream.
    out.clear();
    d.write("\xC3\xA9", out);
    d.end(out);
    CHECK(out == "\xC3\xA9");
  }
}

TEST_CASE("utf8: malformed bytes become U+FFFD as in Node, however split") {
  // {input, Node 20 StringDecoder write() + end()}: WHATWG maximal subparts.
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"\xE2\x82", "\xEF\xBF\xBD"},
      {"\xF0\x9F\x98", "\xEF\xBF\xBD"},
      {"\xC3", "\xEF\xBF\xBD"},
      {"\x80", "\xEF\xBF\xBD"},
      {"\xBF\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xC0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},  // overlong NUL
      {"\xC1\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xE0\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xE0\x9F\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // a surrogate
      {"\xED\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xF0\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xF0\x8F\xBF\xBF", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xF4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // past U+10FFFF
      {"\xF5\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xF8\x88\x80\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xFE", "\xEF\xBF\xBD"},
      {"\xFF", "\xEF\xBF\xBD"},
      {"a\xE2\x82"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"a\xF0\x9F\x98"
       "b",
       "a\xEF\xBF\xBD"
       "b"},
      {"\xE2\x82\xE2\x82\xAC", "\xEF\xBF\xBD\xE2\x82\xAC"},
      {"\xF0\x9F\x98\xF0\x9F\x98\x80", "\xEF\xBF\xBD\xF0\x9F\x98\x80"},
      {"\xC3\xC3\xA9", "\xEF\xBF\xBD\xC3\xA9"},
      {"\xE2"
       "A\x82\xAC",
       "\xEF\xBF\xBD"
       "A\xEF\xBF\xBD\xEF\xBF\xBD"},
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},  // U+10FFFF itself is valid
      {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},
      {"a\x80\x80\x80\x80"
       "b",
       "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
       "b"},
      {"\xED\x9F\xBF", "\xED\x9F\xBF"},  // U+D7FF, just below the surrogates
      {"\xE1\x80", "\xEF\xBF\xBD"},
      {"\xF1\x80\x80", "\xEF\xBF\xBD"},
      {"\xF0\x90", "\xEF\xBF\xBD"},
      {"\xF4\x80\x80"
       "A",
       "\xEF\xBF\xBD"
       "A"},
  };
  for (const auto& c : cases) {  // no structured binding: clang 14 cannot capture one in CAPTURE
    CAPTURE(to_hex(c.first));
    CHECK(decode(encoding::utf8, c.first) == c.second);
    check_every_split(encoding::utf8, c.first);
  }
}

TEST_CASE("utf8: random bytes decode the same however they are split") {
  std::mt19937 gen(2024);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(gen() % 10, '\0');
    for (char& c : bytes)
      c = static_cast<char>(gen() % 3 == 0 ? gen() & 0xFF : 0x80 | (gen() & 0x7F));
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < bytes.size(); ++i) {
      if (gen() % 2) cuts.push_back(i);
    }
    CAPTURE(to_hex(bytes));
    REQUIRE(decode_split(encoding::utf8, bytes, cuts) == decode(encoding::utf8, bytes));
  }
}

TEST_CASE("latin1, ascii, hex, base64: split input decodes as whole input does, as in Node") {
  const std::string sample =
      raw("\x00"
          "Az\x7F\x80\xA9\xE9\xFF\x0A\xC3\xA9\xFE");
  // Node 20: new StringDecoder(enc), write(Buffer.from(sample)) + end().
  CHECK(decode(encoding::latin1, sample) ==
        raw("\x00"
            "Az\x7F\xC2\x80\xC2\xA9\xC3\xA9\xC3\xBF\x0A\xC3\x83\xC2\xA9\xC3\xBE"));
  CHECK(decode(encoding::ascii, sample) == raw("\x00"
                                               "Az\x7F\x00)i\x7F\x0A"
                                               "C)~"));
  CHECK(decode(encoding::hex, sample) == "00417a7f80a9e9ff0ac3a9fe");
  CHECK(decode(encoding::base64, sample) == "AEF6f4Cp6f8Kw6n+");

  for (encoding e :
       {encoding::utf8, encoding::latin1, encoding::ascii, encoding::hex, encoding::base64}) {
    CAPTURE(coronet::to_string(e));
    check_every_split(e, sample);
    check_every_split(e, all_bytes().substr(120, 20));
  }
  CHECK(decode(encoding::latin1, all_bytes()).size() == 128 + 2 * 128);
  CHECK(decode(encoding::hex, all_bytes()).substr(0x7E * 2, 8) == "7e7f8081");
}

TEST_CASE("base64: only whole groups before end(), padding at end()") {
  // Node 20: Buffer.from("abcde".slice(0, n)).toString("base64").
  const std::string_view expected[] = {"", "YQ==", "YWI=", "YWJj", "YWJjZA==", "YWJjZGU="};
  for (std::size_t n = 0; n < 6; ++n)
    CHECK(decode(encoding::base64, std::string_view("abcde", n)) == expected[n]);

  Decoder d(encoding::base64);
  std::string out;
  d.write("a", out);
  CHECK(out.empty());
  d.write("b", out);
  CHECK(out.empty());
  d.write("cd", out);
  CHECK(out == "YWJj");
  d.end(out);
  CHECK(out == "YWJjZA==");
  d.end(out);  // a second end() has nothing left to flush
  CHECK(out == "YWJjZA==");
}

TEST_CASE("encode: as Node's Buffer.from(string, encoding)") {
  CHECK(encode("a\xC3\xA9\xE2\x82\xAC", encoding::utf8) == "a\xC3\xA9\xE2\x82\xAC");

  // Node keeps the low byte of each UTF-16 unit: "€" is 0xAC, "😀" its surrogates' 0x3D 0x00.
  const std::string latin1 = raw("a\xE9\xAC=\x00\x00");
  CHECK(encode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xC4\x80", encoding::latin1) == latin1);
  CHECK(encode("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xC4\x80", encoding::ascii) == latin1);
  CHECK(encode("abc\xC3\xA9", encoding::ascii) == "abc\xE9");
  CHECK(encode("\xFF"
               "a",
               encoding::latin1) ==
        "\xFD"
        "a");  // malformed UTF-8 is U+FFFD first

  // Hex stops at the first pair that is not hex and drops an odd last digit.
  CHECK(encode("68656c6c6f", encoding::hex) == "hello");
  CHECK(encode("68656C6C6F", encoding::hex) == "hello");
  CHECK(encode("abc", encoding::hex) == "\xAB");
  CHECK(encode("ab zz12", encoding::hex) == "\xAB");
  CHECK(encode("dead beef", encoding::hex) == "\xDE\xAD");
  CHECK(encode("0g12", encoding::hex).empty());
  CHECK(encode("a", encoding::hex).empty());
  CHECK(encode("12\xC3\xA9"
               "4",
               encoding::hex) == "\x12");

  // Base64 is lenient: either alphabet, anything else skipped, the first '=' ends it.
  CHECK(encode("aGVsbG8=", encoding::base64) == "hello");
  CHECK(encode("aGVsbG8", encoding::base64) == "hello");
  CHECK(encode("aGVs bG8=\n", encoding::base64) == "hello");
  CHECK(encode("aGVs\r\nbG8", encoding::base64) == "hello");
  CHECK(encode("-_-_", encoding::base64) == "\xFB\xFF\xBF");
  CHECK(encode("+/+/", encoding::base64) == "\xFB\xFF\xBF");
  CHECK(encode("YQ==YQ==", encoding::base64) == "a");
  CHECK(encode("YQ=Jj", encoding::base64) == "a");
  CHECK(encode("=YWJj", encoding::base64).empty());
  CHECK(encode("Y", encoding::base64).empty());
  CHECK(encode("YW", encoding::base64) == "a");
  CHECK(encode("YWJ", encoding::base64) == "ab");
  CHECK(encode("*Y*W*J*j*", encoding::base64) == "abc");
  CHECK(encode("YW\xC3\xA9Jj", encoding::base64) == "abc");
}

TEST_CASE("encode undoes decode for hex, base64 and latin1") {
  std::mt19937 gen(7);
  std::vector<std::string> inputs = {"", all_bytes()};
  for (int i = 0; i < 200; ++i) {
    std::string s(gen() % 40, '\0');
    for (char& c : s) c = static_cast<char>(gen() & 0xFF);
    inputs.push_back(std::move(s));
  }
  for (const std::string& bytes : inputs) {
    CAPTURE(to_hex(bytes));
    for (encoding e : {encoding::hex, encoding::base64, encoding::latin1}) {
      CAPTURE(coronet::to_string(e));
      CHECK(encode(decode(e, bytes), e) == bytes);
    }
  }
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
  CHECK(decode(encoding::utf8, encode(text, encoding::utf8)) == text);
}

TEST_CASE("a decoder is a few bytes and writes into capacity it is given") {
  CHECK(sizeof(Decoder) <= 8);
  const std::string input = all_bytes() + "\xF0\x9F";
  for (encoding e :
       {encoding::utf8, encoding::latin1, encoding::ascii, encoding::hex, encoding::base64}) {
    CAPTURE(coronet::to_string(e));
    Decoder d(e);
    std::string out;
    d.write("\xE2", out);  // leaves a tail for utf8 and base64
    out.clear();
    const std::size_t bound = d.max_output_size(input.size());
    out.reserve(bound);
    const char* before = out.data();
    d.write(input, out);
    d.end(out);
    CHECK(out.data() == before);
    CHECK(out.size() <= bound);
  }
}

TEST_CASE("decoding matches a live node on random input (when CORONET_NODE is set)") {
  const char* node = std::getenv("CORONET_NODE");
  if (node == nullptr || *node == '\0') return;

  // Bytes that steer into UTF-8's edge cases, mixed with arbitrary ones.
  const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1,
                                 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  const encoding encodings[] = {encoding::utf8, encoding::latin1, encoding::ascii, encoding::hex,
                                encoding::base64};
  std::mt19937 gen(99);
  struct sample {
    encoding enc;
    std::string bytes;
    std::vector<std::size_t> cuts;
  };
  std::vector<sample> samples;
  std::ostringstream js;
  js << "const {StringDecoder} = require('string_decoder');\nfor (const [enc, hex, cuts] of [\n";
  for (int i = 0; i < 3000; ++i) {
    sample s{i % 3 ? encoding::utf8 : encodings[gen() % 5], std::string(gen() % 12, '\0'), {}};
    for (char& c : s.bytes)
      c = static_cast<char>(gen() % 2 ? edges[gen() % sizeof edges] : gen() & 0xFF);
    for (std::size_t k = 1; k < s.bytes.size(); ++k) {
      if (gen() % 3 == 0) s.cuts.push_back(k);
    }
    js << "['" << coronet::to_string(s.enc) << "','" << to_hex(s.bytes) << "',[";
    for (std::size_t cut : s.cuts) js << cut << ',';
    js << "]],\n";
    samples.push_back(std::move(s));
  }
  js << "]) {\n"
        "  const b = Buffer.from(hex, 'hex'), d = new StringDecoder(enc);\n"
        "  let s = '', from = 0;\n"
        "  for (const cut of [...cuts, b.length]) { s += d.write(b.subarray(from, cut)); from = "
        "cut; }\n"
        "  console.log(Buffer.from(s + d.end(), 'utf8').toString('hex') || '-');\n"
        "}\n";

  const auto script = std::filesystem::temp_directory_path() /
                      ("coronet_test_decoder_" + std::to_string(::getpid()) + ".js");
  std::ofstream(script) << js.str();
  FILE* pipe = ::popen(("'" + std::string(node) + "' '" + script.string() + "'").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  std::filesystem::remove(script);
  REQUIRE(status == 0);

  std::istringstream lines(output);
  std::string line;
  for (const sample& s : samples) {
    REQUIRE(std::getline(lines, line));
    CAPTURE(coronet::to_string(s.enc));
    CAPTURE(to_hex(s.bytes));
    CHECK(to_hex(decode_split(s.enc, s.bytes, s.cuts)) == (line == "-" ? "" : line));
  }
}
