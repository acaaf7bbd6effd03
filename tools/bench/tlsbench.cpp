// tlsbench: the backends and load client of tools/bench/passthrough and tools/bench/https-sites
// (bulk throughput, closed-loop connection rate, open-loop latency, idle connections), on
// OpenSSL with non-blocking sockets and epoll, so one small tool drives every proxy the same way.
//
//   tlsbench server     --listen IP:PORT --cert FILE --key FILE [--threads N]   (TLS backend)
//   tlsbench httpserver --listen IP:PORT [--threads N]          (plain HTTP/1.1 backend)
//   tlsbench bulk    --connect IP:PORT --sni NAME --bytes N [--max-seconds S]
//                    [--http download|upload]
//   tlsbench rate    --connect IP:PORT --sni NAME --concurrency C --seconds S [--threads T]
//                    [--http PATH]
//   tlsbench latency --connect IP:PORT --sni NAME --rate R --seconds S [--http PATH --conns N]
//   tlsbench idle    --connect IP:PORT --sni NAME --count N [--http PATH]
//   every client mode: [--plain 1] (plain TCP instead of TLS: the direct HTTP reference)
//
// Wire protocol after the handshake (client -> `server`, one line): "P\n" is answered with
// "pong\n"; "S <n>\n" is answered with n bytes. With --http the client speaks HTTP/1.1 to
// `httpserver` (or a proxy in front of it) instead, Host = the SNI: bulk downloads
// GET /big?bytes=N or POSTs N bytes to /upload; rate sends one "GET PATH" with
// "Connection: close" per connection; latency measures requests (not handshakes) on --conns
// keep-alive connections opened beforehand; idle does one keep-alive request per connection
// before holding it. Every handshake is a full one: the client caches no sessions. Each client
// mode prints one line of key=value figures on stdout; `idle` prints it once every connection
// is open, then holds them until its stdin reaches EOF and prints how many were still open.
// `cpu_s` is the client's own CPU time for the run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tlsbench_client.h"
#include "tlsbench_common.h"

