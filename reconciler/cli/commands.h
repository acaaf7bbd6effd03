// The reconciler's commands (plan, apply, status) behind the `edgeplane` command line.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>

namespace edgeplane::cli {

struct Options {
  std::optional<std::string> config;
  std::optional<std::string> host;
  std::string stateDir;  // --state-dir, else $EDGEPLANE_STATE_DIR, else /var/lib/edgeplane
  std::optional<std::string> observed;  // plan --offline --observed FILE
  bool json = false;
  bool detailedExitcode = false;
  bool offline = false;
  bool verbose = false;                       // apply: print every nftables batch message
  std::chrono::milliseconds lockTimeout{-1};  // negative: wait as long as it takes
  std::string wireguardBackend = "auto";      // auto | kernel | userspace
  std::set<std::string> rotateKeys;           // apply --rotate-key NS[,NS…]
};

int cmdPlan(const Options& o);
int cmdApply(const Options& o);
int cmdStatus(const Options& o);

}  // namespace edgeplane::cli
