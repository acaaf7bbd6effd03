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
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
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
#include <set>

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

// Prometheus label values escape backslash, double quote and newline.
std::string labelValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

template <typename T>
void sample(std::string& out, std::string_view name, std::string_view labels, T value) {
  out.append(name);
  if (!labels.empty()) {
    out.append("{").append(labels).append("}");
  }
  out.append(" ").append(std::to_string(value)).append("\n");
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
                    " is not loopback: the admin API has no authentication, so it listens "
                    "only on 127.0.0.0/8, ::1 or a unix socket");
  }
  a.tcp = *endpoint;
  return a;
}

std::string AdminAddress::str() const {
  return unixPath ? "unix:" + unixPath->string() : tcp.str();
}

// The worker gateway's requests by gateway, API key id ("" for the refused ones: missing or
// invalid keys, rate limited) and status code, since the proxy started.
void renderGatewayMetrics(std::string& out, gateway::Runtime& runtime) {
  runtime.collect();
  family(out, "edgeplane_gateway_requests_total", "counter",
         "Worker gateway requests by gateway, API key id (empty: not authenticated) and status.");
  for (const auto& [key, count] : runtime.totals()) {
    const auto& [gw, keyId, code] = key;
    sample(out, "edgeplane_gateway_requests_total",
           "gateway=\"" + labelValue(gw) + "\",key_id=\"" + labelValue(keyId) + "\",code=\"" +
               std::to_string(code) + "\"",
           count);
  }
}

// The terminated routes' per-request series (the https handler's RouteStats fields).
void renderHttpRouteMetrics(std::string& out, const ActiveConfig& config) {
  family(out, "edgeplane_proxy_route_http_responses_total", "counter",
         "HTTP responses of each terminated route, by status class.");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    for (size_t i = 0; i < route->stats->responses.size(); ++i) {
      sample(out, "edgeplane_proxy_route_http_responses_total",
             labels + ",class=\"" + std::to_string(i + 1) + "xx\"",
             route->stats->responses[i].load());
    }
  }
  family(out, "edgeplane_proxy_route_http_request_duration_seconds", "histogram",
         "Time from a request head to its response's last byte, per terminated route.");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    const RouteStats& st = *route->stats;
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < st.durationBuckets.size(); ++i) {
      cumulative += st.durationBuckets[i].load();
      char le[32];
      if (i < RouteStats::kDurationBucketsMs.size()) {
        std::snprintf(le, sizeof le, "%g", RouteStats::kDurationBucketsMs[i] / 1000.0);
      } else {
        std::snprintf(le, sizeof le, "+Inf");
      }
      sample(out, "edgeplane_proxy_route_http_request_duration_seconds_bucket",
             labels + ",le=\"" + le + "\"", cumulative);
    }
    char sum[32];
    std::snprintf(sum, sizeof sum, "%.3f", static_cast<double>(st.durationMsSum.load()) / 1000);
    out += "edgeplane_proxy_route_http_request_duration_seconds_sum{" + labels + "} " + sum + "\n";
    sample(out, "edgeplane_proxy_route_http_request_duration_seconds_count", labels, cumulative);
  }
  family(out, "edgeplane_proxy_route_upstream_connect_errors_total", "counter",
         "Failed backend connects of each terminated route (every attempt).");
  for (const auto& route : config.routes) {
    if (route->spec.kind == RouteKind::Passthrough) {
      continue;
    }
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_upstream_connect_errors_total", labels,
           route->stats->upstreamConnectErrors.load());
  }
}

