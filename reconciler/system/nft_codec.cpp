// nf_tables batches built with libnftnl, and the kernel's messages about our table read back.
#include "reconciler/system/nft_codec.h"

// <netinet/in.h> before the kernel headers, which defer to it (linux/libc-compat.h).
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <string_view>
#include <tuple>
#include <utility>

#include "reconciler/core/host_state.h"
#include "reconciler/system/nft_objects.h"
#include "reconciler/system/nft_ruleset.h"

namespace edgeplane::sys {

// The skeleton, the element checks and the libnftnl owners: the driver's own internals.
using namespace nft_detail;

namespace {

// nft's set userdata: key/data byte order (BYTEORDER_BIG_ENDIAN), so `nft list` prints the
// elements exactly as for a set it created itself.
constexpr uint8_t kUdataKeyByteorder = 0;   // NFTNL_UDATA_SET_KEYBYTEORDER
constexpr uint8_t kUdataDataByteorder = 1;  // NFTNL_UDATA_SET_DATABYTEORDER
constexpr uint32_t kByteorderBigEndian = 2;

// Room for one message: element messages stop short of NftBatch::kMaxElementMessage, and no
// other message comes near it.
constexpr size_t kScratchSize = NftBatch::kMaxElementMessage;
// More than one mapping's elements take in a message (two elements of key, data and flags).
constexpr size_t kMaxMappingBytes = 256;

// ---- Element encoding ----

std::array<uint8_t, 2> portKey(uint16_t port) {
  return {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port & 0xff)};
}

void setElemKey(nftnl_set_elem* e, uint16_t port) {
  const std::array<uint8_t, 2> key = portKey(port);
  nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), key.size());
}

// The set elements of one mapping: host role an interval (start, and an end element one past
// the range unless it runs to 65535); namespace role one element. Deletes carry keys only.
std::vector<ElemPtr> elemsOf(NftRole role, const NftMapping& m, bool withData) {
  std::vector<ElemPtr> out;
  ElemPtr start(nftnl_set_elem_alloc());
  setElemKey(start.get(), m.port.first);
  if (withData) {
    std::array<uint8_t, 8> data{};
    std::memcpy(data.data(), m.address.bytes.data(), 4);
    uint32_t len = 4;
    if (role == NftRole::Namespace) {
      const std::array<uint8_t, 2> port = portKey(m.targetPort.value_or(0));
      data[4] = port[0];
      data[5] = port[1];
      len = 8;  // the port sits in its own 32-bit register
    }
    nftnl_set_elem_set(start.get(), NFTNL_SET_ELEM_DATA, data.data(), len);
  }
  out.push_back(std::move(start));
  if (role == NftRole::Host && m.port.last != 0xffff) {
    ElemPtr end(nftnl_set_elem_alloc());
    setElemKey(end.get(), static_cast<uint16_t>(m.port.last + 1));
    nftnl_set_elem_set_u32(end.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    out.push_back(std::move(end));
  }
  return out;
}

const std::vector<NftMapping>& mappingsOf(const NftTableState& state, Protocol protocol) {
  return protocol == Protocol::Tcp ? state.tcp : state.udp;
}

}  // namespace

// ---- Batches ----

class NftBatchBuilder {
 public:
  NftBatchBuilder() : scratch_(kScratchSize) {}

  template <typename Fill>
  void add(NftBatchOp op, uint16_t type, uint16_t flags, Fill&& fill) {
    nlmsghdr* nlh = begin(type, flags);
    fill(nlh);
    batch_.ops_.push_back(std::move(op));
    batch_.opOffsets_.push_back(0);
    end(nlh, 1);
  }

  NftBatch finish() && {
    if (!batch_.messages_.empty()) {
      append(nftnl_batch_end(scratch_.data(), static_cast<uint32_t>(batch_.messages_.size() + 1)));
    }
    return std::move(batch_);
  }

