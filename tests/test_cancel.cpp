// Cancellation: every read form and write()/end()/drain(), cancelled through `||`
// with a timer, through bind_cancellation_slot, while waiting and while racing a
// completion. The contract (docs/guide.md, "Cancellation"): the operation either
// completed or left the socket as if it never started; no byte lost, none doubled,
// and no caller's buffer read after the operation returned. Run under ASan and TSan
// like every suite, so a read from freed memory fails here.
#include "support.hpp"

using coronet::Socket;
using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;

namespace {

using timer = asio::steady_timer;

/// A deadline that has already passed: `op || expired()` races op's completion.
coronet::awaitable<void> expired() {
  timer t(co_await asio::this_coro::executor, 0ms);
  co_await t.async_wait(asio::use_awaitable);
}

coronet::awaitable<void> after(std::chrono::milliseconds d) {
  timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

/// Sends `data` from another thread's point of view: a plain blocking socket, so
/// the peer's pace does not depend on the io_context under test.
class trickle {
 public:
  trickle(int port, std::string data, std::size_t piece) : data_(std::move(data)) {
    socket_.connect({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)});
    socket_.set_option(asio::ip::tcp::no_delay(true));
    thread_ = std::thread([this, piece] {
      for (std::size_t at = 0; at < data_.size(); at += piece) {
        asio::write(socket_, asio::buffer(data_.data() + at, std::min(piece, data_.size() - at)));
      }
      socket_.shutdown(asio::socket_base::shutdown_send);
    });
  }
  ~trickle() { thread_.join(); }

 private:
  asio::io_context io_{1};
  asio::ip::tcp::socket socket_{io_};
  std::string data_;
  std::thread thread_;
};

/// One read of the given form; what it returned, appended to `got`. False at FIN.
coronet::awaitable<bool> read_one(Socket& s, const std::string& form, std::string& got) {
  if (form == "read_some") {
    char buffer[7];
    const std::size_t n = co_await s.read_some(std::span<char>(buffer));
    got.append(buffer, n);
    co_return n > 0;
  }
  std::optional<std::string_view> chunk;
  if (form == "read") chunk = co_await s.read();
  if (form == "read_line") chunk = co_await s.read_line(64);
  if (form == "read_until") chunk = co_await s.read_until(";", 64);
  if (form == "read_exactly") chunk = co_await s.read_exactly(5);
  if (!chunk) co_return false;
  got.append(*chunk);
  if (form == "read_line") got += '\n';
  co_return true;
}

/// Lines of five bytes with every delimiter the forms use: "0000\n" "0001;" ...
std::string framed_stream(int lines) {
  std::string s;
  for (int i = 0; i < lines; ++i) {
    char line[6];
    std::snprintf(line, sizeof line, "%04d", i % 10000);
    s.append(line, 4);
    s += (i % 2 == 0) ? '\n' : ';';
  }
  return s;
}

/// Starts `op`, lets it reach its wait, cancels it through its cancellation slot,
/// and returns what it ended with: the coronet::error it must throw, or nullopt
/// when it ended otherwise (which the caller's CHECK then reports).
coronet::awaitable<std::optional<coronet::error>> cancel_while_waiting(
    coronet::awaitable<void> op) {
  auto ex = co_await asio::this_coro::executor;
  asio::cancellation_signal signal;
  std::optional<std::exception_ptr> outcome;
  asio::co_spawn(
      ex, std::move(op),
      asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { outcome = e; }));
  co_await test::settle([] { return false; }, 20);  // it waits now
  signal.emit(asio::cancellation_type::terminal);
  co_await test::settle([&] { return outcome.has_value(); });
  if (!outcome || !*outcome) co_return std::nullopt;
  try {
    std::rethrow_exception(*outcome);
  } catch (const coronet::error& e) {  // coronet's own type, never a bare system_error
    co_return e;
  } catch (...) {
  }
  co_return std::nullopt;
}

/// Far more than the kernel holds between a sender with a 4 KB send buffer (see
/// stall()) and a peer that does not read (the buffer and the peer's first receive
/// window, some 70 KB on loopback): a write of it waits. Through ordinary buffers
/// that took 48 MB, which cost seconds to make, send and check under a sanitizer.
constexpr std::size_t stalling_size = 4 << 20;

/// Makes writes on `sender` wait early: a 4 KB send buffer.
void stall(Socket& sender) {
  sender.native().set_option(asio::socket_base::send_buffer_size(4096));
}

