// KernelWireGuard: each namespace's WireGuard interface through the backend that runs it.
#include <linux/rtnetlink.h>

#include <algorithm>
#include <exception>
#include <optional>

#include "reconciler/system/kernel_drivers.h"
#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_netlink.h"
#include "reconciler/system/wg_uapi.h"
#include "schema/parallel.h"

namespace edgeplane::sys {
namespace {

core::PeerView peerView(const WgPeer& p) {
  core::PeerView pv;
  pv.publicKey = p.publicKey;
  pv.endpoint = p.endpoint;
  pv.keepalive = p.persistentKeepalive;
  pv.hasPsk = p.presharedKey.has_value();
  pv.presharedKey = p.presharedKey;
  pv.lastHandshake = p.lastHandshake;
  pv.rxBytes = p.rxBytes;
  pv.txBytes = p.txBytes;
  for (const auto& a : p.allowedIps) {
    pv.allowedIps.push_back(a.network());
  }
  std::sort(pv.allowedIps.begin(), pv.allowedIps.end());
  if (pv.keepalive && *pv.keepalive == 0) {
    pv.keepalive.reset();
  }
  return pv;
}

// The device the config asks for, endpoints resolved, for diffPeers.
Result<WgDevice> desiredDevice(const core::WireGuardTarget& wt) {
  WgDevice desired;
  desired.ifname = wt.ifname;
  for (const auto& p : wt.peers) {
    WgPeer peer;
    peer.name = p.name;
    peer.publicKey = p.publicKey;
    peer.allowedIps = p.allowedIps;
    peer.persistentKeepalive = p.keepalive;
    if (p.pskFile && !p.presharedKey) {
      // A key that was not read must not be applied as "no key" (loadPresharedKeys reads it).
      return terminal("peer " + wt.ns + "/" + p.name + ": its preshared key was not read");
    }
    peer.presharedKey = p.presharedKey;
    if (p.endpoint) {
      auto ep = resolveEndpoint(*p.endpoint);
      if (!ep) {
        return Error{"peer " + wt.ns + "/" + p.name + ": " + ep.error().message,
                     ep.error().retryable};
      }
      peer.endpoint = *ep;
    }
    desired.peers.push_back(std::move(peer));
  }
  return desired;
}

// Addresses (exactly `wt.addresses`, link-scope ones aside), MTU and link state.
Result<void> convergeInterface(const core::WireGuardTarget& wt, const std::string& netns) {
  auto rt = Rtnl::open(netns);
  if (!rt) {
    return rt.error();
  }
  auto seen = rt->link(wt.ifname);
  if (!seen) {
    return seen.error();
  }
  if (!*seen) {
    return terminal("WireGuard interface " + wt.ifname + " vanished in " + netns);
  }
  for (const auto& a : (*seen)->addresses) {
    bool wanted =
        std::find(wt.addresses.begin(), wt.addresses.end(), a.prefix) != wt.addresses.end();
    if (!wanted && a.scope != RT_SCOPE_LINK) {
      if (auto r = ignoreAbsent(rt->removeAddress(wt.ifname, a.prefix)); !r) {
        return r;
      }
    }
  }
  for (const auto& a : wt.addresses) {
    if (auto r = rt->addAddress(wt.ifname, a); !r) {
      return r;
    }
  }
  if (wt.mtu) {
    if (auto r = rt->setMtu(wt.ifname, *wt.mtu); !r) {
      return r;
    }
  }
  return rt->setUp(wt.ifname, true);
}

}  // namespace

std::string wireguardKeyPath(const std::string& stateDir, const std::string& ns) {
  return stateDir + "/" + kKeysDir + "/" + ns + ".key";
}

Result<WgBackend*> KernelWireGuard::ofKind(WgBackendKind kind) {
  if (auto it = backends_.find(kind); it != backends_.end()) {
    return it->second.get();
  }
  std::unique_ptr<WgBackend> made;
  if (kind == WgBackendKind::Kernel) {
    made = makeNetlinkBackend();
  } else {
    WgEnv env;
    env.stateDir = stateDir_;
    auto uapi = makeUapiBackend(env);
    if (!uapi) {
      return uapi.error();
    }
    made = std::move(*uapi);
  }
  return (backends_[kind] = std::move(made)).get();
}

Result<WgBackend*> KernelWireGuard::configured() {
  if (configuredKind_) {
    return ofKind(*configuredKind_);
  }
  WgEnv env;
  env.stateDir = stateDir_;
  auto backend = selectBackend(choice_, env);
  if (!backend) {
    return backend.error();
  }
  const WgBackendKind kind = (*backend)->kind();
  configuredKind_ = kind;
  if (!backends_.contains(kind)) {
    backends_[kind] = std::move(*backend);
  }
  return backends_[kind].get();
}

Result<WgBackend*> KernelWireGuard::backendFor(const std::string& ifname,
                                               const std::string& netns) {
  return backendOf(wgLinkGet(netns, ifname));
}

Result<WgBackend*> KernelWireGuard::backendOf(const Result<std::optional<LinkInfo>>& link) {
  const std::lock_guard<std::mutex> lock(backendsMutex_);
  if (link && link.value() && link.value()->kind == "wireguard") {
    return ofKind(WgBackendKind::Kernel);
  }
  if (link && link.value() && link.value()->kind == "tun") {
    return ofKind(WgBackendKind::Userspace);
  }
  // None yet, not a WireGuard link, or the namespace could not be asked: the configured
  // backend, which says what is wrong in its own words.
  return configured();
}

// The interface (if it exists and answers) and the public key of the stored private key.
Result<core::WireGuardObservation> KernelWireGuard::observe(const std::string& ns) {
  core::WireGuardObservation out;
  if (auto key = loadKey(wireguardKeyPath(stateDir_, ns)); !key) {
    out.keyError = key.error().message;  // refused by the planner, never replaced
  } else if (*key) {
    out.storedPublicKey = (*key)->publicKey;
  }
  const std::string netns = core::netnsName(ns);
  const std::string ifname = core::wgLinkName(ns);
  // The link is read once; the backend and its liveness are judged from that answer.
  auto link = wgLinkGet(netns, ifname);
  if (!link) {
    return link.error();
  }
  if (!*link) {
    return out;
  }
  auto backend = backendOf(link);
  if (!backend) {
    return backend.error();
  }
  auto dev = (*backend)->liveDevice(ifname, netns, link);
  if (!dev) {
    return dev.error();
  }
  if (!*dev) {
    return out;  // a link without its wireguard-go: planned as a missing interface
  }
  core::WireGuardView wg;
  wg.publicKey = (*dev)->publicKey;
  wg.listenPort = (*dev)->listenPort.value_or(0);
  for (const auto& p : (*dev)->peers) {
    wg.peers.push_back(peerView(p));
  }
  out.device = std::move(wg);
  return out;
}

std::vector<Result<core::WireGuardObservation>> KernelWireGuard::observeEach(
    const std::vector<std::string>& namespaces) {
  constexpr size_t kThreads = 4;
  std::vector<std::optional<Result<core::WireGuardObservation>>> got(namespaces.size());
  forEachIndex(namespaces.size(), kThreads, [&](size_t i) {
    try {
      got[i] = observe(namespaces[i]);
    } catch (const std::exception& e) {
      got[i] = Result<core::WireGuardObservation>(
          terminal("observe wireguard " + namespaces[i] + ": " + e.what()));
    }
  });
  std::vector<Result<core::WireGuardObservation>> out;
  out.reserve(got.size());
  for (auto& g : got) {
    out.push_back(std::move(*g));
  }
  return out;
}

Result<void> KernelWireGuard::ensure(const core::WireGuardTarget& wt) {
  const std::string netns = core::netnsName(wt.ns);
  auto key = wt.rotateKey ? rotateKey(wireguardKeyPath(stateDir_, wt.ns))
                          : loadOrCreateKey(wireguardKeyPath(stateDir_, wt.ns), wt.allowNewKey);
  if (!key) {
    return key.error();
  }
  const auto link = wgLinkGet(netns, wt.ifname);
  auto backend = backendOf(link);
  if (!backend) {
    return backend.error();
  }
  auto alive = (*backend)->linkAlive(wt.ifname, link);
  if (!alive) {
    return alive.error();
  }
  if (!*alive) {
    // What is left of it goes with the backend that ran it; the new one is the configured's.
    if (auto gone = (*backend)->deleteInterface(wt.ifname, netns); !gone) {
      return gone.error();
    }
    backend = configured();
    if (!backend) {
      return backend.error();
    }
    if (auto r = (*backend)->createInterface(wt.ifname, netns, wt.mtu); !r) {
      return r;
    }
  }
  WgSetRequest req;
  req.ifname = wt.ifname;
  req.netns = netns;
  req.privateKey = key->privateKey;
  req.listenPort = wt.listenPort;
  if (auto r = (*backend)->setDevice(req); !r) {
    return r;
  }
  return convergeInterface(wt, netns);
}

Result<void> KernelWireGuard::remove(const std::string& ns) {
  const std::string netns = core::netnsName(ns);
  auto backend = backendFor(core::wgLinkName(ns), netns);
  if (!backend) {
    return backend.error();
  }
  auto r = (*backend)->deleteInterface(core::wgLinkName(ns), netns);
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> KernelWireGuard::syncPeers(const core::WireGuardTarget& wt) {
  const std::string netns = core::netnsName(wt.ns);
  auto backend = backendFor(wt.ifname, netns);
  if (!backend) {
    return backend.error();
  }
  auto observed = (*backend)->getDevice(wt.ifname, netns);
  if (!observed) {
    return observed.error();
  }
  auto desired = desiredDevice(wt);
  if (!desired) {
    return desired.error();
  }
  WgSetRequest req = diffPeers(*observed, *desired);
  if (req.empty()) {
    return {};
  }
  req.netns = netns;
  return (*backend)->setDevice(req);
}

}  // namespace edgeplane::sys
