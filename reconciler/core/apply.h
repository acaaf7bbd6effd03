// Executes a Plan through a HostDriver: dependency-aware, one table sync per nftables scope.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/core/plan.h"
#include "schema/result.h"

namespace edgeplane::core {

// What apply needs from a host. The real implementation talks to the kernel
// (reconciler/system/host_driver.h); the fake in tests/support mutates a HostState.
class HostDriver {
 public:
  virtual ~HostDriver() = default;

  virtual Result<HostState> observe() = 0;
  virtual Result<void> createNamespace(const std::string& ns) = 0;
  virtual Result<void> deleteNamespace(const std::string& ns) = 0;
  // The host's net.ipv4.ip_forward: on while namespaces need it; off again only when the
  // store says edgeplane turned it on (the plan decides).
  virtual Result<void> setHostForwarding(bool on) = 0;
  // Converges the veth pair, its addresses, link state, the namespace's default route and
  // its forwarding sysctl; recreates the pair if either end is missing.
  virtual Result<void> ensureUplink(const UplinkTarget& uplink) = 0;
  virtual Result<void> deleteUplink(const std::string& ns) = 0;
  // Converges the namespace's WireGuard interface: private key (kept in a 0600 file, made
  // only when wg.allowNewKey), interface (restarted if dead), listen port, addresses, up.
  virtual Result<void> ensureWireGuard(const WireGuardTarget& wg) = 0;
  virtual Result<void> deleteWireGuard(const std::string& ns) = 0;
  // Sends only the peers that differ (added, changed, removed), like `wg syncconf`.
  virtual Result<void> syncPeers(const WireGuardTarget& wg) = 0;
  virtual Result<void> replaceRoute(const RouteTarget& route) = 0;
  virtual Result<void> deleteRoute(const std::string& ns, const IpPrefix& destination) = 0;
  // Makes edgeplane's table in `scope` ("" = host) hold exactly `table`, in one atomic batch:
  // only the element changes when the skeleton is intact, the whole table otherwise.
  virtual Result<void> syncTable(const std::string& scope, const NftTableView& table) = 0;
  virtual Result<void> deleteTable(const std::string& scope) = 0;
};

// What apply needs to materialise certificates. The real one writes under
// <state-dir>/certs with OpenSSL (reconciler/system/certs.h); tests use an in-memory fake.
class CertDriver {
 public:
  virtual ~CertDriver() = default;
  // Generates a fresh key and certificate for a generated target (self-signed or a
  // placeholder) and swaps them in atomically; returns what is now on disk.
  virtual Result<CertView> issue(const CertTarget& cert) = 0;
  // Reads a "files" certificate again (it may have changed since observe).
  virtual Result<CertView> read(const CertTarget& cert) = 0;
  // Removes a generated certificate's files.
  virtual Result<void> remove(const std::string& name) = 0;
};

struct OpResult {
  bool ok = false;
  std::string error;  // empty when ok
};

struct ApplyResult {
  std::vector<OpResult> ops;  // parallel to Plan::ops
  // Certificates as a successful op left them (issued, or "files" read again), by name.
  std::map<std::string, CertView, std::less<>> certificates;
  size_t failed() const;
  bool ok() const { return failed() == 0; }
};

// Runs every op whose dependencies succeeded; an op whose dependency failed is failed with
// "skipped: …" and the rest goes on. Forwards are applied as one table sync per scope after
// namespaces, uplinks and routes, leaving the old mappings of any forward that could not be
// applied in place.
// Certificate ops go to `certs` (nullptr: they fail, "no certificate driver"); route ops only
// record that the snapshot should change, and succeed when their dependencies did.
// `beforeStep`, when set, is called right before each call that changes the host (a driver
// call), with what it is ("uplink tenant-a", "nftables sync host"): the crash tests stop a run
// there.
using BeforeStep = std::function<void(const std::string& what)>;
ApplyResult apply(const Plan& plan, HostDriver& driver, CertDriver* certs = nullptr,
                  const BeforeStep& beforeStep = {});

// The proxy snapshot an apply leaves: the target's routes, except those whose certificate
// is not usable now (its op failed, or its files have an error), each with the reason in
// `leftOut` ("site shop: certificate shop: key does not match"); and the certificates the
// remaining routes name, from `result` or else as observed. Sorted as the codec wants.
ProxySnapshot snapshotAfter(const Plan& plan, const ApplyResult& result, const HostState& observed,
                            std::vector<std::string>& leftOut);

}  // namespace edgeplane::core

namespace edgeplane::core {

// The ownership view after an apply: every desired resource not failed counts as applied
// (so adopted ones are owned from now on), deleted ones are forgotten, and resources whose
// delete failed stay owned so the next run prunes them again.
StoreView recordApplied(const Plan& plan, const ApplyResult& result, const StoreView& before);

// The spec an intended resource is recorded with until its create is known to have succeeded.
inline constexpr std::string_view kPendingSpec = "pending";

// The ownership to record before the ops run (write-ahead): `before` plus every namespace the
// plan creates, with its uplink's /31, as kPendingSpec. A run killed after creating a namespace
// and before recordApplied leaves it owned, so the next run prunes it if it is no longer wanted
// (instead of taking it for a foreign one for ever, its /31 free for another tenant).
// nullopt when the plan creates no namespace: nothing to record ahead, and no copy of a view
// that holds a row per forward.
std::optional<StoreView> recordIntent(const Plan& plan, const StoreView& before);

}  // namespace edgeplane::core
