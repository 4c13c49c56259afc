// set_encoding() on a real socket: text never cut mid-character, Node's tail rule,
// and writes in an encoding.
#include "support.hpp"

#include <coronet/testing.hpp>

using coronet::encoding;

TEST_CASE("a UTF-8 character split across TCP segments is delivered whole") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto p = co_await coronet::testing::socket_pair();
    p.accepted.set_encoding(encoding::utf8);
    CHECK(p.accepted.get_encoding() == encoding::utf8);

    const std::string euro = "\xE2\x82\xAC";  // three bytes
    co_await p.client.write(euro.substr(0, 2));
    bool got = false;
    std::string text;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          text = std::string(*co_await p.accepted.read());
          got = true;
        },
        asio::detached);
    co_await test::settle([&] { return got; }, 200);
    CHECK_FALSE(got);  // two bytes of three: nothing to deliver yet
    co_await p.client.write(euro.substr(2));
    co_await test::settle([&] { return got; });
    CHECK(got);
    CHECK(text == euro);
  });
}

TEST_CASE("every split point of multi-byte text reads back identical") {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";  // a é € 😀 z
  for (std::size_t cut = 1; cut < text.size(); ++cut) {
    CAPTURE(cut);
    test::run([&]() -> coronet::awaitable<void> {
      auto p = co_await coronet::testing::socket_pair();
      p.accepted.set_encoding(encoding::utf8);
      co_await p.client.write(text.substr(0, cut));
      // Read what is there now, so the second half arrives as a separate segment.
      std::string got(*co_await p.accepted.read());
      co_await p.client.end(text.substr(cut));
      got += co_await test::read_all(p.accepted);
      CHECK(got == text);
      CHECK(got.find("\xEF\xBF\xBD") == std::string::npos);
    });
  }
}

TEST_CASE("an incomplete character at FIN becomes one U+FFFD, as in Node") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    p.accepted.set_encoding(encoding::utf8);
    co_await p.client.end("ok\xE2\x82");
    CHECK(co_await test::read_all(p.accepted) == "ok\xEF\xBF\xBD");
  });
}

TEST_CASE("hex and base64 reads, and writes given in an encoding") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    p.accepted.set_encoding(encoding::hex);
    co_await p.client.write("68656c6c6f", encoding::hex);   // "hello" as hex text
    co_await p.client.write("IHdvcmxk", encoding::base64);  // " world"
    co_await p.client.end();
    CHECK(co_await test::read_all(p.accepted) == "68656c6c6f20776f726c64");
    CHECK(p.client.bytes_written() == 11);  // bytes on the wire, not characters
  });
}
