// nftables driver: builds nf_tables netlink batches with libnftnl, sends them with libmnl and
// reads the table back. The rules are the ones `nft` generates for the equivalent ruleset.
#include "reconciler/system/nft.h"

// <netinet/in.h> before the kernel headers, which defer to it (linux/libc-compat.h).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "reconciler/system/netns.h"

namespace edgeplane::sys {
namespace {

// nft's datatype ids (src/datatype.h) and how it encodes a concatenation of them.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kTypeBits = 6;
constexpr uint32_t kTypeConcatAddrPort = (kTypeIpv4Addr << kTypeBits) | kTypeInetService;
// nft's set userdata: key/data byte order (BYTEORDER_BIG_ENDIAN), so `nft list` prints the
// elements exactly as for a set it created itself.
constexpr uint8_t kUdataKeyByteorder = 0;   // NFTNL_UDATA_SET_KEYBYTEORDER
constexpr uint8_t kUdataDataByteorder = 1;  // NFTNL_UDATA_SET_DATABYTEORDER
constexpr uint32_t kByteorderBigEndian = 2;

constexpr int32_t kPrioDstNat = -100;  // NF_IP_PRI_NAT_DST
constexpr int32_t kPrioFilter = 0;     // NF_IP_PRI_FILTER
constexpr int32_t kPrioSrcNat = 100;   // NF_IP_PRI_NAT_SRC

constexpr size_t kScratchSize = 16384;  // more than any single message we build
constexpr size_t kReceiveSize = 65536;

bool retryableErrno(int err) {
  return err == EAGAIN || err == EBUSY || err == EINTR || err == ENOBUFS || err == ENOMEM ||
         err == ETIMEDOUT || err == ERESTART;
}

Error errnoError(std::string what, int err) {
  what += ": " + errnoText(err);
  return retryableErrno(err) ? retryable(std::move(what)) : terminal(std::move(what));
}

std::string mapName(Protocol protocol) {
  return protocol == Protocol::Tcp ? "fwd_tcp" : "fwd_udp";
}

std::string hex(const void* data, uint32_t len) {
  std::string out = "0x";
  const auto* bytes = static_cast<const uint8_t*>(data);
  char buf[3];
  for (uint32_t i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", bytes[i]);
    out += buf;
  }
  return out;
}

// ---- libnftnl object ownership ----

struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct SetDeleter {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct ExprDeleter {
  void operator()(nftnl_expr* e) const { nftnl_expr_free(e); }
};
struct GenDeleter {
  void operator()(nftnl_gen* g) const { nftnl_gen_free(g); }
};
struct UdataDeleter {
  void operator()(nftnl_udata_buf* u) const { nftnl_udata_buf_free(u); }
};
using TablePtr = std::unique_ptr<nftnl_table, TableDeleter>;
using ChainPtr = std::unique_ptr<nftnl_chain, ChainDeleter>;
using SetPtr = std::unique_ptr<nftnl_set, SetDeleter>;
using RulePtr = std::unique_ptr<nftnl_rule, RuleDeleter>;
using ExprPtr = std::unique_ptr<nftnl_expr, ExprDeleter>;
using GenPtr = std::unique_ptr<nftnl_gen, GenDeleter>;
using UdataPtr = std::unique_ptr<nftnl_udata_buf, UdataDeleter>;

// ---- The skeleton: maps, chains and rules of each role ----

struct MapDef {
  Protocol protocol;
  std::string name;
  uint32_t id;  // NFTA_SET_ID, lets rules in the same batch refer to the new set
  uint32_t flags;
  uint32_t dataType;
  uint32_t dataLen;
};

std::vector<MapDef> mapDefs(NftRole role) {
  if (role == NftRole::Host) {
    const uint32_t flags = NFT_SET_MAP | NFT_SET_INTERVAL;
    return {{Protocol::Tcp, "fwd_tcp", 1, flags, kTypeIpv4Addr, 4},
            {Protocol::Udp, "fwd_udp", 2, flags, kTypeIpv4Addr, 4}};
  }
  return {{Protocol::Tcp, "fwd_tcp", 1, NFT_SET_MAP, kTypeConcatAddrPort, 8},
          {Protocol::Udp, "fwd_udp", 2, NFT_SET_MAP, kTypeConcatAddrPort, 8}};
}

struct ChainDef {
  std::string name;
  std::string type;
  uint32_t hook;
  int32_t prio;
};

std::vector<ChainDef> chainDefs(NftRole role) {
  if (role == NftRole::Host) {
    return {{"prerouting", "nat", NF_INET_PRE_ROUTING, kPrioDstNat},
            {"output", "nat", NF_INET_LOCAL_OUT, kPrioDstNat},
            {"forward", "filter", NF_INET_FORWARD, kPrioFilter},
            {"postrouting", "nat", NF_INET_POST_ROUTING, kPrioSrcNat}};
  }
  return {{"prerouting", "nat", NF_INET_PRE_ROUTING, kPrioDstNat},
          {"postrouting", "nat", NF_INET_POST_ROUTING, kPrioSrcNat}};
}

ExprPtr newExpr(const char* name) {
  return ExprPtr(nftnl_expr_alloc(name));
}

ExprPtr metaLoad(uint32_t key) {
  ExprPtr e = newExpr("meta");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
  return e;
}

ExprPtr cmp(uint32_t op, const void* data, uint32_t len) {
  ExprPtr e = newExpr("cmp");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}

ExprPtr cmpU32(uint32_t op, uint32_t value) {
  return cmp(op, &value, sizeof(value));
}

// `iifname "eph-*"`: the wildcard compares only the prefix's bytes.
ExprPtr cmpPrefix(uint32_t op, std::string_view prefix) {
  return cmp(op, prefix.data(), static_cast<uint32_t>(prefix.size()));
}

ExprPtr counter() {
  return newExpr("counter");
}

// `fib daddr type local`
std::vector<ExprPtr> fibDaddrLocal() {
  std::vector<ExprPtr> out;
  ExprPtr e = newExpr("fib");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
  out.push_back(std::move(e));
  out.push_back(cmpU32(NFT_CMP_EQ, RTN_LOCAL));
  return out;
}

ExprPtr dportLoad() {
  ExprPtr payload = newExpr("payload");
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, 2);  // tcp/udp dport
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, 2);
  return payload;
}

ExprPtr lookup(const MapDef& map, bool toRegister) {
  ExprPtr e = newExpr("lookup");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  if (toRegister) {
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
  }
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, map.name.c_str());
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, map.id);
  return e;
}

