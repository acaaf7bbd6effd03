// WireGuard generic netlink codec, building: SET_DEVICE requests split to a budget, GET_DEVICE.
#include "reconciler/system/wg_genl_codec.h"

#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "reconciler/system/wg_genl_defs.h"

namespace edgeplane::sys {
namespace {

// --- attribute writers: false when the message is out of room ---

bool putKey(nl_msg* msg, int type, const WgKey& key) {
  return nla_put(msg, type, static_cast<int>(key.bytes.size()), key.bytes.data()) >= 0;
}

bool putEndpoint(nl_msg* msg, int type, const Endpoint& ep) {
  sockaddr_storage ss{};
  const socklen_t len = toSockaddr(ep, ss);
  return nla_put(msg, type, static_cast<int>(len), &ss) >= 0;
}

bool putAllowedIp(nl_msg* msg, const IpPrefix& prefix) {
  const bool v4 = prefix.address.family == IpAddress::Family::V4;
  return nla_put_u16(msg, WGALLOWEDIP_A_FAMILY, v4 ? AF_INET : AF_INET6) >= 0 &&
         nla_put(msg, WGALLOWEDIP_A_IPADDR, v4 ? 4 : 16, prefix.address.bytes.data()) >= 0 &&
         nla_put_u8(msg, WGALLOWEDIP_A_CIDR_MASK, prefix.length) >= 0;
}

// --- the splitter shared by SET_DEVICE and the GET_DEVICE dump ---

struct SplitPeer {
  const WgKey* publicKey = nullptr;
  // Writes the attributes other than the key and the allowed IPs; called only for the first
  // entry of a peer (a continuation carries the key and more allowed IPs, nothing else).
  std::function<bool(nl_msg*)> head;
  const std::vector<IpPrefix>* allowedIps = nullptr;
};

// Walks the peers across messages: peer_ is the next peer to write, ip_ its next allowed IP,
// continuing_ whether its head went out in an earlier message.
class Splitter {
 public:
  explicit Splitter(const std::vector<SplitPeer>& peers) : peers_(peers) {}
  bool done() const { return peer_ >= peers_.size(); }
  // Fills one message's WGDEVICE_A_PEERS; false when not even part of a peer fit.
  bool fill(nl_msg* msg, bool first);

 private:
  enum class Step : uint8_t { Next, Full };
  Step appendPeer(nl_msg* msg, bool first, bool& progress);
  // Appends the current peer's allowed IPs from ip_ on; `full` when one did not fit.
  size_t appendAllowedIps(nl_msg* msg, const SplitPeer& p, bool& full);

