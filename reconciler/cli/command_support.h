// What the `edgeplane` commands share (command_support.cpp): loading a config directory, the
// store and the store's view of the host, the kernel host. Not a public interface.
#pragma once

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "reconciler/cli/commands.h"
#include "reconciler/cli/config_cache.h"
#include "reconciler/core/host_state.h"
#include "reconciler/core/target.h"
#include "reconciler/system/host_driver.h"
#include "schema/diagnostic.h"
#include "schema/model.h"
#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::cli {

// The config source a destroy run records: no config is applied after it.
inline constexpr std::string_view kDestroySource = "(destroy: the empty desired state)";
// How long the proxy's admin API gets to answer a notice or a query.
inline constexpr std::chrono::milliseconds kProxyNotifyTimeout{2000};

struct Loaded {
  std::shared_ptr<const Desired> all;  // never null
  std::string host;
  // The config cache's writes of this load, which go on meanwhile; destroying the Loaded (at
  // the end of the run) waits for them.
  CacheWrites cacheWrites;
};

// Loads and validates a directory. Diagnostics name files as `displayRoot/relative` (for an
// exported commit: the path inside the repository, not the state directory's copy).
struct LoadOutcome {
  std::optional<Loaded> loaded;
  std::string diagnostics;        // every diagnostic, one per line
  std::vector<Diagnostic> items;  // the same, for JSON (files as `diagnostics` names them)
  size_t errors = 0;
  std::string hostError;
};
// With `cache` (configCacheIn: plan and apply), an unchanged config comes from the
// validated-config cache instead of being parsed and validated again.
// With `files` (a Git commit's, exportCommit), those are loaded rather than what `dir` holds.
LoadOutcome loadConfig(const std::filesystem::path& dir,
                       const std::optional<std::string>& displayRoot, const Options& o,
                       const std::optional<ConfigCache>& cache = std::nullopt,
                       const std::vector<ConfigFile>* files = nullptr);

// What edgeplane owns on the host, with the routes the proxy serves now (the latest snapshot;
// one of an older codec version counts as none).
Result<core::StoreView> readStoreView(Store& store);

// What the state directory holds beside the live host, as it is read: the store's view
// (readStoreView; empty when nothing was ever applied there) first, since the target needs it,
// then the certificates edgeplane made (CertStore::observeGenerated: `now` and
// `generatedCerts`), which only observeCertificates, after the target, does.
struct StateDirReading {
  std::future<Result<core::StoreView>> view;
  std::future<Result<core::HostState>> certs;  // destroying it waits for the thread
};
// The StateDirReading of `stateDir`, read on a thread of its own (the store over a connection
// of its own: a Store belongs to one thread), started now, while the caller loads the config.
StateDirReading readStateDirInBackground(const std::string& stateDir);

// The wall clock, unix milliseconds (what the store records).
int64_t nowMs();

// The store in `stateDir`, or nullptr when nothing was ever applied there.
Result<std::unique_ptr<Store>> openStoreIfPresent(const std::string& stateDir);

// The host's drivers, with the WireGuard backend --wireguard-backend names (default auto).
sys::WgBackendChoice backendChoice(const Options& o);
sys::KernelHost makeHost(const Options& o);

// host.observe() on a thread of its own, started now, while the caller loads the config and
// reads the store: neither depends on the live host, and at 10k forwards each side costs tens
// of milliseconds. The host must not be used until get() has returned; destroying the future
// waits for the thread.
std::future<Result<core::HostState>> observeInBackground(sys::KernelHost& host);

// "1 route", "3 routes".
std::string plural(size_t n, std::string_view one, std::string_view many);

// This host's target (core::buildTarget) with its peers' preshared keys read from their files
// (sys::readPresharedKeyFile); `readKeys` false (an offline plan, whose files live on another
// host) leaves them unread, so only whether a peer has one is planned. A key file that cannot
// be used fails the target, and the message names each such peer and file, never a key.
Result<core::Target> buildHostTarget(const Loaded& loaded, const core::StoreView& view,
                                     const std::set<std::string>& rotateKeys, bool readKeys);

// The generated certificates of `seen` (readStateDirInBackground) put into `observed`, and the
// files of the target's "files" certificates observed into it.
void observeCertificates(const Options& o, const core::Target& target, core::HostState& seen,
                         core::HostState& observed);

}  // namespace edgeplane::cli
