// The reconciler's client of edgeplane-proxy's admin API (see proxy_admin.h).
#include "reconciler/cli/proxy_admin.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <functional>
#include <limits>

#include "schema/encoding.h"
#include "schema/json_reader.h"
#include "schema/model.h"
#include "schema/net.h"
#include "schema/secret_file.h"
#include "schema/unique_fd.h"

namespace edgeplane::cli {

namespace {

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
  std::string path;  // a unix socket's; "" for TCP
};

// `t`'s address made the unix socket at `path` (shorter than sun_path).
void setUnixAddress(Target& t, const std::string& path) {
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, path.data(), path.size());
  std::memcpy(&t.addr, &un, sizeof(un));
  t.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
}

// The unix socket at `path` opened without following a link (O_PATH), for a connect through
// /proc/self/fd: the socket's directory is the proxy's to write, and a link planted there would
// send root's requests to any other socket of the host. errno set (ELOOP for a link, ENOTSOCK
// for another file) when -1.
int openSocketPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st {};
  if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))) {
    ::close(fd);
    errno = S_ISLNK(st.st_mode) ? ELOOP : ENOTSOCK;
    return -1;
  }
  return fd;
}

Result<Target> parseAdminAddress(const std::string& address) {
  Target t;
  constexpr std::string_view kUnix = "unix:";
  if (address.rfind(kUnix, 0) == 0) {
    const std::string path = address.substr(kUnix.size());
    constexpr size_t kSunPath = sizeof(sockaddr_un::sun_path);
    if (path.empty() || path.size() >= kSunPath) {
      return terminal("proxy admin address \"" + address + "\": the socket path must be 1 to " +
                      std::to_string(kSunPath - 1) + " bytes");
    }
    setUnixAddress(t, path);
    t.host = "localhost";
    t.path = path;
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

// A head's Content-Length: nullopt when it has none, an error when its value (blanks around it
// aside) is not a decimal number.
Result<std::optional<size_t>> contentLength(std::string_view head, const std::string& where) {
  constexpr std::string_view kName = "\r\ncontent-length:";
  std::string lower(head);
  for (char& c : lower) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const size_t at = lower.find(kName);
  if (at == std::string::npos) {
    return std::optional<size_t>();
  }
  std::string_view value = head.substr(at + kName.size());
  value = value.substr(0, value.find("\r\n"));
  const size_t first = value.find_first_not_of(" \t");
  value = first == std::string_view::npos
              ? std::string_view()
              : value.substr(first, value.find_last_not_of(" \t") - first + 1);
  const auto length =
      parseDecimal(value, std::numeric_limits<size_t>::max(), LeadingZeros::Allowed);
  if (!length) {
    return retryable(where + ": not an HTTP answer: malformed Content-Length \"" +
                     printable(value) + "\"");
  }
  return std::optional<size_t>(*length);
}

// The answer to a "Connection: close" request, read to its end (or its Content-Length);
// `failed` words a socket error.
Result<AdminAnswer> readAnswer(int fd, Clock::time_point deadline,
                               const std::function<Error(std::string_view, int)>& failed,
                               const std::string& where, size_t maxAnswer) {
  std::string in;
  char buf[4096];
  size_t head = std::string::npos;  // where the head ends, once it is all in
  std::optional<size_t> length;     // its Content-Length, read once
  for (;;) {
    if (head == std::string::npos && (head = in.find("\r\n\r\n")) != std::string::npos) {
      auto read = contentLength(std::string_view(in).substr(0, head), where);
      if (!read) {
        return read.error();
      }
      length = *read;
    }
    if (head != std::string::npos && length && in.size() - (head + 4) >= *length) {
      break;  // written so that no sum can overflow
    }
    if (in.size() > maxAnswer) {
      return retryable(where + ": the answer is longer than " + std::to_string(maxAnswer) +
                       " bytes");
    }
    if (!waitFor(fd, POLLIN, deadline)) {
      const int err = errno;
      return failed("reading the answer", err);
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else {
      const int err = errno;
      if (err != EINTR && err != EAGAIN && err != EWOULDBLOCK) {
        return failed("reading the answer", err);
      }
    }
  }
  const size_t eol = in.find("\r\n");
  const std::string status = in.substr(0, eol == std::string::npos ? in.size() : eol);
  if (status.empty()) {
    return retryable(where + ": the connection was closed without an answer");
  }
  // "HTTP/1.1 200 OK"
  if (status.size() < 12 || status.rfind("HTTP/1.", 0) != 0 || status[8] != ' ' ||
      status[9] < '1' || status[9] > '5' || status[10] < '0' || status[10] > '9' ||
      status[11] < '0' || status[11] > '9' || (status.size() > 12 && status[12] != ' ')) {
    return retryable(where + ": not an HTTP answer: \"" + printable(status) + "\"");
  }
  AdminAnswer answer;
  answer.status = std::stoi(status.substr(9, 3));
  answer.statusText = printable(status.substr(9));
  if (head != std::string::npos) {
    answer.body = in.substr(head + 4);
    if (length && answer.body.size() > *length) {
      answer.body.resize(*length);
    }
  }
  return answer;
}

}  // namespace

Result<AdminAnswer> proxyAdminRequest(const std::string& adminAddress, std::string_view method,
                                      std::string_view path, std::chrono::milliseconds timeout,
                                      const std::optional<std::filesystem::path>& tokenFile,
                                      size_t maxAnswer) {
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
    return retryable(
        where + ": " + std::string(what) + ": " +
        (err == ETIMEDOUT ? "no answer within " + formatDuration(timeout) : errnoText(err)));
  };

  UniqueFd socketPath(-1);
  if (!target->path.empty()) {
    socketPath = UniqueFd(openSocketPath(target->path));
    if (socketPath.get() < 0) {
      const int err = errno;
      if (err == ELOOP) {
        return terminal(where + ": " + target->path + " is a symbolic link; not followed");
      }
      return err == ENOTSOCK ? terminal(where + ": " + target->path + " is not a socket")
                             : failed("connect", err);
    }
    setUnixAddress(*target, "/proc/self/fd/" + std::to_string(socketPath.get()));
  }
  const UniqueFd fd(
      ::socket(target->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    const int err = errno;
    return failed("socket", err);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target->addr), target->len) != 0) {
    // A unix socket with a full backlog says EAGAIN where TCP says EINPROGRESS.
    if (const int err = errno; err != EINPROGRESS && err != EAGAIN) {
      return failed("connect", err);
    }
    if (!waitFor(fd.get(), POLLOUT, deadline)) {
      const int err = errno;
      return failed("connect", err);
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
      return failed("connect", err);
    }
    if (err != 0) {
      return failed("connect", err);
    }
  }

  const std::string request = std::string(method) + " " + std::string(path) +
                              " HTTP/1.1\r\nHost: " + target->host +
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
    const int err = errno;
    return failed("sending the request", err);
  }

  return readAnswer(fd.get(), deadline, failed, where, maxAnswer);
}