  void addTable(NftBatchOp::Kind kind, bool withFlags) {
    const bool isAdd = kind == NftBatchOp::Kind::AddTable;
    TablePtr table(nftnl_table_alloc());
    nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, std::string(core::kTableName).c_str());
    if (withFlags) {
      nftnl_table_set_u32(table.get(), NFTNL_TABLE_FLAGS, 0);
    }
    NftBatchOp op{kind, "table ip " + std::string(core::kTableName), std::nullopt, std::nullopt};
    add(std::move(op), isAdd ? NFT_MSG_NEWTABLE : NFT_MSG_DELTABLE, isAdd ? NLM_F_CREATE : 0,
        [&](nlmsghdr* nlh) { nftnl_table_nlmsg_build_payload(nlh, table.get()); });
  }

  void addMap(const MapDef& map) {
    SetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, std::string(core::kTableName).c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, map.name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, map.flags);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kTypeInetService);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, kPortKeyLen);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, map.dataType);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_LEN, map.dataLen);
    nftnl_set_set_u32(set.get(), NFTNL_SET_ID, map.id);
    UdataPtr udata(nftnl_udata_buf_alloc(64));
    nftnl_udata_put_u32(udata.get(), kUdataKeyByteorder, kByteorderBigEndian);
    if (map.dataType == kTypeIpv4Addr) {
      nftnl_udata_put_u32(udata.get(), kUdataDataByteorder, kByteorderBigEndian);
    }
    nftnl_set_set_data(set.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                       nftnl_udata_buf_len(udata.get()));
    add({NftBatchOp::Kind::AddMap, "map " + map.name, map.protocol, std::nullopt}, NFT_MSG_NEWSET,
        NLM_F_CREATE, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, set.get()); });
  }

  void addChain(const ChainDef& def) {
    ChainPtr chain(nftnl_chain_alloc());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, std::string(core::kTableName).c_str());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, def.name.c_str());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, def.type.c_str());
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, def.hook);
    nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, def.prio);
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    add({NftBatchOp::Kind::AddChain, "chain " + def.name, std::nullopt, std::nullopt},
        NFT_MSG_NEWCHAIN, NLM_F_CREATE,
        [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
  }

  // `index`: the rule's position in its chain, for error messages. Takes the expressions.
  void addRule(RuleDef& def, int index) {
    RulePtr rule(nftnl_rule_alloc());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, std::string(core::kTableName).c_str());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, def.chain.c_str());
    for (ExprPtr& e : def.exprs) {
      nftnl_rule_add_expr(rule.get(), e.release());
    }
    const std::string object =
        "rule " + def.chain + "[" + std::to_string(index) + "] (" + def.label + ")";
    add({NftBatchOp::Kind::AddRule, object, std::nullopt, std::nullopt}, NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule.get()); });
  }

  // The mappings' elements, as many to a message as fit; one operation per mapping.
  void addElements(NftBatchOp::Kind kind, NftRole role, Protocol protocol,
                   const std::vector<NftMapping>& mappings, std::optional<uint32_t> setId) {
    const bool isAdd = kind == NftBatchOp::Kind::AddElement;
    const std::string set = mapName(protocol);
    size_t next = 0;
    while (next < mappings.size()) {
      // EXCL: adding an element that is already there means our picture of the map is wrong.
      nlmsghdr* nlh = begin(isAdd ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                            isAdd ? NLM_F_CREATE | NLM_F_EXCL : 0);
      // Built by hand rather than with nftnl_set_elems_nlmsg_build_payload(), which numbers
      // the list entries 1, 2, ... instead of NFTA_LIST_ELEM (the kernel does not mind,
      // libnftnl's own parser does).
      mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, std::string(core::kTableName).c_str());
      mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.c_str());
      if (setId) {
        mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(*setId));
      }
      nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
      uint32_t count = 0;
      while (next < mappings.size() &&
             (count == 0 || nlh->nlmsg_len + kMaxMappingBytes <= NftBatch::kMaxElementMessage)) {
        const NftMapping& m = mappings[next++];
        batch_.opOffsets_.push_back(nlh->nlmsg_len);
        for (const ElemPtr& e : elemsOf(role, m, isAdd)) {
          nftnl_set_elem_nlmsg_build(nlh, e.get(), NFTA_LIST_ELEM);
        }
        batch_.ops_.push_back(NftBatchOp{kind, "map " + set, protocol, m});
        ++count;
      }
      mnl_attr_nest_end(nlh, list);
      end(nlh, count);
    }
  }

 private:
  nlmsghdr* begin(uint16_t type, uint16_t flags) {
    if (batch_.messages_.empty()) {
      append(nftnl_batch_begin(scratch_.data(), 0));
    }
    const auto seq = static_cast<uint32_t>(batch_.messages_.size() + 1);
    return nftnl_nlmsg_build_hdr(scratch_.data(), type, NFPROTO_IPV4,
                                 static_cast<uint16_t>(flags | NLM_F_ACK), seq);
  }

  // Closes the message begun last, which carries the last `opCount` operations.
  void end(const nlmsghdr* nlh, uint32_t opCount) {
    append(nlh);
    batch_.messages_.push_back({static_cast<uint32_t>(batch_.ops_.size()) - opCount, opCount});
  }

  void append(const nlmsghdr* nlh) {
    const auto* p = reinterpret_cast<const uint8_t*>(nlh);
    batch_.bytes_.insert(batch_.bytes_.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
  }

  std::vector<char> scratch_;
  NftBatch batch_;
};

