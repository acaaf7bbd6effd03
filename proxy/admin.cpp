// The proxy's admin API: request handling (plain functions) and the POCO HTTP server around it.
#include "proxy/admin.h"

#include "proxy/gateway/config.h"

#include "schema/json_text.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/SocketImpl.h>
#include <Poco/String.h>
#include <Poco/ThreadPool.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <limits>

namespace edgeplane::proxy {

namespace fs = std::filesystem;

namespace {

bool isLoopback(const IpAddress& a) {
  if (a.family == IpAddress::Family::V4) {
    return a.bytes[0] == 127;
  }
  for (size_t i = 0; i < 15; ++i) {
    if (a.bytes[i] != 0) {
      return false;
    }
  }
  return a.bytes[15] == 1;
}

AdminResponse errorResponse(int status, std::string_view message) {
  AdminResponse r;
  r.status = status;
  r.body = "{\"error\":";
  appendJsonString(r.body, message);
  r.body += "}\n";
  return r;
}

// The value of `name` in a query string, undecoded (the parameters here are plain numbers).
std::optional<std::string_view> queryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

AdminResponse configResponse(const ActiveConfig& config) {
  AdminResponse r;
  r.body = "{\"generation\":" + std::to_string(config.generation) + ",\"snapshot\":";
  // The body was decoded successfully before it became active, so it is valid JSON.
  r.body += config.json.empty() ? "null" : config.json;
  r.body += "}\n";
  return r;
}

AdminResponse trafficResponse(Controller& controller, std::string_view query) {
  auto since = queryParam(query, "since");
  if (!since) {
    return errorResponse(400, "since=<unix seconds> is required");
  }
  // Up to year ~33000: keeps since * 1000 far from overflow.
  constexpr int64_t kMaxSeconds = 1'000'000'000'000;
  int64_t seconds = -1;
  auto [end, ec] = std::from_chars(since->data(), since->data() + since->size(), seconds);
  if (ec != std::errc() || end != since->data() + since->size() || seconds < 0 ||
      seconds > kMaxSeconds) {
    return errorResponse(400, "since must be unix seconds (a non-negative integer), got \"" +
                                  std::string(since->substr(0, 32)) + "\"");
  }
  auto traffic = controller.trafficSince(seconds * 1000);
  if (!traffic) {
    return errorResponse(503, "cannot read traffic: " + traffic.error().message);
  }
  AdminResponse r;
  r.body = "{\"since\":" + std::to_string(seconds) +
           ",\"until\":" + std::to_string(controller.now() / 1000) + ",\"routes\":[";
  bool first = true;
  for (const RouteTraffic& t : *traffic) {
    r.body += first ? "{\"route\":" : ",{\"route\":";
    first = false;
    appendJsonString(r.body, t.route);
    r.body += ",\"bytes_in\":" + std::to_string(t.bytesIn) +
              ",\"bytes_out\":" + std::to_string(t.bytesOut) +
              ",\"connections\":" + std::to_string(t.connections) + "}";
  }
  r.body += "]}\n";
  return r;
}

// RFC 3339 in UTC, to the second: "2026-12-02T21:05:00Z".
std::string rfc3339(int64_t unixMs) {
  time_t seconds = static_cast<time_t>(unixMs / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf, n);
}

AdminResponse reloadResponse(Controller& controller) {
  ReloadOutcome o = controller.reload();
  AdminResponse r;
  r.status = o.storeError ? 503 : 200;
  r.body = "{\"generation\":" + std::to_string(o.active) +
           ",\"changed\":" + (o.changed ? "true" : "false");
  if (o.refused) {
    r.body += ",\"refused_generation\":" + std::to_string(*o.refused);
  }
  if (!o.error.empty()) {
    r.body += ",\"error\":";
    appendJsonString(r.body, o.error);
  }
  r.body += "}\n";
  return r;
}

}  // namespace

std::optional<Endpoint> parseListenAddress(std::string_view text) {
  if (text.ends_with(":0")) {
    auto endpoint = Endpoint::parse(std::string(text.substr(0, text.size() - 1)) + "1");
    if (endpoint) {
      endpoint->port = 0;
    }
    return endpoint;
  }
  return Endpoint::parse(text);
}

Result<AdminAddress> AdminAddress::parse(std::string_view text) {
  AdminAddress a;
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) {
      return terminal("admin address \"unix:\" needs a socket path");
    }
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return terminal("admin socket path is too long (at most " +
                      std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                      " bytes): " + std::string(path));
    }
    a.unixPath = fs::path(path);
    return a;
  }
  auto endpoint = parseListenAddress(text);
  if (!endpoint) {
    return terminal("admin address must be unix:PATH or a loopback IP:PORT, got \"" +
                    std::string(text) + "\"");
  }
  if (!isLoopback(endpoint->address)) {
    return terminal("admin address " + std::string(text) +
                    " is not loopback: the admin API listens only on 127.0.0.0/8, ::1 or a "
                    "unix socket");
  }
  a.tcp = *endpoint;
  return a;
}