/// The stall has done its part. Through 4 KB loopback paces what is still queued
/// by the reader's delayed ACKs (seconds for megabytes): an ordinary buffer again.
void end_stall(Socket& sender) {
  sender.native().set_option(asio::socket_base::send_buffer_size(1 << 20));
}

bool is_cancellation(const std::optional<coronet::error>& e) {
  return e && e->code() == std::errc::operation_canceled &&
         std::string(e->what()).find("cancelled") != std::string::npos;
}

const char* const read_forms[] = {"read", "read_some", "read_line", "read_until", "read_exactly"};

}  // namespace

TEST_CASE("a read raced against a deadline that has passed loses no byte (each read form)") {
  for (const std::string form : read_forms) {
    CAPTURE(form);
    test::run([form]() -> coronet::awaitable<void> {
      test::pair p;
      co_await test::make_pair(p);
      // read_line and read_until need their own delimiter on every frame.
      std::string sent;
      for (int i = 0; i < 200; ++i) sent += form == "read_until" ? "abcd;" : "abcd\n";
      std::string got;
      int cancelled = 0;
      for (std::size_t at = 0; at < sent.size(); at += 5) {
        co_await p.client.write(std::string_view(sent).substr(at, 5));
        // The bytes are on their way; the deadline has already passed. Either side
        // may win the race, but the bytes must reach the next read if the timer wins.
        try {
          std::string piece;
          auto outcome = co_await ([&]() -> coronet::awaitable<bool> {
            co_return co_await read_one(p.accepted, form, piece);
          }() || expired());
          if (outcome.index() == 0)
            got += piece;
          else
            ++cancelled;
        } catch (const coronet::error& e) {
          FAIL("a cancelled read threw " << e.what());
        }
      }
      co_await p.client.end();
      while (co_await read_one(p.accepted, form, got)) {
      }
      MESSAGE(form << ": " << cancelled << " of 200 reads lost the race to the deadline");
      CHECK(got == sent);
    });
  }
}

TEST_CASE(
    "a trickling peer and a short deadline on every read: every byte arrives once, in order") {
  for (const std::string form : read_forms) {
    CAPTURE(form);
    test::run([form]() -> coronet::awaitable<void> {
      coronet::Server server;
      const int port = co_await test::listen_loopback(server);
      const std::string sent = framed_stream(4000);  // 20,000 bytes
      trickle peer(port, sent, 7);
      Socket s = co_await server.accept();
      std::string got;
      std::string expected = sent;
      bool open = true;
      for (int round = 0; open && round < 200000; ++round) {
        std::string piece;
        auto outcome = co_await ([&]() -> coronet::awaitable<bool> {
          co_return co_await read_one(s, form, piece);
        }() || after(1ms));
        if (outcome.index() == 0) {
          got += piece;
          open = std::get<0>(outcome);
        }
      }
      if (form == "read_line" || form == "read_until") {
        // These forms see only complete frames of their own delimiter; compare those.
        std::string filtered;
        const char delimiter = form == "read_line" ? '\n' : ';';
        std::size_t start = 0;
        for (std::size_t i = 0; i < expected.size(); ++i) {
          if (expected[i] == delimiter) {
            filtered.append(expected, start, i + 1 - start);
            start = i + 1;
          }
        }
        expected = filtered;  // (read_line drops each "\n"; read_one puts it back)
      }
      CHECK(got.size() == expected.size());
      CHECK(got == expected);
    });
  }
}

TEST_CASE("a read cancelled through its cancellation slot while it waits reads on afterwards") {
  for (const std::string form : read_forms) {
    CAPTURE(form);
    test::run([form]() -> coronet::awaitable<void> {
      test::pair p;
      co_await test::make_pair(p);
      std::string ignored;
      auto reading = [&]() -> coronet::awaitable<void> {
        co_await read_one(p.accepted, form, ignored);
      };
      CHECK(is_cancellation(co_await cancel_while_waiting(reading())));
      co_await p.client.write("abcd\nabcd;");
      std::string got;
      CHECK(co_await read_one(p.accepted, form, got));
      CHECK(!got.empty());
      CHECK(std::string("abcd\nabcd;").starts_with(got));
    });
  }
}

