// Codec round trips for the nftables driver: build batches, parse every message back with
// libnftnl and compare with what `nft` itself sends for the same ruleset. No kernel needed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "reconciler/system/nft.h"
#include "tests/support/nft_batch.h"

namespace edgeplane::sys {
namespace {

using testing::hostMapping;
using testing::hostState;
using testing::Message;
using testing::messagesOf;
using testing::mustBuild;
using testing::nsMapping;
using testing::nsState;

std::vector<uint16_t> typesOf(const std::vector<Message>& messages) {
  std::vector<uint16_t> out;
  for (const Message& m : messages) {
    out.push_back(m.type);
  }
  return out;
}

struct TableFree {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainFree {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct SetFree {
  void operator()(nftnl_set* s) const { nftnl_set_free(s); }
};
struct RuleFree {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};

std::unique_ptr<nftnl_set, SetFree> parseSet(const Message& m) {
  std::unique_ptr<nftnl_set, SetFree> s(nftnl_set_alloc());
  EXPECT_EQ(nftnl_set_nlmsg_parse(m.nlh, s.get()), 0);
  return s;
}

std::unique_ptr<nftnl_set, SetFree> parseElems(const Message& m) {
  std::unique_ptr<nftnl_set, SetFree> s(nftnl_set_alloc());
  EXPECT_EQ(nftnl_set_elems_nlmsg_parse(m.nlh, s.get()), 0);
  return s;
}

// The expressions of a rule in libnftnl's debug notation, the one `nft --debug=netlink`
// prints, one per line.
std::vector<std::string> ruleExprs(const Message& m, std::string* chain = nullptr) {
  std::unique_ptr<nftnl_rule, RuleFree> r(nftnl_rule_alloc());
  EXPECT_EQ(nftnl_rule_nlmsg_parse(m.nlh, r.get()), 0);
  if (chain != nullptr) {
    *chain = nftnl_rule_get_str(r.get(), NFTNL_RULE_CHAIN);
  }
  EXPECT_STREQ(nftnl_rule_get_str(r.get(), NFTNL_RULE_TABLE), "edgeplane");
  char buf[4096];
  nftnl_rule_snprintf(buf, sizeof(buf), r.get(), NFTNL_OUTPUT_DEFAULT, 0);
  std::vector<std::string> out;
  std::istringstream in(buf);
  for (std::string line; std::getline(in, line);) {
    const size_t open = line.find("[ ");
    if (open != std::string::npos) {
      out.push_back(line.substr(open));
    }
  }
  return out;
}

struct Elem {
  std::vector<uint8_t> key;
  std::vector<uint8_t> data;
  uint32_t flags = 0;
  bool operator==(const Elem&) const = default;
};

std::vector<Elem> elemsOf(nftnl_set* s) {
  std::vector<Elem> out;
  nftnl_set_elems_iter* it = nftnl_set_elems_iter_create(s);
  while (nftnl_set_elem* e = nftnl_set_elems_iter_next(it)) {
    Elem elem;
    uint32_t len = 0;
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_KEY)) {
      const auto* p = static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len));
      elem.key.assign(p, p + len);
    }
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_DATA)) {
      const auto* p = static_cast<const uint8_t*>(nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len));
      elem.data.assign(p, p + len);
    }
    if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS)) {
      elem.flags = nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS);
    }
    out.push_back(elem);
  }
  nftnl_set_elems_iter_destroy(it);
  return out;
}

