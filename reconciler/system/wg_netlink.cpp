// WireGuard kernel backend: WG_CMD_* messages through libnl-genl-3, links through rtnetlink.
#include "reconciler/system/wg_netlink.h"

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <thread>

#include "reconciler/system/netns.h"

#if __has_include(<linux/wireguard.h>)
#include <linux/wireguard.h>
#else
// From linux/wireguard.h (the UAPI of drivers/net/wireguard), for older kernel headers.
#define WG_GENL_NAME "wireguard"
#define WG_GENL_VERSION 1
#define WG_KEY_LEN 32
enum wg_cmd { WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE };
enum wgdevice_flag { WGDEVICE_F_REPLACE_PEERS = 1U << 0 };
enum wgdevice_attribute {
  WGDEVICE_A_UNSPEC,
  WGDEVICE_A_IFINDEX,
  WGDEVICE_A_IFNAME,
  WGDEVICE_A_PRIVATE_KEY,
  WGDEVICE_A_PUBLIC_KEY,
  WGDEVICE_A_FLAGS,
  WGDEVICE_A_LISTEN_PORT,
  WGDEVICE_A_FWMARK,
  WGDEVICE_A_PEERS,
  __WGDEVICE_A_LAST
};
#define WGDEVICE_A_MAX (__WGDEVICE_A_LAST - 1)
enum wgpeer_flag {
  WGPEER_F_REMOVE_ME = 1U << 0,
  WGPEER_F_REPLACE_ALLOWEDIPS = 1U << 1,
  WGPEER_F_UPDATE_ONLY = 1U << 2
};
enum wgpeer_attribute {
  WGPEER_A_UNSPEC,
  WGPEER_A_PUBLIC_KEY,
  WGPEER_A_PRESHARED_KEY,
  WGPEER_A_FLAGS,
  WGPEER_A_ENDPOINT,
  WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
  WGPEER_A_LAST_HANDSHAKE_TIME,
  WGPEER_A_RX_BYTES,
  WGPEER_A_TX_BYTES,
  WGPEER_A_ALLOWEDIPS,
  WGPEER_A_PROTOCOL_VERSION,
  __WGPEER_A_LAST
};
#define WGPEER_A_MAX (__WGPEER_A_LAST - 1)
enum wgallowedip_attribute {
  WGALLOWEDIP_A_UNSPEC,
  WGALLOWEDIP_A_FAMILY,
  WGALLOWEDIP_A_IPADDR,
  WGALLOWEDIP_A_CIDR_MASK,
  __WGALLOWEDIP_A_LAST
};
#define WGALLOWEDIP_A_MAX (__WGALLOWEDIP_A_LAST - 1)
#endif

