// WireGuard driver: per-peer diff, plan lines, endpoint resolution and backend selection.
#include "reconciler/system/wireguard.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_netlink.h"
#include "reconciler/system/wg_uapi.h"

namespace edgeplane::sys {
namespace {

std::vector<IpPrefix> networkSet(const std::vector<IpPrefix>& prefixes) {
  std::vector<IpPrefix> out;
  out.reserve(prefixes.size());
  for (const IpPrefix& p : prefixes) {
    out.push_back(p.network());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::optional<WgKey> effectivePsk(const std::optional<WgKey>& psk) {
  if (psk && isZeroKey(*psk)) {
    return std::nullopt;
  }
  return psk;
}

uint16_t effectiveKeepalive(const std::optional<uint16_t>& keepalive) {
  return keepalive.value_or(0);
}

std::string prefixList(const std::vector<IpPrefix>& prefixes) {
  std::string out = "[";
  for (size_t i = 0; i < prefixes.size(); ++i) {
    out += (i == 0 ? "" : ", ") + prefixes[i].str();
  }
  return out + "]";
}

std::string keepaliveText(uint16_t seconds) {
  return seconds == 0 ? "off" : std::to_string(seconds);
}

std::string keyLabel(const std::optional<WgKey>& key) {
  return key ? key->base64() : "none";
}

// "endpoint: a -> b, persistent_keepalive: off -> 25"; empty when the configs match.
std::string peerChanges(const WgPeer& observed, const WgPeer& desired) {
  std::vector<std::string> parts;
  if (desired.endpoint && desired.endpoint != observed.endpoint) {
    parts.push_back("endpoint: " + (observed.endpoint ? observed.endpoint->str() : "none") +
                    " -> " + desired.endpoint->str());
  }
  const auto oldIps = networkSet(observed.allowedIps);
  const auto newIps = networkSet(desired.allowedIps);
  if (oldIps != newIps) {
    parts.push_back("allowed_ips: " + prefixList(oldIps) + " -> " + prefixList(newIps));
  }
  const uint16_t oldKa = effectiveKeepalive(observed.persistentKeepalive);
  const uint16_t newKa = effectiveKeepalive(desired.persistentKeepalive);
  if (oldKa != newKa) {
    parts.push_back("persistent_keepalive: " + keepaliveText(oldKa) + " -> " +
                    keepaliveText(newKa));
  }
  const auto oldPsk = effectivePsk(observed.presharedKey);
  const auto newPsk = effectivePsk(desired.presharedKey);
  if (oldPsk != newPsk) {
    // Never the key itself: only whether one is set.
    parts.push_back(std::string("preshared_key: ") + (!oldPsk   ? "none -> set"
                                                      : !newPsk ? "set -> none"
                                                                : "changed"));
  }
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    out += (i == 0 ? "" : ", ") + parts[i];
  }
  return out;
}

}  // namespace

bool isValidIfname(std::string_view name) {
  if (name.empty() || name.size() > kMaxIfnameLength || name == "." || name == "..") {
    return false;
  }
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '/' || c == ':' || c == '%' || static_cast<unsigned char>(c) <= ' ' ||
           static_cast<unsigned char>(c) >= 0x7f;
  });
}

std::string peerLabel(const WgPeer& peer) {
  if (!peer.name.empty()) {
    return peer.name;
  }
  return peer.publicKey.base64().substr(0, 8) + "...";
}

bool samePeerConfig(const WgPeer& observed, const WgPeer& desired) {
  return peerChanges(observed, desired).empty();
}