// What `nft --debug=netlink -f` sends for `fib daddr type local tcp dport @fwd_tcp counter
// dnat ip to tcp dport map @fwd_tcp` and friends (nftables 1.0.6).
const std::vector<std::string> kHostDnatTcp = {
    "[ fib daddr type => reg 1 ]",
    "[ cmp eq reg 1 0x00000002 ]",
    "[ meta load l4proto => reg 1 ]",
    "[ cmp eq reg 1 0x00000006 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_tcp ]",
    "[ counter pkts 0 bytes 0 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_tcp dreg 1 ]",
    "[ nat dnat ip addr_min reg 1 ]",
};
const std::vector<std::string> kHostDnatUdp = {
    "[ fib daddr type => reg 1 ]",
    "[ cmp eq reg 1 0x00000002 ]",
    "[ meta load l4proto => reg 1 ]",
    "[ cmp eq reg 1 0x00000011 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_udp ]",
    "[ counter pkts 0 bytes 0 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_udp dreg 1 ]",
    "[ nat dnat ip addr_min reg 1 ]",
};
const std::vector<std::string> kHostForwardDrop = {
    "[ meta load iifname => reg 1 ]", "[ cmp eq reg 1 0x2d687065 ]",
    "[ meta load oifname => reg 1 ]", "[ cmp eq reg 1 0x2d687065 ]",
    "[ counter pkts 0 bytes 0 ]",     "[ immediate reg 0 drop ]",
};
const std::vector<std::string> kHostMasquerade = {
    "[ meta load iifname => reg 1 ]",
    "[ cmp eq reg 1 0x2d687065 ]",
    "[ meta load oifname => reg 1 ]",
    "[ cmp neq reg 1 0x2d687065 ]",
    "[ masq ]",
};
const std::vector<std::string> kNsDnatTcp = {
    "[ meta load l4proto => reg 1 ]",
    "[ cmp eq reg 1 0x00000006 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_tcp ]",
    "[ counter pkts 0 bytes 0 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_tcp dreg 1 ]",
    "[ nat dnat ip addr_min reg 1 proto_min reg 9 ]",
};
const std::vector<std::string> kNsDnatUdp = {
    "[ meta load l4proto => reg 1 ]",
    "[ cmp eq reg 1 0x00000011 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_udp ]",
    "[ counter pkts 0 bytes 0 ]",
    "[ payload load 2b @ transport header + 2 => reg 1 ]",
    "[ lookup reg 1 set fwd_udp dreg 1 ]",
    "[ nat dnat ip addr_min reg 1 proto_min reg 9 ]",
};
const std::vector<std::string> kNsMasquerade = {
    "[ ct load status => reg 1 ]",  "[ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]",
    "[ cmp neq reg 1 0x00000000 ]", "[ meta load oifname => reg 1 ]",
    "[ cmp neq reg 1 0x2d6e7065 ]", "[ masq ]",
};

TEST(NftCodec, HostReplaceBatchOrderAndFraming) {
  const NftBatch batch = mustBuild(buildReplaceTable(hostState()));
  const std::vector<Message> msgs = messagesOf(batch);
  // table x3, maps x2, chains x4, rules x6, elements: 22015, 30000-30010 (tcp), 53 (udp).
  const std::vector<uint16_t> want = {
      NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWTABLE,   NFT_MSG_DELTABLE,  NFT_MSG_NEWTABLE,
      NFT_MSG_NEWSET,       NFT_MSG_NEWSET,     NFT_MSG_NEWCHAIN,  NFT_MSG_NEWCHAIN,
      NFT_MSG_NEWCHAIN,     NFT_MSG_NEWCHAIN,   NFT_MSG_NEWRULE,   NFT_MSG_NEWRULE,
      NFT_MSG_NEWRULE,      NFT_MSG_NEWRULE,    NFT_MSG_NEWRULE,   NFT_MSG_NEWRULE,
      NFT_MSG_NEWSETELEM,   NFT_MSG_NEWSETELEM, NFNL_MSG_BATCH_END};
  EXPECT_EQ(typesOf(msgs), want);
  ASSERT_EQ(batch.messageCount(), msgs.size());
  ASSERT_EQ(batch.messages().size(), msgs.size() - 2);
  // One operation per message, but the two tcp mappings share the tcp map's message.
  ASSERT_EQ(batch.ops().size(), msgs.size() - 1);
  EXPECT_EQ(batch.messages()[15].firstOp, 15u);
  EXPECT_EQ(batch.messages()[15].opCount, 2u);
  EXPECT_EQ(batch.messages()[16].firstOp, 17u);
  EXPECT_EQ(batch.messages()[16].opCount, 1u);
  EXPECT_TRUE(msgs.front().batchMarker);
  EXPECT_TRUE(msgs.back().batchMarker);
  EXPECT_EQ(msgs.front().resId, NFNL_SUBSYS_NFTABLES);
  EXPECT_EQ(msgs.back().resId, NFNL_SUBSYS_NFTABLES);
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_EQ(msgs[i].seq, i) << "message " << i;
    if (!msgs[i].batchMarker) {
      EXPECT_EQ(msgs[i].family, NFPROTO_IPV4) << "message " << i;
      EXPECT_NE(msgs[i].flags & NLM_F_ACK, 0) << "message " << i << " asks for no ACK";
      EXPECT_NE(msgs[i].flags & NLM_F_REQUEST, 0);
    }
  }
  EXPECT_EQ(batch.ops()[0].kind, NftBatchOp::Kind::AddTable);
  EXPECT_EQ(batch.ops()[1].kind, NftBatchOp::Kind::DeleteTable);
  EXPECT_EQ(batch.ops()[1].str(), "delete table ip edgeplane");
  EXPECT_EQ(batch.ops()[3].str(), "add map fwd_tcp");
  EXPECT_EQ(batch.ops()[5].str(), "add chain prerouting");
  EXPECT_EQ(batch.ops()[9].object, "rule prerouting[0] (fwd_tcp dnat)");
  // Elements go in sorted order, one operation per mapping.
  EXPECT_EQ(batch.ops()[15].str(), "add element 22015 : 100.64.0.1 to map fwd_tcp");
  EXPECT_EQ(batch.ops()[16].str(), "add element 30000-30010 : 100.64.0.3 to map fwd_tcp");
  EXPECT_EQ(batch.ops()[17].str(), "add element 53 : 100.64.0.9 to map fwd_udp");
}

