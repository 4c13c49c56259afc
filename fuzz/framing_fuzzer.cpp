// fuzz/framing_fuzzer.cpp - libFuzzer target for coronet's framed reads over a real
// loopback TCP connection: read_line(), read_until(), read_exactly(), read_some()
// and read(), against the same input split offline.
//
// Input layout (fuzz/README.md has the details):
//   byte 0   flags: bits 0-1 the delimiter (0 read_line's "\n", 1 "\r\n",
//            2 "\r\n\r\n", 3 bytes 3..6); bits 2-4 the encoding of the final
//            read() drain (0..4 = utf8, latin1, ascii, hex, base64; 5..7 raw);
//            bit 5 set_encoding() before the first read instead of before the drain;
//            bit 6 a read() right after each frame_too_long; bit 7 the last chunk goes
//            with end(data) rather than write() then end()
//   byte 1   max: 1 + value (1..256), at least the delimiter's length, for read_line()
//            and read_until()
//   byte 2   bits 0-1 custom delimiter length - 1; bit 2 the program runs once (then
//            the drain reads the rest) instead of repeating until the stream ends
//   byte 3-6 custom delimiter bytes
//   byte 7   k = value % 32 program ops follow; each: low 3 bits the op (0 read_line,
//            1 read_until, 2 read_exactly, 3 read_some, 4 read(); 5-7 read_until),
//            high 5 bits its size argument (0..15 as is, 16..31 mean 32..512)
//   next     c = value % 32 chunk lengths follow, each 1 + value (1..256), used in turn
//   the rest the stream the client writes, in those chunk lengths (whole if c is 0;
//            after 16 chunks the rest goes in one write)
//
// The client writes each chunk and waits until the server side has received it
// before writing the next, so the reader sees the chunks as written. Each result is
// checked against a model that splits the whole stream offline by the documented
// rules (include/coronet/socket.hpp):
//   - read_until(d, max) / read_line(max): the bytes up to and including the first d
//     when there are at most max of them (read_line strips "\n" or "\r\n");
//     errc::frame_too_long "<op>: no delimiter within <max> bytes (they stay buffered
//     for read())" when max bytes arrive without d, the bytes staying for read();
//     errc::truncated_frame "<op>: the peer ended the stream in the middle of a
//     frame; <n> bytes of it are lost" at FIN inside a frame; nullopt at FIN between
//     frames;
//   - read_exactly(n): n bytes; truncated_frame with FIN inside them; nullopt at FIN
//     before the first;
//   - read_some() and read(): the next bytes of the stream, at least one unless at FIN;
//   - then read() with set_encoding() until nullopt gives Decoder's text of the rest.
// Anything else (a wrong frame, error, message or byte count, or a hang) traps.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <coronet/coronet.hpp>

namespace {

using namespace std::chrono_literals;
using coronet::awaitable;
using coronet::encoding;

[[noreturn]] void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "framing_fuzzer: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  __builtin_trap();
}

void check(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) fail(what, detail);
}

// FRAMING_FUZZER_TRACE=1 prints each write and read, to see what an input does.
const bool tracing = std::getenv("FRAMING_FUZZER_TRACE") != nullptr;

void trace(const char* what, std::string_view bytes = {}, std::size_t number = 0) {
  if (!tracing) return;
  std::string shown;
  for (unsigned char c : bytes.substr(0, 64)) {
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      shown += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      shown += hex;
    }
  }
  if (bytes.size() > 64) shown += "...";
  std::fprintf(stderr, "  %s %zu \"%s\"\n", what, number, shown.c_str());
}

enum class op { line, until, exactly, some, read };

struct step {
  op kind;
  std::size_t size;  // read_exactly's n, read_some's buffer size
};

struct scenario {
  std::string delimiter;  // empty: read_line()
  std::size_t max = 0;
  std::optional<encoding> drain_encoding;
  bool encoding_first = false;
  bool read_after_too_long = false;
  bool end_with_data = false;
  bool once = false;
  std::vector<step> program;
  std::vector<std::size_t> chunks;
  std::string_view stream;
};

