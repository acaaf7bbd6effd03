// Publishing the proxy snapshot to the store, and the reload notice to the proxy's admin API.
#include "reconciler/cli/publish.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "schema/net.h"
#include "schema/secret_file.h"

namespace edgeplane::cli {

Result<Published> publishSnapshot(Store& store, const ProxySnapshot& snapshot,
                                  std::optional<int64_t> runId, int64_t nowMs) {
  const std::string body = snapshotToJson(snapshot);
  if (auto check = snapshotFromJson(body); !check) {
    return terminal("the proxy snapshot would be refused by the proxy, not written: " +
                    check.error().message);
  }
  // Compare and write under one write lock, so two appliers cannot both decide "changed".
  return store.transaction([&]() -> Result<Published> {
    auto latest = store.latestSnapshot();
    if (!latest) {
      return latest.error();
    }
    if (latest->has_value() && (*latest)->body == body) {
      return Published{(*latest)->generation, false, snapshot.routes.size()};
    }
    auto generation = store.writeSnapshot(body, nowMs, runId);
    if (!generation) {
      return generation.error();
    }
    return Published{*generation, true, snapshot.routes.size()};
  });
}

std::vector<ApiKeyRecord> apiKeyRecords(const ProxySnapshot& snapshot) {
  std::vector<ApiKeyRecord> out;
  for (const SnapshotApiKey& k : snapshot.api_keys) {
    ApiKeyRecord r{k.id, k.name, k.sha256, k.gateways, std::string(toString(k.role)), k.enabled};
    r.endpoints = k.endpoints;
    out.push_back(std::move(r));
  }
  return out;
}

Result<void> publishApiKeys(Store& store, const ProxySnapshot& snapshot,
                            std::optional<std::string> commit, int64_t nowMs) {
  return store.syncApiKeys(apiKeyRecords(snapshot), nowMs, std::move(commit));
}

namespace {

// Owns one socket descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

using Clock = std::chrono::steady_clock;

// A peer's bytes for a message: at most 80, anything unprintable as '?'.
std::string printable(std::string_view s) {
  std::string out(s.substr(0, 80));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      c = '?';
    }
  }
  return out;
}

// Waits for `events` on fd until the deadline: true when ready, false on timeout or error
// (errno set; ETIMEDOUT for the timeout).
bool waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      errno = ETIMEDOUT;
      return false;
    }
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) {
      return true;  // readable/writable, or an error/hang-up the next call reports
    }
    if (n < 0 && errno != EINTR) {
      return false;
    }
  }
}

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string host;  // the Host header
};

Result<Target> parseAdminAddress(const std::string& address) {
  Target t;
  constexpr std::string_view kUnix = "unix:";
  if (address.rfind(kUnix, 0) == 0) {
    const std::string path = address.substr(kUnix.size());
    sockaddr_un un{};
    if (path.empty() || path.size() >= sizeof(un.sun_path)) {
      return terminal("proxy admin address \"" + address + "\": the socket path must be 1 to " +
                      std::to_string(sizeof(un.sun_path) - 1) + " bytes");
    }
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&t.addr, &un, sizeof(un));
    t.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    t.host = "localhost";
    return t;
  }
  auto ep = Endpoint::parse(address);
  if (!ep || ep->port == 0) {
    return terminal("proxy admin address \"" + address + "\" is neither unix:/PATH nor ADDR:PORT");
  }
  t.len = toSockaddr(*ep, t.addr);
  t.host = ep->str();
  return t;
}

}  // namespace

Result<void> notifyProxy(const std::string& adminAddress, std::chrono::milliseconds timeout,
                         const std::optional<std::filesystem::path>& tokenFile) {
  auto target = parseAdminAddress(adminAddress);
  if (!target) {
    return target.error();
  }
  std::string authorization;
  if (tokenFile) {
    auto token = readSecretFile(*tokenFile, "proxy admin token file");
    if (!token) {
      return token.error();
    }
    authorization = "Authorization: Bearer " + *token + "\r\n";
  }
  const auto deadline = Clock::now() + timeout;
  const std::string where = "proxy admin at " + adminAddress;
  auto failed = [&](std::string_view what, int err) {
    return retryable(where + ": " + std::string(what) + ": " +
                     (err == ETIMEDOUT
                          ? "no answer within " + std::to_string(timeout.count()) + " ms"
                          : errnoText(err)));
  };

  Fd fd(::socket(target->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return failed("socket", errno);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target->addr), target->len) != 0) {
    // A unix socket with a full backlog says EAGAIN where TCP says EINPROGRESS.
    if (errno != EINPROGRESS && errno != EAGAIN) {
      return failed("connect", errno);
    }
    if (!waitFor(fd.get(), POLLOUT, deadline)) {
      return failed("connect", errno);
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      return failed("connect", errno);
    }
    if (err != 0) {
      return failed("connect", err);
    }
  }

  const std::string request = "POST /api/v1/reload HTTP/1.1\r\nHost: " + target->host +
                              "\r\nUser-Agent: edgeplane\r\nContent-Length: 0\r\n" + authorization +
                              "Connection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        waitFor(fd.get(), POLLOUT, deadline)) {
      continue;
    }
    return failed("sending the request", errno);
  }

  // Only the status line matters; the head is read whole (bounded) so the proxy is not
  // cut off mid-answer in the common case.
  constexpr size_t kMaxHead = 8192;
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxHead) {
    if (!waitFor(fd.get(), POLLIN, deadline)) {
      return failed("reading the answer", errno);
    }
    const ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return failed("reading the answer", errno);
    }
  }
  const size_t eol = head.find("\r\n");
  const std::string status = head.substr(0, eol == std::string::npos ? head.size() : eol);
  if (status.empty()) {
    return retryable(where + ": the connection was closed without an answer");
  }
  // "HTTP/1.1 200 OK"
  if (status.size() < 12 || status.rfind("HTTP/1.", 0) != 0 || status[8] != ' ' ||
      status[9] < '1' || status[9] > '5' || status[10] < '0' || status[10] > '9' ||
      status[11] < '0' || status[11] > '9' || (status.size() > 12 && status[12] != ' ')) {
    return retryable(where + ": not an HTTP answer: \"" + printable(status) + "\"");
  }
  if (status[9] != '2') {
    return retryable(where + ": POST /api/v1/reload answered \"" + printable(status.substr(9)) +
                     "\"");
  }
  return {};
}

}  // namespace edgeplane::cli