// `tcp dport @fwd_tcp counter dnat ip to tcp dport map @fwd_tcp`. The membership match before
// the counter makes it count forwarded connections only (not every new flow the chain sees);
// NAT chains see the first packet of a connection, so packets = connections.
void appendDnat(std::vector<ExprPtr>& out, const MapDef& map, NftRole role) {
  out.push_back(metaLoad(NFT_META_L4PROTO));
  const uint8_t proto = map.protocol == Protocol::Tcp ? IPPROTO_TCP : IPPROTO_UDP;
  out.push_back(cmp(NFT_CMP_EQ, &proto, sizeof(proto)));
  out.push_back(dportLoad());
  out.push_back(lookup(map, false));
  out.push_back(counter());
  out.push_back(dportLoad());
  out.push_back(lookup(map, true));

  ExprPtr nat = newExpr("nat");
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_FAMILY, NFPROTO_IPV4);
  nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
  if (role == NftRole::Namespace) {
    // The map's data is `ipv4_addr . inet_service`: address in the first 32-bit register,
    // port in the next one.
    nftnl_expr_set_u32(nat.get(), NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG32_01);
  }
  out.push_back(std::move(nat));
}

struct RuleDef {
  std::string chain;
  std::string label;                           // for error messages
  NftCounter NftCounters::*counter = nullptr;  // the rule's counter, if it has one
  std::vector<ExprPtr> exprs;
};

