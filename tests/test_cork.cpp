// Batching writes: Node's cork()/uncork(), a write() of several buffers in one
// sendmsg(), and readable_length() to know when a batch of requests is done.
#include "support.hpp"

#include <coronet/testing.hpp>

TEST_CASE("cork() holds writes until the matching uncork(), which sends them together") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    p.accepted.cork();
    co_await p.accepted.write("a");  // completes at once: the bytes are held
    CHECK(p.accepted.write_nowait("b"));
    CHECK(p.accepted.writable_length() == 2);
    CHECK(p.accepted.bytes_written() == 0);
    p.accepted.cork();
    p.accepted.uncork();  // nested: still corked
    CHECK(p.accepted.writable_corked() == 1);
    CHECK(p.accepted.bytes_written() == 0);
    p.accepted.uncork();
    CHECK(p.accepted.bytes_written() == 2);
    CHECK(p.accepted.writable_length() == 0);
    auto chunk = co_await p.client.read();  // one sendmsg, one segment
    REQUIRE(chunk);
    CHECK(*chunk == "ab");
    p.accepted.uncork();  // more uncork() than cork() is harmless, as in Node
  });
}

TEST_CASE("end() uncorks; drain() on a corked socket is a clear error, not a hang") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    p.accepted.cork();
    p.accepted.write_nowait("held");
    auto e = co_await test::expect_error(p.accepted.drain());
    CHECK(e.code() == coronet::errc::invalid_argument);
    CHECK(std::string(e.what()).find("uncork") != std::string::npos);
    co_await p.accepted.end(" and the end");
    CHECK(co_await test::read_all(p.client) == "held and the end");
  });
}

TEST_CASE("write() of several buffers sends them in order, as one gather write when it fits") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    auto p = co_await coronet::testing::socket_pair();
    const std::string head = "HTTP/1.1 200 OK\r\n", blank = "\r\n", body = "ok";
    const asio::const_buffer reply[] = {asio::buffer(head), asio::buffer(blank),
                                        asio::buffer(body)};
    co_await p.accepted.write(reply);
    CHECK(p.accepted.bytes_written() == head.size() + blank.size() + body.size());
    auto chunk = co_await p.client.read();
    REQUIRE(chunk);
    CHECK(*chunk == head + blank + body);

    // Far more than the kernel takes at once: the rest is queued and still in order.
    const std::string a = test::random_bytes(16 << 20, 1), b = test::random_bytes(16 << 20, 2),
                      c = test::random_bytes(16 << 20, 3);
    std::string got;
    bool done = false;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          got = co_await test::read_all(p.client);
          done = true;
        },
        asio::detached);
    const asio::const_buffer three[] = {asio::buffer(a), asio::buffer(b), asio::buffer(c)};
    co_await p.accepted.write(three);
    const std::vector<asio::const_buffer> tail{asio::buffer(body), asio::buffer(body)};
    CHECK(p.accepted.write_nowait(tail));
    co_await p.accepted.end();
    co_await test::settle([&] { return done; }, 1000000);
    CHECK(test::checksum(got) == test::checksum(a + b + c + body + body));
  });
}

TEST_CASE("readable_length() counts bytes received and not yet handed out") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    CHECK(p.accepted.readable_length() == 0);
    co_await p.client.write("one\ntwo\nthree\n");
    auto line = co_await p.accepted.read_line();
    REQUIRE(line);
    CHECK(*line == "one");
    CHECK(p.accepted.readable_length() == 10);  // "two\nthree\n"
    auto rest = co_await p.accepted.read();
    REQUIRE(rest);
    CHECK(*rest == "two\nthree\n");
    CHECK(p.accepted.readable_length() == 0);
  });
}

TEST_CASE("pipelined requests answered under cork() leave in one system call per batch") {
  test::run([]() -> coronet::awaitable<void> {
    auto p = co_await coronet::testing::socket_pair();
    std::string batch;
    for (int i = 0; i < 16; ++i) batch += "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    co_await p.client.write(batch);
    int answered = 0;
    p.accepted.cork();
    while (answered < 16) {
      auto request = co_await p.accepted.read_until("\r\n\r\n", 8192);
      REQUIRE(request);
      p.accepted.write_nowait("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      ++answered;
      if (p.accepted.readable_length() == 0) {
        CHECK(answered == 16);  // the whole batch arrived at once
        CHECK(p.accepted.bytes_written() == 0);
        p.accepted.uncork();  // sixteen replies, one sendmsg
        p.accepted.cork();
      }
    }
    CHECK(p.accepted.bytes_written() == 16 * 40u);
  });
}
