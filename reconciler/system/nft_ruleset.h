// The fixed part of edgeplane's nftables table (maps, chains and rules of each role), the
// canonical descriptions that compare a dumped table with it, and the checks on map elements.
// Pure (libnftnl objects only); internal to the nftables driver and its tests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "reconciler/system/nft_objects.h"
#include "reconciler/system/nft_table.h"
#include "schema/model.h"
#include "schema/result.h"

namespace edgeplane::sys::nft_detail {

// nft's datatype ids (src/datatype.h) and how it encodes a concatenation of them.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kTypeBits = 6;
constexpr uint32_t kTypeConcatAddrPort = (kTypeIpv4Addr << kTypeBits) | kTypeInetService;
// Every map's key is a port (inet_service, 2 bytes, network order).
constexpr uint32_t kPortKeyLen = 2;

// "fwd_tcp" or "fwd_udp": the map of a protocol's forwards.
std::string mapName(Protocol protocol);

struct MapDef {
  Protocol protocol;
  std::string name;
  uint32_t id;  // NFTA_SET_ID, lets rules in the same batch refer to the new set
  uint32_t flags;
  uint32_t dataType;
  uint32_t dataLen;
};
std::vector<MapDef> mapDefs(NftRole role);

struct ChainDef {
  std::string name;
  std::string type;
  uint32_t hook;
  int32_t prio;
};
std::vector<ChainDef> chainDefs(NftRole role);

struct RuleDef {
  std::string chain;
  std::string label;                           // for error messages
  NftCounter NftCounters::*counter = nullptr;  // the rule's counter, if it has one
  std::vector<ExprPtr> exprs;
};
// The rules of a role, in the order they are appended (order matters within a chain).
std::vector<RuleDef> ruleDefs(NftRole role);

// ---- Canonical descriptions, to compare what the kernel returns with what we build ----

// One expression as a string of the attributes that define its meaning. Attributes the kernel
// fills in on its own (nat's addr_max/proto_max and derived range flags, lookup flags 0,
// counter values) are normalised away, so a rule we built and the same rule dumped by the
// kernel describe alike. An expression edgeplane never builds describes as "<name> <foreign>".
std::string describeExpr(const nftnl_expr* e);
// The expressions of one rule, "; "-separated.
std::string describeExprs(const std::vector<ExprPtr>& exprs);
std::string describeMap(const std::string& name, uint32_t flags, uint32_t keyType, uint32_t keyLen,
                        uint32_t dataType, uint32_t dataLen);
std::string describeChain(const std::string& name, const std::string& type, uint32_t hook,
                          int32_t prio, uint32_t policy);

// A table's skeleton as descriptions: sorted maps, sorted chains, rules in order per chain.
struct Skeleton {
  std::vector<std::string> maps;
  std::vector<std::string> chains;
  std::vector<std::pair<std::string, std::string>> rules;  // chain, description
  bool operator==(const Skeleton&) const = default;
};
// Sorts maps and chains, and rules stably by chain, so that the dump order of maps and chains
// does not matter while the order of rules within a chain does.
void normalise(Skeleton& s);
// The skeleton buildReplaceTable() creates for `role`, normalised.
Skeleton skeletonOf(NftRole role);

// ---- Validation of map elements ----

// An element the role can express: a valid IPv4 mapping, host elements without a target port,
// namespace elements a single port with one. The error names the map and the element.
Result<void> validateMapping(NftRole role, Protocol protocol, const NftMapping& m);
// Each element valid, and no two with overlapping ports.
Result<void> validateMappings(NftRole role, Protocol protocol,
                              const std::vector<NftMapping>& mappings);

}  // namespace edgeplane::sys::nft_detail