std::vector<RuleDef> ruleDefs(NftRole role) {
  std::vector<RuleDef> rules;
  const std::vector<MapDef> maps = mapDefs(role);
  if (role == NftRole::Host) {
    for (const char* chain : {"prerouting", "output"}) {
      const bool local = std::string_view(chain) == "output";
      for (const MapDef& map : maps) {
        RuleDef rule{chain, map.name + " dnat", nullptr, fibDaddrLocal()};
        if (map.protocol == Protocol::Tcp) {
          rule.counter = local ? &NftCounters::localDnatTcp : &NftCounters::dnatTcp;
        } else {
          rule.counter = local ? &NftCounters::localDnatUdp : &NftCounters::dnatUdp;
        }
        appendDnat(rule.exprs, map, role);
        rules.push_back(std::move(rule));
      }
    }
    RuleDef drop{"forward", "drop between uplinks", &NftCounters::tenantDrop, {}};
    drop.exprs.push_back(metaLoad(NFT_META_IIFNAME));
    drop.exprs.push_back(cmpPrefix(NFT_CMP_EQ, core::kHostLinkPrefix));
    drop.exprs.push_back(metaLoad(NFT_META_OIFNAME));
    drop.exprs.push_back(cmpPrefix(NFT_CMP_EQ, core::kHostLinkPrefix));
    drop.exprs.push_back(counter());
    ExprPtr verdict = newExpr("immediate");
    nftnl_expr_set_u32(verdict.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(verdict.get(), NFTNL_EXPR_IMM_VERDICT, NF_DROP);
    drop.exprs.push_back(std::move(verdict));
    rules.push_back(std::move(drop));

    RuleDef masq{"postrouting", "masquerade tenant egress", nullptr, {}};
    masq.exprs.push_back(metaLoad(NFT_META_IIFNAME));
    masq.exprs.push_back(cmpPrefix(NFT_CMP_EQ, core::kHostLinkPrefix));
    masq.exprs.push_back(metaLoad(NFT_META_OIFNAME));
    masq.exprs.push_back(cmpPrefix(NFT_CMP_NEQ, core::kHostLinkPrefix));
    masq.exprs.push_back(newExpr("masq"));
    rules.push_back(std::move(masq));
    return rules;
  }

  for (const MapDef& map : maps) {
    RuleDef rule{"prerouting",
                 map.name + " dnat",
                 map.protocol == Protocol::Tcp ? &NftCounters::dnatTcp : &NftCounters::dnatUdp,
                 {}};
    appendDnat(rule.exprs, map, role);
    rules.push_back(std::move(rule));
  }
  // `ct status dnat oifname != "epn-*" masquerade`
  RuleDef masq{"postrouting", "masquerade forwarded connections", nullptr, {}};
  ExprPtr ct = newExpr("ct");
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
  masq.exprs.push_back(std::move(ct));
  ExprPtr bitwise = newExpr("bitwise");
  const uint32_t mask = IPS_DST_NAT;
  const uint32_t zero = 0;
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
  masq.exprs.push_back(std::move(bitwise));
  masq.exprs.push_back(cmpU32(NFT_CMP_NEQ, 0));
  masq.exprs.push_back(metaLoad(NFT_META_OIFNAME));
  masq.exprs.push_back(cmpPrefix(NFT_CMP_NEQ, core::kNsLinkPrefix));
  masq.exprs.push_back(newExpr("masq"));
  rules.push_back(std::move(masq));
  return rules;
}

// ---- Canonical descriptions, to compare what the kernel returns with what we build ----

// One expression as a string of the attributes that define its meaning. Attributes the kernel
// fills in on its own (nat's addr_max/proto_max and derived range flags, lookup flags 0,
// counter values) are normalised away, so a rule we built and the same rule dumped by the
// kernel describe alike.
std::string describeExpr(const nftnl_expr* e) {
  const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  auto u32 = [&](uint16_t attr, uint32_t unset = 0) {
    return nftnl_expr_is_set(e, attr) ? nftnl_expr_get_u32(e, attr) : unset;
  };
  auto num = [&](const char* label, uint16_t attr, uint32_t unset = 0) {
    return std::string(" ") + label + "=" + std::to_string(u32(attr, unset));
  };
  auto data = [&](const char* label, uint16_t attr) {
    uint32_t len = 0;
    const void* p = nftnl_expr_is_set(e, attr) ? nftnl_expr_get(e, attr, &len) : nullptr;
    return std::string(" ") + label + "=" + (p != nullptr ? hex(p, len) : "-");
  };
  if (name == "counter") {
    return name;
  }
  if (name == "meta") {
    return name + num("key", NFTNL_EXPR_META_KEY) + num("dreg", NFTNL_EXPR_META_DREG) +
           num("sreg", NFTNL_EXPR_META_SREG);
  }
  if (name == "cmp") {
    return name + num("sreg", NFTNL_EXPR_CMP_SREG) + num("op", NFTNL_EXPR_CMP_OP) +
           data("data", NFTNL_EXPR_CMP_DATA);
  }
  if (name == "payload") {
    return name + num("dreg", NFTNL_EXPR_PAYLOAD_DREG) + num("base", NFTNL_EXPR_PAYLOAD_BASE) +
           num("offset", NFTNL_EXPR_PAYLOAD_OFFSET) + num("len", NFTNL_EXPR_PAYLOAD_LEN) +
           num("sreg", NFTNL_EXPR_PAYLOAD_SREG) + num("csum", NFTNL_EXPR_PAYLOAD_CSUM_TYPE);
  }
  if (name == "lookup") {
    const char* set = nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET)
                          ? nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET)
                          : "-";
    return name + num("sreg", NFTNL_EXPR_LOOKUP_SREG) + num("dreg", NFTNL_EXPR_LOOKUP_DREG) +
           " set=" + set + num("flags", NFTNL_EXPR_LOOKUP_FLAGS);
  }
  if (name == "nat") {
    const uint32_t addrMin = u32(NFTNL_EXPR_NAT_REG_ADDR_MIN);
    const uint32_t protoMin = u32(NFTNL_EXPR_NAT_REG_PROTO_MIN);
    const uint32_t derived = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
    return name + num("type", NFTNL_EXPR_NAT_TYPE) + num("family", NFTNL_EXPR_NAT_FAMILY) +
           " addr=" + std::to_string(addrMin) + "-" +
           std::to_string(u32(NFTNL_EXPR_NAT_REG_ADDR_MAX, addrMin)) +
           " proto=" + std::to_string(protoMin) + "-" +
           std::to_string(u32(NFTNL_EXPR_NAT_REG_PROTO_MAX, protoMin)) +
           " flags=" + std::to_string(u32(NFTNL_EXPR_NAT_FLAGS) & ~derived);
  }
  if (name == "immediate") {
    const char* chain = nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN)
                            ? nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN)
                            : "-";
    return name + num("dreg", NFTNL_EXPR_IMM_DREG) + num("verdict", NFTNL_EXPR_IMM_VERDICT) +
           " chain=" + chain + data("data", NFTNL_EXPR_IMM_DATA);
  }
  if (name == "fib") {
    return name + num("dreg", NFTNL_EXPR_FIB_DREG) + num("result", NFTNL_EXPR_FIB_RESULT) +
           num("flags", NFTNL_EXPR_FIB_FLAGS);
  }
  if (name == "ct") {
    return name + num("dreg", NFTNL_EXPR_CT_DREG) + num("key", NFTNL_EXPR_CT_KEY) +
           num("dir", NFTNL_EXPR_CT_DIR, 255) + num("sreg", NFTNL_EXPR_CT_SREG);
  }
  if (name == "bitwise") {
    return name + num("sreg", NFTNL_EXPR_BITWISE_SREG) + num("dreg", NFTNL_EXPR_BITWISE_DREG) +
           num("len", NFTNL_EXPR_BITWISE_LEN) + num("op", NFTNL_EXPR_BITWISE_OP) +
           data("mask", NFTNL_EXPR_BITWISE_MASK) + data("xor", NFTNL_EXPR_BITWISE_XOR) +
           data("data", NFTNL_EXPR_BITWISE_DATA);
  }
  if (name == "masq") {
    return name + num("flags", NFTNL_EXPR_MASQ_FLAGS) +
           num("proto_min", NFTNL_EXPR_MASQ_REG_PROTO_MIN) +
           num("proto_max", NFTNL_EXPR_MASQ_REG_PROTO_MAX);
  }
  // Anything else is not ours; never equal to a description of one of our expressions.
  return name + " <foreign>";
}

std::string describeExprs(const std::vector<ExprPtr>& exprs) {
  std::string out;
  for (const ExprPtr& e : exprs) {
    out += (out.empty() ? "" : "; ") + describeExpr(e.get());
  }
  return out;
}

std::string describeMap(const std::string& name, uint32_t flags, uint32_t keyType, uint32_t keyLen,
                        uint32_t dataType, uint32_t dataLen) {
  return name + " flags=" + std::to_string(flags) + " key=" + std::to_string(keyType) + "/" +
         std::to_string(keyLen) + " data=" + std::to_string(dataType) + "/" +
         std::to_string(dataLen);
}

std::string describeChain(const std::string& name, const std::string& type, uint32_t hook,
                          int32_t prio, uint32_t policy) {
  return name + " type=" + type + " hook=" + std::to_string(hook) +
         " prio=" + std::to_string(prio) + " policy=" + std::to_string(policy);
}

