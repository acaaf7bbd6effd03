// Tables as the nftables driver's observe and sync see them, written briefly in tests.
#pragma once

#include <algorithm>
#include <optional>
#include <vector>

#include "reconciler/core/host_state.h"

namespace edgeplane::testing {

// One map element: `ports` "22" or "30000-30010", to `to` (and `targetPort`, tenant tables).
inline core::PortMapping mapping(Protocol p, const char* ports, const char* to,
                                 std::optional<uint16_t> targetPort) {
  return core::PortMapping{p, *PortRange::parse(ports), *IpAddress::parse(to), targetPort};
}

// An intact table holding `mappings`, in the order observe returns them.
inline core::NftTableView tableOf(std::vector<core::PortMapping> mappings) {
  std::sort(mappings.begin(), mappings.end());
  return core::NftTableView{true, std::move(mappings)};
}

}  // namespace edgeplane::testing
