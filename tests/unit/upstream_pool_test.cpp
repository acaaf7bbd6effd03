// The upstream pool against a fake worker context: which links it keeps when their owner is
// done with them.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "proxy/handlers/upstream_pool.h"

namespace edgeplane::proxy {
namespace {

// What the pool needs of a worker: registration (always granted), timers (ignored) and
// retirement (deleted with the context).
class PoolContext final : public Context {
 public:
  int64_t now() const override { return 1000; }
  const EngineOptions& options() const override { return options_; }
  Metrics& metrics() override { return metrics_; }
  std::shared_ptr<const ActiveConfig> currentConfig() override { return nullptr; }
  bool draining() const override { return false; }
  bool watch(int, EventTarget*, uint32_t, uint32_t) override { return true; }
  bool rewatch(int, EventTarget*, uint32_t, uint32_t) override { return true; }
  void unwatch(int) override {}
  void schedule(EventTarget*, int64_t) override {}
  void unschedule(EventTarget*) override {}
  void markReady(EventTarget*) override {}
  void retire(std::unique_ptr<EventTarget> target) override {
    retired_.push_back(std::move(target));
  }
  int upstreamSocket(std::string_view, int) override { return -1; }
  bool acquirePipe(int&, int&, size_t&) override { return false; }
  void releasePipe(int, int, bool) override {}
  std::span<uint8_t> scratch() override { return {}; }
  uint32_t random() override { return 4; }
  void accessLog(std::string_view) override {}
  void eventLog(std::string_view) override {}

  size_t retired() const { return retired_.size(); }

 private:
  EngineOptions options_;
  Metrics metrics_;
  std::vector<std::unique_ptr<EventTarget>> retired_;
};

class Owner final : public EventTarget {
 public:
  void onIo(uint32_t, uint32_t) override {}
  void onTimer() override {}
};

// The backend's end of a connection whose other end the pool holds.
struct Pair {
  int pooled = -1;
  int backend = -1;
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    pooled = sv[0];
    backend = sv[1];
  }
  ~Pair() { ::close(backend); }
};

// The owner may not have seen the backend's last event (links are edge-triggered and an event
// that comes while a handler owns the link goes to the handler): a link given back as reusable
// is kept only when nothing is waiting on it, neither bytes nor the end of the stream.
TEST(UpstreamPool, KeepsAReleasedLinkOnlyWhenNothingWaitsOnIt) {
  PoolContext ctx;
  UpstreamPool pool(ctx);
  Owner owner;
  enum class Backend { Quiet, Closed, SentBytes };
  int port = 8000;
  for (Backend b : {Backend::Quiet, Backend::Closed, Backend::SentBytes}) {
    Pair pair;
    const Endpoint backend = *Endpoint::parse("10.50.0.5:" + std::to_string(++port));
    UpstreamLink* link = pool.adopt("ep-a", backend, pair.pooled, &owner, 1);
    ASSERT_NE(link, nullptr);
    if (b == Backend::Closed) {
      ::shutdown(pair.backend, SHUT_WR);
    } else if (b == Backend::SentBytes) {
      ASSERT_EQ(::send(pair.backend, "H", 1, 0), 1);
    }
    pool.release(link, true);
    UpstreamLink* again = pool.take("ep-a", backend, &owner, 1);
    EXPECT_EQ(again != nullptr, b == Backend::Quiet) << static_cast<int>(b);
    if (again != nullptr) {
      pool.release(again, false);
    }
  }
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(ctx.retired(), 3u);
}

// What a backend sends or does while its link sits idle (a late body after a HEAD answer, bytes
// past its Content-Length, its close) is seen by the pool only when the link's event is
// dispatched, and another handler in the same batch may take the link first: take checks the
// link again and never hands out one with bytes or an end of stream waiting (the bytes would
// be the next client's response).
TEST(UpstreamPool, TakeNeverHandsOutALinkWithBytesOrACloseWaiting) {
  PoolContext ctx;
  UpstreamPool pool(ctx);
  Owner owner;
  const Endpoint backend = *Endpoint::parse("10.50.0.5:8100");
  Pair stray;
  Pair closed;
  Pair quiet;
  for (Pair* p : {&quiet, &closed, &stray}) {  // taken last first: stray, then closed, then quiet
    UpstreamLink* link = pool.adopt("ep-a", backend, p->pooled, &owner, 1);
    ASSERT_NE(link, nullptr);
    pool.release(link, true);
  }
  ASSERT_EQ(pool.idleCount(), 3u);
  ASSERT_EQ(::send(stray.backend, "H", 1, 0), 1);
  ASSERT_EQ(::shutdown(closed.backend, SHUT_WR), 0);
  UpstreamLink* taken = pool.take("ep-a", backend, &owner, 1);
  ASSERT_NE(taken, nullptr);  // the quiet one; the other two closed on the way
  EXPECT_EQ(pool.idleCount(), 0u);
  EXPECT_EQ(ctx.retired(), 2u);
  pool.release(taken, false);
  EXPECT_EQ(pool.take("ep-a", backend, &owner, 1), nullptr);
}

}  // namespace
}  // namespace edgeplane::proxy
