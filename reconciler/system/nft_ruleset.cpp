// The skeleton of edgeplane's nftables table, its canonical descriptions and the element checks.
// The rules are the ones `nft` generates for the equivalent ruleset.
#include "reconciler/system/nft_ruleset.h"

// <netinet/in.h> before the kernel headers, which defer to it (linux/libc-compat.h).
#include <netinet/in.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string_view>

#include "reconciler/core/host_state.h"

namespace edgeplane::sys::nft_detail {
namespace {

constexpr int32_t kPrioDstNat = -100;  // NF_IP_PRI_NAT_DST
constexpr int32_t kPrioFilter = 0;     // NF_IP_PRI_FILTER
constexpr int32_t kPrioSrcNat = 100;   // NF_IP_PRI_NAT_SRC

// ---- Expressions ----

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

// ---- Rules ----

// Host: `fib daddr type local` + the DNAT through `map`, in prerouting or output (the host
// reaching its own forwards).
RuleDef hostDnatRule(const char* chain, const MapDef& map) {
  const bool local = std::string_view(chain) == "output";
  RuleDef rule{chain, map.name + " dnat", nullptr, fibDaddrLocal()};
  if (map.protocol == Protocol::Tcp) {
    rule.counter = local ? &NftCounters::localDnatTcp : &NftCounters::dnatTcp;
  } else {
    rule.counter = local ? &NftCounters::localDnatUdp : &NftCounters::dnatUdp;
  }
  appendDnat(rule.exprs, map, NftRole::Host);
  return rule;
}

// Host: `iifname "eph-*" oifname "eph-*" counter drop`
RuleDef hostForwardDrop() {
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
  return drop;
}

// Host: `iifname "eph-*" oifname != "eph-*" masquerade`
RuleDef hostMasquerade() {
  RuleDef masq{"postrouting", "masquerade tenant egress", nullptr, {}};
  masq.exprs.push_back(metaLoad(NFT_META_IIFNAME));
  masq.exprs.push_back(cmpPrefix(NFT_CMP_EQ, core::kHostLinkPrefix));
  masq.exprs.push_back(metaLoad(NFT_META_OIFNAME));
  masq.exprs.push_back(cmpPrefix(NFT_CMP_NEQ, core::kHostLinkPrefix));
  masq.exprs.push_back(newExpr("masq"));
  return masq;
}

// Namespace: `ct status dnat oifname != "epn-*" masquerade`
RuleDef namespaceMasquerade() {
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
  return masq;
}

std::vector<RuleDef> hostRules(const std::vector<MapDef>& maps) {
  std::vector<RuleDef> rules;
  for (const char* chain : {"prerouting", "output"}) {
    for (const MapDef& map : maps) {
      rules.push_back(hostDnatRule(chain, map));
    }
  }
  rules.push_back(hostForwardDrop());
  rules.push_back(hostMasquerade());
  return rules;
}

std::vector<RuleDef> namespaceRules(const std::vector<MapDef>& maps) {
  std::vector<RuleDef> rules;
  for (const MapDef& map : maps) {
    RuleDef rule{"prerouting",
                 map.name + " dnat",
                 map.protocol == Protocol::Tcp ? &NftCounters::dnatTcp : &NftCounters::dnatUdp,
                 {}};
    appendDnat(rule.exprs, map, NftRole::Namespace);
    rules.push_back(std::move(rule));
  }
  rules.push_back(namespaceMasquerade());
  return rules;
}

// ---- Descriptions ----

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

// An expression's attributes as " label=value" text; unset attributes read as `unset` (or "-").
class ExprText {
 public:
  explicit ExprText(const nftnl_expr* e) : e_(e) {}

