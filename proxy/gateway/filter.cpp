// See filter.h.
#include "proxy/gateway/filter.h"

#include <time.h>

#include <algorithm>
#include <string>
#include <utility>

#include "proxy/gateway/config.h"
#include "proxy/http/syntax.h"
#include "schema/json_text.h"

namespace edgeplane::proxy::gateway {

namespace {

int64_t clockUs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

enum class Auth : uint8_t { Missing, Invalid };

// The token of exactly one `Authorization: Bearer <token>` field; nullopt: missing (no field),
// or "" for anything malformed (several fields, another scheme, no token).
std::optional<std::string_view> bearerToken(const http::RequestHead& head) {
  std::optional<std::string_view> token;
  for (const http::HeaderField& f : head.headers) {
    if (!http::equalsIgnoreCase(f.name, "Authorization")) {
      continue;
    }
    if (token) {
      return std::string_view();
    }
    token = http::bearerCredentials(f.value);
  }
  return token;
}

void appendStats(std::string& out, const GatewayEntry& g) {
  size_t backends = 0;
  size_t healthy = 0;
  out += R"({"gateway":)";
  appendJsonString(out, g.route->spec.name);
  out += R"(,"endpoints":[)";
  for (size_t i = 0; i < g.endpoints.size(); ++i) {
    const EndpointEntry& e = *g.endpoints[i];
    out += i == 0 ? "{" : ",{";
    out += R"("path":)";
    appendJsonString(out, e.spec->path);
    out += R"(,"method":)";
    appendJsonString(out, e.spec->method);
    std::string all = "[";
    std::string up = "[";
    size_t upCount = 0;
    for (size_t b = 0; b < e.spec->backends.size(); ++b) {
      const std::string text = e.spec->backends[b].str();
      all += b == 0 ? "" : ",";
      appendJsonString(all, text);
      bool isUp =
          b >= e.health.size() || !e.health[b] || e.health[b]->up.load(std::memory_order_relaxed);
      if (isUp) {
        up += upCount++ == 0 ? "" : ",";
        appendJsonString(up, text);
      }
    }
    backends += e.spec->backends.size();
    healthy += upCount;
    out += R"(,"backends":)" + all + R"(],"healthy_backends":)" + up + "]}";
  }
  out += R"(],"totals":{"endpoints":)" + std::to_string(g.endpoints.size()) + R"(,"backends":)" +
         std::to_string(backends) + R"(,"healthy_backends":)" + std::to_string(healthy) + "}}\n";
}

class GatewayFilter final : public RequestFilter {
 public:
  GatewayFilter(std::function<void(std::string_view)> log, FilterClock clock)
      : log_(std::move(log)), clock_(std::move(clock)) {
    if (!clock_.monotonicUs) {
      clock_.monotonicUs = [] { return clockUs(CLOCK_MONOTONIC); };
    }
    if (!clock_.wallMs) {
      clock_.wallMs = [] { return clockUs(CLOCK_REALTIME) / 1000; };
    }
  }

  void check(const http::RequestHead& head, const ActiveConfig& config, const ActiveRoute& route,
             const Endpoint& client, FilterVerdict& v) override;
  void finished(const FilterVerdict& v, const Endpoint& client, int status) override;
  bool stillAdmits(const FilterVerdict& v, const ActiveConfig& config,
                   const Endpoint& client) override;

 private:
  // check's steps. The key `head` presents, if it may call `route` (null: refused, `v` says
  // why); the endpoint of `g` it calls (null: none, `v` answers 400, 404 or 405); the verdict
  // of a request let through.
  const KeyEntry* authenticate(const http::RequestHead& head, const GatewayConfig& gateways,
                               const GatewayEntry& g, const ActiveRoute& route,
                               const Endpoint& client, FilterVerdict& v);
  const EndpointEntry* chooseEndpoint(const http::RequestHead& head, const GatewayEntry& g,
                                      FilterVerdict& v) const;
  void admit(const KeyEntry& key, const EndpointEntry& chosen, const ActiveRoute& route,
             const Endpoint& client, FilterVerdict& v);
  void answer(FilterVerdict& v, int status, std::string_view error) const;
  void refuse(FilterVerdict& v, Auth why, const Endpoint& client);
  void logLine(std::string_view event, std::string_view detail, const Endpoint& client);