TEST_CASE(
    "a cancelled write never reads the caller's buffer afterwards, and its bytes still leave") {
  // The reviewer's reproduction: one coroutine keeps writing 4 MiB blocks to a slow
  // reader, another writes with a deadline and frees its buffer when the deadline
  // wins, a third keeps the loop busy. Under ASan a read from the freed buffer fails.
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    auto ex = co_await asio::this_coro::executor;
    const std::string block = test::random_bytes(4 << 20, 1);
    bool writing = true;
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          for (int i = 0; i < 6 && writing; ++i) co_await p.accepted.write(block);
        },
        asio::detached);
    // The third party: work that holds the thread 300 µs at a time, so the flusher's
    // progress and the deadline land in the same turn.
    asio::co_spawn(
        ex,
        [&]() -> coronet::awaitable<void> {
          while (writing) {
            const auto until = std::chrono::steady_clock::now() + 300us;
            while (std::chrono::steady_clock::now() < until) {
            }
            co_await asio::post(ex, asio::use_awaitable);
          }
        },
        asio::detached);
    int cancelled = 0;
    for (int i = 0; i < 20; ++i) {
      auto buffer = std::make_unique<std::string>(test::random_bytes(256 << 10, 100 + i));
      auto outcome = co_await (p.accepted.write(*buffer) || after(1ms));
      if (outcome.index() == 1) ++cancelled;
      std::fill(buffer->begin(), buffer->end(), 'X');  // what a reuse of the buffer does
      buffer.reset();                                  // ... or its release
    }
    writing = false;
    asio::co_spawn(ex, p.accepted.end(), asio::detached);  // FIN once all of it has left
    std::string got = co_await test::read_all(p.client);
    MESSAGE(cancelled << " of 20 writes were cancelled by their deadline");
    CHECK(cancelled > 0);
    // The blocks and the cancelled writes interleave only at write boundaries, and
    // every byte of every write arrives: none of it is the scribbled 'X'.
    CHECK(got.find(std::string(64, 'X')) == std::string::npos);
    CHECK(got.size() % (256 << 10) == 0);
  });
}

TEST_CASE("write, end and drain cancelled by a deadline: queued bytes leave in order, FIN after") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    stall(p.accepted);
    const std::string big = test::random_bytes(stalling_size, 5);
    auto w = co_await (p.accepted.write(big) || after(5ms));
    CHECK(w.index() == 1);
    auto d = co_await (p.accepted.drain() || after(1ms));
    CHECK(d.index() == 1);
    const std::string tail = "and the tail";
    auto e = co_await (p.accepted.end(tail) || after(1ms));
    CHECK(e.index() == 1);
    end_stall(p.accepted);
    std::string got = co_await test::read_all(p.client);
    CHECK(got.size() == big.size() + tail.size());
    CHECK(test::checksum(got) == test::checksum(big + tail));
  });
}

TEST_CASE("cancellation is reported as coronet::error for every awaitable on the socket") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    stall(p.client);
    const std::string big = test::random_bytes(stalling_size, 6);
    std::vector<std::function<coronet::awaitable<void>()>> ops = {
        [&]() -> coronet::awaitable<void> { co_await p.accepted.read(); },
        [&]() -> coronet::awaitable<void> { co_await p.accepted.read_line(); },
        [&]() -> coronet::awaitable<void> { co_await p.client.write(big); },
    };
    for (auto& op : ops) CHECK(is_cancellation(co_await cancel_while_waiting(op())));
  });
}

TEST_CASE("the idle timeout reaches a read waiting on a paused socket (as Node's 'timeout')") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    p.accepted.pause();
    p.accepted.set_timeout(30ms);
    auto e = co_await test::expect_error(p.accepted.read());
    CHECK(e.code() == coronet::errc::timeout);
    CHECK_FALSE(p.accepted.destroyed());  // a notice, not a close
    p.accepted.resume();
    co_await p.client.write("still here");
    auto chunk = co_await p.accepted.read();
    REQUIRE(chunk);
    CHECK(*chunk == "still here");
  });
}

TEST_CASE("huge idle timeouts mean 'not for a very long time', not 'at once'") {
  for (auto idle : {std::chrono::milliseconds::max(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::years(300)),
                    std::chrono::milliseconds(std::chrono::hours(24 * 365))}) {
    CAPTURE(idle.count());
    test::run([idle]() -> coronet::awaitable<void> {
      test::pair p;
      co_await test::make_pair(p);
      p.accepted.set_timeout(idle);
      // Before the fix the deadline overflowed into the past and this read timed out
      // at once. (`||` waits for an operand that succeeds, so the read reports here.)
      std::optional<coronet::error> failed;
      auto reading = [&]() -> coronet::awaitable<void> {
        try {
          co_await p.accepted.read();
        } catch (const coronet::error& e) {
          if (e.code() != std::errc::operation_canceled) failed = e;  // the timer won: fine
        }
      };
      co_await (reading() || after(50ms));
      CHECK_FALSE(failed.has_value());
    });
  }
}