  uint32_t u32(uint16_t attr, uint32_t unset = 0) const {
    return nftnl_expr_is_set(e_, attr) ? nftnl_expr_get_u32(e_, attr) : unset;
  }
  std::string num(const char* label, uint16_t attr, uint32_t unset = 0) const {
    return std::string(" ") + label + "=" + std::to_string(u32(attr, unset));
  }
  std::string data(const char* label, uint16_t attr) const {
    uint32_t len = 0;
    const void* p = nftnl_expr_is_set(e_, attr) ? nftnl_expr_get(e_, attr, &len) : nullptr;
    return std::string(" ") + label + "=" + (p != nullptr ? hex(p, len) : "-");
  }
  std::string str(const char* label, uint16_t attr) const {
    const char* s = nftnl_expr_is_set(e_, attr) ? nftnl_expr_get_str(e_, attr) : "-";
    return std::string(" ") + label + "=" + s;
  }

 private:
  const nftnl_expr* e_;
};

// The kernel fills in addr_max/proto_max (= the minimum) and the range flags they imply.
std::string describeNat(const ExprText& x) {
  const uint32_t addrMin = x.u32(NFTNL_EXPR_NAT_REG_ADDR_MIN);
  const uint32_t protoMin = x.u32(NFTNL_EXPR_NAT_REG_PROTO_MIN);
  const uint32_t derived = NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED;
  return x.num("type", NFTNL_EXPR_NAT_TYPE) + x.num("family", NFTNL_EXPR_NAT_FAMILY) +
         " addr=" + std::to_string(addrMin) + "-" +
         std::to_string(x.u32(NFTNL_EXPR_NAT_REG_ADDR_MAX, addrMin)) +
         " proto=" + std::to_string(protoMin) + "-" +
         std::to_string(x.u32(NFTNL_EXPR_NAT_REG_PROTO_MAX, protoMin)) +
         " flags=" + std::to_string(x.u32(NFTNL_EXPR_NAT_FLAGS) & ~derived);
}

using Describer = std::string (*)(const ExprText&);

// The attributes that define each kind of expression edgeplane builds (counter: none, so that
// its values do not count).
const std::map<std::string_view, Describer>& describers() {
  static const std::map<std::string_view, Describer> table = {
      {"counter", [](const ExprText&) { return std::string(); }},
      {"meta",
       [](const ExprText& x) {
         return x.num("key", NFTNL_EXPR_META_KEY) + x.num("dreg", NFTNL_EXPR_META_DREG) +
                x.num("sreg", NFTNL_EXPR_META_SREG);
       }},
      {"cmp",
       [](const ExprText& x) {
         return x.num("sreg", NFTNL_EXPR_CMP_SREG) + x.num("op", NFTNL_EXPR_CMP_OP) +
                x.data("data", NFTNL_EXPR_CMP_DATA);
       }},
      {"payload",
       [](const ExprText& x) {
         return x.num("dreg", NFTNL_EXPR_PAYLOAD_DREG) + x.num("base", NFTNL_EXPR_PAYLOAD_BASE) +
                x.num("offset", NFTNL_EXPR_PAYLOAD_OFFSET) + x.num("len", NFTNL_EXPR_PAYLOAD_LEN) +
                x.num("sreg", NFTNL_EXPR_PAYLOAD_SREG) +
                x.num("csum", NFTNL_EXPR_PAYLOAD_CSUM_TYPE);
       }},
      {"lookup",
       [](const ExprText& x) {
         return x.num("sreg", NFTNL_EXPR_LOOKUP_SREG) + x.num("dreg", NFTNL_EXPR_LOOKUP_DREG) +
                x.str("set", NFTNL_EXPR_LOOKUP_SET) + x.num("flags", NFTNL_EXPR_LOOKUP_FLAGS);
       }},
      {"nat", describeNat},
      {"immediate",
       [](const ExprText& x) {
         return x.num("dreg", NFTNL_EXPR_IMM_DREG) + x.num("verdict", NFTNL_EXPR_IMM_VERDICT) +
                x.str("chain", NFTNL_EXPR_IMM_CHAIN) + x.data("data", NFTNL_EXPR_IMM_DATA);
       }},
      {"fib",
       [](const ExprText& x) {
         return x.num("dreg", NFTNL_EXPR_FIB_DREG) + x.num("result", NFTNL_EXPR_FIB_RESULT) +
                x.num("flags", NFTNL_EXPR_FIB_FLAGS);
       }},
      {"ct",
       [](const ExprText& x) {
         return x.num("dreg", NFTNL_EXPR_CT_DREG) + x.num("key", NFTNL_EXPR_CT_KEY) +
                x.num("dir", NFTNL_EXPR_CT_DIR, 255) + x.num("sreg", NFTNL_EXPR_CT_SREG);
       }},
      {"bitwise",
       [](const ExprText& x) {
         return x.num("sreg", NFTNL_EXPR_BITWISE_SREG) + x.num("dreg", NFTNL_EXPR_BITWISE_DREG) +
                x.num("len", NFTNL_EXPR_BITWISE_LEN) + x.num("op", NFTNL_EXPR_BITWISE_OP) +
                x.data("mask", NFTNL_EXPR_BITWISE_MASK) + x.data("xor", NFTNL_EXPR_BITWISE_XOR) +
                x.data("data", NFTNL_EXPR_BITWISE_DATA);
       }},
      {"masq",
       [](const ExprText& x) {
         return x.num("flags", NFTNL_EXPR_MASQ_FLAGS) +
                x.num("proto_min", NFTNL_EXPR_MASQ_REG_PROTO_MIN) +
                x.num("proto_max", NFTNL_EXPR_MASQ_REG_PROTO_MAX);
       }},
  };
  return table;
}

}  // namespace

// ---- The skeleton ----

std::string mapName(Protocol protocol) {
  return protocol == Protocol::Tcp ? "fwd_tcp" : "fwd_udp";
}

std::vector<MapDef> mapDefs(NftRole role) {
  const std::string tcp = mapName(Protocol::Tcp);
  const std::string udp = mapName(Protocol::Udp);
  if (role == NftRole::Host) {
    const uint32_t flags = NFT_SET_MAP | NFT_SET_INTERVAL;
    return {{Protocol::Tcp, tcp, 1, flags, kTypeIpv4Addr, 4},
            {Protocol::Udp, udp, 2, flags, kTypeIpv4Addr, 4}};
  }
  return {{Protocol::Tcp, tcp, 1, NFT_SET_MAP, kTypeConcatAddrPort, 8},
          {Protocol::Udp, udp, 2, NFT_SET_MAP, kTypeConcatAddrPort, 8}};
}

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

std::vector<RuleDef> ruleDefs(NftRole role) {
  const std::vector<MapDef> maps = mapDefs(role);
  return role == NftRole::Host ? hostRules(maps) : namespaceRules(maps);
}

// ---- Descriptions ----

std::string describeExpr(const nftnl_expr* e) {
  const std::string name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
  const auto it = describers().find(name);
  if (it == describers().end()) {
    // Anything else is not ours; never equal to a description of one of our expressions.
    return name + " <foreign>";
  }
  return name + it->second(ExprText(e));
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

void normalise(Skeleton& s) {
  std::sort(s.maps.begin(), s.maps.end());
  std::sort(s.chains.begin(), s.chains.end());
  std::stable_sort(s.rules.begin(), s.rules.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
}

Skeleton skeletonOf(NftRole role) {
  Skeleton s;
  for (const MapDef& m : mapDefs(role)) {
    s.maps.push_back(
        describeMap(m.name, m.flags, kTypeInetService, kPortKeyLen, m.dataType, m.dataLen));
  }
  for (const ChainDef& c : chainDefs(role)) {
    s.chains.push_back(describeChain(c.name, c.type, c.hook, c.prio, NF_ACCEPT));
  }
  for (const RuleDef& r : ruleDefs(role)) {
    s.rules.emplace_back(r.chain, describeExprs(r.exprs));
  }
  normalise(s);
  return s;
}

// ---- Validation ----

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

}  // namespace edgeplane::sys::nft_detail
