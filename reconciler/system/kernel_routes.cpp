// KernelRoutes: the IPv4 main table of a scope over rtnetlink; edgeplane's by route protocol.
#include <linux/rtnetlink.h>

#include "reconciler/system/kernel_drivers.h"

namespace edgeplane::sys {
namespace {

std::string protocolName(uint8_t p) {
  switch (p) {
    case RTPROT_KERNEL:
      return "kernel";
    case RTPROT_BOOT:
      return "boot";
    case RTPROT_STATIC:
      return "static";
    case kRouteProtocol:
      return "edgeplane";
    default:
      return std::to_string(p);
  }
}

}  // namespace

Result<std::vector<core::RouteView>> KernelRoutes::observe(const std::string& scope) {
  auto rt = Rtnl::open(scopeNetns(scope));
  if (!rt) {
    return rt.error();
  }
  auto routes = rt->routes(IpAddress::Family::V4);
  if (!routes) {
    return routes.error();
  }
  std::vector<core::RouteView> out;
  for (const auto& r : *routes) {
    if (r.type != RTN_UNICAST) {
      continue;  // local/broadcast entries are the kernel's bookkeeping
    }
    out.push_back(
        core::RouteView{r.destination, r.gateway, r.device, r.owned(), protocolName(r.protocol)});
  }
  return out;
}

Result<void> KernelRoutes::replace(const core::RouteTarget& route) {
  auto rt = Rtnl::open(core::netnsName(route.ns));
  if (!rt) {
    return rt.error();
  }
  RouteInfo r;
  r.destination = route.destination;
  r.gateway = route.via;
  return rt->replaceRoute(r);
}

Result<void> KernelRoutes::remove(const std::string& ns, const IpPrefix& destination) {
  auto rt = Rtnl::open(core::netnsName(ns));
  if (!rt) {
    return rt.error();
  }
  auto routes = rt->routes(destination.address.family);
  if (!routes) {
    return routes.error();
  }
  for (const auto& r : *routes) {
    if (r.owned() && r.destination == destination) {
      return ignoreAbsent(rt->deleteRoute(r));
    }
  }
  return {};
}

}  // namespace edgeplane::sys