std::string AdminAddress::str() const {
  return unixPath ? "unix:" + unixPath->string() : tcp.str();
}

std::string renderBackends(const health::HealthRegistry& registry, const ActiveConfig& config) {
  std::string out = "[";
  for (const health::BackendStatus& b : registry.describe(config)) {
    out += out.size() == 1 ? "{\"route\":" : ",{\"route\":";
    appendJsonString(out, b.route);
    out += ",\"netns\":";
    appendJsonString(out, b.netns);
    out += ",\"backend\":";
    appendJsonString(out, b.backend);
    out += std::string(",\"up\":") + (b.up ? "true" : "false") +
           ",\"checked\":" + (b.checked ? "true" : "false") + ",\"last_change\":";
    appendJsonString(out, rfc3339(b.lastChangeMs));
    out +=
        ",\"consecutive_failures\":" + std::to_string(b.consecutiveFailures) + ",\"last_error\":";
    appendJsonString(out, b.lastError);
    out += "}";
  }
  out += "]\n";
  return out;
}

AdminResponse handleAdminRequest(Controller& controller, const Metrics& metrics,
                                 std::string_view method, std::string_view target) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);

  auto methodNotAllowed = [](std::string_view allow) {
    AdminResponse r = errorResponse(405, "method not allowed; use " + std::string(allow));
    r.allow = std::string(allow);
    return r;
  };
  if (path == "/healthz") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    AdminResponse r;
    r.body =
        "{\"status\":\"ok\",\"generation\":" + std::to_string(controller.current()->generation) +
        "}\n";
    return r;
  }
  if (path == "/api/v1/config") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    return configResponse(*controller.current());
  }
  if (path == "/api/v1/traffic") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    return trafficResponse(controller, query);
  }
  if (path == "/api/v1/listeners") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    const std::optional<Listeners> bound = controller.listeners();
    if (!bound) {
      return errorResponse(503, "the listeners are not bound yet");
    }
    const Listeners& l = *bound;
    AdminResponse r;
    r.body = "{\"https\":";
    appendJsonString(r.body, l.https);
    r.body += ",\"http\":";
    appendJsonString(r.body, l.http);
    r.body += ",\"dns\":";
    appendJsonString(r.body, l.dns);
    r.body += "}\n";
    return r;
  }
  if (path == "/api/v1/backends") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    AdminResponse r;
    r.body = renderBackends(controller.health(), *controller.current());
    return r;
  }
  if (path == "/metrics") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    AdminResponse r;
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    // An unreadable store leaves the ACME series out; the proxy's own counters still matter.
    auto acme = controller.acmeStates();
    r.body = renderMetrics(metrics, *controller.current(), controller.refusedCount(),
                           acme ? *acme : std::vector<AcmeState>{});
    return r;
  }
  if (path == "/api/v1/apikeys") {
    if (method != "GET") {
      return methodNotAllowed("GET");
    }
    auto keys = controller.apiKeysJson();
    if (!keys) {
      return errorResponse(503, "API key usage unavailable: " + keys.error().message);
    }
    AdminResponse r;
    r.body = std::move(*keys) + "\n";
    return r;
  }
  if (path == "/api/v1/reload") {
    if (method != "POST") {
      return methodNotAllowed("POST");
    }
    return reloadResponse(controller);
  }
  return errorResponse(404, "no such resource: " + std::string(path.substr(0, 200)));
}

// ---- the HTTP server ----

namespace {

// The request's one Authorization value; nullopt when there is none or more than one.
std::optional<std::string> authorizationOf(const Poco::Net::HTTPServerRequest& request) {
  std::optional<std::string> value;
  for (auto it = request.find("Authorization");
       it != request.end() && Poco::icompare(it->first, "Authorization") == 0; ++it) {
    if (value) {
      return std::nullopt;
    }
    value = it->second;
  }
  return value;
}

// 0, or the status that refuses the request (see admin_access.h).
int admit(Poco::Net::HTTPServerRequest& request, const AdminAccess& access, bool unixSocket) {
  std::optional<PeerCredentials> peer;
  if (unixSocket) {
    auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&request);
    if (impl != nullptr) {
      peer = peerCredentials(impl->socket().impl()->sockfd());
    }
  }
  std::optional<std::string> authorization = authorizationOf(request);
  return admitAdminRequest(access, unixSocket, authorization, peer);
}

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(Controller& controller, const Metrics& metrics, const AdminAccess& access,
          bool unixSocket)
      : controller_(controller), metrics_(metrics), access_(access), unixSocket_(unixSocket) {}

  // Interface
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    AdminResponse r;
    try {
      int refused = admit(request, access_, unixSocket_);
      if (refused == 401) {
        r = errorResponse(401, "a valid Authorization: Bearer <admin token> is required");
      } else if (refused != 0) {
        r = errorResponse(refused, "this user may not use the admin API");
      } else {
        r = handleAdminRequest(controller_, metrics_, request.getMethod(), request.getURI());
      }
    } catch (const std::exception& e) {
      r = errorResponse(500, std::string("internal error: ") + e.what());
    }
    try {
      response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(r.status));
      response.setReason(Poco::Net::HTTPResponse::getReasonForStatus(response.getStatus()));
      response.setContentType(r.contentType);
      response.setContentLength(static_cast<std::streamsize>(r.body.size()));
      if (!r.allow.empty()) {
        response.set("Allow", r.allow);
      }
      if (r.status == 401) {
        response.set("WWW-Authenticate", "Bearer");
      }
      response.send().write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
    } catch (...) {
      // The client went away; nothing to tell it.
    }
  }

 private:
  Controller& controller_;
  const Metrics& metrics_;
  const AdminAccess& access_;
  bool unixSocket_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(Controller& controller, const Metrics& metrics, AdminAccess access, bool unixSocket)
      : controller_(controller), metrics_(metrics), access_(access), unixSocket_(unixSocket) {}

  // Interface
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(controller_, metrics_, access_, unixSocket_);
  }

 private:
  Controller& controller_;
  const Metrics& metrics_;
  AdminAccess access_;
  bool unixSocket_;
};