// The skeleton of a role as descriptions: sorted maps, sorted chains, rules in order.
struct Skeleton {
  std::vector<std::string> maps;
  std::vector<std::string> chains;
  std::vector<std::pair<std::string, std::string>> rules;  // chain, description
};

Skeleton skeletonOf(NftRole role) {
  Skeleton s;
  for (const MapDef& m : mapDefs(role)) {
    s.maps.push_back(describeMap(m.name, m.flags, kTypeInetService, 2, m.dataType, m.dataLen));
  }
  for (const ChainDef& c : chainDefs(role)) {
    s.chains.push_back(describeChain(c.name, c.type, c.hook, c.prio, NF_ACCEPT));
  }
  for (const RuleDef& r : ruleDefs(role)) {
    s.rules.emplace_back(r.chain, describeExprs(r.exprs));
  }
  std::sort(s.maps.begin(), s.maps.end());
  std::sort(s.chains.begin(), s.chains.end());
  // Rules are compared chain by chain in order; sort stably by chain so the dump order of
  // chains does not matter.
  std::stable_sort(s.rules.begin(), s.rules.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return s;
}

// ---- Validation of mappings ----

Result<void> validateMapping(NftRole role, Protocol protocol, const NftMapping& m) {
  auto fail = [&](const std::string& why) {
    return terminal("map " + mapName(protocol) + ": element " + m.str() + ": " + why);
  };
  if (m.port.first == 0 || m.port.first > m.port.last) {
    return fail("invalid port range");
  }
  if (m.address.family != IpAddress::Family::V4) {
    return fail("address is not IPv4 (the table is family ip)");
  }
  if (role == NftRole::Host) {
    if (m.targetPort) {
      return fail("host map elements keep the port; a target port cannot be set");
    }
  } else {
    if (m.port.first != m.port.last) {
      return fail("namespace map elements are single ports (expand ranges)");
    }
    if (!m.targetPort || *m.targetPort == 0) {
      return fail("namespace map elements need a target port");
    }
  }
  return {};
}

Result<void> validateMappings(NftRole role, Protocol protocol,
                              const std::vector<NftMapping>& mappings) {
  for (const NftMapping& m : mappings) {
    if (auto r = validateMapping(role, protocol, m); !r) {
      return r;
    }
  }
  std::vector<const NftMapping*> sorted;
  for (const NftMapping& m : mappings) {
    sorted.push_back(&m);
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const NftMapping* a, const NftMapping* b) { return *a < *b; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1]->port.overlaps(sorted[i]->port)) {
      return terminal("map " + mapName(protocol) + ": element " + sorted[i]->str() + " overlaps " +
                      sorted[i - 1]->str());
    }
  }
  return {};
}

// ---- Element encoding ----

std::array<uint8_t, 2> portKey(uint16_t port) {
  return {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port & 0xff)};
}

void setElemKey(nftnl_set_elem* e, uint16_t port) {
  const std::array<uint8_t, 2> key = portKey(port);
  nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), key.size());
}

struct ElemDeleter {
  void operator()(nftnl_set_elem* e) const { nftnl_set_elem_free(e); }
};
using ElemPtr = std::unique_ptr<nftnl_set_elem, ElemDeleter>;

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

}  // namespace

// ---- Batches ----

class NftBatchBuilder {
 public:
  NftBatchBuilder() : scratch_(kScratchSize) {}

  template <typename Fill>
  void add(NftBatchOp op, uint16_t type, uint16_t flags, Fill&& fill) {
    if (batch_.ops_.empty()) {
      append(nftnl_batch_begin(scratch_.data(), 0));
    }
    const auto seq = static_cast<uint32_t>(batch_.ops_.size() + 1);
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(scratch_.data(), type, NFPROTO_IPV4,
                                          static_cast<uint16_t>(flags | NLM_F_ACK), seq);
    fill(nlh);
    append(nlh);
    batch_.ops_.push_back(std::move(op));
  }

  NftBatch finish() && {
    if (!batch_.ops_.empty()) {
      append(nftnl_batch_end(scratch_.data(), static_cast<uint32_t>(batch_.ops_.size() + 1)));
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

  void addElement(NftBatchOp::Kind kind, NftRole role, Protocol protocol, const NftMapping& m,
                  std::optional<uint32_t> setId) {
    const bool isAdd = kind == NftBatchOp::Kind::AddElement;
    const std::string set = mapName(protocol);
    const std::vector<ElemPtr> elems = elemsOf(role, m, isAdd);
    NftBatchOp op{kind, "map " + set, protocol, m};
    // EXCL: adding an element that is already there means our picture of the map is wrong.
    add(std::move(op), isAdd ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
        isAdd ? NLM_F_CREATE | NLM_F_EXCL : 0, [&](nlmsghdr* nlh) {
          // Built by hand rather than with nftnl_set_elems_nlmsg_build_payload(), which numbers
          // the list entries 1, 2, ... instead of NFTA_LIST_ELEM (the kernel does not mind,
          // libnftnl's own parser does).
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, std::string(core::kTableName).c_str());
          mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set.c_str());
          if (setId) {
            mnl_attr_put_u32(nlh, NFTA_SET_ELEM_LIST_SET_ID, htonl(*setId));
          }
          nlattr* list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
          for (const ElemPtr& e : elems) {
            nftnl_set_elem_nlmsg_build(nlh, e.get(), NFTA_LIST_ELEM);
          }
          mnl_attr_nest_end(nlh, list);
        });
  }

 private:
  void append(const nlmsghdr* nlh) {
    const auto* p = reinterpret_cast<const uint8_t*>(nlh);
    batch_.bytes_.insert(batch_.bytes_.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
  }

  std::vector<char> scratch_;
  NftBatch batch_;
};

std::string_view toString(NftRole role) {
  return role == NftRole::Host ? "host" : "namespace";
}

std::string NftMapping::str() const {
  std::string out = port.str() + " : " + address.str();
  if (targetPort) {
    out += " . " + std::to_string(*targetPort);
  }
  return out;
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
    const auto& mappings = map.protocol == Protocol::Tcp ? desired.tcp : desired.udp;
    if (auto r = validateMappings(role, map.protocol, mappings); !r) {
      return r.error();
    }
  }