  const std::vector<SplitPeer>& peers_;
  size_t peer_ = 0;
  size_t ip_ = 0;
  bool continuing_ = false;
};

bool Splitter::fill(nl_msg* msg, bool first) {
  bool progress = false;
  nlattr* peersNest = nla_nest_start(msg, WGDEVICE_A_PEERS);
  while (peersNest != nullptr && !done()) {
    if (appendPeer(msg, first, progress) == Step::Full) {
      break;
    }
  }
  if (peersNest != nullptr) {
    nla_nest_end(msg, peersNest);
  }
  return progress;
}

Splitter::Step Splitter::appendPeer(nl_msg* msg, bool first, bool& progress) {
  const SplitPeer& p = peers_[peer_];
  nlattr* peerNest = nla_nest_start(msg, 0);
  if (peerNest == nullptr) {
    return Step::Full;
  }
  if (!putKey(msg, WGPEER_A_PUBLIC_KEY, *p.publicKey) || (!continuing_ && !p.head(msg))) {
    nla_nest_cancel(msg, peerNest);
    return Step::Full;
  }
  const bool headSent = !continuing_;
  bool full = false;
  const size_t ipsSent = appendAllowedIps(msg, p, full);
  if (ipsSent == 0 && !p.allowedIps->empty() && (!headSent || progress || first)) {
    // A continuation that carries nothing, or a peer that would be split with none of its
    // allowed IPs while something else fills the message: all of it goes in the next, so the
    // kernel never sees it replaced by an empty list first.
    nla_nest_cancel(msg, peerNest);
    return Step::Full;
  }
  nla_nest_end(msg, peerNest);
  progress = true;
  if (full) {
    continuing_ = true;
    return Step::Full;
  }
  ++peer_;
  ip_ = 0;
  continuing_ = false;
  return Step::Next;
}

size_t Splitter::appendAllowedIps(nl_msg* msg, const SplitPeer& p, bool& full) {
  if (ip_ >= p.allowedIps->size()) {
    return 0;
  }
  size_t sent = 0;
  nlattr* ipsNest = nla_nest_start(msg, WGPEER_A_ALLOWEDIPS);
  full = ipsNest == nullptr;
  for (; ipsNest != nullptr && ip_ < p.allowedIps->size(); ++ip_, ++sent) {
    nlattr* ipNest = nla_nest_start(msg, 0);
    if (ipNest == nullptr || !putAllowedIp(msg, (*p.allowedIps)[ip_])) {
      if (ipNest != nullptr) {
        nla_nest_cancel(msg, ipNest);
      }
      full = true;
      break;
    }
    nla_nest_end(msg, ipNest);
  }
  if (ipsNest != nullptr) {
    nla_nest_end(msg, ipsNest);  // an empty one is trimmed
  }
  return sent;
}

Result<std::vector<NlMsgPtr>> buildSplit(int familyId, uint8_t cmd, int nlFlags, size_t budget,
                                         const std::function<bool(nl_msg*)>& everyMessage,
                                         const std::function<bool(nl_msg*)>& firstMessage,
                                         const std::vector<SplitPeer>& peers) {
  std::vector<NlMsgPtr> out;
  Splitter splitter(peers);
  do {
    const bool first = out.empty();
    NlMsgPtr msg(nlmsg_alloc_size(budget));
    if (!msg) {
      return terminal("out of memory building a WireGuard message");
    }
    if (genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, familyId, 0, nlFlags, cmd,
                    WG_GENL_VERSION) == nullptr ||
        !everyMessage(msg.get()) || (first && !firstMessage(msg.get()))) {
      return terminal("WireGuard device attributes do not fit in " + std::to_string(budget) +
                      " bytes");
    }
    if (!splitter.done() && !splitter.fill(msg.get(), first) && !first) {
      return terminal("a WireGuard peer does not fit in a message of " + std::to_string(budget) +
                      " bytes");
    }
    out.push_back(std::move(msg));
  } while (!splitter.done());
  return out;
}

}  // namespace

size_t defaultGenlBudget() {
  const long page = ::sysconf(_SC_PAGESIZE);
  return page <= 0 ? 4096 : std::min<size_t>(static_cast<size_t>(page), 8192);
}

Result<std::vector<NlMsgPtr>> buildSetDeviceMessages(const WgSetRequest& request, int familyId,
                                                     size_t budget) {
  if (!isValidIfname(request.ifname)) {
    return terminal("invalid interface name '" + request.ifname + "'");
  }
  std::vector<WgWirePeer> wire;
  wire.reserve(request.peers.size());
  for (const WgPeerOp& op : request.peers) {
    wire.push_back(wireForm(op));
  }
  std::vector<SplitPeer> peers;
  peers.reserve(wire.size());
  for (const WgWirePeer& w : wire) {
    SplitPeer p;
    p.publicKey = &w.publicKey;
    p.allowedIps = &w.allowedIps;
    p.head = [&w](nl_msg* msg) {
      uint32_t flags = 0;
      if (w.remove) {
        flags |= WGPEER_F_REMOVE_ME;
      }
      if (w.replaceAllowedIps) {
        flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
      }
      if (w.presharedKey && !putKey(msg, WGPEER_A_PRESHARED_KEY, *w.presharedKey)) {
        return false;
      }
      if (w.endpoint && !putEndpoint(msg, WGPEER_A_ENDPOINT, *w.endpoint)) {
        return false;
      }
      if (w.persistentKeepalive &&
          nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, *w.persistentKeepalive) < 0) {
        return false;
      }
      return flags == 0 || nla_put_u32(msg, WGPEER_A_FLAGS, flags) >= 0;
    };
    peers.push_back(std::move(p));
  }
  const std::string ifname = request.ifname;
  return buildSplit(
      familyId, WG_CMD_SET_DEVICE, NLM_F_REQUEST | NLM_F_ACK, budget,
      [&](nl_msg* msg) { return nla_put_string(msg, WGDEVICE_A_IFNAME, ifname.c_str()) >= 0; },
      [&](nl_msg* msg) {
        if (request.privateKey && !putKey(msg, WGDEVICE_A_PRIVATE_KEY, *request.privateKey)) {
          return false;
        }
        if (request.listenPort &&
            nla_put_u16(msg, WGDEVICE_A_LISTEN_PORT, *request.listenPort) < 0) {
          return false;
        }
        if (request.fwmark && nla_put_u32(msg, WGDEVICE_A_FWMARK, *request.fwmark) < 0) {
          return false;
        }
        return !request.replacePeers ||
               nla_put_u32(msg, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS) >= 0;
      },
      peers);
}

