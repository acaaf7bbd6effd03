// Where the reconciler and the proxy meet in the state directory, by name: the directory the
// reconciler publishes into, and the proxy's own. Names only (no I/O), so that any module may
// say them, down to the agent file's defaults.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace edgeplane {

// <state-dir>/published, and its two files (schema/proxy_feed.h: their codec).
inline std::filesystem::path publishedDir(const std::filesystem::path& stateDir) {
  return stateDir / "published";
}
inline constexpr std::string_view kPublishedSnapshot = "snapshot";
inline constexpr std::string_view kPublishedState = "state";

// <state-dir>/proxy: the proxy's own directory, the only one in the state directory it writes
// (its admin socket, and its counters in a store of its own, kProxyCounters). What the
// reconciler reads there, it reads as written by a process that may be taken over.
inline std::filesystem::path proxyOwnDir(const std::filesystem::path& stateDir) {
  return stateDir / "proxy";
}
inline constexpr std::string_view kProxyCounters = "counters.db";
// Where the proxy's admin API listens unless told otherwise, and the reconciler finds it.
inline std::string defaultProxyAdmin(const std::filesystem::path& stateDir) {
  return "unix:" + (proxyOwnDir(stateDir) / "admin.sock").string();
}

}  // namespace edgeplane