  NftBatchBuilder b;
  // Make sure the table exists so the delete cannot fail, then start from nothing.
  b.addTable(NftBatchOp::Kind::AddTable, false);
  b.addTable(NftBatchOp::Kind::DeleteTable, false);
  b.addTable(NftBatchOp::Kind::AddTable, true);

  for (const MapDef& map : maps) {
    SetPtr set(nftnl_set_alloc());
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, std::string(core::kTableName).c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, map.name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, map.flags);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kTypeInetService);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, 2);
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
    b.add({NftBatchOp::Kind::AddMap, "map " + map.name, map.protocol, std::nullopt}, NFT_MSG_NEWSET,
          NLM_F_CREATE, [&](nlmsghdr* nlh) { nftnl_set_nlmsg_build_payload(nlh, set.get()); });
  }

  for (const ChainDef& def : chainDefs(role)) {
    ChainPtr chain(nftnl_chain_alloc());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, std::string(core::kTableName).c_str());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, def.name.c_str());
    nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, def.type.c_str());
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, def.hook);
    nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, def.prio);
    nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
    b.add({NftBatchOp::Kind::AddChain, "chain " + def.name, std::nullopt, std::nullopt},
          NFT_MSG_NEWCHAIN, NLM_F_CREATE,
          [&](nlmsghdr* nlh) { nftnl_chain_nlmsg_build_payload(nlh, chain.get()); });
  }

  std::map<std::string, int> ruleIndex;
  for (RuleDef& def : ruleDefs(role)) {
    RulePtr rule(nftnl_rule_alloc());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, std::string(core::kTableName).c_str());
    nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, def.chain.c_str());
    for (ExprPtr& e : def.exprs) {
      nftnl_rule_add_expr(rule.get(), e.release());
    }
    const std::string object = "rule " + def.chain + "[" + std::to_string(ruleIndex[def.chain]++) +
                               "] (" + def.label + ")";
    b.add({NftBatchOp::Kind::AddRule, object, std::nullopt, std::nullopt}, NFT_MSG_NEWRULE,
          NLM_F_CREATE | NLM_F_APPEND,
          [&](nlmsghdr* nlh) { nftnl_rule_nlmsg_build_payload(nlh, rule.get()); });
  }

  for (const MapDef& map : maps) {
    std::vector<NftMapping> mappings = map.protocol == Protocol::Tcp ? desired.tcp : desired.udp;
    std::sort(mappings.begin(), mappings.end());
    for (const NftMapping& m : mappings) {
      b.addElement(NftBatchOp::Kind::AddElement, role, map.protocol, m, map.id);
    }
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
    for (const NftMapping& m : delta->remove) {
      b.addElement(NftBatchOp::Kind::DeleteElement, role, protocol, m, std::nullopt);
    }
  }
  for (const auto& [protocol, delta] : deltas) {
    for (const NftMapping& m : delta->add) {
      b.addElement(NftBatchOp::Kind::AddElement, role, protocol, m, std::nullopt);
    }
  }
  return std::move(b).finish();
}

NftBatch buildDeleteTable() {
  NftBatchBuilder b;
  b.addTable(NftBatchOp::Kind::AddTable, false);
  b.addTable(NftBatchOp::Kind::DeleteTable, false);
  return std::move(b).finish();
}

// ---- Diff ----

std::string_view toString(NftChange::Kind kind) {
  switch (kind) {
    case NftChange::Kind::None:
      return "none";
    case NftChange::Kind::Elements:
      return "elements";
    case NftChange::Kind::CreateTable:
      return "create-table";
    case NftChange::Kind::ReplaceTable:
      return "replace-table";
    case NftChange::Kind::DeleteTable:
      return "delete-table";
  }
  return "?";
}

namespace {

NftElementDelta diffElements(std::vector<NftMapping> observed, std::vector<NftMapping> desired) {
  std::sort(observed.begin(), observed.end());
  observed.erase(std::unique(observed.begin(), observed.end()), observed.end());
  std::sort(desired.begin(), desired.end());
  desired.erase(std::unique(desired.begin(), desired.end()), desired.end());
  NftElementDelta delta;
  std::set_difference(observed.begin(), observed.end(), desired.begin(), desired.end(),
                      std::back_inserter(delta.remove));
  std::set_difference(desired.begin(), desired.end(), observed.begin(), observed.end(),
                      std::back_inserter(delta.add));
  return delta;
}

}  // namespace

NftChange diffTable(const std::optional<NftTableState>& observed,
                    const std::optional<NftTableState>& desired) {
  NftChange change;
  if (!observed && !desired) {
    return change;
  }
  if (!observed) {
    change.kind = NftChange::Kind::CreateTable;
    return change;
  }
  if (!desired) {
    change.kind = NftChange::Kind::DeleteTable;
    return change;
  }
  if (!observed->intact || observed->role != desired->role) {
    change.kind = NftChange::Kind::ReplaceTable;
    return change;
  }
  change.tcp = diffElements(observed->tcp, desired->tcp);
  change.udp = diffElements(observed->udp, desired->udp);
  if (!change.tcp.empty() || !change.udp.empty()) {
    change.kind = NftChange::Kind::Elements;
  }
  return change;
}

Result<NftBatch> buildChange(const NftChange& change, const std::optional<NftTableState>& desired) {
  switch (change.kind) {
    case NftChange::Kind::None:
      return NftBatch{};
    case NftChange::Kind::DeleteTable:
      return buildDeleteTable();
    case NftChange::Kind::Elements:
      if (!desired) {
        return terminal("nft: element changes need the desired table");
      }
      return buildElementChanges(desired->role, change.tcp, change.udp);
    case NftChange::Kind::CreateTable:
    case NftChange::Kind::ReplaceTable:
      if (!desired) {
        return terminal("nft: creating the table needs the desired table");
      }
      return buildReplaceTable(*desired);
  }
  return terminal("nft: unknown change");
}

