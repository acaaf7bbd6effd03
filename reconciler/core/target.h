// The target host state derived from one host's desired state: what should exist, concretely.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "reconciler/core/host_state.h"
#include "schema/model.h"
#include "schema/result.h"

namespace edgeplane::core {

struct UplinkTarget {
  std::string ns;
  uint32_t index = 0;    // which /31 of the pool
  IpPrefix hostAddress;  // /31, host end
  IpPrefix nsAddress;    // /31, namespace end; the default gateway inside is hostAddress
};

struct ForwardTarget {
  std::string name;
  std::string ns;
  Protocol protocol = Protocol::Tcp;
  PortRange publicPort;
  Endpoint target;               // first port of the range maps to target.port
  std::string key() const;       // "tcp/22012", "udp/30000-30010"
  std::string describe() const;  // "tcp/22012 -> 10.50.0.12:22 in tenant-a"
};

struct RouteTarget {
  std::string ns;
  IpPrefix destination;
  IpAddress via;
};

struct Target {
  std::string host;
  std::vector<std::string> namespaces;  // tenant names, sorted
  std::map<std::string, UplinkTarget, std::less<>> uplinks;
  std::vector<RouteTarget> routes;
  std::vector<ForwardTarget> forwards;  // active ones (suspended namespaces withdrawn)

  // The full contents of edgeplane's nftables table in the host or a tenant namespace.
  NftTableView hostTable() const;
  NftTableView namespaceTable(std::string_view ns) const;
};

// Stable /31 allocation: namespaces keep the index the store recorded; new ones take the
// lowest free one. Fails when the pool is exhausted.
Result<std::map<std::string, uint32_t, std::less<>>> allocateUplinks(
    const std::vector<std::string>& namespaces,
    const std::map<std::string, uint32_t, std::less<>>& existing, const IpPrefix& pool);

// Builds the target from the part of the desired state one host converges (resolveFor).
Result<Target> buildTarget(const Desired& hostDesired, std::string_view host,
                           const StoreView& store);

}  // namespace edgeplane::core