TEST_CASE("a burst read() finds waiting arrives as one chunk, not the inline buffer's worth") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    std::string batch;
    for (int i = 0; i < 16; ++i) batch += "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n";
    REQUIRE(batch.size() > 2 * 256);
    co_await p.client.write(batch);  // one segment on loopback
    auto chunk = co_await p.accepted.read();
    REQUIRE(chunk);
    CHECK(chunk->size() == batch.size());
  });
}

TEST_CASE(
    "write, end and drain cancelled through their slot while they wait: bytes and FIN still go") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    stall(p.accepted);
    const std::string big = test::random_bytes(stalling_size, 8);
    CHECK(is_cancellation(co_await cancel_while_waiting(p.accepted.write(big))));
    CHECK(is_cancellation(co_await cancel_while_waiting(p.accepted.drain())));
    CHECK(is_cancellation(co_await cancel_while_waiting(p.accepted.end("tail"))));
    end_stall(p.accepted);
    std::string got = co_await test::read_all(p.client);
    CHECK(got.size() == big.size() + 4);
    CHECK(test::checksum(got) == test::checksum(big + "tail"));
  });
}

TEST_CASE("a write racing a deadline that has passed: sent once, or copied and sent once") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    std::string expected;
    for (int i = 0; i < 200; ++i) {
      auto piece = std::make_unique<std::string>(test::random_bytes(1000 + i, 200 + i));
      expected += *piece;
      co_await (p.accepted.write(*piece) || expired());
      std::fill(piece->begin(), piece->end(), 'X');
    }
    co_await p.accepted.end();
    std::string got = co_await test::read_all(p.client);
    CHECK(got.size() == expected.size());
    CHECK(test::checksum(got) == test::checksum(expected));
  });
}

// accept(), connect() and wait_closed(): each way of cancelling, while waiting and
// racing a completion. A cancelled accept() or connect() leaves no descriptor, and
// the connection a cancelled accept() did not take is the next accept()'s.

namespace {

/// `op` awaited by a coroutine of the caller's own, whose cancellation reaches it.
coronet::awaitable<void> in_parent(coronet::awaitable<void> op) {
  auto nested = [](coronet::awaitable<void> inner) -> coronet::awaitable<void> {
    co_await std::move(inner);
  };
  co_await nested(std::move(op));
}

/// One turn of the executor: as the first operand of `||`, it completes before an
/// operation whose result is already queued, so that operation loses the race.
coronet::awaitable<void> one_turn() {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
}

/// How a test cancels an operation that waits.
enum class way { deadline_or, slot, parent };
const way all_ways[] = {way::deadline_or, way::slot, way::parent};

std::string name(way w) {
  switch (w) {
    case way::deadline_or: return "|| with a timer";
    case way::slot: return "bind_cancellation_slot";
    case way::parent: return "a parent coroutine";
  }
  return "?";
}

/// Cancels `op` the given way while it waits. True when it ended as a cancellation
/// must: "<what> cancelled" (through `||`, which swallows the operand's error: the
/// timer won).
coronet::awaitable<bool> cancelled_while_waiting(way w, coronet::awaitable<void> op,
                                                 const std::string& what) {
  if (w == way::deadline_or) {
    auto outcome = co_await (std::move(op) || after(20ms));
    co_return outcome.index() == 1;
  }
  // Chosen before the co_await: g++ 12 loses a conditional operand inside one.
  coronet::awaitable<void> cancelled = std::move(op);
  if (w == way::parent) cancelled = in_parent(std::move(cancelled));
  auto e = co_await cancel_while_waiting(std::move(cancelled));
  co_return is_cancellation(e) && std::string(e->what()) == what + " cancelled";
}

/// The io_context makes its reactor's descriptors on first use; count after that.
coronet::awaitable<int> descriptors_now() {
  asio::steady_timer first_use(co_await asio::this_coro::executor);
  co_return test::open_descriptors();
}

}  // namespace