// ---- Interpreting what the kernel returned ----

namespace {

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
  std::string description;
  std::optional<NftCounter> counter;
};

struct ObservedTable {
  uint32_t flags = 0;
  std::vector<ObservedMap> maps;
  std::vector<ObservedChain> chains;
  std::vector<ObservedRule> rules;
};

uint16_t portFromKey(const std::vector<uint8_t>& key) {
  return static_cast<uint16_t>((key[0] << 8) | key[1]);
}

IpAddress addressFromData(const std::vector<uint8_t>& data) {
  IpAddress a;
  a.family = IpAddress::Family::V4;
  std::copy(data.begin(), data.begin() + 4, a.bytes.begin());
  return a;
}

std::vector<NftMapping> mappingsOf(NftRole role, const ObservedMap& map) {
  std::vector<NftMapping> out;
  if (role == NftRole::Namespace) {
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

NftTableState interpret(const ObservedTable& t) {
  NftTableState state;
  state.intact = false;
  const ObservedMap* tcp = nullptr;
  const ObservedMap* udp = nullptr;
  std::vector<std::string> maps;
  for (const ObservedMap& m : t.maps) {
    maps.push_back(describeMap(m.name, m.flags, m.keyType, m.keyLen, m.dataType, m.dataLen));
    if (m.name == "fwd_tcp") {
      tcp = &m;
    } else if (m.name == "fwd_udp") {
      udp = &m;
    }
  }
  std::sort(maps.begin(), maps.end());
  std::vector<std::string> chains;
  for (const ObservedChain& c : t.chains) {
    chains.push_back(describeChain(c.name, c.type, c.hook, c.prio, c.policy));
  }
  std::sort(chains.begin(), chains.end());
  std::vector<std::pair<std::string, std::string>> rules;
  for (const ObservedRule& r : t.rules) {
    rules.emplace_back(r.chain, r.description);
  }
  std::stable_sort(rules.begin(), rules.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  state.role = tcp != nullptr && tcp->dataLen == 8 ? NftRole::Namespace : NftRole::Host;
  for (NftRole role : {NftRole::Host, NftRole::Namespace}) {
    const Skeleton s = skeletonOf(role);
    if (t.flags == 0 && s.maps == maps && s.chains == chains && s.rules == rules) {
      state.role = role;
      state.intact = true;
    }
  }
  if (tcp != nullptr) {
    state.tcp = mappingsOf(state.role, *tcp);
    std::sort(state.tcp.begin(), state.tcp.end());
  }
  if (udp != nullptr) {
    state.udp = mappingsOf(state.role, *udp);
    std::sort(state.udp.begin(), state.udp.end());
  }

  // Counters: each of our counting rules takes the counter of the first unclaimed observed
  // rule in the same chain that looks exactly like it.
  std::vector<bool> claimed(t.rules.size(), false);
  for (const RuleDef& def : ruleDefs(state.role)) {
    if (def.counter == nullptr) {
      continue;
    }
    const std::string want = describeExprs(def.exprs);
    for (size_t i = 0; i < t.rules.size(); ++i) {
      const ObservedRule& r = t.rules[i];
      if (!claimed[i] && r.chain == def.chain && r.description == want && r.counter) {
        claimed[i] = true;
        (state.counters.*def.counter) = *r.counter;
        break;
      }
    }
  }
  return state;
}

// ---- Netlink plumbing ----

using MessageCallback = std::function<int(const nlmsghdr*)>;

int trampoline(const nlmsghdr* nlh, void* data) {
  return (*static_cast<MessageCallback*>(data))(nlh);
}

void setBuffer(int fd, int forceOpt, int opt, size_t wanted) {
  int current = 0;
  socklen_t len = sizeof(current);
  if (::getsockopt(fd, SOL_SOCKET, opt, &current, &len) == 0 &&
      static_cast<size_t>(current) >= wanted) {
    return;
  }
  const int value = static_cast<int>(std::min<size_t>(wanted, 1U << 30));
  // FORCE needs CAP_NET_ADMIN, which managing nftables needs anyway; fall back to the limit.
  if (::setsockopt(fd, SOL_SOCKET, forceOpt, &value, sizeof(value)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, opt, &value, sizeof(value));
  }
}

// The kernel's extended-ack message, if it sent one.
std::string extackMessage(const nlmsghdr* nlh) {
  if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) == 0) {
    return {};
  }
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
  size_t offset = sizeof(nlmsgerr);
  if ((nlh->nlmsg_flags & NLM_F_CAPPED) == 0) {
    offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
  }
  const size_t payloadLen = mnl_nlmsg_get_payload_len(nlh);
  if (offset >= payloadLen) {
    return {};
  }
  std::string message;
  const auto* base = reinterpret_cast<const nlattr*>(
      static_cast<const char*>(mnl_nlmsg_get_payload(nlh)) + offset);
  const nlattr* attr = nullptr;
  mnl_attr_for_each_payload(base, payloadLen - offset) {
    if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
        mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
      message = mnl_attr_get_str(attr);
    }
  }
  return message;
}

}  // namespace

NftSocket::NftSocket(mnl_socket* socket, std::string netns)
    : socket_(socket), portId_(mnl_socket_get_portid(socket)), netns_(std::move(netns)) {}

NftSocket::NftSocket(NftSocket&& other) noexcept
    : socket_(std::exchange(other.socket_, nullptr)),
      portId_(other.portId_),
      seq_(other.seq_),
      netns_(std::move(other.netns_)) {}

