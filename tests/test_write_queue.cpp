// The write queue on its own: order, sequence numbers, partial sends, growth.
#include <doctest/doctest.h>

#include <coronet/detail/write_queue.hpp>

#include <string>

using coronet::detail::write_queue;

namespace {

/// What a writev of the whole queue would send, as one string.
std::string gathered(const write_queue& q) {
  iovec iov[64];
  std::size_t n = q.gather(iov, 64);
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

}  // namespace

TEST_CASE("entries leave in order and complete by sequence number") {
  write_queue q;
  const std::string borrowed = "hello ";
  auto a = q.push_borrowed(borrowed.data(), borrowed.size());
  auto b = q.push_owned("world");
  CHECK(b == a + 1);
  CHECK(q.bytes() == 11);
  CHECK(gathered(q) == "hello world");

  q.consume(3);  // a short write
  CHECK(q.completed() < a);
  CHECK(gathered(q) == "lo world");
  q.consume(4);  // finishes the first entry and one byte of the second
  CHECK(q.completed() == a);
  CHECK(gathered(q) == "orld");
  q.consume(4);
  CHECK(q.completed() == b);
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
}

TEST_CASE("gather stops at the end marker: FIN waits for what precedes it") {
  write_queue q;
  q.push_owned("last words");
  auto fin = q.push_end();
  CHECK(gathered(q) == "last words");
  CHECK_FALSE(q.front_is_end());
  q.consume(10);
  CHECK(q.front_is_end());
  q.pop_end();
  CHECK(q.completed() == fin);
  CHECK(q.empty());
}

TEST_CASE("owned entries survive the ring growing, short strings included") {
  write_queue q;
  std::string expected;
  for (int i = 0; i < 100; ++i) {
    std::string piece = std::to_string(i) + ",";  // short: lives inside std::string (SSO)
    q.push_owned(piece);
    expected += piece;
  }
  iovec iov[128];
  std::size_t n = q.gather(iov, 128);
  CHECK(n == 100);
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out.append(static_cast<char*>(iov[i].iov_base), iov[i].iov_len);
  CHECK(out == expected);
}

TEST_CASE("gather honours its iovec limit") {
  write_queue q;
  for (int i = 0; i < 10; ++i) q.push_owned("x");
  iovec iov[4];
  CHECK(q.gather(iov, 4) == 4);
}

TEST_CASE("clear drops everything and counts it completed") {
  write_queue q;
  q.push_owned("a");
  auto last = q.push_owned("b");
  q.clear();
  CHECK(q.empty());
  CHECK(q.bytes() == 0);
  CHECK(q.completed() == last);
}