std::optional<scenario> parse(const std::uint8_t* data, std::size_t size) {
  if (size < 9) return std::nullopt;
  scenario s;
  const std::uint8_t flags = data[0];
  switch (flags & 3) {
    case 0: break;
    case 1: s.delimiter = "\r\n"; break;
    case 2: s.delimiter = "\r\n\r\n"; break;
    default: s.delimiter.assign(reinterpret_cast<const char*>(data) + 3, 1 + data[2] % 4);
  }
  if (const int e = flags >> 2 & 7; e < 5) s.drain_encoding = static_cast<encoding>(e);
  s.encoding_first = (flags & 0x20) != 0 && s.drain_encoding;
  s.read_after_too_long = (flags & 0x40) != 0;
  s.end_with_data = (flags & 0x80) != 0;
  // A max shorter than the delimiter is refused before any I/O (errc::invalid_argument,
  // tests/test_framing.cpp); the fuzzer explores the reads that can succeed.
  s.max = std::max(1 + std::size_t{data[1]}, s.delimiter.size());
  s.once = (data[2] & 4) != 0;
  std::size_t at = 7;
  const std::size_t ops = data[at++] % 32;
  if (size < at + ops + 1) return std::nullopt;
  for (std::size_t i = 0; i < ops; ++i) {
    const std::uint8_t b = data[at++];
    const std::size_t arg = b >> 3;
    const std::size_t n = arg < 16 ? arg : (arg - 15) * 32;  // 0..15, then 32..512
    switch (b & 7) {
      case 0: s.program.push_back({op::line, 0}); break;
      case 2: s.program.push_back({op::exactly, n}); break;
      case 3: s.program.push_back({op::some, n}); break;
      case 4: s.program.push_back({s.encoding_first ? op::some : op::read, n}); break;
      default: s.program.push_back({op::until, 0});
    }
  }
  const std::size_t chunks = data[at++] % 32;
  if (size < at + chunks) return std::nullopt;
  for (std::size_t i = 0; i < chunks; ++i) s.chunks.push_back(1 + std::size_t{data[at++]});
  s.stream = {reinterpret_cast<const char*>(data) + at, size - at};
  return s;
}

// ---------------------------------------------------------------- the model

enum class outcome { frame, none, too_long, truncated };

struct expected {
  outcome kind;
  std::string_view frame;  // outcome::frame
  std::size_t lost = 0;    // outcome::truncated
};

// What a framed read must give at `pos` of the whole stream; moves `pos` past it.
expected model_until(std::string_view stream, std::size_t& pos, std::string_view delimiter,
                     std::size_t max) {
  const std::size_t rest = stream.size() - pos;
  const std::size_t at = stream.find(delimiter, pos);
  if (at != std::string_view::npos) {
    const std::size_t length = at + delimiter.size() - pos;
    if (length > max) return {outcome::too_long, {}};  // more than max bytes before it ends
    const std::string_view frame = stream.substr(pos, length);
    pos += length;
    return {outcome::frame, frame};
  }
  if (rest >= max) return {outcome::too_long, {}};
  pos = stream.size();
  if (rest == 0) return {outcome::none, {}};
  return {outcome::truncated, {}, rest};
}

expected model_exactly(std::string_view stream, std::size_t& pos, std::size_t n) {
  const std::size_t rest = stream.size() - pos;
  if (rest >= n) {
    const std::string_view frame = stream.substr(pos, n);
    pos += n;
    return {outcome::frame, frame};
  }
  pos = stream.size();
  if (rest == 0) return {outcome::none, {}};
  return {outcome::truncated, {}, rest};
}

std::string decode(encoding enc, std::string_view bytes) {
  coronet::Decoder d(enc);
  std::string text;
  d.write(bytes, text);
  d.end(text);
  return text;
}

// ---------------------------------------------------------------- the run