Result<void> notifyProxy(const std::string& adminAddress, std::chrono::milliseconds timeout,
                         const std::optional<std::filesystem::path>& tokenFile) {
  auto answer = proxyAdminRequest(adminAddress, "POST", "/api/v1/reload", timeout, tokenFile);
  if (!answer) {
    return answer.error();
  }
  if (answer->status < 200 || answer->status > 299) {
    return retryable("proxy admin at " + adminAddress + ": POST /api/v1/reload answered \"" +
                     answer->statusText + "\"");
  }
  return {};
}

Result<ProxyListeners> queryProxyListeners(const std::string& adminAddress,
                                           std::chrono::milliseconds timeout,
                                           const std::optional<std::filesystem::path>& tokenFile) {
  auto answer = proxyAdminRequest(adminAddress, "GET", "/api/v1/listeners", timeout, tokenFile);
  if (!answer) {
    return answer.error();
  }
  const std::string where = "proxy admin at " + adminAddress + ": GET /api/v1/listeners";
  if (answer->status != 200) {
    return retryable(where + " answered \"" + answer->statusText + "\"");
  }
  strict_json::Json doc;
  std::string error;
  if (!strict_json::parse(answer->body, doc, error) ||
      doc.type != strict_json::Json::Type::Object) {
    return retryable(where + ": not a JSON object" + (error.empty() ? "" : " (" + error + ")"));
  }
  ProxyListeners out;
  for (size_t i = 0; i < doc.keys.size(); ++i) {
    const strict_json::Json& v = doc.values[i];
    if (v.type != strict_json::Json::Type::String) {
      continue;
    }
    if (doc.keys[i] == "https") {
      out.https = v.string;
    } else if (doc.keys[i] == "http") {
      out.http = v.string;
    } else if (doc.keys[i] == "dns") {
      out.dns = v.string;
    }
  }
  if (out.http.empty()) {
    return retryable(where + ": the answer has no \"http\"");
  }
  return out;
}