TEST(NftCodec, HostTableMapsAndChains) {
  const NftBatch batch = mustBuild(buildReplaceTable(hostState()));
  const std::vector<Message> msgs = messagesOf(batch);
  for (size_t i : {1, 2, 3}) {
    std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
    ASSERT_EQ(nftnl_table_nlmsg_parse(msgs[i].nlh, t.get()), 0);
    EXPECT_STREQ(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME), "edgeplane");
    EXPECT_EQ(nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY), NFPROTO_IPV4);
  }
  // "add table" that may meet an existing table must not be exclusive.
  EXPECT_NE(msgs[1].flags & NLM_F_CREATE, 0);
  EXPECT_EQ(msgs[1].flags & NLM_F_EXCL, 0);

  const char* names[] = {"fwd_tcp", "fwd_udp"};
  for (size_t i = 0; i < 2; ++i) {
    auto s = parseSet(msgs[4 + i]);
    EXPECT_STREQ(nftnl_set_get_str(s.get(), NFTNL_SET_NAME), names[i]);
    EXPECT_STREQ(nftnl_set_get_str(s.get(), NFTNL_SET_TABLE), "edgeplane");
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS),
              static_cast<uint32_t>(NFT_SET_MAP | NFT_SET_INTERVAL));
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_TYPE), 13u);  // inet_service
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN), 2u);
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_TYPE), 7u);  // ipv4_addr
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_LEN), 4u);
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_ID), i + 1);
  }

  struct WantChain {
    const char* name;
    const char* type;
    uint32_t hook;
    int32_t prio;
  };
  const WantChain chains[] = {{"prerouting", "nat", NF_INET_PRE_ROUTING, -100},
                              {"output", "nat", NF_INET_LOCAL_OUT, -100},
                              {"forward", "filter", NF_INET_FORWARD, 0},
                              {"postrouting", "nat", NF_INET_POST_ROUTING, 100}};
  for (size_t i = 0; i < 4; ++i) {
    std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
    ASSERT_EQ(nftnl_chain_nlmsg_parse(msgs[6 + i].nlh, c.get()), 0);
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME), chains[i].name);
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE), "edgeplane");
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE), chains[i].type);
    EXPECT_EQ(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM), chains[i].hook);
    EXPECT_EQ(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO), chains[i].prio);
    EXPECT_EQ(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_POLICY), static_cast<uint32_t>(NF_ACCEPT));
  }
}