namespace edgeplane::sys {
namespace {

constexpr uint32_t kKnownDeviceFlags = WGDEVICE_F_REPLACE_PEERS;
constexpr uint32_t kKnownPeerFlags =
    WGPEER_F_REMOVE_ME | WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY;

std::string where(std::string_view netns) {
  return netns.empty() ? std::string() : " in namespace " + std::string(netns);
}

bool isZero(const WgKey& key) {
  return std::all_of(key.bytes.begin(), key.bytes.end(), [](uint8_t b) { return b == 0; });
}

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

// --- attribute readers: strict lengths ---

std::optional<WgKey> getKey(const nlattr* a) {
  if (nla_len(a) != WG_KEY_LEN) {
    return std::nullopt;
  }
  WgKey key;
  std::memcpy(key.bytes.data(), nla_data(a), WG_KEY_LEN);
  return key;
}

template <typename T>
std::optional<T> getScalar(const nlattr* a) {
  if (nla_len(a) != static_cast<int>(sizeof(T))) {
    return std::nullopt;
  }
  T v;
  std::memcpy(&v, nla_data(a), sizeof(T));
  return v;
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
    const auto family = getScalar<uint16_t>(tb[WGALLOWEDIP_A_FAMILY]);
    const auto cidr = getScalar<uint8_t>(tb[WGALLOWEDIP_A_CIDR_MASK]);
    const int len = nla_len(tb[WGALLOWEDIP_A_IPADDR]);
    IpPrefix p;
    if (family == AF_INET && len == 4) {
      p.address.family = IpAddress::Family::V4;
    } else if (family == AF_INET6 && len == 16) {
      p.address.family = IpAddress::Family::V6;
    } else {
      return terminal("allowed IP with a bad family or address length");
    }
    if (!cidr || *cidr > p.address.bits()) {
      return terminal("allowed IP with a bad prefix length");
    }
    std::memcpy(p.address.bytes.data(), nla_data(tb[WGALLOWEDIP_A_IPADDR]),
                static_cast<size_t>(len));
    p.length = *cidr;
    out.push_back(p);
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

// --- the splitter shared by SET_DEVICE and the GET_DEVICE dump ---

struct SplitPeer {
  const WgKey* publicKey = nullptr;
  // Writes the attributes other than the key and the allowed IPs; called only for the first
  // entry of a peer (a continuation carries the key and more allowed IPs, nothing else).
  std::function<bool(nl_msg*)> head;
  const std::vector<IpPrefix>* allowedIps = nullptr;
};

Result<std::vector<WgMsgPtr>> buildSplit(int familyId, uint8_t cmd, int nlFlags, size_t budget,
                                         const std::function<bool(nl_msg*)>& everyMessage,
                                         const std::function<bool(nl_msg*)>& firstMessage,
                                         const std::vector<SplitPeer>& peers) {
  std::vector<WgMsgPtr> out;
  size_t peer = 0;
  size_t ip = 0;
  bool continuing = false;  // peers[peer] had its head sent; ip is the next allowed IP
  do {
    const bool first = out.empty();
    WgMsgPtr msg(nlmsg_alloc_size(budget));
    if (!msg) {
      return terminal("out of memory building a WireGuard message");
    }
    if (genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, familyId, 0, nlFlags, cmd,
                    WG_GENL_VERSION) == nullptr ||
        !everyMessage(msg.get()) || (first && !firstMessage(msg.get()))) {
      return terminal("WireGuard device attributes do not fit in " + std::to_string(budget) +
                      " bytes");
    }
    bool progress = false;
    if (peer < peers.size()) {
      nlattr* peersNest = nla_nest_start(msg.get(), WGDEVICE_A_PEERS);
      while (peersNest != nullptr && peer < peers.size()) {
        const SplitPeer& p = peers[peer];
        nlattr* peerNest = nla_nest_start(msg.get(), 0);
        if (peerNest == nullptr) {
          break;
        }
        if (!putKey(msg.get(), WGPEER_A_PUBLIC_KEY, *p.publicKey) ||
            (!continuing && !p.head(msg.get()))) {
          nla_nest_cancel(msg.get(), peerNest);
          break;
        }
        const bool headSent = !continuing;
        size_t ipsSent = 0;
        bool full = false;
        if (ip < p.allowedIps->size()) {
          nlattr* ipsNest = nla_nest_start(msg.get(), WGPEER_A_ALLOWEDIPS);
          full = ipsNest == nullptr;
          for (; ipsNest != nullptr && ip < p.allowedIps->size(); ++ip, ++ipsSent) {
            nlattr* ipNest = nla_nest_start(msg.get(), 0);
            if (ipNest == nullptr || !putAllowedIp(msg.get(), (*p.allowedIps)[ip])) {
              if (ipNest != nullptr) {
                nla_nest_cancel(msg.get(), ipNest);
              }
              full = true;
              break;
            }
            nla_nest_end(msg.get(), ipNest);
          }
          if (ipsNest != nullptr) {
            nla_nest_end(msg.get(), ipsNest);  // an empty one is trimmed
          }
        }
        if (ipsSent == 0 && !p.allowedIps->empty() && (!headSent || progress || first)) {
          // A continuation that carries nothing, or a peer that would be split with none of
          // its allowed IPs while something else fills the message: all of it goes in the next,
          // so the kernel never sees it replaced by an empty list first.
          nla_nest_cancel(msg.get(), peerNest);
          break;
        }
        nla_nest_end(msg.get(), peerNest);
        progress = true;
        if (full) {
          continuing = true;
          break;
        }
        ++peer;
        ip = 0;
        continuing = false;
      }
      if (peersNest != nullptr) {
        nla_nest_end(msg.get(), peersNest);
      }
      if (!progress && !first) {
        return terminal("a WireGuard peer does not fit in a message of " + std::to_string(budget) +
                        " bytes");
      }
    }
    out.push_back(std::move(msg));
  } while (peer < peers.size());
  return out;
}

// --- sockets ---

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
using SockPtr = std::unique_ptr<nl_sock, SockFree>;

// Opens a netlink socket inside `netns` (entered only while the socket is created).
Result<SockPtr> openSocket(int protocol, std::string_view netns) {
  auto scope = NetnsScope::enter(netns);
  if (!scope) {
    return scope.error();
  }
  SockPtr sock(nl_socket_alloc());
  if (!sock) {
    return terminal("out of memory allocating a netlink socket");
  }
  const int rc =
      protocol == NETLINK_GENERIC ? genl_connect(sock.get()) : nl_connect(sock.get(), protocol);
  if (rc < 0) {
    return terminal(std::string("netlink socket") + where(netns) + ": " + nl_geterror(rc));
  }
  nl_socket_disable_auto_ack(sock.get());
  nl_socket_enable_msg_peek(sock.get());
  return sock;
}

// One request, its replies and its acknowledgement. Returns 0 or a positive errno (the
// kernel's, or EIO for a local failure; `local` then says what it was).
struct Exchange {
  std::function<Result<void>(nl_msg*)> onReply;
  int err = 0;
  bool done = false;
  std::optional<Error> replyError;
  std::string local;
};

int onValid(nl_msg* msg, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  if (ex->onReply && !ex->replyError) {
    if (auto r = ex->onReply(msg); !r) {
      ex->replyError = r.error();
    }
  }
  return NL_OK;
}

int onDone(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->done = true;
  return NL_STOP;
}

int onError(sockaddr_nl*, nlmsgerr* e, void* arg) {
  auto* ex = static_cast<Exchange*>(arg);
  ex->err = e->error < 0 ? -e->error : e->error;
  ex->done = true;
  return NL_STOP;
}

int exchange(nl_sock* sock, nl_msg* msg, Exchange& ex) {
  std::unique_ptr<nl_cb, decltype(&nl_cb_put)> cb(nl_cb_alloc(NL_CB_DEFAULT), &nl_cb_put);
  if (!cb) {
    ex.local = "out of memory";
    return EIO;
  }
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, onValid, &ex);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, onDone, &ex);
  nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, onDone, &ex);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, onError, &ex);
  int rc = nl_send_auto(sock, msg);
  if (rc < 0) {
    ex.local = std::string("send: ") + nl_geterror(rc);
    return EIO;
  }
  while (!ex.done) {
    rc = nl_recvmsgs(sock, cb.get());
    if (rc < 0 && !ex.done) {
      ex.local = std::string("receive: ") + nl_geterror(rc);
      return EIO;
    }
  }
  return ex.err;
}

