// The planner's WireGuard steps: the namespace's interface, then its peers one by one (planner.h).
#include "reconciler/core/planner.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace edgeplane::core::planner {
namespace {

// Both sides have a preshared key and both values are known, and they differ.
bool pskChanged(const PeerView& pv, const PeerTarget& p) {
  return pv.hasPsk && p.pskFile && pv.presharedKey && p.presharedKey &&
         *pv.presharedKey != *p.presharedKey;
}

// The preshared key's change, never the key: set, removed or changed. Without both values
// (an offline plan, an observation read from JSON) only whether one is set is compared.
std::optional<FieldChange> pskChange(const PeerView& pv, const PeerTarget& p) {
  if (!pv.hasPsk && p.pskFile) {
    return FieldChange{"preshared_key", "", "set"};
  }
  if (pv.hasPsk && !p.pskFile) {
    return FieldChange{"preshared_key", "set", ""};
  }
  if (pskChanged(pv, p)) {
    return FieldChange{"preshared_key", "set", "changed"};
  }
  return std::nullopt;
}

}  // namespace

// The namespace's WireGuard interface, then its peers one by one (like `wg syncconf`: an
// unchanged peer gets no op, so its session survives).
void Planner::planWireGuard(const std::string& ns) {
  const NetnsView* v = view(ns);
  auto it = t_.wireguard.find(ns);
  if (it == t_.wireguard.end()) {
    if (v != nullptr && (v->wireguard || v->link(wgLinkName(ns)) != nullptr) &&
        s_.owns("wireguard", ns)) {
      Op op = makeOp(Action::Delete, Kind::WireGuard, ns, ns);
      op.changes.push_back({"interface", wgLinkName(ns), ""});
      add(std::move(op));
    }
    return;
  }
  const WireGuardTarget& wt = it->second;
  const bool owned = s_.owns("wireguard", ns);
  const LinkView* link = v != nullptr ? v->link(wt.ifname) : nullptr;
  const std::optional<WireGuardView> seen =
      v != nullptr && link != nullptr ? v->wireguard : std::nullopt;
  const std::optional<WgKey> stored = v != nullptr ? v->storedPublicKey : std::nullopt;
  // A key file that exists but cannot be read is never replaced on edgeplane's own: a new
  // key would change the public key every peer knows.
  const bool keyUnusable = v != nullptr && !v->keyError.empty() && !wt.rotateKey;
  const bool keyLost = owned && !stored && !wt.rotateKey && !keyUnusable;
  const std::string keyLostNote =
      "the private key file is missing: the public key peers know would change; apply "
      "refuses until it is restored or --rotate-key " +
      ns + " is given";

  Op op = makeOp(seen ? Action::Update : Action::Create, Kind::WireGuard, ns, ns);
  if (!seen) {
    op.changes.push_back({"interface", "", wt.ifname});
    op.changes.push_back({"listen_port", "", std::to_string(wt.listenPort)});
    op.changes.push_back({"address", "", prefixes(wt.addresses)});
    op.changes.push_back({"public_key", "",
                          keyUnusable               ? "(the key file is unusable)"
                          : stored && !wt.rotateKey ? stored->base64()
                                                    : "(generated on apply)"});
    if (owned && v != nullptr) {
      op.drift = "interface missing (wireguard-go not running?)";
    }
  } else {
    if (seen->listenPort != wt.listenPort) {
      op.changes.push_back(
          {"listen_port", std::to_string(seen->listenPort), std::to_string(wt.listenPort)});
    }
    std::vector<IpPrefix> addrs = link->addresses;
    std::sort(addrs.begin(), addrs.end());
    if (addrs != wt.addresses) {
      op.changes.push_back({"address", prefixes(addrs), prefixes(wt.addresses)});
    }
    if (!link->up) {
      op.changes.push_back({"state", "down", "up"});
    }
    if (wt.rotateKey) {
      op.changes.push_back({"public_key", seen->publicKey ? seen->publicKey->base64() : "",
                            "(new key, generated on apply)"});
    } else if (stored && seen->publicKey != stored) {
      op.changes.push_back(
          {"public_key", seen->publicKey ? seen->publicKey->base64() : "", stored->base64()});
    }
    if (!op.changes.empty() && s_.appliedAs("wireguard", ns, wt.describe())) {
      op.drift = "interface changed outside edgeplane";
    }
  }
  if (keyLost) {
    op.changes.push_back({"private_key", "missing", "(refused)"});
    op.drift = op.drift.empty() ? keyLostNote : op.drift + "; " + keyLostNote;
  }
  if (keyUnusable) {
    op.error = v->keyError +
               "; the namespace's WireGuard is left as it is: repair the file, or "
               "replace the key with --rotate-key " +
               ns + " (peers must then learn the new public key)";
  }
  if (!seen || !op.changes.empty() || keyUnusable) {
    dep(op, indexOf(nsOps_, ns));
    wgOps_[ns] = add(std::move(op));
  }
  planPeers(wt, seen);
}

