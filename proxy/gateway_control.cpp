// The Controller's worker-gateway duties: blocked keys as published, usage flushes into the
// proxy's store, and the admin API's key list. See control.h.
#include <algorithm>
#include <map>

#include "proxy/control.h"
#include "proxy/gateway/config.h"
#include "schema/json_text.h"

namespace edgeplane::proxy {

gateway::Runtime& Controller::gatewayRuntime() const {
  return current()->gateway->runtime();
}

void Controller::refreshBlocksLocked(const std::vector<ApiKeyBlock>& blocks) {
  std::set<std::string, std::less<>> ids;
  for (const ApiKeyBlock& b : blocks) {
    ids.insert(b.keyId);
  }
  auto config = current();
  if (!config->gateway->runtime().setBlocked(ids)) {
    return;
  }
  config->gateway->applyBlocks(ids);
  std::string list;
  for (const std::string& id : ids) {
    list += (list.empty() ? "" : ", ") + id;
  }
  log("API keys blocked on this host: " + (list.empty() ? std::string("none") : list));
}

Result<size_t> Controller::flushUsage() {
  std::lock_guard lock(mu_);
  return flushUsageLocked();
}

Result<size_t> Controller::flushUsageLocked() {
  gateway::Runtime& runtime = current()->gateway->runtime();
  runtime.collect();
  std::vector<gateway::KeyUsageDelta> pending = runtime.takePending();
  if (pending.empty()) {
    return size_t{0};
  }
  auto store = storeLocked();
  if (!store) {
    runtime.restorePending(std::move(pending));
    return store.error();
  }
  std::vector<UsageDelta> deltas;
  deltas.reserve(pending.size());
  for (const gateway::KeyUsageDelta& p : pending) {
    UsageDelta d;
    d.keyId = p.keyId;
    d.requests = static_cast<int64_t>(p.count.requests);
    d.lastUsedAt = p.count.lastUsedMs;
    d.lastIp = p.count.requests != 0 ? p.count.lastIp.str() : "";
    for (size_t i = 0; i < d.responses.size(); ++i) {
      d.responses[i] = static_cast<int64_t>(p.count.classes[i]);
    }
    deltas.push_back(std::move(d));
  }
  auto added = (*store)->addUsageBatch(deltas);
  if (!added) {
    runtime.restorePending(std::move(pending));
    storeFailedLocked(added.error(), "cannot write API key usage");
    return added.error();
  }
  return pending.size();
}

Result<std::string> Controller::apiKeysJson() {
  std::lock_guard lock(mu_);
  auto config = current();
  // What the workers counted goes to the store first, so the answer is stored + nothing.
  std::map<std::string, ApiKeyUsage, std::less<>> usage;
  if (auto flushed = flushUsageLocked(); flushed) {
    auto store = storeLocked();
    if (!store) {
      return store.error();
    }
    auto stored = (*store)->listUsage();
    if (!stored) {
      return stored.error();
    }
    for (ApiKeyUsage& u : *stored) {
      usage.emplace(u.keyId, std::move(u));
    }
  } else {
    return flushed.error();
  }
  std::string out = "[";
  bool first = true;
  for (const auto& key : config->gateway->keys()) {
    const SnapshotApiKey& k = key->spec;
    out += first ? "{" : ",{";
    first = false;
    out += R"("id":)";
    appendJsonString(out, k.id);
    out += R"(,"name":)";
    appendJsonString(out, k.name);
    out += R"(,"gateways":[)";
    for (size_t i = 0; i < k.gateways.size(); ++i) {
      out += i == 0 ? "" : ",";
      appendJsonString(out, k.gateways[i]);
    }
    out += R"(],"role":)";
    appendJsonString(out, toString(k.role));
    out += std::string(R"(,"enabled":)") + (k.enabled ? "true" : "false");
    out += std::string(R"(,"blocked":)") + (key->blocked.load() ? "true" : "false");
    auto u = usage.find(k.id);
    out += R"(,"request_count":)" +
           std::to_string(u != usage.end() ? u->second.requestCount : int64_t{0});
    out += R"(,"last_used_at":)";
    if (u != usage.end() && u->second.lastUsedAt) {
      out += std::to_string(*u->second.lastUsedAt);
    } else {
      out += "null";
    }
    out += R"(,"last_ip":)";
    if (u != usage.end() && u->second.lastIp) {
      appendJsonString(out, *u->second.lastIp);
    } else {
      out += "null";
    }
    out += R"(,"responses":{)";
    for (size_t i = 0; i < 5; ++i) {
      out += (i == 0 ? "\"" : ",\"") + std::to_string(i + 1) +
             "xx\":" + std::to_string(u != usage.end() ? u->second.responses[i] : int64_t{0});
    }
    out += "}}";
  }
  out += "]";
  return out;
}

}  // namespace edgeplane::proxy
