// tlsbench's client side: targets (TLS or plain), the connection state machine (connect,
// handshake, one command or HTTP request, its reply, hold), the HTTP response reader and the
// event loop the client modes in tlsbench.cpp drive.
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tlsbench_common.h"

namespace tlsbench {

// A connection that makes no progress for this long counts as failed (bounds every mode).
constexpr auto kConnTimeout = std::chrono::seconds(10);

// Where a client mode connects: the address, the SNI (also the HTTP Host), and TLS or not.
struct Target {
  sockaddr_in addr{};
  std::string sni;
  SSL_CTX* ctx = nullptr;  // nullptr: plain TCP (--plain 1, the direct HTTP reference)
};

// Reads one HTTP/1.1 response with a Content-Length body, which is what every proxy forwards
// from tlsbench httpserver; a chunked or malformed response counts as a failed request.
struct HttpReply {
  std::string head;
  std::string body;  // kept only when short (the upload's answer)
  bool inBody = false;
  int status = 0;
  uint64_t bodySize = 0;
  uint64_t bodyLeft = 0;

  void reset() {
    head.clear();
    body.clear();
    inBody = false;
    status = 0;
    bodySize = bodyLeft = 0;
  }

  // 1: the response is complete; 0: more is needed; -1: unusable.
  int feed(const char* data, size_t n) {
    if (inBody) {
      if (n > bodyLeft) {
        return -1;  // bytes past the response: nothing was pipelined
      }
      if (bodySize <= 64) {
        body.append(data, n);
      }
      bodyLeft -= n;
      return bodyLeft == 0 ? 1 : 0;
    }
    size_t scanFrom = head.size() >= 3 ? head.size() - 3 : 0;
    head.append(data, n);
    size_t end = head.find("\r\n\r\n", scanFrom);
    if (end == std::string::npos) {
      return head.size() > 16384 ? -1 : 0;
    }
    if (head.compare(0, 9, "HTTP/1.1 ") != 0 || head.size() < 12) {
      return -1;
    }
    status = std::atoi(head.c_str() + 9);
    std::string_view fields(head.data(), end + 2);
    std::string_view length = httpHeader(fields, "Content-Length");
    if (!httpHeader(fields, "Transfer-Encoding").empty() || length.empty()) {
      return -1;
    }
    bodySize = bodyLeft = std::strtoull(std::string(length).c_str(), nullptr, 10);
    std::string rest = head.substr(end + 4);
    head.resize(end + 4);
    inBody = true;
    return feed(rest.data(), rest.size());
  }
};

struct ClientConn {
  int fd = -1;
  SSL* ssl = nullptr;  // nullptr: plain TCP
  enum class State { Connecting, Handshake, Command, Reply, Hold } state = State::Connecting;
  size_t progress = 0;                   // bytes of the command sent / of the reply read
  const std::string* request = nullptr;  // --http: the request; otherwise "P\n" -> "pong\n"
  HttpReply reply;
  Clock::time_point scheduled;
  Clock::time_point deadline;
  double handshakeSeconds = 0;  // scheduled start -> handshake complete
  uint32_t events = 0;
  bool held = false;  // counted and moved to ClientLoop::held
  bool busy = false;  // latency --http: a request of the schedule is in flight
};

enum class Step { Pending, Done, Failed };

// The client side of every TLS connection: TLS 1.3, no certificate check, no session reuse.
SSL_CTX* clientContext();

// --connect, --sni and --plain.
Target targetOf(const Args& args);

// An HTTP/1.1 GET of `path` for the --http modes; `close` asks for one request per connection.
std::string httpGet(const std::string& path, const std::string& host, bool close);

// One read or write on a connection, TLS or plain (ssl == nullptr): the bytes moved (> 0),
// or 0 with `want` set to the epoll events to wait for (0: the connection is dead).
int ioRead(int fd, SSL* ssl, char* buf, size_t n, uint32_t& want);

int ioWrite(int fd, SSL* ssl, const char* buf, size_t n, uint32_t& want);

// Starts a non-blocking connect; nullptr when the socket cannot even be created.
ClientConn* startConn(const Target& t, Clock::time_point scheduled, const std::string* request);

// Closes and frees; `clean` sends TLS close_notify first.
void finishConn(ClientConn* c, bool clean);

// Connect, handshake, the command ("P\n" or the HTTP request), its reply; then Done, or Hold
// when `hold` is set (a held connection may be given another command by the caller).
Step stepClient(ClientConn& c, bool hold, uint32_t& want);

// One event loop of client connections, driven by the modes of tlsbench.cpp: they add
// connections and poll; the loop tracks which are in flight and which are held open.
struct ClientLoop {
  ClientLoop(const Target& t, const std::string* r) : target(t), request(r) {}
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  const Target& target;
  const std::string* request;  // --http: the request each connection sends
  bool hold = false;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<ClientConn*> live;  // in flight (not holding)
  std::vector<ClientConn*> held;
  uint64_t done = 0, failed = 0;
  std::vector<double> handshakes;

  ~ClientLoop() {
    for (auto* c : live) {
      finishConn(c, false);
    }
    for (auto* c : held) {
      finishConn(c, true);
    }
    close(epfd);
  }

  void add(Clock::time_point scheduled) {
    ClientConn* c = startConn(target, scheduled, request);
    if (c == nullptr) {
      ++failed;
      return;
    }
    live.push_back(c);
    if (c->state == ClientConn::State::Connecting) {
      setEvents(epfd, c->fd, c->events, EPOLLOUT, c);  // connect in progress
      return;
    }
    uint32_t want = 0;
    handle(c, want);
  }

  static void remove(std::vector<ClientConn*>& from, ClientConn* c) {
    auto it = std::find(from.begin(), from.end(), c);
    if (it != from.end()) {
      *it = from.back();
      from.pop_back();
    }
  }

  void handle(ClientConn* c, uint32_t& want) {
    Step s = stepClient(*c, hold, want);
    if (s == Step::Pending) {
      if (c->state == ClientConn::State::Hold && !c->held) {
        c->held = true;
        remove(live, c);
        held.push_back(c);
        ++done;
        handshakes.push_back(c->handshakeSeconds);
      }
      setEvents(epfd, c->fd, c->events, want, c);
      return;
    }
    remove(c->held ? held : live, c);
    if (s == Step::Done) {
      ++done;
      handshakes.push_back(c->handshakeSeconds);
    } else {
      ++failed;
    }
    finishConn(c, s == Step::Done);
  }

  // Waits up to `timeoutMs` and handles what is ready; expires connections past deadline.
  void poll(int timeoutMs, bool* extraReady = nullptr) {
    epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, timeoutMs);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        if (extraReady != nullptr) {
          *extraReady = true;
        }
        continue;
      }
      auto* c = static_cast<ClientConn*>(events[i].data.ptr);
      uint32_t want = 0;
      handle(c, want);
    }
    auto now = Clock::now();
    for (size_t i = 0; i < live.size();) {
      if (live[i]->deadline < now) {
        ClientConn* c = live[i];
        live[i] = live.back();
        live.pop_back();
        ++failed;
        finishConn(c, false);
      } else {
        ++i;
      }
    }
  }

  // Opens `count` connections, `inflight` at a time, each held after its exchange.
  void openHeld(uint64_t count, unsigned inflight) {
    hold = true;
    uint64_t started = 0;
    while (done + failed < count) {
      while (started < count && live.size() < inflight) {
        add(Clock::now());
        ++started;
      }
      poll(50);
    }
  }
};

}  // namespace tlsbench