std::string failure(const Exchange& ex, int err) {
  return ex.local.empty() ? std::string(std::strerror(err)) : ex.local;
}

// Flags with NLM_F_ACK for requests that are not dumps.
WgMsgPtr rtnlMessage(int type, int flags, int ifindex) {
  WgMsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) {
    return msg;
  }
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  if (nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0) {
    msg.reset();
  }
  return msg;
}

Result<WgMsgPtr> namedLinkMessage(int type, int flags, std::string_view ifname) {
  if (!isValidIfname(ifname)) {
    return terminal("invalid interface name '" + std::string(ifname) + "'");
  }
  WgMsgPtr msg = rtnlMessage(type, flags, 0);
  if (!msg || nla_put_string(msg.get(), IFLA_IFNAME, std::string(ifname).c_str()) < 0) {
    return terminal("out of memory building an rtnetlink message");
  }
  return msg;
}

// rtnetlink request in `netns`; 0 or a positive errno.
int rtnlDo(std::string_view netns, Result<WgMsgPtr> msg, Exchange& ex) {
  if (!msg) {
    ex.local = msg.error().message;
    return EINVAL;
  }
  auto sock = openSocket(NETLINK_ROUTE, netns);
  if (!sock) {
    ex.local = sock.error().message;
    return EIO;
  }
  return exchange(sock->get(), msg->get(), ex);
}