TEST(NftCodec, HostRulesMatchWhatNftGenerates) {
  const NftBatch batch = mustBuild(buildReplaceTable(hostState()));
  const std::vector<Message> msgs = messagesOf(batch);
  const std::vector<std::pair<std::string, std::vector<std::string>>> want = {
      {"prerouting", kHostDnatTcp}, {"prerouting", kHostDnatUdp},  {"output", kHostDnatTcp},
      {"output", kHostDnatUdp},     {"forward", kHostForwardDrop}, {"postrouting", kHostMasquerade},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    const Message& m = msgs[10 + i];
    ASSERT_EQ(m.type, NFT_MSG_NEWRULE);
    EXPECT_NE(m.flags & NLM_F_APPEND, 0);
    std::string chain;
    EXPECT_EQ(ruleExprs(m, &chain), want[i].second) << "rule " << i;
    EXPECT_EQ(chain, want[i].first);
  }
}

TEST(NftCodec, HostIntervalElements) {
  NftTableState s = hostState();
  s.udp.push_back(hostMapping(65000, 65535, "100.64.0.7"));
  const NftBatch batch = mustBuild(buildReplaceTable(s));
  const std::vector<Message> msgs = messagesOf(batch);
  ASSERT_EQ(msgs.size(), 19u);

  auto tcp = parseElems(msgs[16]);
  EXPECT_STREQ(nftnl_set_get_str(tcp.get(), NFTNL_SET_NAME), "fwd_tcp");
  EXPECT_STREQ(nftnl_set_get_str(tcp.get(), NFTNL_SET_TABLE), "edgeplane");
  // 22015 -> 100.64.0.1: a start element with the address, an end element at 22016; then
  // 30000-30010 -> 100.64.0.3 the same way, ending at 30011.
  const std::vector<Elem> wantTcp = {{{0x55, 0xff}, {100, 64, 0, 1}, 0},
                                     {{0x56, 0x00}, {}, NFT_SET_ELEM_INTERVAL_END},
                                     {{0x75, 0x30}, {100, 64, 0, 3}, 0},
                                     {{0x75, 0x3b}, {}, NFT_SET_ELEM_INTERVAL_END}};
  EXPECT_EQ(elemsOf(tcp.get()), wantTcp);
  EXPECT_NE(msgs[16].flags & NLM_F_CREATE, 0);
  EXPECT_NE(msgs[16].flags & NLM_F_EXCL, 0);

  auto udp = parseElems(msgs[17]);
  EXPECT_STREQ(nftnl_set_get_str(udp.get(), NFTNL_SET_NAME), "fwd_udp");
  // A range up to 65535 has no end element: there is no key past it.
  const std::vector<Elem> wantUdp = {{{0x00, 0x35}, {100, 64, 0, 9}, 0},
                                     {{0x00, 0x36}, {}, NFT_SET_ELEM_INTERVAL_END},
                                     {{0xfd, 0xe8}, {100, 64, 0, 7}, 0}};
  EXPECT_EQ(elemsOf(udp.get()), wantUdp);
}