const NftBatchOp& NftBatch::opAt(size_t message, std::optional<uint32_t> offset) const {
  const Message& m = messages_.at(message);
  const auto first = opOffsets_.begin() + m.firstOp;
  const auto last = first + m.opCount;
  if (!offset) {
    return ops_.at(m.firstOp);
  }
  // The last operation whose attributes start at or before the offset.
  const auto after = std::upper_bound(first, last, *offset);
  return ops_[after == first ? m.firstOp : static_cast<size_t>(after - opOffsets_.begin()) - 1];
}

std::string NftBatchOp::str() const {
  switch (kind) {
    case Kind::AddTable:
      return "add " + object;
    case Kind::DeleteTable:
      return "delete " + object;
    case Kind::AddMap:
      return "add " + object;
    case Kind::AddChain:
      return "add " + object;
    case Kind::AddRule:
      return "add " + object;
    case Kind::AddElement:
      return "add element " + (mapping ? mapping->str() : "?") + " to " + object;
    case Kind::DeleteElement:
      return "delete element " + (mapping ? mapping->str() : "?") + " from " + object;
  }
  return object;
}

Result<NftBatch> buildReplaceTable(const NftTableState& desired) {
  const NftRole role = desired.role;
  const std::vector<MapDef> maps = mapDefs(role);
  for (const MapDef& map : maps) {
    if (auto r = validateMappings(role, map.protocol, mappingsOf(desired, map.protocol)); !r) {
      return r.error();
    }
  }

  NftBatchBuilder b;
  // Make sure the table exists so the delete cannot fail, then start from nothing.
  b.addTable(NftBatchOp::Kind::AddTable, false);
  b.addTable(NftBatchOp::Kind::DeleteTable, false);
  b.addTable(NftBatchOp::Kind::AddTable, true);
  for (const MapDef& map : maps) {
    b.addMap(map);
  }
  for (const ChainDef& def : chainDefs(role)) {
    b.addChain(def);
  }
  std::map<std::string, int> ruleIndex;
  for (RuleDef& def : ruleDefs(role)) {
    b.addRule(def, ruleIndex[def.chain]++);
  }
  for (const MapDef& map : maps) {
    std::vector<NftMapping> mappings = mappingsOf(desired, map.protocol);
    std::sort(mappings.begin(), mappings.end());
    b.addElements(NftBatchOp::Kind::AddElement, role, map.protocol, mappings, map.id);
  }
  return std::move(b).finish();
}

