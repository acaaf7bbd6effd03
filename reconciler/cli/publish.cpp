// Publishing the proxy snapshot and the API keys to the store.
#include "reconciler/cli/publish.h"

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

}  // namespace edgeplane::cli
