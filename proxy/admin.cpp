// The proxy's admin API: request handling (plain functions) and the POCO handlers around it.
#include "proxy/admin.h"

#include "proxy/gateway/config.h"
#include "reconciler/system/local_http.h"

#include "schema/json_text.h"
#include "schema/prometheus_text.h"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SocketImpl.h>
#include <Poco/String.h>

#include <charconv>
#include <ctime>
#include <exception>
#include <limits>

namespace edgeplane::proxy {

namespace {

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

namespace {

AdminResponse healthzResponse(Controller& controller, const Metrics&, std::string_view) {
  AdminResponse r;
  r.body = healthzText(controller);
  return r;
}

AdminResponse listenersResponse(Controller& controller, const Metrics&, std::string_view) {
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

AdminResponse backendsResponse(Controller& controller, const Metrics&, std::string_view) {
  AdminResponse r;
  r.body = renderBackends(controller.health(), *controller.current());
  return r;
}

AdminResponse metricsResponse(Controller& controller, const Metrics& metrics, std::string_view) {
  AdminResponse r;
  r.contentType = std::string(prometheus::kContentType);
  r.body = metricsText(controller, metrics);
  return r;
}

AdminResponse apiKeysResponse(Controller& controller, const Metrics&, std::string_view) {
  auto keys = controller.apiKeysJson();
  if (!keys) {
    return errorResponse(503, "API key usage unavailable: " + keys.error().message);
  }
  AdminResponse r;
  r.body = std::move(*keys) + "\n";
  return r;
}

// The admin API's resources: each path answers one method.
struct AdminRoute {
  std::string_view path;
  std::string_view method;
  AdminResponse (*answer)(Controller& controller, const Metrics& metrics, std::string_view query);
};
constexpr AdminRoute kAdminRoutes[] = {
    {"/healthz", "GET", healthzResponse},
    {"/api/v1/config", "GET",
     [](Controller& c, const Metrics&, std::string_view) { return configResponse(*c.current()); }},
    {"/api/v1/traffic", "GET",
     [](Controller& c, const Metrics&, std::string_view q) { return trafficResponse(c, q); }},
    {"/api/v1/listeners", "GET", listenersResponse},
    {"/api/v1/backends", "GET", backendsResponse},
    {"/metrics", "GET", metricsResponse},
    {"/api/v1/apikeys", "GET", apiKeysResponse},
    {"/api/v1/reload", "POST",
     [](Controller& c, const Metrics&, std::string_view) { return reloadResponse(c); }},
};

}  // namespace

AdminResponse handleAdminRequest(Controller& controller, const Metrics& metrics,
                                 std::string_view method, std::string_view target) {
  size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  std::string_view query = q == std::string_view::npos ? "" : target.substr(q + 1);
  for (const AdminRoute& route : kAdminRoutes) {
    if (route.path != path) {
      continue;
    }
    if (route.method != method) {
      AdminResponse r = errorResponse(405, "method not allowed; use " + std::string(route.method));
      r.allow = std::string(route.method);
      return r;
    }
    return route.answer(controller, metrics, query);
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
    if (r.status == 401) {
      response.set("WWW-Authenticate", "Bearer");
    }
    sendLocalReply(response, r.status, r.contentType, r.body, r.allow);
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

}  // namespace

struct AdminServer::Impl {
  std::unique_ptr<LocalHttpServer> server;
};

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() = default;

const std::string& AdminServer::address() const {
  return impl_->server->address();
}

Result<std::unique_ptr<AdminServer>> AdminServer::start(const AdminAddress& address,
                                                        Controller& controller,
                                                        const Metrics& metrics,
                                                        const AdminAccess& access) {
  if (!address.unixPath && !access.token) {
    return terminal("admin address " + address.str() +
                    " is TCP: it needs --admin-token-file (any local user can reach it)");
  }
  // The group may connect only when it is allowed; SO_PEERCRED checks each peer anyway.
  auto bound = listenLocal(address, access.allowedGid ? 0660 : 0600, access.allowedGid);
  if (!bound) {
    return terminal("admin address: " + bound.error().message);
  }
  auto server = LocalHttpServer::start(
      std::move(*bound), new Factory(controller, metrics, access, address.unixPath.has_value()), 4);
  if (!server) {
    return terminal("admin address: " + server.error().message);
  }
  auto impl = std::make_unique<Impl>();
  impl->server = std::move(*server);
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

}  // namespace edgeplane::proxy