Result<NftBatch> buildElementChanges(NftRole role, const NftElementDelta& tcp,
                                     const NftElementDelta& udp) {
  const std::array<std::pair<Protocol, const NftElementDelta*>, 2> deltas{
      {{Protocol::Tcp, &tcp}, {Protocol::Udp, &udp}}};
  for (const auto& [protocol, delta] : deltas) {
    for (const NftMapping& m : delta->remove) {
      if (auto r = validateMapping(role, protocol, m); !r) {
        return r.error();
      }
    }
    if (auto r = validateMappings(role, protocol, delta->add); !r) {
      return r.error();
    }
  }
  NftBatchBuilder b;
  // Deletions first: a changed element is deleted and re-added under the same key.
  for (const auto& [protocol, delta] : deltas) {
    b.addElements(NftBatchOp::Kind::DeleteElement, role, protocol, delta->remove, std::nullopt);
  }
  for (const auto& [protocol, delta] : deltas) {
    b.addElements(NftBatchOp::Kind::AddElement, role, protocol, delta->add, std::nullopt);
  }
  return std::move(b).finish();
}

NftBatch buildDeleteTable() {
  NftBatchBuilder b;
  b.addTable(NftBatchOp::Kind::AddTable, false);
  b.addTable(NftBatchOp::Kind::DeleteTable, false);
  return std::move(b).finish();
}

// ---- Decoding ----

namespace nft_detail {
namespace {

uint16_t portFromKey(const std::vector<uint8_t>& key) {
  return static_cast<uint16_t>((key[0] << 8) | key[1]);
}

IpAddress addressFromData(const std::vector<uint8_t>& data) {
  IpAddress a;
  a.family = IpAddress::Family::V4;
  std::copy(data.begin(), data.begin() + 4, a.bytes.begin());
  return a;
}

std::vector<NftMapping> namespaceMappings(const ObservedMap& map) {
  std::vector<NftMapping> out;
  for (const RawElem& e : map.elems) {
    if (e.key.size() != 2 || e.data.size() != 8 || e.intervalEnd) {
      continue;
    }
    NftMapping m;
    m.port = {portFromKey(e.key), portFromKey(e.key)};
    m.address = addressFromData(e.data);
    m.targetPort = static_cast<uint16_t>((e.data[4] << 8) | e.data[5]);
    out.push_back(m);
  }
  return out;
}

// Interval map: a start element (with data) is in force from its key up to the next
// element's key; an end element closes it. The kernel looks keys up the same way.
std::vector<NftMapping> intervalMappings(const ObservedMap& map) {
  std::vector<const RawElem*> elems;
  for (const RawElem& e : map.elems) {
    if (e.key.size() == 2 && (e.intervalEnd || e.data.size() == 4)) {
      elems.push_back(&e);
    }
  }
  std::sort(elems.begin(), elems.end(), [](const RawElem* a, const RawElem* b) {
    const uint16_t ka = portFromKey(a->key);
    const uint16_t kb = portFromKey(b->key);
    return ka != kb ? ka < kb : a->intervalEnd > b->intervalEnd;  // an end before a start
  });
  std::vector<NftMapping> out;
  std::optional<NftMapping> open;
  for (const RawElem* e : elems) {
    const uint16_t key = portFromKey(e->key);
    if (open) {
      open->port.last = static_cast<uint16_t>(key - 1);
      out.push_back(*open);
      open.reset();
    }
    if (!e->intervalEnd) {
      NftMapping m;
      m.port = {key, key};
      m.address = addressFromData(e->data);
      open = m;
    }
  }
  if (open) {
    open->port.last = 0xffff;
    out.push_back(*open);
  }
  return out;
}

}  // namespace

bool repeatsAnElement(const ObservedMap& map) {
  std::vector<const RawElem*> elems;
  elems.reserve(map.elems.size());
  for (const RawElem& e : map.elems) {
    elems.push_back(&e);
  }
  auto id = [](const RawElem* e) { return std::tie(e->key, e->intervalEnd); };
  std::sort(elems.begin(), elems.end(),
            [&](const RawElem* a, const RawElem* b) { return id(a) < id(b); });
  return std::adjacent_find(elems.begin(), elems.end(), [&](const RawElem* a, const RawElem* b) {
           return id(a) == id(b);
         }) != elems.end();
}

std::vector<NftMapping> decodeMappings(NftRole role, const ObservedMap& map) {
  return role == NftRole::Namespace ? namespaceMappings(map) : intervalMappings(map);
}

bool decodeTable(const nlmsghdr* nlh, ObservedTable& t) {
  TablePtr got(nftnl_table_alloc());
  if (nftnl_table_nlmsg_parse(nlh, got.get()) != 0) {
    return false;
  }
  t.flags = nftnl_table_is_set(got.get(), NFTNL_TABLE_FLAGS)
                ? nftnl_table_get_u32(got.get(), NFTNL_TABLE_FLAGS)
                : 0;
  return true;
}

void decodeMap(const nlmsghdr* nlh, ObservedTable& t) {
  SetPtr s(nftnl_set_alloc());
  if (nftnl_set_nlmsg_parse(nlh, s.get()) != 0 ||
      core::kTableName != nftnl_set_get_str(s.get(), NFTNL_SET_TABLE)) {
    return;
  }
  auto u32 = [&](uint16_t attr) {
    return nftnl_set_is_set(s.get(), attr) ? nftnl_set_get_u32(s.get(), attr) : 0U;
  };
  ObservedMap map;
  map.name = nftnl_set_get_str(s.get(), NFTNL_SET_NAME);
  map.flags = u32(NFTNL_SET_FLAGS);
  map.keyType = u32(NFTNL_SET_KEY_TYPE);
  map.keyLen = u32(NFTNL_SET_KEY_LEN);
  map.dataType = u32(NFTNL_SET_DATA_TYPE);
  map.dataLen = u32(NFTNL_SET_DATA_LEN);
  t.maps.push_back(std::move(map));
}

void decodeChain(const nlmsghdr* nlh, ObservedTable& t) {
  ChainPtr c(nftnl_chain_alloc());
  if (nftnl_chain_nlmsg_parse(nlh, c.get()) != 0 ||
      core::kTableName != nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE)) {
    return;
  }
  ObservedChain chain;
  chain.name = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME);
  if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
    chain.type = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_TYPE)
                     ? nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE)
                     : "?";
    chain.hook = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM);
    chain.prio = nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO);
    chain.policy = nftnl_chain_is_set(c.get(), NFTNL_CHAIN_POLICY)
                       ? nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY)
                       : NF_ACCEPT;
  }
  t.chains.push_back(std::move(chain));
}

