// What the reconciler publishes for the proxy, as files under <state-dir>/published: the codec
// and the proxy's reader. The reconciler writes them (cli/publish.h) from its store; the proxy
// only reads them, so it never opens the reconciler's store (which it could then write).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/result.h"
#include "schema/state_layout.h"
#include "schema/store.h"

namespace edgeplane {

// Everything else the proxy serves from: the API keys blocked on this host, the pending ACME
// answers, and each ACME certificate's lifecycle (for /metrics). Each list as the store lists it.
struct PublishedState {
  std::vector<ApiKeyBlock> blocks;
  std::vector<AcmeChallenge> challenges;
  std::vector<AcmeState> acme;
  bool operator==(const PublishedState&) const = default;
};

// The snapshot file: "edgeplane-snapshot/1 <generation> <created-ms> <body-bytes>\n", then the
// body as the store holds it. The header alone tells the generation, without reading a large
// body, and how long the whole file is, so that one cut short is told.
std::string encodePublishedSnapshot(const Snapshot& snapshot);
// The snapshot (runId unset); an error naming what is wrong with a damaged or short file.
Result<Snapshot> decodePublishedSnapshot(std::string_view text);
// The header's generation and the whole file's length it implies; an error when `head` does not
// start with a whole header.
Result<std::pair<int64_t, size_t>> publishedSnapshotHeader(std::string_view head);

// The state file: one JSON object {"blocks":[…],"challenges":[…],"acme":[…]}.
std::string encodePublishedState(const PublishedState& state);
Result<PublishedState> decodePublishedState(std::string_view text);

// The proxy's reads. nullopt / 0 / an empty state: nothing published yet (no file). A file that
// cannot be read or decoded is an error naming it.
Result<std::optional<Snapshot>> readPublishedSnapshot(const std::filesystem::path& stateDir);
Result<int64_t> readPublishedGeneration(const std::filesystem::path& stateDir);
// The snapshot file's header (generation 0: none), and whether the file is as long as it says.
struct PublishedHead {
  int64_t generation = 0;
  bool whole = false;
};
Result<PublishedHead> readPublishedHead(const std::filesystem::path& stateDir);
Result<PublishedState> readPublishedState(const std::filesystem::path& stateDir);

}  // namespace edgeplane