TEST(NftCodec, NamespaceTable) {
  const NftBatch batch = mustBuild(buildReplaceTable(nsState()));
  const std::vector<Message> msgs = messagesOf(batch);
  const std::vector<uint16_t> want = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWTABLE,  NFT_MSG_DELTABLE,
                                      NFT_MSG_NEWTABLE,     NFT_MSG_NEWSET,    NFT_MSG_NEWSET,
                                      NFT_MSG_NEWCHAIN,     NFT_MSG_NEWCHAIN,  NFT_MSG_NEWRULE,
                                      NFT_MSG_NEWRULE,      NFT_MSG_NEWRULE,   NFT_MSG_NEWSETELEM,
                                      NFT_MSG_NEWSETELEM,   NFNL_MSG_BATCH_END};
  ASSERT_EQ(typesOf(msgs), want);

  for (size_t i : {4, 5}) {
    auto s = parseSet(msgs[i]);
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_FLAGS), static_cast<uint32_t>(NFT_SET_MAP));
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_TYPE), 13u);
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_KEY_LEN), 2u);
    // ipv4_addr . inet_service, as nft encodes a concatenation: (7 << 6) | 13.
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_TYPE), 461u);
    EXPECT_EQ(nftnl_set_get_u32(s.get(), NFTNL_SET_DATA_LEN), 8u);
  }
  const char* chainNames[] = {"prerouting", "postrouting"};
  const uint32_t hooks[] = {NF_INET_PRE_ROUTING, NF_INET_POST_ROUTING};
  const int32_t prios[] = {-100, 100};
  for (size_t i = 0; i < 2; ++i) {
    std::unique_ptr<nftnl_chain, ChainFree> c(nftnl_chain_alloc());
    ASSERT_EQ(nftnl_chain_nlmsg_parse(msgs[6 + i].nlh, c.get()), 0);
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME), chainNames[i]);
    EXPECT_STREQ(nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE), "nat");
    EXPECT_EQ(nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM), hooks[i]);
    EXPECT_EQ(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO), prios[i]);
  }
  std::string chain;
  EXPECT_EQ(ruleExprs(msgs[8], &chain), kNsDnatTcp);
  EXPECT_EQ(chain, "prerouting");
  EXPECT_EQ(ruleExprs(msgs[9], &chain), kNsDnatUdp);
  EXPECT_EQ(ruleExprs(msgs[10], &chain), kNsMasquerade);
  EXPECT_EQ(chain, "postrouting");

  // 22015 -> 10.50.0.12 . 22: address in the first register, port (network order) in the next.
  auto tcp = parseElems(msgs[11]);
  const std::vector<Elem> wantTcp = {{{0x55, 0xff}, {10, 50, 0, 12, 0, 22, 0, 0}, 0}};
  EXPECT_EQ(elemsOf(tcp.get()), wantTcp);
  auto udp = parseElems(msgs[12]);
  EXPECT_STREQ(nftnl_set_get_str(udp.get(), NFTNL_SET_NAME), "fwd_udp");
  const std::vector<Elem> wantUdp = {{{0x14, 0xe9}, {10, 50, 0, 13, 0, 53, 0, 0}, 0},
                                     {{0x14, 0xea}, {10, 50, 0, 13, 0, 54, 0, 0}, 0}};
  EXPECT_EQ(elemsOf(udp.get()), wantUdp);
}

TEST(NftCodec, OneChangedForwardIsOneDeleteAndOneAdd) {
  NftElementDelta tcp;
  tcp.remove = {nsMapping(22015, "10.50.0.12", 22)};
  tcp.add = {nsMapping(22015, "10.50.0.14", 2222)};
  const NftBatch batch = mustBuild(buildElementChanges(NftRole::Namespace, tcp, {}));
  const std::vector<Message> msgs = messagesOf(batch);
  const std::vector<uint16_t> want = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM,
                                      NFNL_MSG_BATCH_END};
  ASSERT_EQ(typesOf(msgs), want);
  ASSERT_EQ(batch.ops().size(), 2u);
  EXPECT_EQ(batch.ops()[0].kind, NftBatchOp::Kind::DeleteElement);
  EXPECT_EQ(batch.ops()[0].protocol, Protocol::Tcp);
  EXPECT_EQ(batch.ops()[0].mapping, tcp.remove[0]);
  EXPECT_EQ(batch.ops()[0].str(), "delete element 22015 : 10.50.0.12 . 22 from map fwd_tcp");
  EXPECT_EQ(batch.ops()[1].kind, NftBatchOp::Kind::AddElement);
  EXPECT_EQ(batch.ops()[1].mapping, tcp.add[0]);

  auto del = parseElems(msgs[1]);
  EXPECT_STREQ(nftnl_set_get_str(del.get(), NFTNL_SET_NAME), "fwd_tcp");
  // A delete is by key only.
  const std::vector<Elem> wantDel = {{{0x55, 0xff}, {}, 0}};
  EXPECT_EQ(elemsOf(del.get()), wantDel);
  auto add = parseElems(msgs[2]);
  const std::vector<Elem> wantAdd = {{{0x55, 0xff}, {10, 50, 0, 14, 0x08, 0xae, 0, 0}, 0}};
  EXPECT_EQ(elemsOf(add.get()), wantAdd);
}

