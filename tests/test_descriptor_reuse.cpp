// A socket or server closed while one of its operations waits must not touch the
// descriptor that takes its number next. The kernel hands out the lowest free
// number, so a program that closes one connection and accepts the next reuses
// numbers all the time; what a closed socket's waiting operation does afterwards
// must stay with it (it ends with operation_aborted), never reach the new one.
//
// Asio 1.22's io_uring backend (-Dio_uring=enabled) does not keep them apart by
// itself: these tests found it, and detail/descriptor_hold.hpp is coronet's answer.
#include <optional>
#include <string>

#include "support.hpp"

namespace {

/// Runs `op` in the background and keeps how it ended.
template <typename T>
struct outcome {
  bool done = false;
  std::optional<T> value;
  std::string failure;
};

template <typename T>
std::shared_ptr<outcome<T>> launch(asio::any_io_executor ex, coronet::awaitable<T> op) {
  auto o = std::make_shared<outcome<T>>();
  asio::co_spawn(ex, std::move(op), [o](std::exception_ptr e, T value) {
    o->done = true;
    if (!e) {
      o->value.emplace(std::move(value));
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      o->failure = x.what();
    }
  });
  return o;
}

}  // namespace

TEST_CASE("a server closed while accept() waits never takes the next server's connection") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      coronet::Server first;
      co_await test::listen_loopback(first);
      auto stale = launch(ex, first.accept());
      co_await test::settle([] { return false; }, 3);  // the accept is waiting in the kernel
      first.close();
      coronet::Server second;  // most likely given the number first's listener had
      const int port = co_await test::listen_loopback(second);
      auto accepted = launch(ex, second.accept());
      coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
      co_await test::settle([&] { return accepted->done && stale->done; });
      REQUIRE(accepted->value);
      co_await client.write("hello");
      CHECK(co_await accepted->value->read() == std::optional<std::string_view>("hello"));
      CHECK(stale->failure == "accept aborted: the server was closed");
    }
  });
}

TEST_CASE("a socket destroyed while read() waits never takes the next connection's bytes") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      test::pair old;
      co_await test::make_pair(old);
      auto read_chunk = [](coronet::Socket& s) -> coronet::awaitable<std::string> {
        auto chunk = co_await s.read();
        co_return std::string(chunk.value_or("(end)"));
      };
      auto stale = launch(ex, read_chunk(old.accepted));
      co_await test::settle([] { return false; }, 3);  // the read is waiting in the kernel
      old.accepted.destroy();
      // Its descriptor number and Asio's state for it go to the next socket made.
      const int port = old.server.address()->port;
      coronet::Socket client = co_await coronet::connect(port, "127.0.0.1");
      coronet::Socket accepted = co_await old.server.accept();
      co_await accepted.write("yours");
      co_await client.write("mine");
      auto to_client = co_await coronet::timeout(std::chrono::seconds(5), client.read());
      auto to_server = co_await coronet::timeout(std::chrono::seconds(5), accepted.read());
      CHECK(to_client == std::optional<std::string_view>("yours"));
      CHECK(to_server == std::optional<std::string_view>("mine"));
      co_await test::settle([&] { return stale->done; });
      CHECK(stale->done);
      CHECK_FALSE(stale->value);
      CHECK(stale->failure == "read aborted: the socket was destroyed");
    }
  });
}