namespace tlsbench {
namespace {

// ---- bulk: one connection, blocking ----------------------------------------------------

bool writeAll(int fd, SSL* ssl, const char* data, size_t n) {
  while (n > 0) {
    uint32_t want = 0;
    int r = ioWrite(fd, ssl, data, n, want);
    if (r == 0) {
      return false;  // a blocking socket: any "want" is its send timeout
    }
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Reads up to `bytes` of payload (the raw stream, or with `reply` the body of one HTTP
// response), stopping early after `maxSeconds` (> 0); false when the stream broke.
bool receive(int fd, SSL* ssl, uint64_t bytes, double maxSeconds, Clock::time_point t0,
             HttpReply* reply, uint64_t& got) {
  std::vector<char> buf(kChunk);
  got = 0;
  while (got < bytes) {
    uint32_t want = 0;
    int r = ioRead(fd, ssl, buf.data(), buf.size(), want);
    if (r == 0) {
      return false;
    }
    uint64_t before = got;
    if (reply != nullptr) {
      int f = reply->feed(buf.data(), static_cast<size_t>(r));
      if (f < 0 || (f == 1 && reply->status != 200)) {
        return false;
      }
      got = reply->inBody ? reply->bodySize - reply->bodyLeft : 0;
      if (f == 1) {
        return true;  // the whole response (the caller compares sizes)
      }
    } else {
      got += static_cast<uint64_t>(r);
    }
    if (maxSeconds > 0 && (got >> 20) != (before >> 20) && secondsSince(t0) > maxSeconds) {
      break;  // checked about once per MiB
    }
  }
  return true;
}

// POST /upload with a Content-Length body of `bytes` (or what fits in `maxSeconds`), then the
// answer, which must be the count the backend received.
bool upload(int fd, SSL* ssl, const std::string& host, uint64_t bytes, double maxSeconds,
            Clock::time_point t0, uint64_t& sent) {
  std::string head =
      "POST /upload HTTP/1.1\r\nHost: " + host +
      "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(bytes) +
      "\r\n\r\n";
  if (!writeAll(fd, ssl, head.data(), head.size())) {
    return false;
  }
  std::vector<char> chunk(kChunk, 'x');
  sent = 0;
  while (sent < bytes) {
    uint32_t want = 0;
    int r = ioWrite(fd, ssl, chunk.data(), std::min<uint64_t>(bytes - sent, kChunk), want);
    if (r == 0) {
      return false;
    }
    uint64_t before = sent;
    sent += static_cast<uint64_t>(r);
    if (maxSeconds > 0 && (sent >> 20) != (before >> 20) && secondsSince(t0) > maxSeconds) {
      return true;  // cut short: no answer to wait for
    }
  }
  HttpReply reply;
  uint64_t ignored = 0;
  return receive(fd, ssl, UINT64_MAX, 0, t0, &reply, ignored) &&
         reply.body == std::to_string(bytes);
}

int runBulk(const Args& args) {
  Target t = targetOf(args);
  uint64_t bytes = args.number("bytes", 0, true);
  // Bounds the run on a slow or busy machine: the figure is then over what arrived in time.
  double maxSeconds = static_cast<double>(args.number("max-seconds", 0));
  std::string http = args.get("http") != nullptr ? args.need("http") : "";
  if (!http.empty() && http != "download" && http != "upload") {
    die("bulk: --http wants download or upload");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), sizeof t.addr) != 0) {
    die("bulk: connect failed");
  }
  SSL* ssl = nullptr;
  if (t.ctx != nullptr) {
    ssl = SSL_new(t.ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, t.sni.c_str());
    if (SSL_connect(ssl) != 1) {
      die("bulk: handshake failed");
    }
  }
  auto t0 = Clock::now();
  double cpu0 = cpuSeconds();
  uint64_t got = 0;
  bool ok = false;
  if (http == "upload") {
    ok = upload(fd, ssl, t.sni, bytes, maxSeconds, t0, got);
  } else {
    std::string cmd = http.empty() ? "S " + std::to_string(bytes) + "\n"
                                   : httpGet("/big?bytes=" + std::to_string(bytes), t.sni, false);
    HttpReply reply;
    ok = writeAll(fd, ssl, cmd.data(), cmd.size()) &&
         receive(fd, ssl, bytes, maxSeconds, t0, http.empty() ? nullptr : &reply, got);
  }
  double s = secondsSince(t0);
  double cpu = cpuSeconds() - cpu0;
  if (!ok) {
    std::fprintf(stderr, "tlsbench: bulk: transfer broke after %llu of %llu bytes\n",
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(bytes));
    return 1;
  }
  if (got < bytes) {
    // Cut short: a reset is fine, the other side just sees an error.
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  } else if (ssl != nullptr) {
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  close(fd);
  std::printf("bulk bytes=%llu seconds=%.3f MBps=%.1f cpu_s=%.3f\n",
              static_cast<unsigned long long>(got), s, static_cast<double>(got) / s / 1e6, cpu);
  return 0;
}

// ---- rate: new connections, closed loop ------------------------------------------------

int runRate(const Args& args) {
  Target target = targetOf(args);
  unsigned concurrency = static_cast<unsigned>(args.number("concurrency", 0, true));
  double seconds = static_cast<double>(args.number("seconds", 0, true));
  unsigned threads = std::max(1u, static_cast<unsigned>(args.number("threads", 2)));
  if (concurrency < threads) {
    die("rate: --concurrency must be >= --threads");
  }
  // --http PATH: one request per connection ("Connection: close"), its response read whole.
  std::string request;
  if (args.get("http") != nullptr) {
    request = httpGet(args.need("http"), target.sni, true);
  }
  std::atomic<uint64_t> done{0}, failed{0};
  auto t0 = Clock::now();
  double cpu0 = cpuSeconds();
  auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    unsigned mine = concurrency / threads + (t < concurrency % threads ? 1 : 0);
    pool.emplace_back([&, mine] {
      ClientLoop loop{target, request.empty() ? nullptr : &request};
      for (unsigned i = 0; i < mine; ++i) {
        loop.add(Clock::now());
      }
      uint64_t counted = 0, failedCounted = 0;
      while (Clock::now() < end) {
        auto leftMs = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
        loop.poll(static_cast<int>(std::clamp<int64_t>(leftMs.count(), 0, 50)));
        // Count only what completed inside the window; keep the concurrency constant.
        counted = loop.done;
        failedCounted = loop.failed;
        while (loop.live.size() < mine && Clock::now() < end) {
          loop.add(Clock::now());
        }
      }
      done += counted;
      failed += failedCounted;
    });
  }
  for (auto& t : pool) {
    t.join();
  }
  std::printf("rate conns=%llu failed=%llu seconds=%.2f concurrency=%u cps=%.1f cpu_s=%.3f\n",
              static_cast<unsigned long long>(done.load()),
              static_cast<unsigned long long>(failed.load()), seconds, concurrency,
              static_cast<double>(done.load()) / seconds, cpuSeconds() - cpu0);
  return done.load() > 0 ? 0 : 1;
}

// ---- latency: open loop ----------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

void printLatency(uint64_t n, uint64_t failed, double rate, const std::vector<double>& seconds) {
  std::printf("latency n=%llu failed=%llu rate=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(failed), rate,
              percentile(seconds, 0.50) * 1e3, percentile(seconds, 0.99) * 1e3,
              percentile(seconds, 1.0) * 1e3);
}

// Handshake latency: connection i is due at t0 + i/R whatever happened to earlier ones, and
// its latency counts from that due time (a late launch is the system's delay, not hidden).
int runHandshakeLatency(const Target& target, double rate, double seconds) {
  ClientLoop loop{target, nullptr};
  auto total = static_cast<uint64_t>(rate * seconds);
  auto t0 = Clock::now();
  auto interval = std::chrono::duration<double>(1.0 / rate);
  uint64_t launched = 0;
  while (launched < total) {
    auto due = t0 + std::chrono::duration_cast<Clock::duration>(interval * launched);
    auto now = Clock::now();
    if (now >= due) {
      loop.add(due);
      ++launched;
      continue;
    }
    auto waitMs = std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count();
    loop.poll(static_cast<int>(std::max<int64_t>(0, waitMs)));
  }
  auto drainEnd = Clock::now() + kConnTimeout;
  while (!loop.live.empty() && Clock::now() < drainEnd) {
    loop.poll(50);
  }
  printLatency(loop.done, loop.failed, rate, loop.handshakes);
  return loop.done > 0 ? 0 : 1;
}

// The schedule of runHttpLatency on a pool of held keep-alive connections.
struct RequestPool {
  ClientLoop& loop;
  std::vector<ClientConn*> idle;
  size_t busy = 0;
  uint64_t failed = 0;
  std::vector<double> latencies;

  void dispatch(ClientConn* c, Clock::time_point due) {
    c->scheduled = due;
    c->deadline = Clock::now() + kConnTimeout;
    c->state = ClientConn::State::Command;
    c->progress = 0;
    c->reply.reset();
    c->busy = true;
    ++busy;
    drive(c);
  }

  void drive(ClientConn* c) {
    uint32_t want = 0;
    Step s = stepClient(*c, true, want);
    if (s == Step::Pending) {
      if (c->busy && c->state == ClientConn::State::Hold) {
        latencies.push_back(secondsSince(c->scheduled));
        c->busy = false;
        --busy;
        idle.push_back(c);
      }
      setEvents(loop.epfd, c->fd, c->events, want, c);
      return;
    }
    drop(c);
  }

  void drop(ClientConn* c) {
    if (c->busy) {
      ++failed;
      --busy;
    } else {
      ClientLoop::remove(idle, c);
    }
    ClientLoop::remove(loop.held, c);
    finishConn(c, false);
  }

  void expire() {
    auto now = Clock::now();
    std::vector<ClientConn*> late;
    for (ClientConn* c : loop.held) {
      if (c->busy && c->deadline < now) {
        late.push_back(c);
      }
    }
    for (ClientConn* c : late) {
      drop(c);
    }
  }
};

// Request latency: `--conns` keep-alive connections are opened first (not measured); then
// request i is due at t0 + i/R and its latency runs from that due time to the end of its
// response. A request waits in a queue while every connection is busy, and that wait counts:
// no coordinated omission. A timerfd wakes the loop at each due time (epoll's timeout has
// only millisecond resolution).
int runHttpLatency(const Args& args, const Target& target, double rate, double seconds) {
  std::string request = httpGet(args.need("http"), target.sni, false);
  ClientLoop loop{target, &request};
  loop.openHeld(args.number("conns", 16), 64);
  if (loop.held.empty()) {
    die("latency: no connection could be opened");
  }
  RequestPool pool{loop, loop.held, 0, 0, {}};
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  int timerTag = 0;
  epoll_event tev{};
  tev.events = EPOLLIN;
  tev.data.ptr = &timerTag;
  epoll_ctl(loop.epfd, EPOLL_CTL_ADD, tfd, &tev);
  auto total = static_cast<uint64_t>(rate * seconds);
  auto t0 = Clock::now();
  auto dueOf = [&](uint64_t i) {
    return t0 + std::chrono::duration_cast<Clock::duration>(
                    std::chrono::duration<double>(static_cast<double>(i) / rate));
  };
  std::deque<Clock::time_point> queue;
  uint64_t launched = 0;
  auto end = Clock::time_point::max();
  for (;;) {
    auto now = Clock::now();
    while (launched < total && dueOf(launched) <= now) {
      queue.push_back(dueOf(launched++));
    }
    while (!queue.empty() && !pool.idle.empty()) {
      ClientConn* c = pool.idle.back();
      pool.idle.pop_back();
      pool.dispatch(c, queue.front());
      queue.pop_front();
    }
    if (launched == total && end == Clock::time_point::max()) {
      end = now + kConnTimeout;  // the drain: what is still in flight gets this long
    }
    if ((launched == total && queue.empty() && pool.busy == 0) || now > end || loop.held.empty()) {
      break;
    }
    if (launched < total) {
      auto ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(dueOf(launched).time_since_epoch())
              .count();
      itimerspec its{};
      its.it_value.tv_sec = ns / 1000000000;
      its.it_value.tv_nsec = ns % 1000000000;
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, nullptr);  // steady_clock is MONOTONIC
    }
    epoll_event events[256];
    int n = epoll_wait(loop.epfd, events, 256, 50);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == &timerTag) {
        uint64_t expirations = 0;
        ssize_t ignored = read(tfd, &expirations, sizeof expirations);
        (void)ignored;
        continue;
      }
      pool.drive(static_cast<ClientConn*>(events[i].data.ptr));
    }
    pool.expire();
  }
  close(tfd);
  // Whatever was never answered (queued, in flight, never launched) counts as failed.
  uint64_t failed = pool.failed + pool.busy + queue.size() + (total - launched);
  printLatency(pool.latencies.size(), failed, rate, pool.latencies);
  return pool.latencies.empty() ? 1 : 0;
}

