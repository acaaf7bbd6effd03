// Named network namespaces (/run/netns/NAME, as iproute2 keeps them) and running code in one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"

namespace edgeplane::sys {

// Directory holding the named namespaces' bind mounts (EDGEPLANE_NETNS_DIR overrides it for
// tests; default /run/netns).
std::string netnsDir();
std::string netnsPath(std::string_view name);

// Creates /run/netns/NAME bound to a new network namespace with loopback up. The namespace is
// made under a temporary name first, so a run that dies half-way never leaves an empty NAME
// (which nobody could enter). Fails if NAME exists.
Result<void> createNamedNetns(std::string_view name);
// Unmounts and removes /run/netns/NAME. Processes still inside keep the namespace alive.
Result<void> deleteNamedNetns(std::string_view name);
// Names of every namespace under netnsDir(), sorted (foreign ones included).
std::vector<std::string> listNamedNetns();

// Drops the temporary entries that creates killed after binding NAME, before dropping the
// temporary, left beside a complete NAME (lab.crash_e2e hit it with timed kills): each keeps
// NAME's namespace alive and shows in `ip netns list`. apply calls it under the state lock.
void sweepInterruptedCreates();
bool namedNetnsExists(std::string_view name);

// Moves the calling thread into a network namespace until destroyed, then back. Sockets
// created meanwhile stay in that namespace for their whole life. An empty name means "stay
// in the current one" (no-op), so callers can treat the host namespace uniformly.
class NetnsScope {
 public:
  static Result<NetnsScope> enter(std::string_view name);
  NetnsScope(NetnsScope&& other) noexcept;
  NetnsScope& operator=(NetnsScope&&) = delete;
  NetnsScope(const NetnsScope&) = delete;
  ~NetnsScope();

 private:
  NetnsScope(int original, int target) : original_(original), target_(target) {}
  int original_ = -1;  // fd of the namespace to return to; -1 when nothing was entered
  int target_ = -1;
};

// Opens a file descriptor of the namespace (for setns/IFLA_NET_NS_FD); -1 and errno on failure.
int openNetnsFd(std::string_view name);

}  // namespace edgeplane::sys
