// The real subsystem drivers: namespaces, uplinks, routes, nftables and WireGuard on the kernel.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/core/drivers.h"
#include "reconciler/system/nft.h"
#include "reconciler/system/nft_observation_cache.h"
#include "reconciler/system/rtnl.h"
#include "reconciler/system/wireguard.h"

namespace edgeplane::sys {

// The network namespace a scope lives in: "" for the host, else ep-<scope>.
std::string scopeNetns(const std::string& scope);

// A removal that found nothing to remove is not an error.
inline Result<void> ignoreAbsent(const Result<Removal>& r) {
  if (!r) {
    return r.error();
  }
  return {};
}

// /run/netns entries (netns.h) and the ip_forward sysctl (rtnl.h).
class KernelNamespaces : public core::NamespaceDriver {
 public:
  // Interface
  Result<std::vector<std::string>> list() override;
  Result<bool> forwarding(const std::string& scope) override;
  Result<void> create(const std::string& ns) override;
  Result<void> remove(const std::string& ns) override;
  Result<void> setHostForwarding(bool on) override;
};

// veth pairs and addresses over rtnetlink.
class KernelUplinks : public core::UplinkDriver {
 public:
  // Interface
  Result<std::vector<core::LinkView>> observe(const std::string& scope) override;
  Result<void> ensure(const core::UplinkTarget& uplink) override;
  Result<void> remove(const std::string& ns) override;
};

// Routes over rtnetlink, owned ones marked with edgeplane's route protocol.
class KernelRoutes : public core::RouteDriver {
 public:
  // Interface
  Result<std::vector<core::RouteView>> observe(const std::string& scope) override;
  Result<void> replace(const core::RouteTarget& route) override;
  Result<void> remove(const std::string& ns, const IpPrefix& destination) override;
};

// `table ip edgeplane` over libnftnl/libmnl, one atomic batch per sync. With a cache directory,
// observe() dumps a scope's table only when its namespace's ruleset generation differs from
// the one the cached observation was made (or, after a sync, written) at.
class KernelNft : public core::NftDriver {
 public:
  explicit KernelNft(std::string cacheDir = {}) : cache_(std::move(cacheDir)) {}

  // What one sync call sent, for tests and --verbose output.
  struct TableSync {
    std::string scope;
    NftChange::Kind change = NftChange::Kind::None;
    std::vector<NftBatchOp> ops;
    // The rule counters as read just before a rebuild reset them (ReplaceTable only), so
    // the caller can keep them.
    std::optional<NftCounters> countersBeforeReset;
  };
  const std::vector<TableSync>& syncs() const { return syncs_; }

  // Interface
  Result<std::optional<core::NftTableView>> observe(const std::string& scope) override;
  Result<void> sync(const std::string& scope, const core::NftTableView& table) override;
  Result<void> remove(const std::string& scope) override;
  // The scope is gone (its namespace deleted): its cached observation too.
  void forget(const std::string& scope) { cache_.forget(scope); }

 private:
  Result<std::optional<NftTableState>> tableNow(NftSocket& sock, const std::string& scope,
                                                bool useCache, uint32_t& seenAt, bool& cached);
  std::vector<TableSync> syncs_;
  NftObservationCache cache_;
  // The sockets of this run's commits. Releasing a netfilter netlink socket while the kernel's
  // work freeing what the last commits replaced is still queued waits for all of it
  // (nft_rcv_nl_event flushes it, and it waits out an RCU grace period, 8-15 ms here): sync
  // yields after a commit so that the work starts, and they are closed at the end of the run.
  std::vector<NftSocket> committed_;
};

// Where a namespace's WireGuard private key is kept: <state-dir>/keys/<namespace>.key (0600).
std::string wireguardKeyPath(const std::string& stateDir, const std::string& ns);

// WireGuard interfaces, each driven by the backend that runs it, as wireguard-tools does: an
// existing interface by its link kind ("wireguard": the kernel over generic netlink, "tun":
// wireguard-go over UAPI), a new one by `choice` (auto: the kernel where it has WireGuard).
class KernelWireGuard : public core::WireGuardDriver {
 public:
  KernelWireGuard(std::string stateDir, WgBackendChoice choice)
      : stateDir_(std::move(stateDir)), choice_(choice) {}

  // Interface
  Result<core::WireGuardObservation> observe(const std::string& ns) override;
  // A few namespaces at a time, each on a thread of its own: each interface answers on its
  // own (a wireguard-go per namespace), and at 50 namespaces the round trips add up.
  std::vector<Result<core::WireGuardObservation>> observeEach(
      const std::vector<std::string>& namespaces) override;
  Result<void> ensure(const core::WireGuardTarget& wg) override;
  Result<void> remove(const std::string& ns) override;
  Result<void> syncPeers(const core::WireGuardTarget& wg) override;

 private:
  // The backend of `ifname` in `netns` if it is a WireGuard link, else the configured one.
  Result<WgBackend*> backendFor(const std::string& ifname, const std::string& netns);
  // The same, for the link as the caller has just read it (wgLinkGet).
  Result<WgBackend*> backendOf(const Result<std::optional<LinkInfo>>& link);
  Result<WgBackend*> configured();
  Result<WgBackend*> ofKind(WgBackendKind kind);

  std::string stateDir_;
  WgBackendChoice choice_;
  std::optional<WgBackendKind> configuredKind_;  // once `choice` was resolved
  std::map<WgBackendKind, std::unique_ptr<WgBackend>> backends_;
  std::mutex backendsMutex_;  // the two above, made on first use (observeEach's threads)
};

}  // namespace edgeplane::sys
