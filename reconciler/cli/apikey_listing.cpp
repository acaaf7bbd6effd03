// The rows of `edgeplane apikey list` (see apikey_listing.h).
#include "reconciler/cli/apikey_listing.h"

#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace edgeplane::cli {

void addUsage(std::optional<ApiKeyUsage>& into, const ApiKeyUsage& u) {
  if (!into) {
    into = u;
    return;
  }
  into->requestCount += u.requestCount;
  for (size_t i = 0; i < u.responses.size(); ++i) {
    into->responses[i] += u.responses[i];
  }
  if (u.lastUsedAt && (!into->lastUsedAt || *u.lastUsedAt >= *into->lastUsedAt)) {
    into->lastUsedAt = u.lastUsedAt;
    into->lastIp = u.lastIp;
  }
}

std::vector<ListedKey> joinListedKeys(const std::vector<SnapshotApiKey>& keys,
                                      const std::vector<StoredApiKey>& stored,
                                      const std::vector<ApiKeyUsage>& before,
                                      const std::vector<ApiKeyUsage>& live,
                                      const std::vector<ApiKeyBlock>& blocks) {
  std::unordered_map<std::string_view, const StoredApiKey*> storedById;
  for (const auto& s : stored) {
    storedById.insert_or_assign(s.id, &s);
  }
  std::unordered_map<std::string_view, std::optional<ApiKeyUsage>> usageById;
  for (const auto* list : {&before, &live}) {
    for (const auto& u : *list) {
      addUsage(usageById[u.keyId], u);
    }
  }
  std::unordered_set<std::string_view> blocked;
  for (const auto& b : blocks) {
    blocked.insert(b.keyId);
  }
  std::vector<ListedKey> out;
  out.reserve(keys.size());
  for (const auto& k : keys) {
    ListedKey l{k, std::nullopt, std::nullopt, blocked.count(k.id) != 0};
    if (auto s = storedById.find(k.id); s != storedById.end()) {
      l.stored = *s->second;
    }
    if (auto u = usageById.find(k.id); u != usageById.end()) {
      l.usage = u->second;
    }
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace edgeplane::cli