TEST_CASE("accept() cancelled while it waits: no descriptor left, the next client is accepted") {
  for (way w : all_ways) {
    CAPTURE(name(w));
    test::run([w]() -> coronet::awaitable<void> {
      coronet::Server server;
      const int port = co_await test::listen_loopback(server);
      const int before = co_await descriptors_now();
      auto accepting = [&]() -> coronet::awaitable<void> { co_await server.accept(); };
      CHECK(co_await cancelled_while_waiting(w, accepting(), "accept"));
      CHECK(test::open_descriptors() == before);
      CHECK(server.listening());
      auto client = co_await coronet::connect(port, "127.0.0.1");
      auto accepted = co_await server.accept();
      CHECK(accepted.remote_port() == client.local_port());
    });
  }
}

TEST_CASE("accept() racing a cancellation: no connection is lost or taken twice") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    constexpr int clients = 40;
    std::vector<coronet::Socket> dialled;
    std::vector<int> seen;
    int lost_races = 0;
    auto note = [&](coronet::Socket& s) { seen.push_back(s.remote_port()); };
    for (int i = 0; i < clients; ++i) {
      // The connection waits in the backlog, so accept() completes at once; the
      // turn before it completes first and cancels it.
      dialled.push_back(co_await coronet::connect(port, "127.0.0.1"));
      auto outcome = co_await (one_turn() || server.accept());
      if (outcome.index() == 1) {
        note(std::get<1>(outcome));
      } else {
        ++lost_races;
      }
    }
    // What the cancelled accepts did not take, the next ones do.
    while (static_cast<int>(seen.size()) < clients) {
      auto outcome = co_await (server.accept() || after(2s));
      if (outcome.index() == 1) break;
      note(std::get<0>(outcome));
    }
    MESSAGE(lost_races << " of " << clients << " accepts lost the race to a cancellation");
    std::vector<int> expected;
    for (auto& d : dialled) expected.push_back(d.local_port());
    std::sort(seen.begin(), seen.end());
    std::sort(expected.begin(), expected.end());
    CHECK(seen == expected);
  });
}

TEST_CASE("connect() cancelled while it waits: no descriptor left, as 'connect cancelled'") {
  for (way w : all_ways) {
    CAPTURE(name(w));
    test::run([w]() -> coronet::awaitable<void> {
      test::blackhole silent;  // SYNs go unanswered: connect() waits
      const int before = co_await descriptors_now();
      auto connecting = [&]() -> coronet::awaitable<void> {
        co_await coronet::connect(silent.port(), "127.0.0.1");
      };
      CHECK(co_await cancelled_while_waiting(w, connecting(), "connect"));
      // With its own timeout option, the cancellation is reported as such too.
      auto bounded = [&]() -> coronet::awaitable<void> {
        co_await coronet::connect({.host = "127.0.0.1", .port = silent.port(), .timeout = 10s});
      };
      CHECK(co_await cancelled_while_waiting(w, bounded(), "connect"));
      // And a name with two addresses, raced Happy Eyeballs style: ::1 refuses at
      // once, 127.0.0.1 never answers.
      auto racing = [&]() -> coronet::awaitable<void> {
        co_await coronet::connect(
            {.host = "two.example", .port = silent.port(), .lookup = [](std::string_view) {
               return std::vector<asio::ip::address>{asio::ip::make_address("::1"),
                                                     asio::ip::make_address("127.0.0.1")};
             }});
      };
      CHECK(co_await cancelled_while_waiting(w, racing(), "connect"));
      // (On io_uring an abandoned attempt's number is freed a turn later, once its
      // cancelled operation is back: detail/descriptor_hold.hpp.)
      co_await test::settle([&] { return test::open_descriptors() == before; }, 100);
      CHECK(test::open_descriptors() == before);
    });
  }
}

TEST_CASE("connect() cancelled while the system resolver works: cancelled once it returns") {
  test::run([]() -> coronet::awaitable<void> {
    const int before = co_await descriptors_now();
    asio::cancellation_signal signal;
    std::optional<std::exception_ptr> outcome;
    asio::co_spawn(co_await asio::this_coro::executor, coronet::connect(1, "localhost"),
                   asio::bind_cancellation_slot(signal.slot(),
                                                [&](std::exception_ptr e, auto) { outcome = e; }));
    signal.emit(asio::cancellation_type::terminal);
    for (int i = 0; i < 1000 && !outcome; ++i) co_await after(5ms);  // getaddrinfo's thread
    REQUIRE(outcome);
    REQUIRE(*outcome);
    try {
      std::rethrow_exception(*outcome);
    } catch (const coronet::error& e) {
      CHECK(std::string(e.what()) == "connect cancelled");  // not "connect ECONNREFUSED"
    }
    CHECK(test::open_descriptors() <= before + 3);  // the resolver's own reactor, kept by Asio
  });
}

