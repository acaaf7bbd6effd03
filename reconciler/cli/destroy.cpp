// `edgeplane destroy`: this host converged to an empty desired state, with apply's ownership
// rules — what the store says edgeplane made goes, foreign objects stay — and the proxy's routes
// emptied. The state directory (keys, certificates, history) is kept.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/execute.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/terminal_out.h"
#include "reconciler/cli/trigger_socket.h"
#include "reconciler/core/plan.h"
#include "reconciler/core/target.h"
#include "reconciler/system/lock.h"
#include "reconciler/system/netns.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

// Whether an agent answers on its trigger socket: it would put everything back at its next run.
bool agentIsListening(const fs::path& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.native().size() >= sizeof(addr.sun_path)) {
    return false;
  }
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

// Asks on a terminal; refuses elsewhere (a script says --yes).
bool confirmed(const Options& o, size_t changes) {
  if (o.yes) {
    return true;
  }
  if (::isatty(STDIN_FILENO) == 0 || ::isatty(STDOUT_FILENO) == 0) {
    std::cerr << "edgeplane destroy: not a terminal: pass --yes to destroy\n";
    return false;
  }
  std::cout << "\nDestroy " << plural(changes, "change", "changes")
            << " on this host? Only 'yes' is accepted: " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "yes") {
    std::cerr << "edgeplane destroy: cancelled, nothing changed\n";
    return false;
  }
  return true;
}

// The confirmed destroy plan carried out and recorded as a run of its own.
int executeDestroy(const Options& o, Store& store, const core::Plan& p, const core::StoreView& view,
                   const core::HostState& observed, sys::KernelHost& host) {
  auto run = store.beginRun(RunStart{std::nullopt, std::string(kDestroySource), nowMs()});
  if (!run) {
    std::cerr << "edgeplane destroy: " << run.error().message << "\n";
    return 1;
  }
  sys::CertStore certStore(o.stateDir);
  CrashPoint crash(std::cerr);
  auto executed = executePlan(o, store, *run, p, view, observed, host, certStore, std::nullopt,
                              "destroy", crash, std::cout, std::cerr);
  if (!executed) {
    (void)store.finishRun(
        *run, RunFinish{nowMs(), RunResult::Failed, executed.error().message, RunCounts{}, ""});
    std::cerr << "edgeplane destroy: " << executed.error().message << "; nothing changed\n";
    return 1;
  }
  const bool ok = executed->counts.failed == 0 && executed->saved && executed->published &&
                  executed->keysSynced;
  // No config is applied any more: status compares the host with none.
  std::error_code ec;
  // A directory only: on a host still in the earlier cache layout, source/config is the cache's
  // Git config file.
  if (fs::symlink_status(keptConfigDir(o.stateDir), ec).type() == fs::file_type::directory) {
    fs::remove_all(keptConfigDir(o.stateDir), ec);
  }
  fs::remove_all(fs::path(o.stateDir) / "config", ec);  // where it was kept before
  std::string summary = "destroy: " + countsText(executed->counts);
  if (!executed->published) {
    summary += ", proxy snapshot not written";
  }
  (void)store.finishRun(*run, RunFinish{nowMs(), ok ? RunResult::Ok : RunResult::Partial, summary,
                                        executed->counts, ""});
  std::cout << "\nDestroy " << (ok ? "complete" : "finished with errors")
            << "! Resources: " << countsText(executed->counts) << ".\n"
            << "The state directory " << o.stateDir
            << " is kept (WireGuard keys, certificates, history).\n";
  if (auto synced = store.syncChanges(); !synced) {
    std::cerr << "edgeplane destroy: " << synced.error().message
              << "; what this run recorded may not survive a crash\n";
    return 1;
  }
  return ok ? 0 : 1;
}

}  // namespace

int cmdDestroy(const Options& o) {
  std::error_code missing;
  if (!fs::exists(fs::path(o.stateDir) / "state.db", missing)) {
    std::cout << "Nothing to destroy: nothing was ever applied here (no state in " << o.stateDir
              << ").\n";
    return 0;
  }
  if (agentIsListening(fs::path(o.stateDir) / kAgentSocketName)) {
    std::cerr << "edgeplane destroy: an agent is running (it answers on "
              << (fs::path(o.stateDir) / kAgentSocketName).string()
              << ") and would put everything back at its next run: stop it first "
                 "(systemctl stop edgeplane-agent)\n";
    return 1;
  }
  auto lock = sys::StateLock::acquire(o.stateDir, o.lockTimeout, [&](long pid) {
    std::cerr << "edgeplane destroy: waiting for another run"
              << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) << " to finish\n";
  });
  if (!lock) {
    std::cerr << "edgeplane destroy: " << lock.error().message << "\n";
    return 1;
  }
  auto opened = openStoreIfPresent(o.stateDir);
  if (!opened) {
    std::cerr << "edgeplane destroy: " << opened.error().message << "\n";
    return 1;
  }
  if (!*opened) {
    std::cout << "Nothing to destroy: the state in " << o.stateDir << " went away.\n";
    return 0;
  }
  Store& store = **opened;
  sys::sweepInterruptedCreates();  // under the lock: no create of ours is in flight
  auto view = readStoreView(store);
  if (!view) {
    std::cerr << "edgeplane destroy: " << view.error().message << "\n";
    return 1;
  }
  sys::KernelHost host = makeHost(o);
  auto observed = host.observe();
  if (!observed) {
    std::cerr << "edgeplane destroy: observing the host failed: " << observed.error().message
              << "\n";
    return 1;
  }
  // The empty desired state, through the same target, plan and ownership rules as apply.
  // The host the proxy's snapshot is for: the one last published, else as apply would name it.
  const std::string hostName = view->snapshot && !view->snapshot->host.empty()
                                   ? view->snapshot->host
                                   : o.host.value_or(o.agentHost.value_or("default"));
  auto target = core::buildTarget(Desired{}, hostName, *view);
  if (!target) {
    std::cerr << "edgeplane destroy: " << target.error().message << "\n";
    return 1;
  }
  core::Plan p = core::plan(*target, *observed, *view);
  if (p.empty()) {
    std::cout << "Nothing to destroy: edgeplane owns nothing on this host.\n";
    return 0;
  }
  writePlan(std::cout, p);
  if (!confirmed(o, p.ops.size())) {
    return ::isatty(STDIN_FILENO) != 0 && ::isatty(STDOUT_FILENO) != 0 ? 1 : 2;
  }

  return executeDestroy(o, store, p, *view, *observed, host);
}

}  // namespace edgeplane::cli