Result<NlMsgPtr> buildGetDeviceRequest(std::string_view ifname, int familyId) {
  if (!isValidIfname(ifname)) {
    return terminal("invalid interface name '" + std::string(ifname) + "'");
  }
  NlMsgPtr msg(nlmsg_alloc());
  if (!msg ||
      genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, familyId, 0, NLM_F_REQUEST | NLM_F_DUMP,
                  WG_CMD_GET_DEVICE, WG_GENL_VERSION) == nullptr ||
      nla_put_string(msg.get(), WGDEVICE_A_IFNAME, std::string(ifname).c_str()) < 0) {
    return terminal("out of memory building a WireGuard message");
  }
  return msg;
}

Result<std::vector<NlMsgPtr>> buildGetDeviceReplies(const WgDevice& device, int familyId,
                                                    size_t budget, int ifindex) {
  std::vector<SplitPeer> peers;
  peers.reserve(device.peers.size());
  for (const WgPeer& peer : device.peers) {
    SplitPeer p;
    p.publicKey = &peer.publicKey;
    p.allowedIps = &peer.allowedIps;
    p.head = [&peer](nl_msg* msg) {
      const WgKey psk = peer.presharedKey.value_or(WgKey{});
      struct {
        int64_t sec;
        int64_t nsec;
      } handshake{peer.lastHandshake.value_or(0), 0};
      return putKey(msg, WGPEER_A_PRESHARED_KEY, psk) &&
             nla_put(msg, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(handshake), &handshake) >= 0 &&
             nla_put_u16(msg, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
                         peer.persistentKeepalive.value_or(0)) >= 0 &&
             nla_put_u64(msg, WGPEER_A_RX_BYTES, peer.rxBytes) >= 0 &&
             nla_put_u64(msg, WGPEER_A_TX_BYTES, peer.txBytes) >= 0 &&
             nla_put_u32(msg, WGPEER_A_PROTOCOL_VERSION, 1) >= 0 &&
             (!peer.endpoint || putEndpoint(msg, WGPEER_A_ENDPOINT, *peer.endpoint));
    };
    peers.push_back(std::move(p));
  }
  return buildSplit(
      familyId, WG_CMD_GET_DEVICE, NLM_F_MULTI, budget, [](nl_msg*) { return true; },
      [&](nl_msg* msg) {
        if (nla_put_u16(msg, WGDEVICE_A_LISTEN_PORT, device.listenPort.value_or(0)) < 0 ||
            nla_put_u32(msg, WGDEVICE_A_FWMARK, device.fwmark.value_or(0)) < 0 ||
            nla_put_u32(msg, WGDEVICE_A_IFINDEX, static_cast<uint32_t>(ifindex)) < 0 ||
            nla_put_string(msg, WGDEVICE_A_IFNAME, device.ifname.c_str()) < 0) {
          return false;
        }
        if (device.privateKey) {
          return putKey(msg, WGDEVICE_A_PRIVATE_KEY, *device.privateKey) &&
                 putKey(msg, WGDEVICE_A_PUBLIC_KEY, device.publicKey.value_or(WgKey{}));
        }
        return true;
      },
      peers);
}

}  // namespace edgeplane::sys