namespace {

// The changes that make observed peer `pv` the target `p` (empty: as desired).
std::vector<FieldChange> peerChanges(const PeerView& pv, const PeerTarget& p) {
  std::vector<FieldChange> changes;
  if (pv.allowedIps != p.allowedIps) {
    changes.push_back({"allowed_ips", prefixes(pv.allowedIps), prefixes(p.allowedIps)});
  }
  // A configured IP endpoint is enforced; a DNS one is resolved by the driver, and an unset
  // one lets the peer roam (as `wg syncconf` does).
  if (p.endpoint) {
    if (auto ip = IpAddress::parse(p.endpoint->host)) {
      const Endpoint want{*ip, p.endpoint->port};
      if (pv.endpoint != want) {
        changes.push_back({"endpoint", pv.endpoint ? pv.endpoint->str() : "", want.str()});
      }
    }
  }
  if (pv.keepalive.value_or(0) != p.keepalive.value_or(0)) {
    changes.push_back({"persistent_keepalive", pv.keepalive ? std::to_string(*pv.keepalive) : "",
                       p.keepalive ? std::to_string(*p.keepalive) : ""});
  }
  return changes;
}

bool byKey(const PeerView* a, const PeerView* b) {
  return a->publicKey < b->publicKey;
}

}  // namespace

void Planner::planPeers(const WireGuardTarget& wt, const std::optional<WireGuardView>& seen) {
  const std::string& ns = wt.ns;
  // The observed peers sorted by public key, looked up by binary search: thousands of peers
  // in one interface are the common case, and nearly all of them are as desired.
  std::vector<const PeerView*> observed;
  if (seen) {
    observed.reserve(seen->peers.size());
    for (const auto& p : seen->peers) {
      observed.push_back(&p);
    }
    std::sort(observed.begin(), observed.end(), byKey);
  }
  auto find = [&](const WgKey& key) -> const PeerView* {
    auto it =
        std::lower_bound(observed.begin(), observed.end(), key,
                         [](const PeerView* pv, const WgKey& k) { return pv->publicKey < k; });
    return it != observed.end() && (*it)->publicKey == key ? *it : nullptr;
  };
  std::vector<WgKey> desired;
  desired.reserve(wt.peers.size());
  for (const auto& p : wt.peers) {
    desired.push_back(p.publicKey);
    const PeerView* pv = find(p.publicKey);
    std::vector<FieldChange> changes;
    bool keyChangedOnly = false;
    if (pv != nullptr) {
      changes = peerChanges(*pv, p);
      keyChangedOnly = changes.empty() && pskChanged(*pv, p);
      if (auto c = pskChange(*pv, p)) {
        changes.push_back(*c);
      }
      if (changes.empty()) {
        continue;
      }
    }
    const std::string name = ns + "/" + p.name;
    Op op = makeOp(pv != nullptr ? Action::Update : Action::Create, Kind::Peer, name, ns);
    if (pv == nullptr) {
      op.changes.push_back({"public_key", "", p.publicKey.base64()});
      op.changes.push_back({"allowed_ips", "", prefixes(p.allowedIps)});
      if (p.endpoint) {
        op.changes.push_back({"endpoint", "", p.endpoint->str()});
      }
      if (p.keepalive) {
        op.changes.push_back({"persistent_keepalive", "", std::to_string(*p.keepalive)});
      }
      if (p.pskFile) {
        op.changes.push_back({"preshared_key", "", "set"});
      }
      if (seen && s_.appliedAs("peer", name, p.describe())) {
        op.drift = "peer was removed outside edgeplane";
      }
    } else {
      op.changes = std::move(changes);
      // A new key in the same file is the operator's change, not drift.
      if (!keyChangedOnly && s_.appliedAs("peer", name, p.describe())) {
        op.drift = "peer changed outside edgeplane";
      }
    }
    dep(op, indexOf(nsOps_, ns));
    dep(op, indexOf(wgOps_, ns));
    add(std::move(op));
  }
  std::sort(desired.begin(), desired.end());
  for (const PeerView* pv : observed) {
    if (std::binary_search(desired.begin(), desired.end(), pv->publicKey)) {
      continue;
    }
    Op op = makeOp(Action::Delete, Kind::Peer, ns + "/" + pv->publicKey.base64(), ns);
    op.changes.push_back({"allowed_ips", prefixes(pv->allowedIps), ""});
    dep(op, indexOf(wgOps_, ns));
    add(std::move(op));
  }
}

}  // namespace edgeplane::core::planner