std::string renderMetrics(const Metrics& m, const ActiveConfig& config, uint64_t refused) {
  std::string out;
  out.reserve(4096);
  family(out, "edgeplane_proxy_connections_open", "gauge", "Client connections open now.");
  sample(out, "edgeplane_proxy_connections_open", "", m.connectionsOpen.load());
  family(out, "edgeplane_proxy_connections_total", "counter", "Client connections accepted.");
  sample(out, "edgeplane_proxy_connections_total", "", m.connectionsTotal.load());
  family(out, "edgeplane_proxy_bytes_total", "counter",
         "Bytes relayed; in: client to backend, out: backend to client.");
  sample(out, "edgeplane_proxy_bytes_total", "direction=\"in\"", m.bytesIn.load());
  sample(out, "edgeplane_proxy_bytes_total", "direction=\"out\"", m.bytesOut.load());
  family(out, "edgeplane_proxy_backend_attempt_failures_total", "counter",
         "Backend connect attempts that failed (refused, timed out, no namespace); the "
         "connection may still have reached another backend.");
  sample(out, "edgeplane_proxy_backend_attempt_failures_total", "",
         m.backendAttemptFailures.load());
  family(out, "edgeplane_proxy_errors_total", "counter", "Connections that ended badly, by kind.");
  for (size_t i = 0; i < kErrorKinds; ++i) {
    std::string labels = "kind=\"" + labelValue(toString(static_cast<ErrorKind>(i))) + "\"";
    sample(out, "edgeplane_proxy_errors_total", labels, m.errors[i].load());
  }
  family(out, "edgeplane_proxy_reloads_total", "counter",
         "Routing snapshots swapped in after the one loaded at startup.");
  sample(out, "edgeplane_proxy_reloads_total", "", m.reloads.load());
  family(out, "edgeplane_proxy_tls_certificate_errors_total", "counter",
         "Certificates left out of a snapshot generation (unreadable, not PEM, key mismatch, "
         "fingerprint mismatch); their routes cannot terminate TLS.");
  sample(out, "edgeplane_proxy_tls_certificate_errors_total", "", m.tlsCertificateErrors.load());
  family(out, "edgeplane_proxy_snapshot_refused_total", "counter",
         "Routing snapshots refused (undecodable or with routing table issues).");
  sample(out, "edgeplane_proxy_snapshot_refused_total", "", refused);
  family(out, "edgeplane_proxy_snapshot_generation", "gauge",
         "Generation of the active routing snapshot (0: none yet).");
  sample(out, "edgeplane_proxy_snapshot_generation", "", m.generation.load());
  family(out, "edgeplane_proxy_routes", "gauge", "Routes in the active snapshot.");
  sample(out, "edgeplane_proxy_routes", "", config.routes.size());
  if (config.gateway) {
    renderGatewayMetrics(out, config.gateway->runtime());
  }

  family(out, "edgeplane_proxy_route_connections_total", "counter",
         "Connections routed to each active route.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_connections_total", labels,
           route->stats->connections.load());
  }
  family(out, "edgeplane_proxy_route_bytes_total", "counter",
         "Bytes relayed for each active route; in: client to backend, out: backend to client.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_bytes_total", labels + ",direction=\"in\"",
           route->stats->bytesIn.load());
    sample(out, "edgeplane_proxy_route_bytes_total", labels + ",direction=\"out\"",
           route->stats->bytesOut.load());
  }
  family(out, "edgeplane_proxy_route_failures_total", "counter",
         "Connections of each active route that reached no backend or failed mid-relay.");
  for (const auto& route : config.routes) {
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\"";
    sample(out, "edgeplane_proxy_route_failures_total", labels, route->stats->failures.load());
  }
  renderHttpRouteMetrics(out, config);
  family(out, "edgeplane_proxy_backend_up", "gauge",
         "1 when the backend gets traffic (its health check passes, or it has none), else 0.");
  for (const auto& route : config.routes) {
    auto keys = health::healthKeys(route->spec);
    if (!keys || keys->size() != route->health.size()) {
      continue;  // a config built without health entries
    }
    std::string labels = "route=\"" + labelValue(route->spec.key()) + "\",backend=\"";
    std::set<Endpoint> seen;  // a gateway may list one backend under several endpoints
    for (size_t i = 0; i < keys->size(); ++i) {
      if (!seen.insert((*keys)[i].backend).second) {
        continue;
      }
      sample(out, "edgeplane_proxy_backend_up",
             labels + labelValue((*keys)[i].backend.str()) + "\"",
             route->health[i]->up.load() ? 1 : 0);
    }
  }
  return out;
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
    r.body = renderMetrics(metrics, *controller.current(), controller.refusedCount());
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

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(Controller& controller, const Metrics& metrics)
      : controller_(controller), metrics_(metrics) {}

  // Interface
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    AdminResponse r;
    try {
      r = handleAdminRequest(controller_, metrics_, request.getMethod(), request.getURI());
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
      response.send().write(r.body.data(), static_cast<std::streamsize>(r.body.size()));
    } catch (...) {
      // The client went away; nothing to tell it.
    }
  }

 private:
  Controller& controller_;
  const Metrics& metrics_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(Controller& controller, const Metrics& metrics)
      : controller_(controller), metrics_(metrics) {}

  // Interface
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(controller_, metrics_);
  }

 private:
  Controller& controller_;
  const Metrics& metrics_;
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
                                                        const Metrics& metrics) {
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
      if (::chmod(address.unixPath->c_str(), 0600) != 0) {
        int err = errno;
        ::unlink(address.unixPath->c_str());
        return terminal("cannot make " + address.unixPath->string() +
                        " 0600: " + std::strerror(err));
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
    impl->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(controller, metrics),
                                                           impl->pool, socket, params);
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
