// The nftables driver's netlink codec: nf_tables batches built from a table's values (libnftnl
// messages in one atomic batch), and the kernel's answers about the table decoded back into
// plain data. Pure: builds and reads bytes, never touches a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/system/nft_table.h"
#include "schema/model.h"
#include "schema/result.h"

struct nlmsghdr;

namespace edgeplane::sys {

// One operation of a batch, for error messages and assertions: a table, map, chain or rule
// message, or one mapping's elements (which share a message with their neighbours).
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
// renumbers a copy for its socket. Consecutive element operations on the same map share a
// message (up to kMaxElementMessage bytes), as nft packs them: one message, one ACK and one
// pass through nf_tables per few hundred elements instead of per element.
class NftBatch {
 public:
  // Messages between BEGIN and END: message i carries ops [firstOp, firstOp + opCount).
  struct Message {
    uint32_t firstOp = 0;
    uint32_t opCount = 0;
  };
  static constexpr size_t kMaxElementMessage = 16384;

  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  // Every operation, in order.
  const std::vector<NftBatchOp>& ops() const { return ops_; }
  const std::vector<Message>& messages() const { return messages_; }
  // Messages including BEGIN and END; 0 for a batch without changes (nothing to send).
  size_t messageCount() const { return messages_.empty() ? 0 : messages_.size() + 2; }
  bool empty() const { return messages_.empty(); }
  // The operation of message `message` (0-based, BEGIN not counted) that a byte offset into
  // that message falls in: the kernel's NLMSGERR_ATTR_OFFS for a rejected element. Without an
  // offset, or one before the first element, the message's first operation.
  const NftBatchOp& opAt(size_t message, std::optional<uint32_t> offset) const;

 private:
  friend class NftBatchBuilder;
  std::vector<uint8_t> bytes_;
  std::vector<NftBatchOp> ops_;
  std::vector<uint32_t> opOffsets_;  // per op: where its attributes start in its message
  std::vector<Message> messages_;
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

}  // namespace edgeplane::sys

// Decoding, internal to the driver (NftSocket::observe) and its tests.
namespace edgeplane::sys::nft_detail {

// What the kernel said about our table, undigested: each map, chain and rule as dumped.
struct RawElem {
  std::vector<uint8_t> key;
  std::vector<uint8_t> data;
  bool intervalEnd = false;
};

struct ObservedMap {
  std::string name;
  uint32_t flags = 0;
  uint32_t keyType = 0;
  uint32_t keyLen = 0;
  uint32_t dataType = 0;
  uint32_t dataLen = 0;
  std::vector<RawElem> elems;
};

struct ObservedChain {
  std::string name;
  std::string type;  // empty for a regular chain
  uint32_t hook = 0;
  int32_t prio = 0;
  uint32_t policy = 0;
};

struct ObservedRule {
  std::string chain;
  std::string description;  // describeExpr() of each expression, "; "-separated
  std::optional<NftCounter> counter;
};

struct ObservedTable {
  uint32_t flags = 0;
  std::vector<ObservedMap> maps;
  std::vector<ObservedChain> chains;
  std::vector<ObservedRule> rules;
};

// Each reads one NEWTABLE / NEWSET / NEWCHAIN / NEWRULE / NEWSETELEM message (a dump answer,
// or a message of a batch) into `t` or `map`. A message that does not parse is ignored, and so
// are maps, chains and rules of another table. decodeTable() reads the answer to a request for
// our table (the table's flags) and says whether it parsed.
bool decodeTable(const nlmsghdr* nlh, ObservedTable& t);
void decodeMap(const nlmsghdr* nlh, ObservedTable& t);
void decodeChain(const nlmsghdr* nlh, ObservedTable& t);
void decodeRule(const nlmsghdr* nlh, ObservedTable& t);
void decodeElems(const nlmsghdr* nlh, ObservedMap& map);

// The mappings the elements of a map hold in `role`, the inverse of how batches encode them:
// namespace role one element per mapping; host role intervals (a start element is in force up
// to the next element's key, as the kernel looks keys up). Malformed elements are skipped.
std::vector<NftMapping> decodeMappings(NftRole role, const ObservedMap& map);

// Whether `map` holds an element twice (the same key and kind). A set holds each once, so such a
// dump was read while the kernel rehashed the set; it misses as many elements as it repeats.
bool repeatsAnElement(const ObservedMap& map);

}  // namespace edgeplane::sys::nft_detail