TEST(NftCodec, HostElementChangesDeleteBeforeAddAcrossMaps) {
  NftElementDelta tcp;
  NftElementDelta udp;
  tcp.add = {hostMapping(40000, 40001, "100.64.0.5")};
  udp.remove = {hostMapping(53, 53, "100.64.0.9")};
  const NftBatch batch = mustBuild(buildElementChanges(NftRole::Host, tcp, udp));
  const std::vector<Message> msgs = messagesOf(batch);
  const std::vector<uint16_t> want = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM,
                                      NFNL_MSG_BATCH_END};
  ASSERT_EQ(typesOf(msgs), want);
  auto del = parseElems(msgs[1]);
  EXPECT_STREQ(nftnl_set_get_str(del.get(), NFTNL_SET_NAME), "fwd_udp");
  const std::vector<Elem> wantDel = {{{0x00, 0x35}, {}, 0},
                                     {{0x00, 0x36}, {}, NFT_SET_ELEM_INTERVAL_END}};
  EXPECT_EQ(elemsOf(del.get()), wantDel);
  auto add = parseElems(msgs[2]);
  EXPECT_STREQ(nftnl_set_get_str(add.get(), NFTNL_SET_NAME), "fwd_tcp");
  EXPECT_FALSE(nftnl_set_is_set(add.get(), NFTNL_SET_ID));
}

TEST(NftCodec, ManyElementsArePackedIntoFewMessagesOfBoundedSize) {
  NftTableState s;
  s.role = NftRole::Host;
  for (uint16_t i = 0; i < 3000; ++i) {
    s.tcp.push_back(hostMapping(static_cast<uint16_t>(10000 + i), static_cast<uint16_t>(10000 + i),
                                "100.64.0.1"));
  }
  const NftBatch batch = mustBuild(buildReplaceTable(s));
  const std::vector<Message> msgs = messagesOf(batch);
  ASSERT_EQ(batch.messageCount(), msgs.size());
  // 3000 mappings, 6000 elements: a handful of messages, each within the bound.
  std::vector<Elem> seen;
  size_t elementMessages = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_LE(msgs[i].nlh->nlmsg_len, NftBatch::kMaxElementMessage) << "message " << i;
    if (msgs[i].type != NFT_MSG_NEWSETELEM) {
      continue;
    }
    ++elementMessages;
    const NftBatch::Message& m = batch.messages()[i - 1];
    auto set = parseElems(msgs[i]);
    const std::vector<Elem> elems = elemsOf(set.get());
    EXPECT_EQ(elems.size(), 2u * m.opCount) << "message " << i;
    seen.insert(seen.end(), elems.begin(), elems.end());
  }
  EXPECT_GE(elementMessages, 2u);
  EXPECT_LE(elementMessages, 30u);
  ASSERT_EQ(seen.size(), 6000u);
  for (size_t i = 0; i < 3000; ++i) {
    const auto port = static_cast<uint16_t>(10000 + i);
    EXPECT_EQ(seen[2 * i].key, (std::vector<uint8_t>{static_cast<uint8_t>(port >> 8),
                                                     static_cast<uint8_t>(port & 0xff)}));
    EXPECT_EQ(seen[2 * i + 1].flags, static_cast<uint32_t>(NFT_SET_ELEM_INTERVAL_END));
  }
  // One operation per mapping, in order, over the messages.
  ASSERT_EQ(batch.ops().size(), 15u + 3000u);
  EXPECT_EQ(batch.ops()[15].str(), "add element 10000 : 100.64.0.1 to map fwd_tcp");
  EXPECT_EQ(batch.ops().back().str(), "add element 12999 : 100.64.0.1 to map fwd_tcp");
}

TEST(NftCodec, AnOffsetIntoAnElementMessageNamesItsMapping) {
  NftElementDelta tcp;
  for (uint16_t port = 40000; port < 40003; ++port) {
    tcp.add.push_back(nsMapping(port, "10.50.0.12", 22));
  }
  const NftBatch batch = mustBuild(buildElementChanges(NftRole::Namespace, tcp, {}));
  const std::vector<Message> msgs = messagesOf(batch);
  ASSERT_EQ(batch.messages().size(), 1u);
  // Where each element starts: the list's entries, in the order they were written.
  std::vector<uint32_t> starts;
  const nlmsghdr* nlh = msgs[1].nlh;
  const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
  for (auto* attr = static_cast<const nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
       mnl_attr_ok(attr, static_cast<int>(tail - reinterpret_cast<const char*>(attr)));
       attr = mnl_attr_next(attr)) {
    if (mnl_attr_get_type(attr) != NFTA_SET_ELEM_LIST_ELEMENTS) {
      continue;
    }
    const auto* end = reinterpret_cast<const char*>(attr) + mnl_attr_get_len(attr);
    for (auto* elem = static_cast<const nlattr*>(mnl_attr_get_payload(attr));
         mnl_attr_ok(elem, static_cast<int>(end - reinterpret_cast<const char*>(elem)));
         elem = mnl_attr_next(elem)) {
      starts.push_back(static_cast<uint32_t>(reinterpret_cast<const char*>(elem) -
                                             reinterpret_cast<const char*>(nlh)));
    }
  }
  ASSERT_EQ(starts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(batch.opAt(0, starts[i]).mapping, tcp.add[i]) << "element " << i;
    EXPECT_EQ(batch.opAt(0, starts[i] + 4).mapping, tcp.add[i]) << "inside element " << i;
  }
  // No offset, or one in the message's header: its first mapping.
  EXPECT_EQ(batch.opAt(0, std::nullopt).mapping, tcp.add[0]);
  EXPECT_EQ(batch.opAt(0, 4u).mapping, tcp.add[0]);
}