int runLatency(const Args& args) {
  Target target = targetOf(args);
  double rate = static_cast<double>(args.number("rate", 0, true));
  double seconds = static_cast<double>(args.number("seconds", 0, true));
  if (rate <= 0 || seconds <= 0) {
    die("latency: --rate and --seconds must be > 0");
  }
  if (args.get("http") != nullptr) {
    return runHttpLatency(args, target, rate, seconds);
  }
  return runHandshakeLatency(target, rate, seconds);
}

// ---- idle: many connections held open -------------------------------------------------

int runIdle(const Args& args) {
  Target target = targetOf(args);
  uint64_t count = args.number("count", 0, true);
  unsigned inflight = static_cast<unsigned>(args.number("inflight", 64));
  // --http PATH: one keep-alive request per connection before it idles.
  std::string request;
  if (args.get("http") != nullptr) {
    request = httpGet(args.need("http"), target.sni, false);
  }
  ClientLoop loop{target, request.empty() ? nullptr : &request};
  auto t0 = Clock::now();
  loop.openHeld(count, inflight);
  std::printf("idle open=%zu failed=%llu seconds=%.2f\n", loop.held.size(),
              static_cast<unsigned long long>(loop.failed), secondsSince(t0));
  std::fflush(stdout);
  // Hold until stdin ends (the caller measured what it wanted); a held connection the peer
  // closes meanwhile is counted as failed.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(loop.epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  uint64_t failedBefore = loop.failed;
  for (;;) {
    bool stdinReady = false;
    loop.poll(1000, &stdinReady);
    if (stdinReady) {
      char buf[64];
      ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
      if (r <= 0) {
        break;
      }
    }
  }
  std::printf("idle still_open=%zu dropped=%llu\n", loop.held.size(),
              static_cast<unsigned long long>(loop.failed - failedBefore));
  return 0;
}

}  // namespace
}  // namespace tlsbench

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: tlsbench server|httpserver|bulk|rate|latency|idle --key value ... (see "
                 "source)\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  tlsbench::raiseFileLimit();
  tlsbench::Args args;
  for (int i = 2; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
      std::fprintf(stderr, "tlsbench: expected --key value, got '%s'\n", argv[i]);
      return 2;
    }
    args.values[argv[i] + 2] = argv[i + 1];
    ++i;
  }
  std::string mode = argv[1];
  using Mode = int (*)(const tlsbench::Args&);
  const std::pair<const char*, Mode> modes[] = {
      {"server", tlsbench::runServer},   {"httpserver", tlsbench::runHttpServer},
      {"bulk", tlsbench::runBulk},       {"rate", tlsbench::runRate},
      {"latency", tlsbench::runLatency}, {"idle", tlsbench::runIdle}};
  for (const auto& [name, run] : modes) {
    if (mode == name) {
      return run(args);
    }
  }
  std::fprintf(stderr, "tlsbench: unknown mode '%s'\n", mode.c_str());
  return 2;
}
