// See config.h.
#include "proxy/gateway/config.h"

#include <algorithm>
#include <functional>

#include "proxy/http/syntax.h"
#include "schema/encoding.h"

namespace edgeplane::proxy::gateway {

namespace {

// A segment (up to its first ';') that a backend may resolve as "." or "..".
bool dotSegment(std::string_view segment) {
  segment = segment.substr(0, segment.find(';'));
  size_t dots = 0;
  while (!segment.empty() && dots <= 2) {
    if (segment.front() == '.') {
      segment.remove_prefix(1);
    } else if (segment.size() >= 3 && http::equalsIgnoreCase(segment.substr(0, 3), "%2e")) {
      segment.remove_prefix(3);
    } else {
      return false;
    }
    ++dots;
  }
  return dots == 1 || dots == 2;
}

}  // namespace

bool normalPath(std::string_view path) {
  if (path.find('\\') != std::string_view::npos) {
    return false;
  }
  for (size_t at = path.find('%'); at != std::string_view::npos; at = path.find('%', at + 1)) {
    std::string_view escape = path.substr(at, 3);
    if (http::equalsIgnoreCase(escape, "%2f") || http::equalsIgnoreCase(escape, "%5c")) {
      return false;
    }
  }
  while (!path.empty()) {
    path.remove_prefix(path.front() == '/' ? 1 : 0);
    const size_t end = path.find('/');
    if (dotSegment(path.substr(0, end))) {
      return false;
    }
    path.remove_prefix(end == std::string_view::npos ? path.size() : end);
  }
  return true;
}

bool KeyEntry::mayCall(std::string_view gateway) const {
  if (spec.gateways.empty()) {
    return spec.role == ApiKeyRole::Admin;
  }
  return std::find(spec.gateways.begin(), spec.gateways.end(), gateway) != spec.gateways.end();
}

bool KeyEntry::mayUse(std::string_view path) const {
  return spec.endpoints.empty() ||
         std::find(spec.endpoints.begin(), spec.endpoints.end(), path) != spec.endpoints.end();
}

std::vector<const EndpointEntry*> GatewayEntry::match(std::string_view path) const {
  std::vector<const EndpointEntry*> out;
  size_t best = 0;
  for (const auto& e : endpoints) {
    const std::string& p = e->spec->path;
    bool hit = p == path || (p.back() == '/' && path.starts_with(p));
    if (!hit || p.size() < best) {
      continue;
    }
    if (p.size() > best) {
      out.clear();
      best = p.size();
    }
    out.push_back(e.get());
  }
  return out;
}

std::shared_ptr<const GatewayConfig> GatewayConfig::build(const ActiveConfig& config,
                                                          const std::vector<SnapshotApiKey>& keys,
                                                          std::shared_ptr<Runtime> runtime) {
  auto g = std::make_shared<GatewayConfig>();
  g->runtime_ = runtime ? std::move(runtime) : std::make_shared<Runtime>();
  for (const SnapshotApiKey& k : keys) {
    auto entry = std::make_unique<KeyEntry>();
    entry->spec = k;
    if (auto d = parseHex32(k.sha256)) {
      entry->digest = *d;
    }
    g->keys_.push_back(std::move(entry));
  }
  std::sort(g->keys_.begin(), g->keys_.end(),
            [](const auto& a, const auto& b) { return a->spec.id < b->spec.id; });
  for (const auto& route : config.routes) {
    if (route->spec.kind != RouteKind::Gateway) {
      continue;
    }
    auto entry = std::make_unique<GatewayEntry>();
    entry->route = route.get();
    if (route->spec.rate_limit) {
      entry->limit = RateLimit::parse(*route->spec.rate_limit);
    }
    entry->scope = std::hash<std::string>{}(route->spec.name);
    size_t offset = 0;
    for (const SnapshotEndpoint& e : route->spec.endpoints) {
      auto ep = std::make_unique<EndpointEntry>();
      ep->spec = &e;
      if (offset < route->health.size()) {
        size_t n = std::min(e.backends.size(), route->health.size() - offset);
        ep->health = std::span(route->health).subspan(offset, n);
      }
      offset += e.backends.size();
      entry->endpoints.push_back(std::move(ep));
    }
    g->byRoute_.emplace(route.get(), entry.get());
    g->gateways_.push_back(std::move(entry));
  }
  g->applyBlocks(g->runtime_->blocked());
  return g;
}

const KeyEntry* GatewayConfig::findKey(std::string_view id) const {
  auto it = std::lower_bound(keys_.begin(), keys_.end(), id,
                             [](const auto& k, std::string_view v) { return k->spec.id < v; });
  return it != keys_.end() && (*it)->spec.id == id ? it->get() : nullptr;
}

const GatewayEntry* GatewayConfig::find(const ActiveRoute* route) const {
  auto it = byRoute_.find(route);
  return it != byRoute_.end() ? it->second : nullptr;
}

const GatewayEntry* GatewayConfig::findByName(std::string_view name) const {
  for (const auto& g : gateways_) {
    if (g->route->spec.name == name) {
      return g.get();
    }
  }
  return nullptr;
}

void GatewayConfig::applyBlocks(const std::set<std::string, std::less<>>& ids) const {
  for (const auto& k : keys_) {
    k->blocked.store(ids.contains(k->spec.id), std::memory_order_relaxed);
  }
}

}  // namespace edgeplane::proxy::gateway