int createLinkErrno(std::string_view ifname, std::string_view kind, std::optional<uint32_t> mtu,
                    std::string& detail) {
  Exchange ex;
  const int err = rtnlDo("", buildWgLinkCreate(ifname, kind, mtu), ex);
  detail = failure(ex, err);
  return err;
}

constexpr std::string_view kNoKernelWireGuard =
    "the kernel has no WireGuard support ('wireguard' links cannot be created: Operation not "
    "supported); use the userspace backend (wireguard-go)";

// --- the backend ---

class NetlinkBackend final : public WgBackend {
 public:
  // Interface
  WgBackendKind kind() const override { return WgBackendKind::Kernel; }

  Result<void> createInterface(std::string_view ifname, std::string_view netns,
                               std::optional<uint32_t> mtu) override {
    const std::string what = "create WireGuard interface " + std::string(ifname) + where(netns);
    if (!isValidIfname(ifname)) {
      return terminal(what + ": invalid interface name");
    }
    auto existing = wgLinkGet(netns, ifname);
    if (!existing) {
      return existing.error();
    }
    if (*existing) {
      return terminal(what + ": a '" + (*existing)->kind + "' link of that name exists");
    }
    std::string detail;
    const int err = createLinkErrno(ifname, "wireguard", mtu, detail);
    if (err == EOPNOTSUPP) {
      return terminal(what + ": " + std::string(kNoKernelWireGuard));
    }
    if (err != 0) {
      return terminal(what + ": " + detail);
    }
    if (netns.empty()) {
      return {};
    }
    // Created here so that its UDP socket lives here; the interface itself moves.
    if (auto moved = wgLinkMove(ifname, netns); !moved) {
      (void)wgLinkDelete("", ifname);
      return terminal(what + ": " + moved.error().message);
    }
    return {};
  }

  Result<WgRemoval> deleteInterface(std::string_view ifname, std::string_view netns) override {
    return wgLinkDelete(netns, ifname);
  }

  Result<bool> interfaceAlive(std::string_view ifname, std::string_view netns) override {
    auto link = wgLinkGet(netns, ifname);
    if (!link) {
      return link.error();
    }
    return link->has_value() && (*link)->kind == "wireguard";
  }

  Result<WgDevice> getDevice(std::string_view ifname, std::string_view netns) override {
    const std::string what = "read WireGuard interface " + std::string(ifname) + where(netns);
    auto genl = openGenl(netns, what);
    if (!genl) {
      return genl.error();
    }
    auto msg = buildGetDeviceRequest(ifname, genl->family);
    if (!msg) {
      return terminal(what + ": " + msg.error().message);
    }
    WgGetDeviceParser parser;
    Exchange ex;
    ex.onReply = [&](nl_msg* reply) { return parser.add(reply); };
    const int err = exchange(genl->sock.get(), msg->get(), ex);
    if (err == ENODEV) {
      return terminal(what + ": no such WireGuard interface");
    }
    if (err != 0) {
      return terminal(what + ": " + failure(ex, err));
    }
    if (ex.replyError) {
      return terminal(what + ": " + ex.replyError->message);
    }
    WgDevice device = parser.take();
    device.ifname = std::string(ifname);
    return device;
  }

  Result<void> setDevice(const WgSetRequest& request) override {
    const std::string what =
        "configure WireGuard interface " + request.ifname + where(request.netns);
    auto genl = openGenl(request.netns, what);
    if (!genl) {
      return genl.error();
    }
    auto msgs = buildSetDeviceMessages(request, genl->family, defaultGenlBudget());
    if (!msgs) {
      return terminal(what + ": " + msgs.error().message);
    }
    for (const WgMsgPtr& msg : *msgs) {
      Exchange ex;
      const int err = exchange(genl->sock.get(), msg.get(), ex);
      if (err != 0) {
        const std::string text = what + ": " + failure(ex, err);
        return err == EADDRINUSE ? retryable(text) : terminal(text);
      }
    }
    return {};
  }

 private:
  struct Genl {
    SockPtr sock;
    int family = 0;
  };

