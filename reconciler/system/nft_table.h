// The nftables driver's values: a table as desired or observed (role, map elements, counters)
// and the element changes of one map. Pure; no libnftnl.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/model.h"
#include "schema/net.h"

namespace edgeplane::sys {

// Host role: public ports -> a tenant namespace's uplink address (ports kept), masquerade of
// tenant egress, no forwarding between tenants. Namespace role: public port -> target
// address and port, masquerading DNATed connections that leave through a non-uplink link.
enum class NftRole : uint8_t { Host, Namespace };
std::string_view toString(NftRole role);

// One map element. Host: `port` may be a range, `targetPort` is unset (ports are kept).
// Namespace: `port` is a single port and `targetPort` is set (callers expand ranges).
struct NftMapping {
  PortRange port;
  IpAddress address;  // IPv4 only: the table is family ip
  std::optional<uint16_t> targetPort;

  // nft syntax: "22015 : 10.50.0.12 . 22", "30000-30010 : 100.64.0.3".
  std::string str() const;
  auto operator<=>(const NftMapping&) const = default;
};

struct NftCounter {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  auto operator<=>(const NftCounter&) const = default;
};

// The counters on our rules. The DNAT counters sit behind a map-membership match, so they count
// forwarded connections only; NAT chains see the first packet of a connection, so packets =
// connections and bytes = those first packets. Namespace role uses dnatTcp/dnatUdp only.
struct NftCounters {
  NftCounter dnatTcp;  // prerouting DNAT rules
  NftCounter dnatUdp;
  NftCounter localDnatTcp;  // host: output DNAT rules (the host reaching its own forwards)
  NftCounter localDnatUdp;
  NftCounter tenantDrop;  // host: forward drop between uplinks
  auto operator<=>(const NftCounters&) const = default;
};

// The table as desired or as observed.
struct NftTableState {
  NftRole role = NftRole::Host;
  std::vector<NftMapping> tcp;  // elements of map fwd_tcp
  std::vector<NftMapping> udp;  // elements of map fwd_udp
  // Observed only: the table's flags, maps, chains and rules are exactly the skeleton
  // buildReplaceTable() creates for `role` (element contents aside). Desired: true.
  bool intact = true;
  // Observed only, best effort when !intact (rules still recognisable keep theirs). A replace
  // resets them, so callers record them first.
  NftCounters counters;
};

// The element changes of one map.
struct NftElementDelta {
  std::vector<NftMapping> remove;
  std::vector<NftMapping> add;
  bool empty() const { return remove.empty() && add.empty(); }
  auto operator<=>(const NftElementDelta&) const = default;
};

}  // namespace edgeplane::sys