NftSocket& NftSocket::operator=(NftSocket&& other) noexcept {
  if (this != &other) {
    if (socket_ != nullptr) {
      mnl_socket_close(socket_);
    }
    socket_ = std::exchange(other.socket_, nullptr);
    portId_ = other.portId_;
    seq_ = other.seq_;
    netns_ = std::move(other.netns_);
  }
  return *this;
}

NftSocket::~NftSocket() {
  if (socket_ != nullptr) {
    mnl_socket_close(socket_);
  }
}

Result<NftSocket> NftSocket::open(std::string_view netns) {
  const std::string where = netns.empty() ? std::string() : " in namespace " + std::string(netns);
  Result<NetnsScope> scope = NetnsScope::enter(netns);
  if (!scope) {
    return scope.error();
  }
  mnl_socket* socket = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (socket == nullptr) {
    return errnoError("nft: open netlink socket" + where, errno);
  }
  if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    mnl_socket_close(socket);
    return errnoError("nft: bind netlink socket" + where, err);
  }
  int on = 1;
  // Short error answers (no echo of the failed message) and the kernel's error text, if any.
  (void)mnl_socket_setsockopt(socket, NETLINK_CAP_ACK, &on, sizeof(on));
  (void)mnl_socket_setsockopt(socket, NETLINK_EXT_ACK, &on, sizeof(on));
  NftSocket out(socket, std::string(netns));
  out.seq_ = 1;
  return out;
}

Result<void> NftSocket::send(const NftBatch& batch) {
  if (batch.empty()) {
    return {};
  }
  const std::string where = netns_.empty() ? "nft" : "nft (namespace " + netns_ + ")";
  // Renumber the messages for this socket: message i of the batch gets base + i.
  std::vector<uint8_t> bytes(batch.data(), batch.data() + batch.size());
  const uint32_t base = seq_;
  uint32_t count = 0;
  {
    auto* nlh = reinterpret_cast<nlmsghdr*>(bytes.data());
    int remaining = static_cast<int>(bytes.size());
    while (mnl_nlmsg_ok(nlh, remaining)) {
      nlh->nlmsg_seq = base + count++;
      nlh->nlmsg_pid = 0;
      nlh = mnl_nlmsg_next(nlh, &remaining);
    }
  }
  seq_ += count;
  const int fd = mnl_socket_get_fd(socket_);
  setBuffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, bytes.size() + 4096);
  // One answer per message; each is queued as its own skb, so leave generous room.
  setBuffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, static_cast<size_t>(count) * 1024 + 65536);

  if (mnl_socket_sendto(socket_, bytes.data(), bytes.size()) < 0) {
    return errnoError(where + ": send batch", errno);
  }

  // nfnetlink processes the batch while sendmsg runs, so every answer is queued by now; read
  // until the queue is empty, waiting briefly only if nothing has arrived at all.
  struct Failure {
    uint32_t index;
    int err;
    std::string extack;
  };
  std::vector<Failure> failures;
  size_t acked = 0;
  bool lost = false;
  std::vector<uint8_t> buf(kReceiveSize);
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == ENOBUFS) {
        lost = true;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (acked == 0 && failures.empty() && !lost) {
          pollfd pfd{fd, POLLIN, 0};
          if (::poll(&pfd, 1, 2000) > 0) {
            continue;
          }
        }
        break;
      }
      return errnoError(where + ": receive answers", errno);
    }
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data());
    int remaining = static_cast<int>(n);
    while (mnl_nlmsg_ok(nlh, remaining)) {
      if (nlh->nlmsg_type == NLMSG_ERROR && mnl_nlmsg_get_payload_len(nlh) >= sizeof(nlmsgerr)) {
        const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
        const uint32_t index = err->msg.nlmsg_seq - base;
        if (err->error == 0) {
          ++acked;
        } else {
          failures.push_back({index, -err->error, extackMessage(nlh)});
        }
      }
      nlh = mnl_nlmsg_next(nlh, &remaining);
    }
  }

  if (!failures.empty()) {
    const Failure& first =
        *std::min_element(failures.begin(), failures.end(),
                          [](const Failure& a, const Failure& b) { return a.index < b.index; });
    // Index 0 is BATCH_BEGIN and count-1 BATCH_END: errors there concern the whole batch.
    std::string object = "batch";
    if (first.index >= 1 && first.index <= batch.ops().size()) {
      object = batch.ops()[first.index - 1].str();
    }
    std::string message = where + ": " + object + ": " + errnoText(first.err);
    if (!first.extack.empty()) {
      message += " (" + first.extack + ")";
    }
    if (failures.size() > 1) {
      message += " (and " + std::to_string(failures.size() - 1) + " more errors)";
    }
    message += "; nothing was changed";
    return retryableErrno(first.err) ? retryable(std::move(message)) : terminal(std::move(message));
  }
  if (lost || acked < batch.ops().size()) {
    return retryable(where + ": " + std::to_string(batch.ops().size() - acked) + " of " +
                     std::to_string(batch.ops().size()) +
                     " messages unanswered; the table must be observed again");
  }
  return {};
}

namespace {

// One request and its answers (a dump, or a single object plus the ACK).
Result<void> talk(mnl_socket* socket, uint32_t portId, uint32_t& seq, uint16_t type,
                  uint16_t family, uint16_t flags, const std::function<void(nlmsghdr*)>& fill,
                  MessageCallback callback, int& errOut) {
  std::vector<char> buf(kReceiveSize);
  const uint32_t mySeq = seq++;
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), type, family, flags, mySeq);
  if (fill) {
    fill(nlh);
  }
  errOut = 0;
  if (mnl_socket_sendto(socket, nlh, nlh->nlmsg_len) < 0) {
    errOut = errno;
    return errnoError("send request", errOut);
  }
  for (;;) {
    const ssize_t n = mnl_socket_recvfrom(socket, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      errOut = errno;
      return errnoError("receive", errOut);
    }
    const int rc =
        mnl_cb_run(buf.data(), static_cast<size_t>(n), mySeq, portId, trampoline, &callback);
    if (rc < 0) {
      errOut = errno;
      return errnoError("request", errOut);
    }
    if (rc == MNL_CB_STOP) {
      return {};
    }
  }
}

