// WireGuard kernel backend: links through Rtnl, WG_CMD_* through a generic netlink NlSocket.
#include "reconciler/system/wg_netlink.h"

#include <linux/netlink.h>
#include <netlink/netlink.h>
#include <sched.h>

#include <cerrno>
#include <thread>

#include "reconciler/system/netlink.h"
#include "reconciler/system/rtnl.h"
#include "reconciler/system/wg_genl_codec.h"
#include "reconciler/system/wg_genl_defs.h"

namespace edgeplane::sys {
namespace {

constexpr std::string_view kNoKernelWireGuard =
    "the kernel has no WireGuard support ('wireguard' links cannot be created: Operation not "
    "supported); use the userspace backend (wireguard-go)";

// A generic netlink socket in the interface's namespace and the WireGuard family's id there.
struct Genl {
  NlSocket sock;
  int family = 0;
};

Result<Genl> openGenl(std::string_view netns, const std::string& what) {
  auto sock = NlSocket::open(NETLINK_GENERIC, netns);
  if (!sock) {
    return terminal(what + ": " + sock.error().message);
  }
  const int family = sock->genlFamily(WG_GENL_NAME);
  if (family < 0) {
    return terminal(what + ": the '" WG_GENL_NAME "' generic netlink family is missing (" +
                    nl_geterror(family) + "): the kernel has no WireGuard support");
  }
  return Genl{std::move(sock).value(), family};
}

class NetlinkBackend final : public WgBackend {
 public:
  // Interface
  WgBackendKind kind() const override { return WgBackendKind::Kernel; }
  Result<void> createInterface(std::string_view ifname, std::string_view netns,
                               std::optional<uint32_t> mtu) override;
  Result<WgRemoval> deleteInterface(std::string_view ifname, std::string_view netns) override {
    return wgLinkDelete(netns, ifname);
  }
  Result<bool> linkAlive(std::string_view ifname,
                         const Result<std::optional<LinkInfo>>& link) override;
  Result<WgDevice> getDevice(std::string_view ifname, std::string_view netns) override;
  Result<void> setDevice(const WgSetRequest& request) override;
};

Result<void> NetlinkBackend::createInterface(std::string_view ifname, std::string_view netns,
                                             std::optional<uint32_t> mtu) {
  const std::string what = "create WireGuard interface " + std::string(ifname) + inNamespace(netns);
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
  // Created here so that its UDP socket lives here; the interface itself moves.
  auto host = Rtnl::open("");
  if (!host) {
    return terminal(what + ": " + host.error().message);
  }
  auto created = host->createLink(ifname, "wireguard", mtu);
  if (!created) {
    return terminal(what + ": " + created.error().message);
  }
  if (*created == Rtnl::Creation::Unsupported) {
    return terminal(what + ": " + std::string(kNoKernelWireGuard));
  }
  if (netns.empty()) {
    return {};
  }
  if (auto moved = host->moveLink(ifname, netns); !moved) {
    (void)host->deleteLink(ifname);
    return terminal(what + ": " + moved.error().message);
  }
  return {};
}

Result<bool> NetlinkBackend::linkAlive(std::string_view ifname,
                                       const Result<std::optional<LinkInfo>>& link) {
  (void)ifname;  // the link says it all
  if (!link) {
    return link.error();
  }
  return link.value().has_value() && link.value()->kind == "wireguard";
}

Result<WgDevice> NetlinkBackend::getDevice(std::string_view ifname, std::string_view netns) {
  const std::string what = "read WireGuard interface " + std::string(ifname) + inNamespace(netns);
  auto genl = openGenl(netns, what);
  if (!genl) {
    return genl.error();
  }
  auto msg = buildGetDeviceRequest(ifname, genl->family);
  if (!msg) {
    return terminal(what + ": " + msg.error().message);
  }
  WgGetDeviceParser parser;
  NlOutcome x = genl->sock.exchange(msg->get(), [&](nl_msg* reply) { return parser.add(reply); });
  if (x.kernelErrno == ENODEV) {
    return terminal(what + ": no such WireGuard interface");
  }
  if (x.failed()) {
    return terminal(what + ": " + nlFailureText(x));
  }
  if (x.replyError) {
    return terminal(what + ": " + x.replyError->message);
  }
  WgDevice device = parser.take();
  device.ifname = std::string(ifname);
  return device;
}

Result<void> NetlinkBackend::setDevice(const WgSetRequest& request) {
  const std::string what =
      "configure WireGuard interface " + request.ifname + inNamespace(request.netns);
  auto genl = openGenl(request.netns, what);
  if (!genl) {
    return genl.error();
  }
  auto msgs = buildSetDeviceMessages(request, genl->family, defaultGenlBudget());
  if (!msgs) {
    return terminal(what + ": " + msgs.error().message);
  }
  for (const NlMsgPtr& msg : *msgs) {
    NlOutcome x = genl->sock.exchange(msg.get());
    if (x.failed()) {
      const std::string text = what + ": " + nlFailureText(x);
      return x.kernelErrno == EADDRINUSE ? retryable(text) : terminal(text);
    }
  }
  return {};
}

}  // namespace

Result<std::optional<LinkInfo>> wgLinkGet(std::string_view netns, std::string_view ifname) {
  auto rt = Rtnl::open(netns);
  if (!rt) {
    return terminal("look up link " + std::string(ifname) + inNamespace(netns) + ": " +
                    rt.error().message);
  }
  return rt->findLink(ifname);
}

Result<WgRemoval> wgLinkDelete(std::string_view netns, std::string_view ifname) {
  auto rt = Rtnl::open(netns);
  if (!rt) {
    return terminal("delete link " + std::string(ifname) + inNamespace(netns) + ": " +
                    rt.error().message);
  }
  auto removed = rt->deleteLink(ifname);
  if (!removed) {
    return removed.error();
  }
  return *removed == Removal::Removed ? WgRemoval::Removed : WgRemoval::AlreadyAbsent;
}

Result<bool> kernelWireGuardAvailable() {
  // unshare() moves only the calling thread, so probe on a short-lived thread of our own: the
  // probe link lives in a namespace nobody else sees, and vanishes with it.
  Result<bool> result = false;
  std::thread probe([&] {
    const std::string what = "probe for WireGuard kernel support";
    if (::unshare(CLONE_NEWNET) != 0) {
      const int err = errno;
      result = terminal(what + ": unshare: " + errnoText(err));
      return;
    }
    auto rt = Rtnl::open("");
    if (!rt) {
      result = terminal(what + ": " + rt.error().message);
      return;
    }
    auto created = rt->createLink("wgprobe0", "wireguard", std::nullopt);
    if (!created) {
      result = terminal(what + ": " + created.error().message);
      return;
    }
    result = *created == Rtnl::Creation::Created;
  });
  probe.join();
  return result;
}

std::unique_ptr<WgBackend> makeNetlinkBackend() {
  return std::make_unique<NetlinkBackend>();
}

}  // namespace edgeplane::sys