void decodeRule(const nlmsghdr* nlh, ObservedTable& t) {
  RulePtr r(nftnl_rule_alloc());
  if (nftnl_rule_nlmsg_parse(nlh, r.get()) != 0 ||
      core::kTableName != nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE)) {
    return;
  }
  ObservedRule rule;
  rule.chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
  nftnl_expr_iter* it = nftnl_expr_iter_create(r.get());
  while (nftnl_expr* e = nftnl_expr_iter_next(it)) {
    rule.description += (rule.description.empty() ? "" : "; ") + describeExpr(e);
    if (!rule.counter && std::string_view(nftnl_expr_get_str(e, NFTNL_EXPR_NAME)) == "counter") {
      rule.counter = NftCounter{nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS),
                                nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES)};
    }
  }
  nftnl_expr_iter_destroy(it);
  t.rules.push_back(std::move(rule));
}

void decodeElems(const nlmsghdr* nlh, ObservedMap& map) {
  SetPtr s(nftnl_set_alloc());
  if (nftnl_set_elems_nlmsg_parse(nlh, s.get()) != 0) {
    return;
  }
  auto bytes = [](nftnl_set_elem* e, uint16_t attr) {
    std::vector<uint8_t> out;
    if (nftnl_set_elem_is_set(e, attr)) {
      uint32_t len = 0;
      const auto* p = static_cast<const uint8_t*>(nftnl_set_elem_get(e, attr, &len));
      out.assign(p, p + len);
    }
    return out;
  };
  nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(s.get());
  while (nftnl_set_elem* e = nftnl_set_elems_iter_next(it)) {
    RawElem raw;
    raw.key = bytes(e, NFTNL_SET_ELEM_KEY);
    raw.data = bytes(e, NFTNL_SET_ELEM_DATA);
    raw.intervalEnd =
        nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) &&
        (nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END) != 0;
    map.elems.push_back(std::move(raw));
  }
  nftnl_set_elems_iter_destroy(it);
}

}  // namespace nft_detail
}  // namespace edgeplane::sys