  static Result<Genl> openGenl(std::string_view netns, const std::string& what) {
    auto sock = openSocket(NETLINK_GENERIC, netns);
    if (!sock) {
      return terminal(what + ": " + sock.error().message);
    }
    const int family = genl_ctrl_resolve(sock->get(), WG_GENL_NAME);
    if (family < 0) {
      return terminal(what + ": the '" WG_GENL_NAME "' generic netlink family is missing (" +
                      nl_geterror(family) + "): the kernel has no WireGuard support");
    }
    return Genl{std::move(sock).value(), family};
  }
};

}  // namespace

void WgMsgFree::operator()(nl_msg* msg) const {
  nlmsg_free(msg);
}

size_t defaultGenlBudget() {
  const long page = ::sysconf(_SC_PAGESIZE);
  return page <= 0 ? 4096 : std::min<size_t>(static_cast<size_t>(page), 8192);
}

Result<std::vector<WgMsgPtr>> buildSetDeviceMessages(const WgSetRequest& request, int familyId,
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

Result<WgMsgPtr> buildGetDeviceRequest(std::string_view ifname, int familyId) {
  if (!isValidIfname(ifname)) {
    return terminal("invalid interface name '" + std::string(ifname) + "'");
  }
  WgMsgPtr msg(nlmsg_alloc());
  if (!msg ||
      genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, familyId, 0, NLM_F_REQUEST | NLM_F_DUMP,
                  WG_CMD_GET_DEVICE, WG_GENL_VERSION) == nullptr ||
      nla_put_string(msg.get(), WGDEVICE_A_IFNAME, std::string(ifname).c_str()) < 0) {
    return terminal("out of memory building a WireGuard message");
  }
  return msg;
}

