// The nftables driver: edgeplane's own `ip edgeplane` table per namespace, via libnftnl.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/core/host_state.h"
#include "schema/model.h"
#include "schema/net.h"
#include "schema/result.h"

struct mnl_socket;

namespace edgeplane::sys {

// The table is core::kTableName in every namespace edgeplane manages (family ip). The rules
// match the uplinks by core::kHostLinkPrefix / kNsLinkPrefix ("eph-*"), the names the link
// driver gives them.

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

// What one netlink message of a batch does, for error messages and assertions.
struct NftBatchOp {
  enum class Kind : uint8_t {
    AddTable,
    DeleteTable,
    AddMap,
    AddChain,
    AddRule,
    AddElement,
    DeleteElement
  };
  Kind kind = Kind::AddTable;
  std::string object;                // "table ip edgeplane", "map fwd_tcp", "chain prerouting", ...
  std::optional<Protocol> protocol;  // elements only
  std::optional<NftMapping> mapping;  // elements only
  std::string str() const;            // "add element 22015 : 100.64.0.1 to map fwd_tcp"
};

// The bytes of one nf_tables netlink batch (BATCH_BEGIN, messages, BATCH_END), which the
// kernel applies atomically. Sequence numbers are per message index; NftSocket::send
// renumbers a copy for its socket.
class NftBatch {
 public:
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  // One entry per message between BEGIN and END, in order.
  const std::vector<NftBatchOp>& ops() const { return ops_; }
  // Messages including BEGIN and END; 0 for a batch without changes (nothing to send).
  size_t messageCount() const { return ops_.empty() ? 0 : ops_.size() + 2; }
  bool empty() const { return ops_.empty(); }

 private:
  friend class NftBatchBuilder;
  std::vector<uint8_t> bytes_;
  std::vector<NftBatchOp> ops_;
};

// Replaces (or creates) the whole table in one batch: add table, delete table, then table,
// maps, chains, rules and elements, so whatever state the table was in, it ends up whole.
// Fails, naming the element, on mappings the role cannot express or that overlap.
Result<NftBatch> buildReplaceTable(const NftTableState& desired);
// Only element deletions (first) then additions, for both maps, in one batch.
Result<NftBatch> buildElementChanges(NftRole role, const NftElementDelta& tcp,
                                     const NftElementDelta& udp);
// Deletes the table if it exists (add + delete, so a missing table is not an error).
NftBatch buildDeleteTable();

// What it takes to go from the observed table to the desired one.
struct NftChange {
  enum class Kind : uint8_t { None, Elements, CreateTable, ReplaceTable, DeleteTable };
  Kind kind = Kind::None;
  NftElementDelta tcp;  // Kind::Elements only
  NftElementDelta udp;
  bool operator==(const NftChange&) const = default;
};
std::string_view toString(NftChange::Kind kind);

// Pure. Skeleton missing or altered (or another role) -> ReplaceTable; only elements differ ->
// Elements with exact, sorted remove/add lists; equal -> None. Counters are ignored.
NftChange diffTable(const std::optional<NftTableState>& observed,
                    const std::optional<NftTableState>& desired);
// The batch that carries out `change` (empty for None). `desired` is needed for
// Create/ReplaceTable and gives the role for Elements.
Result<NftBatch> buildChange(const NftChange& change, const std::optional<NftTableState>& desired);

// A netfilter netlink socket bound inside one network namespace.
class NftSocket {
 public:
  // `netns` as for NetnsScope::enter: empty = the caller's namespace.
  static Result<NftSocket> open(std::string_view netns);
  NftSocket(NftSocket&& other) noexcept;
  NftSocket& operator=(NftSocket&& other) noexcept;
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;
  ~NftSocket();

  // Sends the batch and reads the kernel's answer to every message. The kernel applies all of
  // it or nothing; an error names the first failing message's object ("add element ... to map
  // fwd_tcp: File exists") and how many others failed.
  Result<void> send(const NftBatch& batch);
  // Reads table, maps, chains, rules and elements of `ip edgeplane` as one consistent
  // snapshot (retried if the ruleset generation changes meanwhile). Absent table -> nullopt.
  Result<std::optional<NftTableState>> observe();

 private:
  NftSocket(mnl_socket* socket, std::string netns);
  mnl_socket* socket_ = nullptr;
  uint32_t portId_ = 0;
  uint32_t seq_ = 0;
  std::string netns_;  // for error messages
};

}  // namespace edgeplane::sys