// Parsers of the dump answers, each adding what one message says to `t`.

void collectMap(const nlmsghdr* nlh, ObservedTable& t) {
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

void collectChain(const nlmsghdr* nlh, ObservedTable& t) {
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

void collectRule(const nlmsghdr* nlh, ObservedTable& t) {
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

void collectElems(const nlmsghdr* nlh, ObservedMap& map) {
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

}  // namespace

Result<std::optional<NftTableState>> NftSocket::observe() {
  const std::string where = netns_.empty() ? "nft" : "nft (namespace " + netns_ + ")";
  const std::string table(core::kTableName);
  int err = 0;
  // One request; a failure is reported as "<where>: <what>: <cause>".
  auto request = [&](const char* what, uint16_t type, uint16_t family, uint16_t flags,
                     const std::function<void(nlmsghdr*)>& fill,
                     const std::function<void(const nlmsghdr*)>& each) -> Result<void> {
    Result<void> r = talk(
        socket_, portId_, seq_, type, family, flags, fill,
        [&](const nlmsghdr* nlh) {
          each(nlh);
          return MNL_CB_OK;
        },
        err);
    if (!r) {
      // EINTR: the dump was interrupted by a concurrent change; reading again will do.
      return Error{where + ": " + what + ": " + r.error().message,
                   r.error().retryable || err == EINTR};
    }
    return r;
  };
  auto generation = [&]() -> Result<uint32_t> {
    uint32_t id = 0;
    Result<void> r = request("read ruleset generation", NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK,
                             nullptr, [&](const nlmsghdr* nlh) {
                               GenPtr gen(nftnl_gen_alloc());
                               if (nftnl_gen_nlmsg_parse(nlh, gen.get()) == 0) {
                                 id = nftnl_gen_get_u32(gen.get(), NFTNL_GEN_ID);
                               }
                             });
    if (!r) {
      return r.error();
    }
    return id;
  };

  for (int attempt = 0; attempt < 10; ++attempt) {
    Result<uint32_t> before = generation();
    if (!before) {
      return before.error();
    }

    ObservedTable t;
    bool exists = false;
    Result<void> read = request(
        "get table ip edgeplane", NFT_MSG_GETTABLE, NFPROTO_IPV4, NLM_F_ACK,
        [&](nlmsghdr* nlh) {
          TablePtr req(nftnl_table_alloc());
          nftnl_table_set_str(req.get(), NFTNL_TABLE_NAME, table.c_str());
          nftnl_table_nlmsg_build_payload(nlh, req.get());
        },
        [&](const nlmsghdr* nlh) {
          TablePtr got(nftnl_table_alloc());
          if (nftnl_table_nlmsg_parse(nlh, got.get()) == 0) {
            exists = true;
            t.flags = nftnl_table_is_set(got.get(), NFTNL_TABLE_FLAGS)
                          ? nftnl_table_get_u32(got.get(), NFTNL_TABLE_FLAGS)
                          : 0;
          }
        });
    if (!read && err == ENOENT) {
      read = {};  // no table: nothing more to read
    }
    // The kernel filters set and rule dumps by the table named in the request; chains are
    // dumped whole and filtered here (collect* check the table of every answer anyway).
    if (read && exists) {
      read = request(
          "dump sets", NFT_MSG_GETSET, NFPROTO_IPV4, NLM_F_DUMP,
          [&](nlmsghdr* nlh) {
            SetPtr req(nftnl_set_alloc());
            nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, table.c_str());
            nftnl_set_nlmsg_build_payload(nlh, req.get());
          },
          [&](const nlmsghdr* nlh) { collectMap(nlh, t); });
    }
    if (read && exists) {
      read = request("dump chains", NFT_MSG_GETCHAIN, NFPROTO_IPV4, NLM_F_DUMP, nullptr,
                     [&](const nlmsghdr* nlh) { collectChain(nlh, t); });
    }
    if (read && exists) {
      read = request(
          "dump rules", NFT_MSG_GETRULE, NFPROTO_IPV4, NLM_F_DUMP,
          [&](nlmsghdr* nlh) {
            RulePtr req(nftnl_rule_alloc());
            nftnl_rule_set_str(req.get(), NFTNL_RULE_TABLE, table.c_str());
            nftnl_rule_nlmsg_build_payload(nlh, req.get());
          },
          [&](const nlmsghdr* nlh) { collectRule(nlh, t); });
    }
    for (ObservedMap& map : t.maps) {
      if (!read) {
        break;
      }
      read = request(
          "dump elements", NFT_MSG_GETSETELEM, NFPROTO_IPV4, NLM_F_DUMP,
          [&](nlmsghdr* nlh) {
            SetPtr req(nftnl_set_alloc());
            nftnl_set_set_str(req.get(), NFTNL_SET_TABLE, table.c_str());
            nftnl_set_set_str(req.get(), NFTNL_SET_NAME, map.name.c_str());
            nftnl_set_elems_nlmsg_build_payload(nlh, req.get());
          },
          [&](const nlmsghdr* nlh) { collectElems(nlh, map); });
    }

    Result<uint32_t> after = generation();
    if (!after) {
      return after.error();
    }
    if (*after != *before || (!read && read.error().retryable)) {
      continue;  // the ruleset changed while we read it: read it again
    }
    if (!read) {
      return read.error();
    }
    if (!exists) {
      return std::optional<NftTableState>();
    }
    return std::optional<NftTableState>(interpret(t));
  }
  return retryable(where + ": the ruleset kept changing while it was read");
}

}  // namespace edgeplane::sys