Result<std::vector<WgMsgPtr>> buildGetDeviceReplies(const WgDevice& device, int familyId,
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

Result<void> WgGetDeviceParser::add(nl_msg* msg) {
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  if (auto r = parseTop(msg, WG_CMD_GET_DEVICE, tb); !r) {
    return r;
  }
  if (tb[WGDEVICE_A_IFNAME]) {
    auto name = getIfname(tb[WGDEVICE_A_IFNAME]);
    if (!name) {
      return terminal("malformed interface name in WireGuard dump");
    }
    device_.ifname = *name;
  }
  if (tb[WGDEVICE_A_PRIVATE_KEY]) {
    auto key = getKey(tb[WGDEVICE_A_PRIVATE_KEY]);
    if (!key) {
      return terminal("malformed private key attribute in WireGuard dump");
    }
    device_.privateKey = isZero(*key) ? std::nullopt : key;
  }
  if (tb[WGDEVICE_A_PUBLIC_KEY]) {
    auto key = getKey(tb[WGDEVICE_A_PUBLIC_KEY]);
    if (!key) {
      return terminal("malformed public key attribute in WireGuard dump");
    }
    device_.publicKey = isZero(*key) ? std::nullopt : key;
  }
  if (tb[WGDEVICE_A_LISTEN_PORT]) {
    device_.listenPort = getScalar<uint16_t>(tb[WGDEVICE_A_LISTEN_PORT]);
    if (!device_.listenPort) {
      return terminal("malformed listen port in WireGuard dump");
    }
  }
  if (tb[WGDEVICE_A_FWMARK]) {
    device_.fwmark = getScalar<uint32_t>(tb[WGDEVICE_A_FWMARK]);
    if (!device_.fwmark) {
      return terminal("malformed fwmark in WireGuard dump");
    }
  }
  if (!tb[WGDEVICE_A_PEERS]) {
    return {};
  }
  nlattr* pos = nullptr;
  int rem = 0;
  nla_for_each_nested(pos, tb[WGDEVICE_A_PEERS], rem) {
    nlattr* pt[WGPEER_A_MAX + 1] = {};
    if (nla_parse_nested(pt, WGPEER_A_MAX, pos, nullptr) < 0) {
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
      continue;
    }
    auto at = std::lower_bound(seen_.begin(), seen_.end(), *key);
    if (at != seen_.end() && *at == *key) {
      return terminal("peer " + key->base64() + " appears twice in WireGuard dump");
    }
    seen_.insert(at, *key);
    WgPeer peer;
    peer.publicKey = *key;
    peer.allowedIps = std::move(ips);
    if (pt[WGPEER_A_PRESHARED_KEY]) {
      auto psk = getKey(pt[WGPEER_A_PRESHARED_KEY]);
      if (!psk) {
        return terminal("malformed preshared key attribute in WireGuard dump");
      }
      if (!isZero(*psk)) {
        peer.presharedKey = psk;
      }
    }
    if (pt[WGPEER_A_ENDPOINT]) {
      bool ok = false;
      peer.endpoint = getEndpoint(pt[WGPEER_A_ENDPOINT], ok);
      if (!ok) {
        return terminal("malformed endpoint in WireGuard dump");
      }
    }
    if (pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
      auto ka = getScalar<uint16_t>(pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
      if (!ka) {
        return terminal("malformed keepalive in WireGuard dump");
      }
      if (*ka != 0) {
        peer.persistentKeepalive = ka;
      }
    }
    if (pt[WGPEER_A_LAST_HANDSHAKE_TIME]) {
      if (nla_len(pt[WGPEER_A_LAST_HANDSHAKE_TIME]) != 16) {
        return terminal("malformed handshake time in WireGuard dump");
      }
      int64_t ts[2];
      std::memcpy(ts, nla_data(pt[WGPEER_A_LAST_HANDSHAKE_TIME]), sizeof(ts));
      if (ts[0] < 0 || ts[1] < 0 || ts[1] >= 1000000000) {
        return terminal("malformed handshake time in WireGuard dump");
      }
      if (ts[0] != 0 || ts[1] != 0) {
        peer.lastHandshake = ts[0];
      }
    }
    for (auto [type, dst] : {std::pair{WGPEER_A_RX_BYTES, &peer.rxBytes},
                             std::pair{WGPEER_A_TX_BYTES, &peer.txBytes}}) {
      if (pt[type]) {
        auto v = getScalar<uint64_t>(pt[type]);
        if (!v) {
          return terminal("malformed transfer counter in WireGuard dump");
        }
        *dst = *v;
      }
    }
    device_.peers.push_back(std::move(peer));
  }
  if (rem != 0) {
    return terminal("trailing bytes after the peers in WireGuard dump");
  }
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
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  if (auto r = parseTop(msg, WG_CMD_SET_DEVICE, tb); !r) {
    return r;
  }
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
    request_.listenPort = getScalar<uint16_t>(tb[WGDEVICE_A_LISTEN_PORT]);
    if (!request_.listenPort) {
      return terminal("malformed listen port attribute");
    }
  }
  if (tb[WGDEVICE_A_FWMARK]) {
    request_.fwmark = getScalar<uint32_t>(tb[WGDEVICE_A_FWMARK]);
    if (!request_.fwmark) {
      return terminal("malformed fwmark attribute");
    }
  }
  if (tb[WGDEVICE_A_FLAGS]) {
    auto flags = getScalar<uint32_t>(tb[WGDEVICE_A_FLAGS]);
    if (!flags || (*flags & ~kKnownDeviceFlags) != 0) {
      return terminal("malformed or unknown device flags");
    }
    request_.replacePeers = (*flags & WGDEVICE_F_REPLACE_PEERS) != 0;
  }
  if (!tb[WGDEVICE_A_PEERS]) {
    return {};
  }
  nlattr* pos = nullptr;
  int rem = 0;
  nla_for_each_nested(pos, tb[WGDEVICE_A_PEERS], rem) {
    nlattr* pt[WGPEER_A_MAX + 1] = {};
    if (nla_parse_nested(pt, WGPEER_A_MAX, pos, nullptr) < 0) {
      return terminal("malformed peer");
    }
    std::optional<WgKey> key;
    if (!pt[WGPEER_A_PUBLIC_KEY] || !(key = getKey(pt[WGPEER_A_PUBLIC_KEY]))) {
      return terminal("peer without a valid public key");
    }
    uint32_t flags = 0;
    if (pt[WGPEER_A_FLAGS]) {
      auto f = getScalar<uint32_t>(pt[WGPEER_A_FLAGS]);
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
      continue;
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
      continue;
    }
    if ((flags & WGPEER_F_REPLACE_ALLOWEDIPS) == 0) {
      return terminal("a peer that appends allowed IPs has no WgSetRequest equivalent");
    }
    op.kind = WgPeerOp::Kind::Add;
    op.peer.allowedIps = std::move(ips);
    if (pt[WGPEER_A_PRESHARED_KEY]) {
      auto psk = getKey(pt[WGPEER_A_PRESHARED_KEY]);
      if (!psk) {
        return terminal("malformed preshared key attribute");
      }
      if (!isZero(*psk)) {
        op.peer.presharedKey = psk;
      }
    }
    if (pt[WGPEER_A_ENDPOINT]) {
      bool ok = false;
      op.peer.endpoint = getEndpoint(pt[WGPEER_A_ENDPOINT], ok);
      if (!ok || !op.peer.endpoint) {
        return terminal("malformed endpoint attribute");
      }
    }
    if (pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]) {
      auto ka = getScalar<uint16_t>(pt[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL]);
      if (!ka) {
        return terminal("malformed keepalive attribute");
      }
      if (*ka != 0) {
        op.peer.persistentKeepalive = ka;
      }
    }
    request_.peers.push_back(std::move(op));
    lastContinuable_ = true;
  }
  if (rem != 0) {
    return terminal("trailing bytes after the peers");
  }
  return {};
}

