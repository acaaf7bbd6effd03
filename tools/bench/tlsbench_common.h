// tlsbench's shared pieces: argument parsing, addresses, clocks and CPU time, used by the TLS
// client modes (tlsbench.cpp) and the backends (tlsbench_tls_server.cpp,
// tlsbench_http_server.cpp).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

namespace tlsbench {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 64 * 1024;
inline double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU time of this process (user + system, all threads), so the caller can add up what
// client, proxy and backend spent: that figure does not depend on how busy the machine is.
inline double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

[[noreturn]] inline void die(const char* what) {
  std::fprintf(stderr, "tlsbench: %s\n", what);
  std::exit(2);
}

struct Args {
  std::map<std::string, std::string> values;
  const char* get(const char* key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : it->second.c_str();
  }
  std::string need(const char* key) const {
    const char* v = get(key);
    if (v == nullptr) {
      std::fprintf(stderr, "tlsbench: missing --%s\n", key);
      std::exit(2);
    }
    return v;
  }
  uint64_t number(const char* key, uint64_t fallback, bool required = false) const {
    const char* v = get(key);
    if (v == nullptr) {
      if (required) {
        need(key);
      }
      return fallback;
    }
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
      std::fprintf(stderr, "tlsbench: --%s wants a number, got '%s'\n", key, v);
      std::exit(2);
    }
    return n;
  }
};

inline sockaddr_in parseAddress(const std::string& text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    die("address must be IPv4:PORT");
  }
  std::string host = text.substr(0, colon);
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1 || *end != '\0' || port == 0 ||
      port > 65535) {
    die("address must be IPv4:PORT");
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

inline void raiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Returns the epoll events an SSL call's error asks for, or 0 when the connection is dead.
inline uint32_t wantedEvents(SSL* ssl, int ret) {
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return EPOLLIN;
    case SSL_ERROR_WANT_WRITE:
      return EPOLLOUT;
    default:
      ERR_clear_error();
      return 0;
  }
}

inline void setEvents(int epfd, int fd, uint32_t& current, uint32_t wanted, void* tag) {
  if (current == wanted) {
    return;
  }
  epoll_event ev{};
  ev.events = wanted;
  ev.data.ptr = tag;
  epoll_ctl(epfd, current == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
  current = wanted;
}

// The value of header `name` in an HTTP head ("Name: value\r\n" lines after the first line),
// case-insensitive; empty when absent.
inline std::string_view httpHeader(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos + 2 < head.size()) {
    size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    std::string_view line = head.substr(start, end == std::string_view::npos ? end : end - start);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      return v;
    }
    pos = end;
  }
  return {};
}

constexpr const char kPong[] = "pong\n";
constexpr size_t kPongLen = sizeof(kPong) - 1;

// The backends (tlsbench_tls_server.cpp, tlsbench_http_server.cpp).
int runServer(const Args& args);
int runHttpServer(const Args& args);

}  // namespace tlsbench