WgSetRequest diffPeers(const WgDevice& observed, const WgDevice& desired) {
  WgSetRequest req;
  req.ifname = desired.ifname.empty() ? observed.ifname : desired.ifname;

  if (desired.privateKey && desired.privateKey != observed.privateKey) {
    req.privateKey = desired.privateKey;
    std::string line = "~ private_key: replaced";
    if (desired.publicKey) {
      line += " (public key " + keyLabel(observed.publicKey) + " -> " +
              desired.publicKey->base64() + ")";
    }
    req.deviceChanges.push_back(std::move(line));
  }
  if (desired.listenPort && desired.listenPort != observed.listenPort.value_or(0)) {
    req.listenPort = desired.listenPort;
    req.deviceChanges.push_back(
        "~ listen_port: " + std::to_string(observed.listenPort.value_or(0)) + " -> " +
        std::to_string(*desired.listenPort));
  }
  if (desired.fwmark && desired.fwmark != observed.fwmark.value_or(0)) {
    req.fwmark = desired.fwmark;
    req.deviceChanges.push_back("~ fwmark: " + std::to_string(observed.fwmark.value_or(0)) +
                                " -> " + std::to_string(*desired.fwmark));
  }

  std::map<WgKey, const WgPeer*> have;
  for (const WgPeer& p : observed.peers) {
    have.emplace(p.publicKey, &p);
  }
  std::map<WgKey, const WgPeer*> want;
  for (const WgPeer& p : desired.peers) {
    want.emplace(p.publicKey, &p);  // a duplicate key: the first one counts
  }

  for (const WgPeer& p : observed.peers) {
    if (!want.contains(p.publicKey) && have[p.publicKey] == &p) {
      WgPeerOp op;
      op.kind = WgPeerOp::Kind::Remove;
      op.peer.name = p.name;
      op.peer.publicKey = p.publicKey;
      op.description = "- peer " + peerLabel(p);
      req.peers.push_back(std::move(op));
    }
  }
  for (const WgPeer& p : desired.peers) {
    if (want[p.publicKey] != &p) {
      continue;
    }
    auto it = have.find(p.publicKey);
    if (it == have.end()) {
      WgPeerOp op;
      op.kind = WgPeerOp::Kind::Add;
      op.peer = p;
      op.peer.lastHandshake.reset();
      op.peer.rxBytes = op.peer.txBytes = 0;
      op.description = "+ peer " + peerLabel(p);
      req.peers.push_back(std::move(op));
      continue;
    }
    std::string changes = peerChanges(*it->second, p);
    if (changes.empty()) {
      continue;  // untouched: its session and counters survive
    }
    WgPeerOp op;
    op.kind = WgPeerOp::Kind::Update;
    op.peer = p;
    op.peer.lastHandshake.reset();
    op.peer.rxBytes = op.peer.txBytes = 0;
    op.description = "~ peer " + peerLabel(p) + " " + changes;
    req.peers.push_back(std::move(op));
  }
  return req;
}

std::vector<std::string> describe(const WgSetRequest& request) {
  std::vector<std::string> lines = request.deviceChanges;
  if (request.replacePeers) {
    lines.push_back("~ peers: replaced");
  }
  for (const WgPeerOp& op : request.peers) {
    lines.push_back(op.description.empty()
                        ? std::string(op.kind == WgPeerOp::Kind::Add      ? "+ peer "
                                      : op.kind == WgPeerOp::Kind::Update ? "~ peer "
                                                                          : "- peer ") +
                              peerLabel(op.peer)
                        : op.description);
  }
  return lines;
}

WgWirePeer wireForm(const WgPeerOp& op) {
  WgWirePeer w;
  w.publicKey = op.peer.publicKey;
  if (op.kind == WgPeerOp::Kind::Remove) {
    w.remove = true;
    return w;
  }
  w.replaceAllowedIps = true;
  w.allowedIps = networkSet(op.peer.allowedIps);
  w.endpoint = op.peer.endpoint;
  const auto psk = effectivePsk(op.peer.presharedKey);
  const uint16_t keepalive = effectiveKeepalive(op.peer.persistentKeepalive);
  if (op.kind == WgPeerOp::Kind::Update) {
    // An update states every field, so a removed preshared key or keepalive is removed.
    w.presharedKey = psk.value_or(WgKey{});
    w.persistentKeepalive = keepalive;
  } else {
    w.presharedKey = psk;
    if (keepalive != 0) {
      w.persistentKeepalive = keepalive;
    }
  }
  return w;
}