namespace {

using strict_json::Json;
using strict_json::member;

// Above any count a proxy can reach (2^50 requests), so that adding two never overflows.
constexpr int64_t kMaxCount = int64_t{1} << 50;

bool isCount(const Json* v) {
  return v != nullptr && v->type == Json::Type::Int && v->integer >= 0 && v->integer < kMaxCount;
}

// One key's usage from the proxy's GET /api/v1/apikeys entry; false when it is not one. What is
// printed later is checked here: the id is an API key id, the address an IP address.
bool usageFrom(const Json& entry, ApiKeyUsage& u) {
  const Json* id = member(entry, "id");
  const Json* count = member(entry, "request_count");
  const Json* last = member(entry, "last_used_at");
  const Json* ip = member(entry, "last_ip");
  const Json* responses = member(entry, "responses");
  if (id == nullptr || id->type != Json::Type::String || !isValidApiKeyId(id->string) ||
      !isCount(count) || responses == nullptr || responses->type != Json::Type::Object) {
    return false;
  }
  u.keyId = id->string;
  u.requestCount = count->integer;
  if (last != nullptr && last->type == Json::Type::Int) {
    u.lastUsedAt = last->integer;
  }
  if (ip != nullptr && ip->type == Json::Type::String) {
    if (!IpAddress::parse(ip->string)) {
      return false;
    }
    u.lastIp = ip->string;
  }
  for (size_t i = 0; i < u.responses.size(); ++i) {
    const Json* n = member(*responses, std::to_string(i + 1) + "xx");
    if (!isCount(n)) {
      return false;
    }
    u.responses[i] = n->integer;
  }
  return true;
}

}  // namespace

Result<std::vector<ApiKeyUsage>> queryProxyUsage(
    const std::string& adminAddress, std::chrono::milliseconds timeout,
    const std::optional<std::filesystem::path>& tokenFile) {
  auto answer = proxyAdminRequest(adminAddress, "GET", "/api/v1/apikeys", timeout, tokenFile,
                                  kMaxUsageAnswer);
  if (!answer) {
    return answer.error();
  }
  const std::string where = "proxy admin at " + adminAddress + ": GET /api/v1/apikeys";
  if (answer->status != 200) {
    return retryable(where + " answered \"" + answer->statusText + "\"");
  }
  Json doc;
  std::string error;
  if (!strict_json::parse(answer->body, doc, error) || doc.type != Json::Type::Array) {
    return retryable(where + ": not a JSON array" + (error.empty() ? "" : " (" + error + ")"));
  }
  std::vector<ApiKeyUsage> out;
  for (const Json& entry : doc.array) {
    ApiKeyUsage u;
    if (entry.type != Json::Type::Object || !usageFrom(entry, u)) {
      return retryable(where + ": entry " + std::to_string(out.size() + 1) +
                       " is not a key's usage");
    }
    out.push_back(std::move(u));
  }
  return out;
}

}  // namespace edgeplane::cli