// A socket file at `path`: stale (its process died) -> removed; live or not a socket -> error.
Result<void> clearStaleSocket(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return {};
    }
    return terminal("cannot inspect " + path.string() + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return terminal(path.string() + " exists and is not a socket; refusing to replace it");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return terminal(std::string("socket: ") + std::strerror(errno));
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::close(fd);
  if (rc == 0) {
    return terminal("another process is serving " + path.string() +
                    " (is edgeplane-proxy already running?)");
  }
  if (err != ECONNREFUSED && err != ENOENT) {
    return terminal("cannot probe " + path.string() + ": " + std::strerror(err));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return terminal("cannot remove the stale socket " + path.string() + ": " +
                    std::strerror(errno));
  }
  return {};
}

}  // namespace

struct AdminServer::Impl {
  Poco::ThreadPool pool{1, 4};
  std::unique_ptr<Poco::Net::HTTPServer> server;
  std::optional<fs::path> socketPath;
  std::string address;
};

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() {
  try {
    impl_->server->stopAll(true);
    // A worker the dispatcher started just before the stop holds a reference to it that only
    // its run() drops; let every started worker run (it sees the stop at once) before the pool
    // goes, or Poco leaks the dispatcher with its queue.
    impl_->pool.joinAll();
  } catch (...) {
    // Shutting down regardless.
  }
  if (impl_->socketPath) {
    ::unlink(impl_->socketPath->c_str());
  }
}

const std::string& AdminServer::address() const {
  return impl_->address;
}

Result<std::unique_ptr<AdminServer>> AdminServer::start(const AdminAddress& address,
                                                        Controller& controller,
                                                        const Metrics& metrics,
                                                        const AdminAccess& access) {
  if (!address.unixPath && !access.token) {
    return terminal("admin address " + address.str() +
                    " is TCP: it needs --admin-token-file (any local user can reach it)");
  }
  auto impl = std::make_unique<Impl>();
  try {
    Poco::Net::ServerSocket socket;
    if (address.unixPath) {
      if (auto cleared = clearStaleSocket(*address.unixPath); !cleared) {
        return cleared.error();
      }
      socket.bind(Poco::Net::SocketAddress(Poco::Net::SocketAddress::UNIX_LOCAL,
                                           address.unixPath->string()),
                  false);
      impl->socketPath = *address.unixPath;
      // The group may connect only when it is allowed; SO_PEERCRED checks each peer anyway.
      const char* mode = access.allowedGid ? "0660" : "0600";
      if ((access.allowedGid &&
           ::chown(address.unixPath->c_str(), static_cast<uid_t>(-1), *access.allowedGid) != 0) ||
          ::chmod(address.unixPath->c_str(), access.allowedGid ? 0660 : 0600) != 0) {
        int err = errno;
        ::unlink(address.unixPath->c_str());
        return terminal("cannot make " + address.unixPath->string() + " " + mode + ": " +
                        std::strerror(err));
      }
      impl->address = address.str();
    } else {
      socket.bind(Poco::Net::SocketAddress(address.tcp.address.str(), address.tcp.port), true);
      Endpoint bound = address.tcp;
      bound.port = socket.address().port();
      impl->address = bound.str();
    }
    socket.listen(16);

    auto params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(4);
    params->setMaxQueued(16);
    params->setKeepAlive(false);  // one request per connection: nothing lingers
    params->setTimeout(Poco::Timespan(5, 0));
    // An idle dispatcher thread waits this long for work, and stopping waits for it.
    params->setThreadIdleTime(Poco::Timespan(0, 500000));
    impl->server = std::make_unique<Poco::Net::HTTPServer>(
        new Factory(controller, metrics, access, address.unixPath.has_value()), impl->pool, socket,
        params);
    impl->server->start();
  } catch (const Poco::Exception& e) {
    if (impl->socketPath) {
      ::unlink(impl->socketPath->c_str());
    }
    return terminal("cannot listen on admin address " + address.str() + ": " + e.displayText());
  }
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

}  // namespace edgeplane::proxy
