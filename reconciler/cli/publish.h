// Hands the proxy its routing snapshot: a new store generation when it changed, the files the
// proxy reads (<state-dir>/published), then a nudge.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/cli/proxy_admin.h"
#include "schema/result.h"
#include "schema/snapshot.h"
#include "schema/store.h"

namespace edgeplane::cli {

struct Published {
  int64_t generation = 0;  // the store's latest generation after the call
  bool changed = false;    // false: the latest stored snapshot was already this one
  size_t routes = 0;
};

// Writes the snapshot into the store in one transaction with a new generation — unless its
// JSON equals the latest stored snapshot's, in which case nothing is written and the latest
// generation is returned with changed=false. A snapshot the proxy's decoder would refuse is
// not written either (terminal error): the proxy would keep serving the old one silently.
Result<Published> publishSnapshot(Store& store, const ProxySnapshot& snapshot,
                                  std::optional<int64_t> runId, int64_t nowMs);

// The snapshot's API keys as the store's api_keys table keeps them (verifiers only).
std::vector<ApiKeyRecord> apiKeyRecords(const ProxySnapshot& snapshot);

// Makes the store's api_keys table the snapshot's keys (after the snapshot is published, as
// DESIGN orders it), ids new to the table first seen at `commit` and `nowMs`.
Result<void> publishApiKeys(Store& store, const ProxySnapshot& snapshot,
                            std::optional<std::string> commit, int64_t nowMs);

// Brings <state-dir>/published (schema/proxy_feed.h) up to the store: the newest snapshot, the
// blocked API keys, the pending ACME answers and the ACME lifecycle. Each file is replaced
// (temp + rename, synced) only when what it holds differs; returns whether any was. The proxy
// reads these files and never the store. Call after every change to what they hold.
Result<bool> publishProxyFeed(const std::filesystem::path& stateDir, const Store& store,
                              std::chrono::milliseconds lockWait = std::chrono::seconds(10));

}  // namespace edgeplane::cli