TEST_CASE("connect() racing a cancellation: connected or cancelled, never a leaked descriptor") {
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    const int before = co_await descriptors_now();
    int cancelled = 0;
    for (int i = 0; i < 40; ++i) {
      auto outcome = co_await (one_turn() || coronet::connect(port, "127.0.0.1"));
      if (outcome.index() == 0) ++cancelled;
    }
    // Cancelled at once through a slot: it reports a cancellation, never Asio's error.
    for (int i = 0; i < 20; ++i) {
      asio::cancellation_signal signal;
      std::optional<std::exception_ptr> outcome;
      asio::co_spawn(co_await asio::this_coro::executor, coronet::connect(port, "127.0.0.1"),
                     asio::bind_cancellation_slot(
                         signal.slot(), [&](std::exception_ptr e, auto) { outcome = e; }));
      signal.emit(asio::cancellation_type::terminal);
      co_await test::settle([&] { return outcome.has_value(); });
      REQUIRE(outcome);
      if (*outcome) {
        try {
          std::rethrow_exception(*outcome);
        } catch (const coronet::error& e) {
          CHECK(std::string(e.what()) == "connect cancelled");
        }
      }
    }
    MESSAGE(cancelled << " of 40 connects lost the race to a cancellation");
    // The server's backlog holds the client ends it has not accepted: close them.
    server.close();
    co_await test::settle([&] { return test::open_descriptors() == before - 1; }, 100);
    CHECK(test::open_descriptors() == before - 1);  // less the listening socket
  });
}

TEST_CASE("wait_closed() cancelled while it waits changes nothing on the server") {
  for (way w : all_ways) {
    CAPTURE(name(w));
    test::run([w]() -> coronet::awaitable<void> {
      test::pair p;
      co_await test::make_pair(p);
      p.server.close();
      auto waiting = [&]() -> coronet::awaitable<void> { co_await p.server.wait_closed(); };
      CHECK(co_await cancelled_while_waiting(w, waiting(), "wait_closed"));
      CHECK(p.server.connections() == 1);
      p.accepted.destroy();
      co_await p.server.wait_closed();
      CHECK(p.server.connections() == 0);
    });
  }
}

TEST_CASE("wait_closed() racing its completion: completes or reports a cancellation") {
  test::run([]() -> coronet::awaitable<void> {
    test::pair p;
    co_await test::make_pair(p);
    p.server.close();
    auto ex = co_await asio::this_coro::executor;
    asio::cancellation_signal signal;
    std::optional<std::exception_ptr> outcome;
    asio::co_spawn(
        ex, p.server.wait_closed(),
        asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e) { outcome = e; }));
    co_await test::settle([] { return false; }, 5);
    p.accepted.destroy();  // the last connection closes and, in the same turn,
    signal.emit(asio::cancellation_type::terminal);  // the waiter is cancelled
    co_await test::settle([&] { return outcome.has_value(); });
    REQUIRE(outcome);
    if (*outcome) {
      try {
        std::rethrow_exception(*outcome);
      } catch (const coronet::error& e) {
        CHECK(std::string(e.what()) == "wait_closed cancelled");
      }
    }
    CHECK(p.server.connections() == 0);
  });
}

TEST_CASE(
    "connect() with a local address cancelled before its first attempt runs reads no freed "
    "option") {
  // The attempt is spawned, and runs after connect()'s frame (which owns the option
  // strings) may be gone; it must not read local_address from there (ASan: a
  // use-after-free before the fix).
  test::run([]() -> coronet::awaitable<void> {
    coronet::Server server;
    const int port = co_await test::listen_loopback(server);
    auto ex = co_await asio::this_coro::executor;
    using namespace asio::experimental::awaitable_operators;
    for (int round = 0; round < 20; ++round) {
      std::string local = "127.0.0.1";  // the caller's string dies with this iteration too
      auto outcome =
          co_await (coronet::connect({.host = "127.0.0.1", .port = port, .local_address = local}) ||
                    asio::post(ex, asio::use_awaitable));
      local.assign(32, 'x');
      // Let the spawned attempt run now that connect() is gone.
      co_await test::settle([] { return false; }, 20);
      (void)outcome;
    }
    server.close();
  });
}
