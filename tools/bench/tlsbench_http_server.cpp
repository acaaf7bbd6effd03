// tlsbench httpserver: the plain HTTP/1.1 backend of tools/bench/https-sites. Fixed answers,
// epoll, one SO_REUSEPORT listener per thread, so it costs far less than the proxies in front.
//
//   GET /1k                 -> 200, 1024 bytes
//   GET /big?bytes=N        -> 200, N bytes (streamed from one buffer)
//   POST|PUT /upload        -> reads and discards the Content-Length body, 200 with the count
//   GET /accepted           -> 200, how many connections it has accepted so far (shows the
//                              benchmark whether a proxy reuses its upstream connections)
//   anything else           -> 404
// Keep-alive unless the request says "Connection: close"; requests may be pipelined. Chunked
// request bodies are refused (411): every client of the benchmark sends Content-Length.
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tlsbench_common.h"

namespace tlsbench {
namespace {

constexpr size_t kMaxHead = 16 * 1024;

std::atomic<uint64_t> accepted{0};

struct HttpConn {
  int fd = -1;
  std::string in;   // received, not yet consumed
  std::string out;  // response head (and small body) still to send
  size_t outPos = 0;
  uint64_t stream = 0;      // body bytes still to send from the shared buffer
  uint64_t discard = 0;     // request body bytes still to read and drop
  uint64_t bodyTotal = 0;   // size of the body being discarded (the answer)
  bool closeAfter = false;  // "Connection: close": close once the response is out
  bool dead = false;
  uint32_t events = 0;
};

std::string responseHead(const char* status, uint64_t length) {
  return std::string("HTTP/1.1 ") + status +
         "\r\nContent-Type: application/octet-stream\r\nContent-Length: " + std::to_string(length) +
         "\r\n\r\n";
}

// Starts the answer to one complete request head (a body to discard, a response to send).
void startRequest(HttpConn& c, std::string_view head) {
  size_t sp1 = head.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : head.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    c.out = responseHead("400 Bad Request", 0);
    c.closeAfter = true;
    return;
  }
  std::string_view method = head.substr(0, sp1);
  std::string_view target = head.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view connection = httpHeader(head, "Connection");
  c.closeAfter = connection.size() == 5 && strncasecmp(connection.data(), "close", 5) == 0;
  if (!httpHeader(head, "Transfer-Encoding").empty()) {
    c.out = responseHead("411 Length Required", 0);
    c.closeAfter = true;
    return;
  }
  std::string_view length = httpHeader(head, "Content-Length");
  uint64_t body = length.empty() ? 0 : std::strtoull(std::string(length).c_str(), nullptr, 10);
  if (method == "GET" && target == "/1k") {
    c.out = responseHead("200 OK", 1024);
    c.out.append(1024, 'x');
  } else if (method == "GET" && target.starts_with("/big?bytes=")) {
    c.stream = std::strtoull(std::string(target.substr(11)).c_str(), nullptr, 10);
    c.out = responseHead("200 OK", c.stream);
  } else if (method == "GET" && target == "/accepted") {
    std::string count = std::to_string(accepted.load());
    c.out = responseHead("200 OK", count.size()) + count;
  } else if ((method == "POST" || method == "PUT") && target == "/upload") {
    c.discard = body;
    c.bodyTotal = body;  // the answer follows once the body is in
    return;
  } else {
    c.out = responseHead("404 Not Found", 0);
  }
  c.discard = body;  // a body on another request is read and dropped too
  c.bodyTotal = 0;
}

void uploadDone(HttpConn& c) {
  std::string count = std::to_string(c.bodyTotal);
  c.out = responseHead("200 OK", count.size()) + count;
  c.bodyTotal = 0;
}

// Reads, answers and writes until the socket would block; sets `want` (0: close it).
void stepHttp(HttpConn& c, const char* buffer, uint32_t& want) {
  char buf[kChunk];
  for (;;) {
    // Output first: the response in progress.
    if (c.outPos < c.out.size() || c.stream > 0) {
      ssize_t w;
      if (c.outPos < c.out.size()) {
        w = send(c.fd, c.out.data() + c.outPos, c.out.size() - c.outPos, MSG_NOSIGNAL);
      } else {
        w = send(c.fd, buffer, std::min<uint64_t>(c.stream, kChunk), MSG_NOSIGNAL);
      }
      if (w < 0) {
        want = errno == EAGAIN ? uint32_t{EPOLLOUT} : 0;
        return;
      }
      if (c.outPos < c.out.size()) {
        c.outPos += static_cast<size_t>(w);
      } else {
        c.stream -= static_cast<uint64_t>(w);
      }
      continue;
    }
    if (!c.out.empty()) {
      c.out.clear();
      c.outPos = 0;
      if (c.closeAfter) {
        want = 0;
        return;
      }
    }
    // A body being discarded: from what is buffered, then from the socket.
    if (c.discard > 0 && !c.in.empty()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(c.discard, c.in.size()));
      c.in.erase(0, n);
      c.discard -= n;
    }
    if (c.discard == 0 && c.bodyTotal > 0) {
      uploadDone(c);
      continue;
    }
    if (c.discard == 0) {
      size_t end = c.in.find("\r\n\r\n");
      if (end != std::string::npos) {
        startRequest(c, std::string_view(c.in).substr(0, end + 2));
        c.in.erase(0, end + 4);
        if (c.out.empty() && c.discard == 0 && c.bodyTotal == 0) {
          uploadDone(c);  // an upload of 0 bytes
        }
        continue;
      }
      if (c.in.size() > kMaxHead) {
        want = 0;
        return;
      }
    }
    ssize_t r = recv(c.fd, buf, sizeof buf, 0);
    if (r <= 0) {
      want = (r < 0 && errno == EAGAIN) ? uint32_t{EPOLLIN} : 0;
      return;
    }
    if (c.discard >= static_cast<uint64_t>(r) && c.in.empty()) {
      c.discard -= static_cast<uint64_t>(r);  // the bulk of an upload: never copied
    } else {
      c.in.append(buf, static_cast<size_t>(r));
    }
  }
}

void httpServerThread(sockaddr_in addr) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    std::perror("tlsbench: bind/listen");
    std::exit(2);
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<char> buffer(kChunk, 'x');
  std::vector<epoll_event> events(256);
  auto drive = [&](HttpConn* c) {
    uint32_t want = 0;
    stepHttp(*c, buffer.data(), want);
    if (want == 0) {
      close(c->fd);  // also removes it from the epoll set
      delete c;
      return;
    }
    if (c->events != want) {
      epoll_event ev{};
      ev.events = want;
      ev.data.ptr = c;
      epoll_ctl(epfd, c->events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
      c->events = want;
    }
  };
  for (;;) {
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<HttpConn*>(events[i].data.ptr);
      if (c != nullptr) {
        drive(c);
        continue;
      }
      for (;;) {
        int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        accepted.fetch_add(1, std::memory_order_relaxed);
        c = new HttpConn;
        c->fd = fd;
        drive(c);
      }
    }
  }
}

}  // namespace

int runHttpServer(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("listen"));
  unsigned threads = std::max(1u, static_cast<unsigned>(args.number("threads", 2)));
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) {
    pool.emplace_back(httpServerThread, addr);
  }
  std::fprintf(stdout, "tlsbench: serving HTTP on %s with %u threads\n",
               args.need("listen").c_str(), threads);
  std::fflush(stdout);
  for (auto& t : pool) {
    t.join();
  }
  return 0;
}

}  // namespace tlsbench
