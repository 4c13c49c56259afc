// Graceful shutdown: server.shutdown(grace) with connections in every state. An idle
// one (its handler waits in a read, nothing buffered, nothing queued) is ended at
// once and its read sees the end of the stream; one mid-request, one whose handler
// is busy and one whose reply is still queued finish their exchange and are ended
// when they go idle; one that never finishes is destroyed when grace runs out.
#include <map>

#include "support.hpp"

using coronet::Server;
using coronet::Socket;
using namespace std::chrono_literals;

namespace {

/// A door the test opens: handlers wait on it to stay "busy" as long as the test wants.
class gate {
 public:
  explicit gate(asio::any_io_executor ex) : timer_(ex, asio::steady_timer::time_point::max()) {}
  coronet::awaitable<void> wait() {
    while (!open_) co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
  }
  void open() {
    open_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool open_ = false;
};

constexpr std::size_t big_reply_size = 16 * 1024 * 1024;  // far more than loopback buffers

/// What the handlers share with the test.
struct lab {
  explicit lab(asio::any_io_executor ex) : slow(ex), stuck(ex) {}
  gate slow;   // "slow" requests reply once it opens
  gate stuck;  // "stuck" requests: opened only after the test
  int busy = 0;
  std::size_t queued = 0;  // bytes of the big reply still queued when the handler drains
  std::map<std::string, std::string> outcome;  // client name -> how its handler's reads ended
};

/// A line protocol: "name:N" names the connection, "slow" and "stuck" wait on a gate
/// before replying, "big" queues a 16 MiB reply and waits until it is out, "big, read
/// on" queues one and reads the next request meanwhile, anything else is echoed.
coronet::awaitable<void> handle(lab& l, Socket socket) {
  std::string name;
  try {
    while (auto line = co_await socket.read_line(1024)) {
      const std::string text(*line);
      if (text.starts_with("name:")) {
        name = text.substr(5);
        co_await socket.write("hi " + name + "\n");
      } else if (text == "slow" || text == "stuck") {
        ++l.busy;
        co_await (text == "slow" ? l.slow : l.stuck).wait();
        co_await socket.write("done: " + text + "\n");
      } else if (text == "big" || text == "big, read on") {
        socket.write_nowait(std::string(big_reply_size, 'x'));
        l.queued = socket.writable_length();
        // "big" waits here until it is out; "big, read on" reads on while it leaves.
        if (text == "big") co_await socket.drain();
      } else {
        co_await socket.write("echo: " + text + "\n");
      }
    }
    l.outcome[name] = "end of stream";
    co_await socket.end();
  } catch (const coronet::error& e) {
    l.outcome[name] = e.what();
  }
}

/// A client that has introduced itself (so its handler is running).
coronet::awaitable<Socket> client(int port, std::string_view first_bytes) {
  Socket s = co_await coronet::connect(port, "127.0.0.1");
  co_await s.write(first_bytes);
  auto hi = co_await s.read_line(64);
  REQUIRE(hi);
  CHECK(hi->starts_with("hi "));
  co_return s;
}

coronet::awaitable<std::optional<std::string>> line_of(Socket& s) {
  auto line = co_await s.read_line(1024);
  if (!line) co_return std::nullopt;
  co_return std::string(*line);
}

struct shutdown_run {
  bool done = false;
  coronet::ShutdownResult result;
  std::string error;
};

/// Starts server.shutdown(grace) beside the test and records how it ended.
void start_shutdown(Server& server, std::chrono::milliseconds grace, shutdown_run& run,
                    asio::any_io_executor ex,
                    asio::cancellation_slot slot = asio::cancellation_slot()) {
  asio::co_spawn(
      ex, server.shutdown(grace),
      asio::bind_cancellation_slot(slot, [&run](std::exception_ptr e, coronet::ShutdownResult r) {
        run.done = true;
        run.result = r;
        try {
          if (e) std::rethrow_exception(e);
        } catch (const std::exception& x) {
          run.error = x.what();
        }
      }));
}

}  // namespace

TEST_CASE("shutdown(): idle ends at once, mid-exchange ones finish, new connections refused") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    lab l(ex);
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve([&l](Socket s) { return handle(l, std::move(s)); }),
                   asio::detached);

    Socket idle = co_await client(port, "name:idle\n");
    Socket half = co_await client(port, "name:half\nech");  // half a request after its name
    Socket busy = co_await client(port, "name:busy\nslow\n");
    co_await test::settle([&] { return l.busy == 1; });
    REQUIRE(l.busy == 1);
    Socket reader = co_await client(port, "name:reader\nbig\n");  // then reads nothing for now
    co_await test::settle([&] { return l.queued > 0; });
    REQUIRE(l.queued > 0);
    l.queued = 0;
    Socket reading = co_await client(port, "name:reading\nbig, read on\n");
    co_await test::settle([&] { return l.queued > 0; });
    REQUIRE(l.queued > 0);

    // A request that reaches the server's kernel just as shutdown() begins, before
    // its handler has read it: that connection is mid-exchange, not idle.
    Socket late = co_await client(port, "name:late\n");
    co_await late.write("late\n");

    const auto started = std::chrono::steady_clock::now();
    shutdown_run run;
    start_shutdown(server, 20s, run, ex);

    // The idle one: FIN at once, and its handler's read saw the end of the stream.
    CHECK_FALSE(co_await line_of(idle));
    co_await test::settle([&] { return l.outcome.count("idle") > 0; });
    CHECK(l.outcome["idle"] == "end of stream");
    CHECK_FALSE(server.listening());
    auto refused = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
    CHECK(refused.code() == std::errc::connection_refused);

    CHECK(co_await line_of(late) == "echo: late");
    CHECK_FALSE(co_await line_of(late));

    // Mid-request: the rest of the line arrives after shutdown began and is answered.
    co_await half.write("o\n");
    CHECK(co_await line_of(half) == "echo: echo");
    CHECK_FALSE(co_await line_of(half));

    // Busy handler: shutdown waits for it; its reply arrives whole, then FIN.
    CHECK_FALSE(run.done);
    CHECK(l.outcome.count("busy") == 0);
    l.slow.open();
    CHECK(co_await line_of(busy) == "done: slow");
    CHECK_FALSE(co_await line_of(busy));

    // Slow readers: every queued byte of the reply arrives, then FIN, whether the
    // handler waits for it to leave or waits in a read meanwhile.
    CHECK((co_await test::read_all(reader)).size() == big_reply_size);
    CHECK((co_await test::read_all(reading)).size() == big_reply_size);

    co_await server.wait_closed();
    co_await test::settle([&] { return run.done; });
    REQUIRE(run.done);
    CHECK(run.error.empty());
    CHECK(run.result.graceful == 6);
    CHECK(run.result.cut == 0);
    // It did not wait for the grace period once every connection had ended.
    CHECK(std::chrono::steady_clock::now() - started < 10s);
    for (const char* name : {"idle", "late", "half", "busy", "reader", "reading"})
      CHECK_MESSAGE(l.outcome[name] == "end of stream", name);
  });
}

