// A fetch with a deadline: libgit2 1.5 has no timeouts, so the fetch runs in a child process
// (this executable re-run as `edgeplane __fetch …`) that is killed when the deadline passes.
//
// Why a process and not a thread: a thread stuck in connect() or in a stalled transfer cannot
// be cancelled, and an abandoned one would keep writing into the cache (and holding its ref
// locks) while the next run fetches into it. A child can be SIGKILLed at any moment; the
// kernel closes its sockets, and the caller (holding the state lock, so the only writer)
// removes the ref lock files a killed fetch left. The fetch writes objects first and moves
// refs last, one ref at a time under its lock file, so a kill leaves either the old or the new
// value of each ref, never a broken repository. exec (rather than a bare fork) gives the child
// a clean process even when the parent runs threads (the agent's listeners).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/source/git_source.h"
#include "schema/result.h"

namespace edgeplane::cli {

// The child's command line up to the arguments: normally {"/proc/self/exe"}; tests put a
// stand-in here.
std::vector<std::string> defaultFetchHelper();

// Runs `helper… __fetch CACHE URL REF MAX_BYTES [SSH_KEY]` (MAX_BYTES: spec.fetchMaxSize; URL
// "-" and the url in kFetchUrlEnv when it holds a password) and waits at most `timeout`. The
// child's verdict is passed through (retryable or terminal, with libgit2's message); a child
// that runs out of time is killed and the fetch is a retryable error. On success, the commit the
// child fetched the ref to (a full id): the commit to use, rather than the cache's ref read
// again afterwards, which others who write the state directory could have moved. `tick`, when set,
// is called about once a second while the child runs, with the time taken so far (a progress line).
using FetchTick = std::function<void(std::chrono::milliseconds elapsed)>;
Result<std::string> fetchInChild(const std::filesystem::path& cacheDir,
                                 const source::SourceSpec& spec, std::chrono::milliseconds timeout,
                                 const std::vector<std::string>& helper,
                                 const FetchTick& tick = {});

// The child side: `edgeplane __fetch CACHE URL REF MAX_BYTES [SSH_KEY]`. First confines itself
// (fetch_confine.h: no capabilities, no_new_privs, a seccomp filter); then fetches. Prints one
// line on stdout — "ok <commit>", "retryable <message>" or "terminal <message>" — and returns
// the exit code.
int fetchChildMain(const std::vector<std::string>& args);

// The child's environment variable that carries a url holding a password; argv (readable by
// every user in /proc) then holds "-" in its place.
inline constexpr const char* kFetchUrlEnv = "EDGEPLANE_FETCH_URL";
// The child's environment variable naming the descriptor of the net module its parent loaded
// (net::moduleFile), which the child loads instead of the file on disk.
inline constexpr const char* kFetchModuleFdEnv = "EDGEPLANE_NET_MODULE_FD";

// Removes the lock files (`*.lock`) a killed fetch may have left under a cache directory.
// Only safe for the holder of the state lock, the cache's only writer.
void removeStaleGitLocks(const std::filesystem::path& cacheDir);

}  // namespace edgeplane::cli