// Runs one framed read, compares it with the model; true when it was frame_too_long.
awaitable<bool> framed(coronet::Socket& socket, const scenario& s, const step& st,
                       std::size_t& pos) {
  const char* name = st.kind == op::exactly                       ? "read_exactly"
                     : st.kind == op::line || s.delimiter.empty() ? "read_line"
                                                                  : "read_until";
  expected want;
  std::string want_line;
  if (st.kind == op::exactly) {
    want = model_exactly(s.stream, pos, st.size);
  } else if (st.kind == op::line || s.delimiter.empty()) {
    want = model_until(s.stream, pos, "\n", s.max);
    if (want.kind == outcome::frame) {
      want_line = want.frame.substr(0, want.frame.size() - 1);
      if (!want_line.empty() && want_line.back() == '\r') want_line.pop_back();
      want.frame = want_line;
    }
  } else {
    want = model_until(s.stream, pos, s.delimiter, s.max);
  }

  std::optional<std::string_view> got;
  try {
    if (st.kind == op::exactly) {
      got = co_await socket.read_exactly(st.size);
    } else if (st.kind == op::line || s.delimiter.empty()) {
      got = co_await socket.read_line(s.max);
    } else {
      got = co_await socket.read_until(s.delimiter, s.max);
    }
  } catch (const coronet::error& e) {
    const std::string what = e.what();
    if (e.code() == coronet::errc::frame_too_long) {
      trace(name, "frame_too_long", s.max);
      check(want.kind == outcome::too_long, "unexpected frame_too_long:", what);
      check(what == std::string(name) + ": no delimiter within " + std::to_string(s.max) +
                        " bytes (they stay buffered for read())",
            "frame_too_long message:", what);
      co_return true;
    }
    if (e.code() == coronet::errc::truncated_frame) {
      trace(name, "truncated_frame", want.lost);
      check(want.kind == outcome::truncated, "unexpected truncated_frame:", what);
      check(what == std::string(name) + ": the peer ended the stream in the middle of a frame; " +
                        std::to_string(want.lost) + " bytes of it are lost",
            "truncated_frame message:", what);
      co_return false;
    }
    fail("unexpected error:", what);
  }
  trace(name, got ? *got : "nullopt", got ? got->size() : 0);
  if (got) {
    check(want.kind == outcome::frame, "a frame where the model has none:", *got);
    check(*got == want.frame, "wrong frame:", *got);
  } else {
    check(want.kind == outcome::none, "nullopt where the model has a frame or an error");
  }
  co_return false;
}

// read_some() or read() (raw): the next bytes of the stream, at least one unless at FIN.
awaitable<void> unframed(coronet::Socket& socket, const step& st, std::string_view stream,
                         std::size_t& pos, std::size_t at_least) {
  const std::size_t rest = stream.size() - pos;
  std::string_view got;
  if (st.kind == op::some) {
    char buffer[512];
    const std::size_t n = co_await socket.read_some(std::span<char>(buffer, st.size));
    got = {buffer, n};
    check(n <= st.size, "read_some() overfilled its buffer");
    check(n > 0 || rest == 0 || st.size == 0, "read_some() returned 0 before FIN");
    check(got == stream.substr(pos, n), "read_some() bytes differ from the stream");
  } else {
    auto chunk = co_await socket.read();
    check(chunk.has_value() || rest == 0, "read() returned nullopt before FIN");
    if (chunk) {
      got = *chunk;
      check(!got.empty(), "read() returned an empty chunk");
      check(got == stream.substr(pos, got.size()), "read() bytes differ from the stream");
    }
  }
  trace(st.kind == op::some ? "read_some" : "read", got, got.size());
  check(got.size() >= at_least, "frame_too_long's bytes were not all buffered for read()");
  pos += got.size();
}

awaitable<void> write_all(coronet::Socket& client, const coronet::Socket& server,
                          const scenario& s) {
  auto ex = co_await asio::this_coro::executor;
  std::size_t at = 0, next = 0;
  while (at < s.stream.size()) {
    std::size_t n = s.stream.size() - at;
    // At most 16 paced chunks (then the rest at once): each costs a wake-up of the reader.
    if (!s.chunks.empty() && next < 16) n = std::min(n, s.chunks[next++ % s.chunks.size()]);
    const std::string_view chunk = s.stream.substr(at, n);
    at += n;
    if (at == s.stream.size() && s.end_with_data) {
      trace("end with", chunk, chunk.size());
      co_await client.end(chunk);
      co_return;
    }
    trace("write", chunk, chunk.size());
    co_await client.write(chunk);
    // Let the reader take this chunk before the next one goes, so that it sees the
    // chunks as written. A reader that needs no bytes just now lets them coalesce.
    for (int i = 0; i < 64 && server.bytes_read() < at; ++i)
      co_await asio::post(ex, asio::use_awaitable);
    if (server.bytes_read() < at) trace("(not read before the next write)");
  }
  trace("end");
  co_await client.end();
}

