// Publishing the proxy snapshot and the API keys to the store, and the files the proxy reads.
#include "reconciler/cli/publish.h"

#include <fcntl.h>
#include <unistd.h>

#include "reconciler/system/dir_at.h"
#include "reconciler/system/file_write.h"
#include "reconciler/system/lock.h"
#include "schema/net.h"
#include "schema/proxy_feed.h"
#include "schema/result.h"
#include "schema/unique_fd.h"

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

namespace {

// `dir`/`name` replaced by `data` (temp + rename, synced).
Result<void> putFile(const std::string& dir, std::string_view name, const std::string& data) {
  const std::string path = dir + "/" + std::string(name);
  if (auto put = sys::replaceFile(path, path + ".tmp", data, 0600); !put) {
    return put.error();
  }
  return sys::fsyncDir(dir);
}

Result<PublishedState> publishedStateOf(const Store& store) {
  auto blocks = store.listApiKeyBlocks();
  auto challenges = store.listAcmeChallenges();
  auto acme = store.listAcmeStates();
  if (!blocks || !challenges || !acme) {
    return !blocks ? blocks.error() : !challenges ? challenges.error() : acme.error();
  }
  return PublishedState{std::move(*blocks), std::move(*challenges), std::move(*acme)};
}

// <state-dir>/published, made when missing, and an exclusive flock on <state-dir>/publish.lock
// held while the returned descriptor is open: concurrent publishers (an apply, `apikey block`)
// each read the store and write the files in turn, so the last file holds the last change. The
// lock is not in published/, whose files the proxy can open and would hold the lock by. The
// wait for it is bounded by `wait`.
Result<UniqueFd> lockPublishing(const std::filesystem::path& stateDir, const std::string& dir,
                                std::chrono::milliseconds wait) {
  // The state directory is the operator's path and may be a link; what is in it is never
  // followed.
  const UniqueFd parent(::open(stateDir.c_str(), sys::kDirFlags & ~O_NOFOLLOW));
  if (parent.get() < 0) {
    return terminal("open " + stateDir.string() + ": " + errnoText(errno));
  }
  auto made = sys::openDirAt(parent.get(), publishedDir(stateDir).filename(), dir, true);
  if (!made) {
    return made.error();
  }
  ::close(*made);
  const std::string path = (stateDir / "publish.lock").string();
  UniqueFd lock(::openat(parent.get(), "publish.lock",
                         O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
  if (lock.get() < 0) {
    return terminal("open " + path + ": " + errnoText(errno));
  }
  // Bounded: a publisher stopped while it holds the lock must not stall every later one.
  auto locked = sys::flockExclusiveWithin(lock.get(), wait);
  if (!locked) {
    return terminal("lock " + path + ": " + locked.error().message);
  }
  if (!*locked) {
    return retryable("another process publishing the proxy's files holds " + path +
                     "; gave up after " + formatDuration(wait));
  }
  return lock;
}

}  // namespace

Result<bool> publishProxyFeed(const std::filesystem::path& stateDir, const Store& store,
                              std::chrono::milliseconds lockWait) {
  const std::string dir = publishedDir(stateDir).string();
  auto lock = lockPublishing(stateDir, dir, lockWait);
  if (!lock) {
    return lock.error();
  }
  // The state first: a proxy that finds the new snapshot finds the blocks with it.
  bool changed = false;
  auto state = publishedStateOf(store);
  if (!state) {
    return state.error();
  }
  const std::string text = encodePublishedState(*state);
  auto current = sys::readOwnFile(dir + "/" + std::string(kPublishedState));
  if (!current || !current->has_value() || **current != text) {
    if (auto put = putFile(dir, kPublishedState, text); !put) {
      return put.error();
    }
    changed = true;
  }
  // A generation's body never changes: the file's header tells whether it is the newest, and
  // its length whether it is whole (a file that cannot be read as one is replaced). The body is
  // read from the store only when the file is to be replaced.
  auto newest = store.latestGeneration();
  if (!newest) {
    return newest.error();
  }
  auto held = readPublishedHead(stateDir);
  if (*newest == 0 || (held && held->generation == *newest && held->whole)) {
    return changed;
  }
  auto latest = store.latestSnapshot();
  if (!latest) {
    return latest.error();
  }
  if (latest->has_value()) {
    if (auto put = putFile(dir, kPublishedSnapshot, encodePublishedSnapshot(**latest)); !put) {
      return put.error();
    }
    changed = true;
  }
  return changed;
}

}  // namespace edgeplane::cli