WgSetRequest WgSetDeviceParser::take() {
  WgSetRequest out = std::move(request_);
  request_ = WgSetRequest{};
  sawFirst_ = false;
  lastContinuable_ = false;
  return out;
}

// --- rtnetlink ---

Result<WgMsgPtr> buildWgLinkCreate(std::string_view ifname, std::string_view kind,
                                   std::optional<uint32_t> mtu) {
  auto msg =
      namedLinkMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, ifname);
  if (!msg) {
    return msg;
  }
  if (mtu && nla_put_u32(msg->get(), IFLA_MTU, *mtu) < 0) {
    return terminal("out of memory building an rtnetlink message");
  }
  nlattr* info = nla_nest_start(msg->get(), IFLA_LINKINFO);
  if (info == nullptr ||
      nla_put_string(msg->get(), IFLA_INFO_KIND, std::string(kind).c_str()) < 0) {
    return terminal("out of memory building an rtnetlink message");
  }
  nla_nest_end(msg->get(), info);
  return msg;
}

Result<WgMsgPtr> buildWgLinkMove(std::string_view ifname, int netnsFd) {
  auto msg = namedLinkMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, ifname);
  if (msg && nla_put_u32(msg->get(), IFLA_NET_NS_FD, static_cast<uint32_t>(netnsFd)) < 0) {
    return terminal("out of memory building an rtnetlink message");
  }
  return msg;
}

Result<WgMsgPtr> buildWgLinkSetMtu(std::string_view ifname, uint32_t mtu) {
  auto msg = namedLinkMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, ifname);
  if (msg && nla_put_u32(msg->get(), IFLA_MTU, mtu) < 0) {
    return terminal("out of memory building an rtnetlink message");
  }
  return msg;
}

Result<WgMsgPtr> buildWgLinkGet(std::string_view ifname) {
  return namedLinkMessage(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, ifname);
}

Result<WgMsgPtr> buildWgLinkDelete(std::string_view ifname) {
  return namedLinkMessage(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, ifname);
}