  std::function<void(std::string_view)> log_;
  FilterClock clock_;
  Runtime* runtime_ = nullptr;  // the runtime shard_ belongs to
  std::shared_ptr<UsageShard> shard_;
  std::string line_;
};

void GatewayFilter::answer(FilterVerdict& v, int status, std::string_view error) const {
  v.status = status;
  v.body.assign(R"({"error":)");
  appendJsonString(v.body, error);
  v.body.append("}\n");
  v.headers.emplace_back("Content-Type", "application/json");
}

void GatewayFilter::logLine(std::string_view event, std::string_view detail,
                            const Endpoint& client) {
  line_.assign(event).append(detail).append(client.address.str()).push_back('\n');
  log_(line_);
}

void GatewayFilter::refuse(FilterVerdict& v, Auth why, const Endpoint& client) {
  if (why == Auth::Missing) {
    answer(v, 401, "missing API key");
    v.headers.emplace_back("WWW-Authenticate", "Bearer");
    logLine("API_KEY_MISSING: ", "Request from IP ", client);
  } else {
    answer(v, 401, "invalid API key");
    v.headers.emplace_back("WWW-Authenticate", R"(Bearer error="invalid_token")");
    logLine("API_KEY_INVALID: ", "Failed auth from IP ", client);
  }
}

const KeyEntry* GatewayFilter::authenticate(const http::RequestHead& head,
                                            const GatewayConfig& gateways, const GatewayEntry& g,
                                            const ActiveRoute& route, const Endpoint& client,
                                            FilterVerdict& v) {
  if (g.limit) {
    RateLimiter::Decision d =
        runtime_->limiter.admit(g.scope, client.address, *g.limit, clock_.monotonicUs());
    if (!d.allowed) {
      answer(v, 429, "rate limit exceeded");
      v.headers.emplace_back("Retry-After", std::to_string((d.retryAfterUs + 999999) / 1000000));
      logLine("RATE_LIMITED: ", "from IP ", client);
      return nullptr;
    }
  }
  std::optional<std::string_view> token = bearerToken(head);
  if (!token) {
    refuse(v, Auth::Missing, client);
    return nullptr;
  }
  std::optional<std::string_view> id = apiKeyId(*token);
  const KeyEntry* key = id ? gateways.findKey(*id) : nullptr;
  // The digest is computed whatever the id: the time taken does not say which ids exist.
  const ApiKeyDigest digest = apiKeyDigest(*token);
  if (key == nullptr || !digestsEqual(digest, key->digest) || !key->spec.enabled ||
      key->blocked.load(std::memory_order_relaxed) || !key->mayCall(route.spec.name)) {
    refuse(v, Auth::Invalid, client);
    return nullptr;
  }
  return key;
}

const EndpointEntry* GatewayFilter::chooseEndpoint(const http::RequestHead& head,
                                                   const GatewayEntry& g, FilterVerdict& v) const {
  if (!normalPath(head.path)) {  // matched as sent, it could leave its endpoint on the backend
    answer(v, 400, "path not in normal form");
    return nullptr;
  }
  std::vector<const EndpointEntry*> candidates = g.match(head.path);
  if (candidates.empty()) {
    answer(v, 404, "no such endpoint");
    return nullptr;
  }
  const EndpointEntry* chosen = nullptr;
  std::string allow;
  for (const EndpointEntry* e : candidates) {
    if (e->spec->method == head.method) {
      chosen = e;
    }
    allow.append(allow.empty() ? "" : ", ").append(e->spec->method);
  }
  if (chosen == nullptr) {
    answer(v, 405, "method not allowed");
    v.headers.emplace_back("Allow", allow);
  }
  return chosen;
}

void GatewayFilter::admit(const KeyEntry& key, const EndpointEntry& chosen,
                          const ActiveRoute& route, const Endpoint& client, FilterVerdict& v) {
  v.subject = &key;
  v.endpoint = &chosen;
  v.choice =
      BackendChoice{&chosen.spec->backends, chosen.health, &chosen.cursor, chosen.spec->balance};
  // The credential stays here; a client cannot pose as another key to the backend.
  static constexpr std::string_view kDrop[] = {"Authorization", "X-Edgeplane-Key-Id",
                                               "X-Edgeplane-Key-Name"};
  v.drop = kDrop;
  v.add[0] = http::HeaderField{"X-Edgeplane-Key-Id", key.spec.id};
  v.add[1] = http::HeaderField{"X-Edgeplane-Key-Name", key.spec.name};
  v.addCount = 2;
  line_.assign("API_KEY_AUTH: ")
      .append(key.spec.name)
      .append(" (type: ")
      .append(route.spec.name)
      .append(") from IP ")
      .append(client.address.str())
      .push_back('\n');
  log_(line_);
}

void GatewayFilter::check(const http::RequestHead& head, const ActiveConfig& config,
                          const ActiveRoute& route, const Endpoint& client, FilterVerdict& v) {
  v.jsonErrors = true;
  const GatewayConfig* gateways = config.gateway.get();
  const GatewayEntry* g = gateways != nullptr ? gateways->find(&route) : nullptr;
  if (g == nullptr) {
    answer(v, 404, "not found");  // not a gateway route: nothing here is served unauthenticated
    return;
  }
  if (runtime_ != &gateways->runtime()) {
    runtime_ = &gateways->runtime();
    shard_ = runtime_->addShard();
  }
  v.scope = g;
  const KeyEntry* key = authenticate(head, *gateways, *g, route, client, v);
  if (key == nullptr) {
    return;
  }
  if (head.path == kStatsPath && head.method == "GET") {
    if (key->spec.role != ApiKeyRole::Admin) {
      refuse(v, Auth::Invalid, client);
      return;
    }
    v.status = 200;
    v.subject = key;
    v.body.clear();
    appendStats(v.body, *g);
    v.headers.emplace_back("Content-Type", "application/json");
    return;
  }
  const EndpointEntry* chosen = chooseEndpoint(head, *g, v);
  if (chosen == nullptr) {
    v.subject = key;  // answered 400, 404 or 405, for this key
    return;
  }
  if (!key->mayUse(chosen->spec->path)) {
    refuse(v, Auth::Invalid, client);
    return;
  }
  admit(*key, *chosen, route, client, v);
}

void GatewayFilter::finished(const FilterVerdict& v, const Endpoint& client, int status) {
  const auto* g = static_cast<const GatewayEntry*>(v.scope);
  if (g == nullptr || shard_ == nullptr || status == 0) {
    return;
  }
  const auto* key = static_cast<const KeyEntry*>(v.subject);
  shard_->record(g->route->spec.name, key != nullptr ? std::string_view(key->spec.id) : "",
                 client.address, status, clock_.wallMs());
}

// The key the request came with, as the config published last has it: there, still enabled,
// unblocked, of the same digest, and allowed this gateway and endpoint, which are still there
// (the endpoint with its path and method).
bool GatewayFilter::stillAdmits(const FilterVerdict& v, const ActiveConfig& config,
                                const Endpoint& client) {
  const auto* was = static_cast<const KeyEntry*>(v.subject);
  const auto* g = static_cast<const GatewayEntry*>(v.scope);
  const auto* e = static_cast<const EndpointEntry*>(v.endpoint);
  if (was == nullptr || g == nullptr || e == nullptr) {
    return false;  // a forwarded request has all three: nothing else is let through
  }
  const GatewayConfig* gateways = config.gateway.get();
  const KeyEntry* key = gateways != nullptr ? gateways->findKey(was->spec.id) : nullptr;
  const GatewayEntry* gateway =
      gateways != nullptr ? gateways->findByName(g->route->spec.name) : nullptr;
  const bool endpointThere =
      gateway != nullptr &&
      std::any_of(gateway->endpoints.begin(), gateway->endpoints.end(), [&](const auto& now) {
        return now->spec->path == e->spec->path && now->spec->method == e->spec->method;
      });
  if (key != nullptr && endpointThere && digestsEqual(key->digest, was->digest) &&
      key->spec.enabled && !key->blocked.load(std::memory_order_relaxed) &&
      key->mayCall(g->route->spec.name) && key->mayUse(e->spec->path)) {
    return true;
  }
  line_.assign("API_KEY_REVOKED: ")
      .append(was->spec.name)
      .append(" (type: ")
      .append(g->route->spec.name)
      .append(") connection closed, from IP ")
      .append(client.address.str())
      .push_back('\n');
  log_(line_);
  return false;
}

}  // namespace

std::unique_ptr<RequestFilter> makeGatewayFilter(std::function<void(std::string_view)> log,
                                                 FilterClock clock) {
  return std::make_unique<GatewayFilter>(std::move(log), std::move(clock));
}

std::unique_ptr<Protocol> makeGatewayProtocol(Context& ctx) {
  return makeHttpsProtocol(
      ctx, makeGatewayFilter([&ctx](std::string_view line) { ctx.eventLog(line); }));
}

}  // namespace edgeplane::proxy::gateway