Result<Endpoint> resolveEndpoint(const HostPort& hostPort) {
  if (auto ip = IpAddress::parse(hostPort.host)) {
    return Endpoint{*ip, hostPort.port};
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hostPort.host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return retryable("resolve endpoint " + hostPort.str() + ": " + ::gai_strerror(rc));
  }
  std::optional<Endpoint> found;
  for (const addrinfo* ai = res; ai != nullptr && !found; ai = ai->ai_next) {
    IpAddress a;
    if (ai->ai_family == AF_INET) {
      a.family = IpAddress::Family::V4;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
      found = Endpoint{a, hostPort.port};
    } else if (ai->ai_family == AF_INET6) {
      a.family = IpAddress::Family::V6;
      std::memcpy(a.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr,
                  16);
      found = Endpoint{a, hostPort.port};
    }
  }
  ::freeaddrinfo(res);
  if (!found) {
    return retryable("resolve endpoint " + hostPort.str() + ": no IPv4 or IPv6 address");
  }
  return *found;
}

Result<bool> WgBackend::interfaceAlive(std::string_view ifname, std::string_view netns) {
  return linkAlive(ifname, wgLinkGet(netns, ifname));
}

Result<std::optional<WgDevice>> WgBackend::liveDevice(std::string_view ifname,
                                                      std::string_view netns,
                                                      const Result<std::optional<LinkInfo>>& link) {
  auto alive = linkAlive(ifname, link);
  if (!alive) {
    return alive.error();
  }
  if (!*alive) {
    return std::optional<WgDevice>();
  }
  auto dev = getDevice(ifname, netns);
  if (!dev) {
    return dev.error();
  }
  return std::optional<WgDevice>(std::move(*dev));
}

std::string_view toString(WgBackendKind kind) {
  return kind == WgBackendKind::Kernel ? "kernel" : "userspace";
}

std::string_view toString(WgBackendChoice choice) {
  switch (choice) {
    case WgBackendChoice::Auto:
      return "auto";
    case WgBackendChoice::Kernel:
      return "kernel";
    case WgBackendChoice::Userspace:
      return "userspace";
  }
  return "auto";
}

std::optional<WgBackendChoice> parseBackendChoice(std::string_view text) {
  if (text == "auto") {
    return WgBackendChoice::Auto;
  }
  if (text == "kernel") {
    return WgBackendChoice::Kernel;
  }
  if (text == "userspace") {
    return WgBackendChoice::Userspace;
  }
  return std::nullopt;
}

Result<std::unique_ptr<WgBackend>> selectBackend(WgBackendChoice choice, const WgEnv& env) {
  if (choice == WgBackendChoice::Kernel) {
    return makeNetlinkBackend();
  }
  if (choice == WgBackendChoice::Auto) {
    auto kernel = kernelWireGuardAvailable();
    if (!kernel) {
      return kernel.error();
    }
    if (*kernel) {
      return makeNetlinkBackend();
    }
  }
  auto backend = makeUapiBackend(env);
  if (!backend) {
    if (choice == WgBackendChoice::Auto) {
      return terminal("no WireGuard backend: the kernel cannot create 'wireguard' links, and " +
                      backend.error().message);
    }
    return backend.error();
  }
  return std::move(backend).value();
}

Result<std::optional<WgBackendKind>> detectBackend(std::string_view ifname,
                                                   std::string_view netns) {
  auto link = wgLinkGet(netns, ifname);
  if (!link) {
    return link.error();
  }
  if (!*link) {
    return std::optional<WgBackendKind>();
  }
  if ((*link)->kind == "wireguard") {
    return std::optional<WgBackendKind>(WgBackendKind::Kernel);
  }
  if ((*link)->kind == "tun") {
    return std::optional<WgBackendKind>(WgBackendKind::Userspace);
  }
  return terminal("interface " + std::string(ifname) + " in namespace " +
                  (netns.empty() ? std::string("(current)") : std::string(netns)) + " is a '" +
                  (*link)->kind + "' link, not a WireGuard interface");
}

}  // namespace edgeplane::sys