Result<std::optional<WgLinkState>> wgLinkGet(std::string_view netns, std::string_view ifname) {
  std::optional<WgLinkState> found;
  Exchange ex;
  ex.onReply = [&](nl_msg* msg) -> Result<void> {
    nlmsghdr* nlh = nlmsg_hdr(msg);
    if (nlh->nlmsg_type != RTM_NEWLINK || !nlmsg_valid_hdr(nlh, sizeof(ifinfomsg))) {
      return terminal("unexpected rtnetlink reply");
    }
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(nlh, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) {
      return terminal("malformed rtnetlink link message");
    }
    ifinfomsg ifi;
    std::memcpy(&ifi, nlmsg_data(nlh), sizeof(ifi));
    WgLinkState state;
    state.ifindex = ifi.ifi_index;
    state.up = (ifi.ifi_flags & IFF_UP) != 0;
    if (tb[IFLA_MTU] && nla_len(tb[IFLA_MTU]) == 4) {
      state.mtu = nla_get_u32(tb[IFLA_MTU]);
    }
    if (tb[IFLA_LINKINFO]) {
      nlattr* li[IFLA_INFO_MAX + 1] = {};
      if (nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) == 0 &&
          li[IFLA_INFO_KIND] && nla_len(li[IFLA_INFO_KIND]) > 0) {
        const char* kind = static_cast<const char*>(nla_data(li[IFLA_INFO_KIND]));
        state.kind.assign(kind, strnlen(kind, static_cast<size_t>(nla_len(li[IFLA_INFO_KIND]))));
      }
    }
    found = state;
    return {};
  };
  const int err = rtnlDo(netns, buildWgLinkGet(ifname), ex);
  if (err == ENODEV) {
    return std::optional<WgLinkState>();
  }
  if (err != 0) {
    return terminal("look up link " + std::string(ifname) + where(netns) + ": " + failure(ex, err));
  }
  if (ex.replyError) {
    return terminal("look up link " + std::string(ifname) + where(netns) + ": " +
                    ex.replyError->message);
  }
  return found;
}

Result<void> wgLinkCreate(std::string_view ifname, std::string_view kind,
                          std::optional<uint32_t> mtu) {
  std::string detail;
  const int err = createLinkErrno(ifname, kind, mtu, detail);
  if (err != 0) {
    return terminal("create '" + std::string(kind) + "' link " + std::string(ifname) + ": " +
                    detail);
  }
  return {};
}

Result<void> wgLinkSetMtu(std::string_view netns, std::string_view ifname, uint32_t mtu) {
  Exchange ex;
  const int err = rtnlDo(netns, buildWgLinkSetMtu(ifname, mtu), ex);
  if (err != 0) {
    return terminal("set MTU " + std::to_string(mtu) + " on " + std::string(ifname) + where(netns) +
                    ": " + failure(ex, err));
  }
  return {};
}

Result<void> wgLinkMove(std::string_view ifname, std::string_view targetNetns) {
  const std::string what =
      "move " + std::string(ifname) + " into namespace " + std::string(targetNetns);
  const int fd = openNetnsFd(targetNetns);
  if (fd < 0) {
    return terminal(what + ": " + std::strerror(errno));
  }
  Exchange ex;
  const int err = rtnlDo("", buildWgLinkMove(ifname, fd), ex);
  ::close(fd);
  if (err == EEXIST) {
    return retryable(what + ": a link of that name is still there");
  }
  if (err != 0) {
    return terminal(what + ": " + failure(ex, err));
  }
  return {};
}

Result<WgRemoval> wgLinkDelete(std::string_view netns, std::string_view ifname) {
  Exchange ex;
  const int err = rtnlDo(netns, buildWgLinkDelete(ifname), ex);
  if (err == ENODEV) {
    return WgRemoval::AlreadyAbsent;
  }
  if (err != 0) {
    return terminal("delete link " + std::string(ifname) + where(netns) + ": " + failure(ex, err));
  }
  return WgRemoval::Removed;
}

Result<bool> kernelWireGuardAvailable() {
  // unshare() moves only the calling thread, so probe on a short-lived thread of our own: the
  // probe link lives in a namespace nobody else sees, and vanishes with it.
  Result<bool> result = false;
  std::thread probe([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      result = terminal(std::string("probe for WireGuard kernel support: unshare: ") +
                        std::strerror(errno));
      return;
    }
    std::string detail;
    const int err = createLinkErrno("wgprobe0", "wireguard", std::nullopt, detail);
    if (err == 0) {
      result = true;
    } else if (err == EOPNOTSUPP) {
      result = false;
    } else {
      result = terminal("probe for WireGuard kernel support: " + detail);
    }
  });
  probe.join();
  return result;
}

std::unique_ptr<WgBackend> makeNetlinkBackend() {
  return std::make_unique<NetlinkBackend>();
}

}  // namespace edgeplane::sys