awaitable<void> read_all(coronet::Socket& socket, const scenario& s) {
  const std::string_view stream = s.stream;
  std::size_t pos = 0;
  bool done = false;
  if (s.encoding_first) socket.set_encoding(*s.drain_encoding);
  // The program runs once, or repeats until the stream ends, a whole round of it
  // moves nothing (a frame_too_long that no op gets past would repeat for ever), or
  // 256 reads have run (a long stream read a byte at a time would be slow to fuzz).
  const std::size_t rounds = s.once ? 1 : stream.size() + 2;
  std::size_t budget = 256;
  for (std::size_t round = 0; !done && budget > 0 && round < rounds; ++round) {
    const std::size_t round_start = pos;
    for (const step& st : s.program) {
      if (budget-- == 0) break;
      if (st.kind == op::some || st.kind == op::read) {
        co_await unframed(socket, st, stream, pos, 0);
        continue;
      }
      const std::size_t before = pos;
      if (co_await framed(socket, s, st, pos)) {
        if (s.read_after_too_long) {
          const step raw{s.encoding_first ? op::some : op::read, 512};
          const std::size_t rest = stream.size() - before;
          co_await unframed(socket, raw, stream, pos, std::min({s.max, rest, std::size_t{512}}));
        }
      } else if (pos == stream.size() && before == pos) {
        done = true;  // nullopt at FIN, or the same after a truncated frame
        break;
      }
    }
    if (pos == round_start) break;
  }
  // The rest, through read() (decoded when an encoding is set) until nullopt.
  if (s.drain_encoding && !s.encoding_first) socket.set_encoding(*s.drain_encoding);
  std::string rest;
  while (auto chunk = co_await socket.read()) {
    check(!chunk->empty(), "read() returned an empty chunk");
    trace("drain read", *chunk, chunk->size());
    rest.append(*chunk);
  }
  const std::string_view raw = stream.substr(pos);
  if (s.drain_encoding) {
    check(rest == decode(*s.drain_encoding, raw), "decoded read()s differ from Decoder's text");
  } else {
    check(rest == raw, "read()s differ from the rest of the stream");
  }
  check(!co_await socket.read(), "read() after nullopt returned bytes");
  check(socket.bytes_read() == stream.size(), "bytes_read() differs from the bytes sent");
}

struct fixture {
  asio::io_context io{1};
  coronet::Server server{{.allow_half_open = true}};
  int port = 0;

  fixture() {
    server.listen(io.get_executor(), {.port = 0, .host = "127.0.0.1"});
    port = server.address()->port;
  }
};

awaitable<void> one_input(fixture& f, const scenario& s) {
  auto ex = co_await asio::this_coro::executor;
  coronet::Socket client =
      co_await coronet::connect({.host = "127.0.0.1", .port = f.port, .no_delay = true});
  coronet::Socket server = co_await f.server.accept();
  bool written = false;
  std::exception_ptr write_failure;
  asio::co_spawn(ex, write_all(client, server, s), [&](std::exception_ptr e) {
    write_failure = e;
    written = true;
  });
  co_await read_all(server, s);
  for (int i = 0; i < 1000 && !written; ++i) co_await asio::post(ex, asio::use_awaitable);
  check(written, "the writer did not finish after the reader saw FIN");
  if (write_failure) std::rethrow_exception(write_failure);
  // RST rather than FIN: no TIME_WAIT left behind by hundreds of thousands of inputs.
  server.reset_and_destroy();
  client.destroy();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture f;
  const std::optional<scenario> s = parse(data, size);
  if (!s) return 0;
  bool finished = false;
  std::exception_ptr failure;
  asio::co_spawn(f.io, one_input(f, *s), [&](std::exception_ptr e) {
    failure = e;
    finished = true;
  });
  f.io.restart();
  f.io.run_for(5s);
  if (!finished) fail("hung: the input did not finish within 5 s");
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      fail("unexpected exception:", e.what());
    }
  }
  return 0;
}
