// KernelNamespaces: named network namespaces under /run/netns and net.ipv4.ip_forward.
#include "reconciler/system/kernel_drivers.h"
#include "reconciler/system/netns.h"

namespace edgeplane::sys {

std::string scopeNetns(const std::string& scope) {
  return scope.empty() ? std::string() : core::netnsName(scope);
}

Result<std::vector<std::string>> KernelNamespaces::list() {
  return listNamedNetns();
}

Result<bool> KernelNamespaces::forwarding(const std::string& scope) {
  auto fwd = getSysctl(scopeNetns(scope), "net/ipv4/ip_forward");
  if (!fwd) {
    return fwd.error();
  }
  return fwd->rfind('1', 0) == 0;
}

Result<void> KernelNamespaces::create(const std::string& ns) {
  return createNamedNetns(core::netnsName(ns));
}

Result<void> KernelNamespaces::remove(const std::string& ns) {
  return deleteNamedNetns(core::netnsName(ns));
}

Result<void> KernelNamespaces::setHostForwarding(bool on) {
  return setSysctl("", "net/ipv4/ip_forward", on ? "1" : "0");
}

}  // namespace edgeplane::sys
