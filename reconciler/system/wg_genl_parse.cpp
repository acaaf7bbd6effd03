// WireGuard generic netlink codec, parsing: GET_DEVICE dumps and SET_DEVICE requests.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "reconciler/system/wg_genl_codec.h"
#include "reconciler/system/wg_genl_defs.h"
#include "reconciler/system/wg_keys.h"

namespace edgeplane::sys {
namespace {

constexpr uint32_t kKnownDeviceFlags = WGDEVICE_F_REPLACE_PEERS;
constexpr uint32_t kKnownPeerFlags =
    WGPEER_F_REMOVE_ME | WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY;

// --- attribute readers: strict lengths ---

std::optional<WgKey> getKey(const nlattr* a) {
  WgKey key;
  if (!attrCopyExact(a, key.bytes.data(), WG_KEY_LEN)) {
    return std::nullopt;
  }
  return key;
}

std::optional<std::string> getIfname(const nlattr* a) {
  const int len = nla_len(a);
  const char* data = static_cast<const char*>(nla_data(a));
  if (len < 2 || len > IFNAMSIZ || data[len - 1] != '\0') {
    return std::nullopt;
  }
  std::string name(data, static_cast<size_t>(len - 1));
  if (name.find('\0') != std::string::npos || !isValidIfname(name)) {
    return std::nullopt;
  }
  return name;
}

// An IPv4 or IPv6 sockaddr of exactly its size; anything else sets ok = false.
std::optional<Endpoint> getEndpoint(const nlattr* a, bool& ok) {
  ok = false;
  const int len = nla_len(a);
  if (len < static_cast<int>(sizeof(sa_family_t))) {
    return std::nullopt;
  }
  sa_family_t family;
  std::memcpy(&family, nla_data(a), sizeof(family));
  Endpoint ep;
  if (family == AF_INET && len == sizeof(sockaddr_in)) {
    sockaddr_in sa;
    std::memcpy(&sa, nla_data(a), sizeof(sa));
    ep.address.family = IpAddress::Family::V4;
    std::memcpy(ep.address.bytes.data(), &sa.sin_addr, 4);
    ep.port = ntohs(sa.sin_port);
  } else if (family == AF_INET6 && len == sizeof(sockaddr_in6)) {
    sockaddr_in6 sa;
    std::memcpy(&sa, nla_data(a), sizeof(sa));
    ep.address.family = IpAddress::Family::V6;
    std::memcpy(ep.address.bytes.data(), &sa.sin6_addr, 16);
    ep.port = ntohs(sa.sin6_port);
  } else {
    return std::nullopt;
  }
  ok = true;
  return ep;
}

Result<std::vector<IpPrefix>> getAllowedIps(nlattr* nest) {
  std::vector<IpPrefix> out;
  nlattr* pos = nullptr;
  int rem = 0;
  nla_for_each_nested(pos, nest, rem) {
    nlattr* tb[WGALLOWEDIP_A_MAX + 1] = {};
    if (nla_parse_nested(tb, WGALLOWEDIP_A_MAX, pos, nullptr) < 0) {
      return terminal("malformed allowed IP");
    }
    if (!tb[WGALLOWEDIP_A_FAMILY] || !tb[WGALLOWEDIP_A_IPADDR] || !tb[WGALLOWEDIP_A_CIDR_MASK]) {
      return terminal("allowed IP without family, address or mask");
    }
    const auto family = attrExact<uint16_t>(tb[WGALLOWEDIP_A_FAMILY]);
    const auto cidr = attrExact<uint8_t>(tb[WGALLOWEDIP_A_CIDR_MASK]);
    const auto address = family ? attrAddress(*family, tb[WGALLOWEDIP_A_IPADDR]) : std::nullopt;
    if (!address) {
      return terminal("allowed IP with a bad family or address length");
    }
    if (!cidr || *cidr > address->bits()) {
      return terminal("allowed IP with a bad prefix length");
    }
    out.push_back(IpPrefix{*address, *cidr});
  }
  if (rem != 0) {
    return terminal("trailing bytes after the allowed IPs");
  }
  return out;
}

// Validates a generic netlink message of `cmd` and parses its top-level attributes.
Result<void> parseTop(nl_msg* msg, uint8_t cmd, nlattr** tb) {
  nlmsghdr* nlh = nlmsg_hdr(msg);
  if (!genlmsg_valid_hdr(nlh, 0)) {
    return terminal("truncated generic netlink message");
  }
  const genlmsghdr* gh = genlmsg_hdr(nlh);
  if (gh->cmd != cmd) {
    return terminal("unexpected WireGuard command " + std::to_string(gh->cmd));
  }
  if (genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, nullptr) < 0) {
    return terminal("malformed WireGuard message attributes");
  }
  return {};
}

// A WG_CMD_* message of `cmd`: its device attributes, then each entry of WGDEVICE_A_PEERS in
// order. `where` ends the error about trailing bytes.
Result<void> parseDeviceMessage(nl_msg* msg, uint8_t cmd,
                                const std::function<Result<void>(nlattr* const*)>& device,
                                const std::function<Result<void>(nlattr*)>& peer,
                                const std::string& where) {
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  if (auto r = parseTop(msg, cmd, tb); !r) {
    return r;
  }
  if (auto r = device(tb); !r) {
    return r;
  }
  if (!tb[WGDEVICE_A_PEERS]) {
    return {};
  }
  nlattr* pos = nullptr;
  int rem = 0;
  nla_for_each_nested(pos, tb[WGDEVICE_A_PEERS], rem) {
    if (auto r = peer(pos); !r) {
      return r;
    }
  }
  if (rem != 0) {
    return terminal("trailing bytes after the peers" + where);
  }
  return {};
}

// The peer fields both parsers read: preshared key (all zeros = none), endpoint, keepalive
// (0 = off). `where` ends the error messages: " in WireGuard dump", or "".
Result<void> readPeerConfig(nlattr* const* pt, WgPeer& peer, const std::string& where) {
  if (pt[WGPEER_A_PRESHARED_KEY]) {
    auto psk = getKey(pt[WGPEER_A_PRESHARED_KEY]);
    if (!psk) {
      return terminal("malformed preshared key attribute" + where);
    }
    if (!isZeroKey(*psk)) {
      peer.presharedKey = psk;
    }
  }
  if (pt[WGPEER_A_ENDPOINT]) {
    bool ok = false;
    peer.endpoint = getEndpoint(pt[WGPEER_A_ENDPOINT], ok);
    if (!ok) {
      return terminal("malformed endpoint attribute" + where);
    }
  }
  if (pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
    auto ka = attrExact<uint16_t>(pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
    if (!ka) {
      return terminal("malformed keepalive attribute" + where);
    }
    if (*ka != 0) {
      peer.persistentKeepalive = ka;
    }
  }
  return {};
}

// The fields only a GET_DEVICE dump has: last handshake (zero = never) and the counters.
Result<void> readPeerState(nlattr* const* pt, WgPeer& peer) {
  if (pt[WGPEER_A_LAST_HANDSHAKE_TIME]) {
    int64_t ts[2];
    if (!attrCopyExact(pt[WGPEER_A_LAST_HANDSHAKE_TIME], ts, sizeof(ts)) || ts[0] < 0 ||
        ts[1] < 0 || ts[1] >= 1000000000) {
      return terminal("malformed handshake time in WireGuard dump");
    }
    if (ts[0] != 0 || ts[1] != 0) {
      peer.lastHandshake = ts[0];
    }
  }
  for (auto [type, dst] :
       {std::pair{WGPEER_A_RX_BYTES, &peer.rxBytes}, std::pair{WGPEER_A_TX_BYTES, &peer.txBytes}}) {
    if (pt[type]) {
      auto v = attrExact<uint64_t>(pt[type]);
      if (!v) {
        return terminal("malformed transfer counter in WireGuard dump");
      }
      *dst = *v;
    }
  }
  return {};
}

// Reads a 32-byte key attribute into `out`; all zeros mean none.
Result<void> readDeviceKey(const nlattr* attr, std::optional<WgKey>& out, std::string_view name) {
  auto key = getKey(attr);
  if (!key) {
    return terminal("malformed " + std::string(name) + " attribute in WireGuard dump");
  }
  out = isZeroKey(*key) ? std::nullopt : key;
  return {};
}

}  // namespace

Result<void> WgGetDeviceParser::add(nl_msg* msg) {
  return parseDeviceMessage(
      msg, WG_CMD_GET_DEVICE, [this](nlattr* const* tb) { return addDevice(tb); },
      [this](nlattr* entry) { return addPeer(entry); }, " in WireGuard dump");
}

Result<void> WgGetDeviceParser::addDevice(nlattr* const* tb) {
  if (tb[WGDEVICE_A_IFNAME]) {
    auto name = getIfname(tb[WGDEVICE_A_IFNAME]);
    if (!name) {
      return terminal("malformed interface name in WireGuard dump");
    }
    device_.ifname = *name;
  }
  if (tb[WGDEVICE_A_PRIVATE_KEY]) {
    if (auto r = readDeviceKey(tb[WGDEVICE_A_PRIVATE_KEY], device_.privateKey, "private key"); !r) {
      return r;
    }
  }
  if (tb[WGDEVICE_A_PUBLIC_KEY]) {
    if (auto r = readDeviceKey(tb[WGDEVICE_A_PUBLIC_KEY], device_.publicKey, "public key"); !r) {
      return r;
    }
  }
  if (tb[WGDEVICE_A_LISTEN_PORT]) {
    device_.listenPort = attrExact<uint16_t>(tb[WGDEVICE_A_LISTEN_PORT]);
    if (!device_.listenPort) {
      return terminal("malformed listen port in WireGuard dump");
    }
  }
  if (tb[WGDEVICE_A_FWMARK]) {
    device_.fwmark = attrExact<uint32_t>(tb[WGDEVICE_A_FWMARK]);
    if (!device_.fwmark) {
      return terminal("malformed fwmark in WireGuard dump");
    }
  }
  return {};
}

Result<void> WgGetDeviceParser::addPeer(nlattr* entry) {
  nlattr* pt[WGPEER_A_MAX + 1] = {};
  if (nla_parse_nested(pt, WGPEER_A_MAX, entry, nullptr) < 0) {
    return terminal("malformed peer in WireGuard dump");
  }
  std::optional<WgKey> key;
  if (!pt[WGPEER_A_PUBLIC_KEY] || !(key = getKey(pt[WGPEER_A_PUBLIC_KEY]))) {
    return terminal("peer without a valid public key in WireGuard dump");
  }
  std::vector<IpPrefix> ips;
  if (pt[WGPEER_A_ALLOWEDIPS]) {
    auto parsed = getAllowedIps(pt[WGPEER_A_ALLOWEDIPS]);
    if (!parsed) {
      return terminal(parsed.error().message + " in WireGuard dump");
    }
    ips = std::move(parsed).value();
  }
  if (!device_.peers.empty() && device_.peers.back().publicKey == *key) {
    // The kernel continues a peer with many allowed IPs in the next message.
    auto& dst = device_.peers.back().allowedIps;
    dst.insert(dst.end(), ips.begin(), ips.end());
    return {};
  }
  auto at = std::lower_bound(seen_.begin(), seen_.end(), *key);
  if (at != seen_.end() && *at == *key) {
    return terminal("peer " + key->base64() + " appears twice in WireGuard dump");
  }
  seen_.insert(at, *key);
  WgPeer peer;
  peer.publicKey = *key;
  peer.allowedIps = std::move(ips);
  if (auto r = readPeerConfig(pt, peer, " in WireGuard dump"); !r) {
    return r;
  }
  if (auto r = readPeerState(pt, peer); !r) {
    return r;
  }
  device_.peers.push_back(std::move(peer));
  return {};
}

WgDevice WgGetDeviceParser::take() {
  WgDevice out = std::move(device_);
  if (!out.listenPort) {
    out.listenPort = 0;
  }
  if (!out.fwmark) {
    out.fwmark = 0;
  }
  device_ = WgDevice{};
  seen_.clear();
  return out;
}

Result<void> WgSetDeviceParser::add(nl_msg* msg) {
  return parseDeviceMessage(
      msg, WG_CMD_SET_DEVICE, [this](nlattr* const* tb) { return addDevice(tb); },
      [this](nlattr* entry) { return addPeer(entry); }, "");
}

Result<void> WgSetDeviceParser::addDevice(nlattr* const* tb) {
  if (!tb[WGDEVICE_A_IFNAME]) {
    return terminal("SET_DEVICE without an interface name");
  }
  auto name = getIfname(tb[WGDEVICE_A_IFNAME]);
  if (!name || (sawFirst_ && *name != request_.ifname)) {
    return terminal("SET_DEVICE with a malformed or changing interface name");
  }
  request_.ifname = *name;
  const bool first = !sawFirst_;
  sawFirst_ = true;
  const bool deviceFields = tb[WGDEVICE_A_PRIVATE_KEY] || tb[WGDEVICE_A_LISTEN_PORT] ||
                            tb[WGDEVICE_A_FWMARK] || tb[WGDEVICE_A_FLAGS];
  if (deviceFields && !first) {
    return terminal("device attributes after the first SET_DEVICE message");
  }
  if (tb[WGDEVICE_A_PRIVATE_KEY]) {
    request_.privateKey = getKey(tb[WGDEVICE_A_PRIVATE_KEY]);
    if (!request_.privateKey) {
      return terminal("malformed private key attribute");
    }
  }
  if (tb[WGDEVICE_A_LISTEN_PORT]) {
    request_.listenPort = attrExact<uint16_t>(tb[WGDEVICE_A_LISTEN_PORT]);
    if (!request_.listenPort) {
      return terminal("malformed listen port attribute");
    }
  }
  if (tb[WGDEVICE_A_FWMARK]) {
    request_.fwmark = attrExact<uint32_t>(tb[WGDEVICE_A_FWMARK]);
    if (!request_.fwmark) {
      return terminal("malformed fwmark attribute");
    }
  }
  if (tb[WGDEVICE_A_FLAGS]) {
    auto flags = attrExact<uint32_t>(tb[WGDEVICE_A_FLAGS]);
    if (!flags || (*flags & ~kKnownDeviceFlags) != 0) {
      return terminal("malformed or unknown device flags");
    }
    request_.replacePeers = (*flags & WGDEVICE_F_REPLACE_PEERS) != 0;
  }
  return {};
}

Result<void> WgSetDeviceParser::addPeer(nlattr* entry) {
  nlattr* pt[WGPEER_A_MAX + 1] = {};
  if (nla_parse_nested(pt, WGPEER_A_MAX, entry, nullptr) < 0) {
    return terminal("malformed peer");
  }
  std::optional<WgKey> key;
  if (!pt[WGPEER_A_PUBLIC_KEY] || !(key = getKey(pt[WGPEER_A_PUBLIC_KEY]))) {
    return terminal("peer without a valid public key");
  }
  uint32_t flags = 0;
  if (pt[WGPEER_A_FLAGS]) {
    auto f = attrExact<uint32_t>(pt[WGPEER_A_FLAGS]);
    if (!f || (*f & ~kKnownPeerFlags) != 0) {
      return terminal("malformed or unknown peer flags");
    }
    flags = *f;
  }
  std::vector<IpPrefix> ips;
  if (pt[WGPEER_A_ALLOWEDIPS]) {
    auto parsed = getAllowedIps(pt[WGPEER_A_ALLOWEDIPS]);
    if (!parsed) {
      return parsed.error();
    }
    ips = std::move(parsed).value();
  }
  const bool bare = flags == 0 && !pt[WGPEER_A_PRESHARED_KEY] && !pt[WGPEER_A_ENDPOINT] &&
                    !pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL];
  if (bare && lastContinuable_ && request_.peers.back().peer.publicKey == *key) {
    auto& dst = request_.peers.back().peer.allowedIps;
    dst.insert(dst.end(), ips.begin(), ips.end());
    return {};
  }
  if ((flags & WGPEER_F_UPDATE_ONLY) != 0) {
    return terminal("WGPEER_F_UPDATE_ONLY has no WgSetRequest equivalent");
  }
  WgPeerOp op;
  op.peer.publicKey = *key;
  if ((flags & WGPEER_F_REMOVE_ME) != 0) {
    op.kind = WgPeerOp::Kind::Remove;
    request_.peers.push_back(std::move(op));
    lastContinuable_ = false;
    return {};
  }
  if ((flags & WGPEER_F_REPLACE_ALLOWEDIPS) == 0) {
    return terminal("a peer that appends allowed IPs has no WgSetRequest equivalent");
  }
  op.kind = WgPeerOp::Kind::Add;
  op.peer.allowedIps = std::move(ips);
  if (auto r = readPeerConfig(pt, op.peer, ""); !r) {
    return r;
  }
  request_.peers.push_back(std::move(op));
  lastContinuable_ = true;
  return {};
}

WgSetRequest WgSetDeviceParser::take() {
  WgSetRequest out = std::move(request_);
  request_ = WgSetRequest{};
  sawFirst_ = false;
  lastContinuable_ = false;
  return out;
}

}  // namespace edgeplane::sys