TEST_CASE("shutdown(): what has not finished when grace runs out is destroyed and counted as cut") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    lab l(ex);
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve([&l](Socket s) { return handle(l, std::move(s)); }),
                   asio::detached);
    Socket idle = co_await client(port, "name:idle\n");
    Socket stuck = co_await client(port, "name:stuck\nstuck\n");
    co_await test::settle([&] { return l.busy == 1; });
    REQUIRE(l.busy == 1);

    const auto started = std::chrono::steady_clock::now();
    shutdown_run run;
    start_shutdown(server, 200ms, run, ex);
    CHECK_FALSE(co_await line_of(idle));

    // The stuck one is closed without its reply once the grace period is over.
    std::optional<std::string> last;
    try {
      last = co_await line_of(stuck);
    } catch (const coronet::error&) {
    }
    CHECK_FALSE(last);
    CHECK(std::chrono::steady_clock::now() - started >= 200ms);
    co_await test::settle([&] { return run.done; });
    REQUIRE(run.done);
    CHECK(run.result.graceful == 1);
    CHECK(run.result.cut == 1);
    CHECK(server.connections() == 0);
    co_await server.wait_closed();

    // Its handler, when it wakes, finds the socket destroyed.
    l.stuck.open();
    co_await test::settle([&] { return l.outcome.count("stuck") > 0; });
    CHECK(l.outcome["stuck"].find("destroyed") != std::string::npos);
  });
}