TEST(NftCodec, NoChangesIsAnEmptyBatch) {
  const NftBatch batch = mustBuild(buildElementChanges(NftRole::Host, {}, {}));
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.size(), 0u);
  EXPECT_EQ(batch.messageCount(), 0u);
  const NftBatch none = mustBuild(buildChange(NftChange{}, hostState()));
  EXPECT_TRUE(none.empty());
}

TEST(NftCodec, DeleteTableBatch) {
  const NftBatch batch = buildDeleteTable();
  const std::vector<Message> msgs = messagesOf(batch);
  const std::vector<uint16_t> want = {NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE,
                                      NFNL_MSG_BATCH_END};
  EXPECT_EQ(typesOf(msgs), want);
  std::unique_ptr<nftnl_table, TableFree> t(nftnl_table_alloc());
  ASSERT_EQ(nftnl_table_nlmsg_parse(msgs[2].nlh, t.get()), 0);
  EXPECT_STREQ(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME), "edgeplane");
}

TEST(NftCodec, InvalidMappingsNameTheElement) {
  struct Case {
    NftTableState state;
    std::string message;
  };
  std::vector<Case> cases;
  {
    NftTableState s = hostState();
    s.tcp.push_back(hostMapping(30005, 30020, "100.64.0.8"));
    cases.push_back(
        {s, "map fwd_tcp: element 30005-30020 : 100.64.0.8 overlaps 30000-30010 : 100.64.0.3"});
  }
  {
    NftTableState s = hostState();
    s.udp.push_back(hostMapping(53, 53, "100.64.0.9"));
    cases.push_back({s, "map fwd_udp: element 53 : 100.64.0.9 overlaps 53 : 100.64.0.9"});
  }
  {
    NftTableState s = hostState();
    s.tcp.push_back(hostMapping(80, 80, "fd00::1"));
    cases.push_back({s, "map fwd_tcp: element 80 : fd00::1: address is not IPv4"});
  }
  {
    NftTableState s = hostState();
    s.tcp.push_back(hostMapping(80, 79, "100.64.0.1"));
    cases.push_back({s, "invalid port range"});
  }
  {
    NftTableState s = hostState();
    s.tcp.push_back(nsMapping(80, "100.64.0.1", 8080));
    cases.push_back({s, "map fwd_tcp: element 80 : 100.64.0.1 . 8080: host map elements keep"});
  }
  {
    NftTableState s = nsState();
    s.tcp.push_back(hostMapping(80, 81, "10.50.0.1"));
    cases.push_back({s,
                     "map fwd_tcp: element 80-81 : 10.50.0.1: namespace map elements are "
                     "single ports"});
  }
  {
    NftTableState s = nsState();
    s.tcp.push_back(hostMapping(80, 80, "10.50.0.1"));
    cases.push_back({s, "need a target port"});
  }
  {
    NftTableState s = nsState();
    s.tcp.push_back(nsMapping(22015, "10.50.0.99", 22));
    cases.push_back({s, "map fwd_tcp: element 22015 : 10.50.0.99 . 22 overlaps"});
  }
  for (const Case& c : cases) {
    Result<NftBatch> r = buildReplaceTable(c.state);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << r.error().message;
    EXPECT_FALSE(r.error().retryable);
  }

  NftElementDelta overlapping;
  overlapping.add = {hostMapping(100, 200, "100.64.0.1"), hostMapping(200, 300, "100.64.0.2")};
  Result<NftBatch> r = buildElementChanges(NftRole::Host, overlapping, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("200-300 : 100.64.0.2 overlaps 100-200"), std::string::npos)
      << r.error().message;
}

