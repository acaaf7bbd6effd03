// KernelUplinks: each tenant's veth pair, its /31 addresses and default route, over rtnetlink.
#include <linux/rtnetlink.h>

#include <algorithm>

#include "reconciler/system/kernel_drivers.h"

namespace edgeplane::sys {
namespace {

bool ours(const std::string& link) {
  return link.rfind(core::kHostLinkPrefix, 0) == 0 || link.rfind(core::kNsLinkPrefix, 0) == 0 ||
         link.rfind(core::kWgLinkPrefix, 0) == 0;
}

// Makes `link` carry exactly `want` and be up.
Result<void> convergeLink(Rtnl& rt, const std::string& link, const IpPrefix& want) {
  auto seen = rt.link(link);
  if (!seen) {
    return seen.error();
  }
  if (!*seen) {
    return terminal("link " + link + " vanished while being configured");
  }
  for (const auto& a : (*seen)->addresses) {
    if (a.prefix != want && a.prefix.address.family == IpAddress::Family::V4) {
      if (auto r = ignoreAbsent(rt.removeAddress(link, a.prefix)); !r) {
        return r;
      }
    }
  }
  if (auto r = rt.addAddress(link, want); !r) {
    return r;
  }
  return rt.setUp(link, true);
}

// Makes sure both ends exist: a half pair cannot be repaired in place, so what is left of
// one is removed and a new pair made.
Result<void> ensurePair(Rtnl& host, Rtnl& inside, const std::string& hostIf,
                        const std::string& nsIf, const std::string& netns) {
  auto hl = host.link(hostIf);
  auto nl = inside.link(nsIf);
  if (!hl) {
    return hl.error();
  }
  if (!nl) {
    return nl.error();
  }
  if (*hl && *nl) {
    return {};
  }
  if (*hl) {
    if (auto r = ignoreAbsent(host.deleteLink(hostIf)); !r) {
      return r;
    }
  }
  if (*nl) {
    if (auto r = ignoreAbsent(inside.deleteLink(nsIf)); !r) {
      return r;
    }
  }
  return host.createVethPair(hostIf, nsIf, netns);
}

}  // namespace

Result<std::vector<core::LinkView>> KernelUplinks::observe(const std::string& scope) {
  auto rt = Rtnl::open(scopeNetns(scope));
  if (!rt) {
    return rt.error();
  }
  auto links = rt->links();
  if (!links) {
    return links.error();
  }
  std::vector<core::LinkView> out;
  for (const auto& l : *links) {
    if (!ours(l.name)) {
      continue;
    }
    core::LinkView lv{l.name, l.up, {}};
    for (const auto& a : l.addresses) {
      if (a.scope != RT_SCOPE_LINK) {  // fe80:: and the like come with the link
        lv.addresses.push_back(a.prefix);
      }
    }
    std::sort(lv.addresses.begin(), lv.addresses.end());
    out.push_back(std::move(lv));
  }
  return out;
}

Result<void> KernelUplinks::ensure(const core::UplinkTarget& u) {
  const std::string netns = core::netnsName(u.ns);
  const std::string hostIf = core::hostLinkName(u.ns);
  const std::string nsIf = core::nsLinkName(u.ns);
  auto host = Rtnl::open("");
  if (!host) {
    return host.error();
  }
  auto inside = Rtnl::open(netns);
  if (!inside) {
    return inside.error();
  }
  if (auto r = ensurePair(*host, *inside, hostIf, nsIf, netns); !r) {
    return r;
  }
  if (auto r = convergeLink(*host, hostIf, u.hostAddress); !r) {
    return r;
  }
  if (auto r = convergeLink(*inside, nsIf, u.nsAddress); !r) {
    return r;
  }
  RouteInfo def;
  def.destination = *IpPrefix::parse("0.0.0.0/0");
  def.gateway = u.hostAddress.address;
  def.device = nsIf;
  if (auto r = inside->replaceRoute(def); !r) {
    return r;
  }
  return setSysctl(netns, "net/ipv4/ip_forward", "1");
}

Result<void> KernelUplinks::remove(const std::string& ns) {
  auto host = Rtnl::open("");
  if (!host) {
    return host.error();
  }
  return ignoreAbsent(host->deleteLink(core::hostLinkName(ns)));
}

}  // namespace edgeplane::sys