namespace {

/// Handlers that wait in each read form, to see each one return the end of the stream.
coronet::awaitable<void> wait_in(std::string form, std::map<std::string, std::string>& outcome,
                                 Socket socket) {
  try {
    co_await socket.write("ready\n");
    bool more = true;
    if (form == "read") {
      more = (co_await socket.read()).has_value();
    } else if (form == "paused read") {
      socket.pause();
      more = (co_await socket.read()).has_value();
    } else if (form == "paused read_line") {
      socket.pause();
      more = (co_await socket.read_line(64)).has_value();
    } else if (form == "read_some") {
      char buffer[16];
      more = co_await socket.read_some(std::span<char>(buffer)) > 0;
    } else if (form == "read_exactly") {
      more = (co_await socket.read_exactly(4)).has_value();
    } else {
      more = (co_await socket.read_until(";", 64)).has_value();
    }
    outcome[form] = more ? "bytes" : "end of stream";
  } catch (const coronet::error& e) {
    outcome[form] = e.what();
  }
}

void every_read_form_sees_the_end(int concurrency_hint) {
  test::run(
      []() -> coronet::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        const std::vector<std::string> forms = {"read",      "paused read",  "paused read_line",
                                                "read_some", "read_exactly", "read_until"};
        std::map<std::string, std::string> outcome;
        Server server;
        const int port = co_await test::listen_loopback(server);
        std::vector<Socket> clients;
        for (const auto& form : forms) {
          Socket c = co_await coronet::connect(port, "127.0.0.1");
          Socket accepted = co_await server.accept();
          asio::co_spawn(ex, wait_in(form, outcome, std::move(accepted)), asio::detached);
          CHECK(co_await line_of(c) == "ready");
          clients.push_back(std::move(c));
        }
        // Some handlers wait in their read by now, others are on their way to it:
        // shutdown() ends the first at once and the others as they start waiting.
        const coronet::ShutdownResult result = co_await server.shutdown(20s);
        CHECK(result.graceful == forms.size());
        CHECK(result.cut == 0);
        for (auto& c : clients) CHECK_FALSE(co_await line_of(c));  // FIN, no bytes
        co_await test::settle([&] { return outcome.size() == forms.size(); });
        for (const auto& form : forms) CHECK_MESSAGE(outcome[form] == "end of stream", form);
      },
      30s, concurrency_hint);
}

}  // namespace

TEST_CASE(
    "shutdown(): every read form waiting on an idle connection returns the end of the stream") {
  every_read_form_sees_the_end(1);
  // io_contexts run by several threads wait through another path (a peek receive).
  every_read_form_sees_the_end(ASIO_CONCURRENCY_HINT_DEFAULT);
}

TEST_CASE("shutdown(): cancelled, the server stays closed and the connections run on") {
  test::run([]() -> coronet::awaitable<void> {
    auto ex = co_await asio::this_coro::executor;
    lab l(ex);
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve([&l](Socket s) { return handle(l, std::move(s)); }),
                   asio::detached);
    Socket idle = co_await client(port, "name:idle\n");
    Socket busy = co_await client(port, "name:busy\nslow\n");
    co_await test::settle([&] { return l.busy == 1; });

    asio::cancellation_signal cancel;
    shutdown_run run;
    start_shutdown(server, 20s, run, ex, cancel.slot());
    CHECK_FALSE(co_await line_of(idle));  // shutdown() has begun
    cancel.emit(asio::cancellation_type::terminal);
    co_await test::settle([&] { return run.done; });
    REQUIRE(run.done);
    CHECK(run.error == "shutdown cancelled");
    CHECK_FALSE(server.listening());
    auto refused = co_await test::expect_error(coronet::connect(port, "127.0.0.1"));
    CHECK(refused.code() == std::errc::connection_refused);

    // Nothing was cut: the busy one still gets its reply, and still ends once idle.
    CHECK(server.connections() == 1);
    l.slow.open();
    CHECK(co_await line_of(busy) == "done: slow");
    CHECK_FALSE(co_await line_of(busy));
    co_await server.wait_closed();
    co_await test::settle([&] { return l.outcome.count("busy") > 0; });
    CHECK(l.outcome["busy"] == "end of stream");
  });
}

TEST_CASE(
    "shutdown(): before listen() it has nothing to do; after close() it still ends connections") {
  test::run([]() -> coronet::awaitable<void> {
    Server never;
    const coronet::ShutdownResult nothing = co_await never.shutdown(1s);
    CHECK(nothing.graceful == 0);
    CHECK(nothing.cut == 0);

    auto ex = co_await asio::this_coro::executor;
    lab l(ex);
    Server server;
    const int port = co_await test::listen_loopback(server);
    asio::co_spawn(ex, server.serve([&l](Socket s) { return handle(l, std::move(s)); }),
                   asio::detached);
    Socket idle = co_await client(port, "name:idle\n");
    server.close();
    const coronet::ShutdownResult result = co_await server.shutdown(20s);
    CHECK(result.graceful == 1);
    CHECK(result.cut == 0);
    CHECK_FALSE(co_await line_of(idle));
  });
}