TEST(NftCodec, MappingText) {
  EXPECT_EQ(hostMapping(30000, 30010, "100.64.0.3").str(), "30000-30010 : 100.64.0.3");
  EXPECT_EQ(nsMapping(22015, "10.50.0.12", 22).str(), "22015 : 10.50.0.12 . 22");
  EXPECT_EQ(toString(NftRole::Host), "host");
  EXPECT_EQ(toString(NftChange::Kind::ReplaceTable), "replace-table");
}

// ---- diffTable: pure ----

TEST(NftDiff, PresenceDecidesCreateAndDelete) {
  EXPECT_EQ(diffTable(std::nullopt, std::nullopt).kind, NftChange::Kind::None);
  EXPECT_EQ(diffTable(std::nullopt, hostState()).kind, NftChange::Kind::CreateTable);
  EXPECT_EQ(diffTable(hostState(), std::nullopt).kind, NftChange::Kind::DeleteTable);
}

TEST(NftDiff, EqualIsNoneRegardlessOfOrderAndCounters) {
  NftTableState observed = hostState();
  std::reverse(observed.tcp.begin(), observed.tcp.end());
  observed.counters.dnatTcp = {12, 3400};
  EXPECT_EQ(diffTable(observed, hostState()), NftChange{});
}

TEST(NftDiff, BrokenSkeletonOrOtherRoleIsReplace) {
  NftTableState observed = hostState();
  observed.intact = false;
  EXPECT_EQ(diffTable(observed, hostState()).kind, NftChange::Kind::ReplaceTable);
  NftTableState other = nsState();
  other.role = NftRole::Host;
  EXPECT_EQ(diffTable(nsState(), other).kind, NftChange::Kind::ReplaceTable);
}

TEST(NftDiff, ElementChangesAreExact) {
  NftTableState observed;
  observed.role = NftRole::Namespace;
  NftTableState desired = observed;
  for (uint16_t i = 0; i < 100; ++i) {
    observed.tcp.push_back(nsMapping(static_cast<uint16_t>(20000 + i), "10.50.0.12", 22));
  }
  desired.tcp = observed.tcp;
  desired.tcp[42].targetPort = 2222;
  desired.udp = {nsMapping(53, "10.50.0.2", 53)};
  observed.udp = {nsMapping(54, "10.50.0.2", 53)};
  const NftChange change = diffTable(observed, desired);
  ASSERT_EQ(change.kind, NftChange::Kind::Elements);
  EXPECT_EQ(change.tcp.remove, std::vector<NftMapping>{observed.tcp[42]});
  EXPECT_EQ(change.tcp.add, std::vector<NftMapping>{desired.tcp[42]});
  EXPECT_EQ(change.udp.remove, observed.udp);
  EXPECT_EQ(change.udp.add, desired.udp);

  const NftBatch batch = mustBuild(buildChange(change, desired));
  std::vector<NftBatchOp::Kind> kinds;
  for (const NftBatchOp& op : batch.ops()) {
    kinds.push_back(op.kind);
  }
  const std::vector<NftBatchOp::Kind> want = {
      NftBatchOp::Kind::DeleteElement, NftBatchOp::Kind::DeleteElement,
      NftBatchOp::Kind::AddElement, NftBatchOp::Kind::AddElement};
  EXPECT_EQ(kinds, want);
}

TEST(NftDiff, BuildChangeNeedsDesiredForCreate) {
  NftChange create;
  create.kind = NftChange::Kind::CreateTable;
  EXPECT_FALSE(buildChange(create, std::nullopt).ok());
  const NftBatch batch = mustBuild(buildChange(create, nsState()));
  EXPECT_EQ(batch.ops()[1].kind, NftBatchOp::Kind::DeleteTable);
  NftChange del;
  del.kind = NftChange::Kind::DeleteTable;
  EXPECT_EQ(mustBuild(buildChange(del, std::nullopt)).ops().size(), 2u);
}

}  // namespace
}  // namespace edgeplane::sys
