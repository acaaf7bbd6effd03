// Test helpers for the nftables driver's codec: mappings, a sample table of each role, and a
// batch split into the messages the kernel would see.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "reconciler/system/nft.h"

namespace edgeplane::sys::testing {

inline NftMapping hostMapping(uint16_t first, uint16_t last, const char* address) {
  NftMapping m;
  m.port = {first, last};
  m.address = *IpAddress::parse(address);
  return m;
}

inline NftMapping nsMapping(uint16_t port, const char* address, uint16_t targetPort) {
  NftMapping m;
  m.port = {port, port};
  m.address = *IpAddress::parse(address);
  m.targetPort = targetPort;
  return m;
}

inline NftTableState hostState() {
  NftTableState s;
  s.role = NftRole::Host;
  s.tcp = {hostMapping(30000, 30010, "100.64.0.3"), hostMapping(22015, 22015, "100.64.0.1")};
  s.udp = {hostMapping(53, 53, "100.64.0.9")};
  return s;
}

inline NftTableState nsState() {
  NftTableState s;
  s.role = NftRole::Namespace;
  s.tcp = {nsMapping(22015, "10.50.0.12", 22)};
  s.udp = {nsMapping(5353, "10.50.0.13", 53), nsMapping(5354, "10.50.0.13", 54)};
  return s;
}

// One message of a batch as the kernel would see it.
struct Message {
  const nlmsghdr* nlh;
  uint16_t type;  // NFT_MSG_* for nf_tables messages, NFNL_MSG_BATCH_* for the markers
  bool batchMarker;
  uint16_t flags;
  uint32_t seq;
  uint8_t family;
  uint16_t resId;
};

inline std::vector<Message> messagesOf(const NftBatch& batch) {
  std::vector<Message> out;
  const auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.data());
  int remaining = static_cast<int>(batch.size());
  while (mnl_nlmsg_ok(nlh, remaining)) {
    const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    const bool marker =
        nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN || nlh->nlmsg_type == NFNL_MSG_BATCH_END;
    out.push_back({nlh, static_cast<uint16_t>(marker ? nlh->nlmsg_type : nlh->nlmsg_type & 0xff),
                   marker, nlh->nlmsg_flags, nlh->nlmsg_seq, nfg->nfgen_family,
                   ntohs(nfg->res_id)});
    if (!marker) {
      EXPECT_EQ(nlh->nlmsg_type >> 8, NFNL_SUBSYS_NFTABLES);
    }
    nlh = mnl_nlmsg_next(nlh, &remaining);
  }
  EXPECT_EQ(remaining, 0) << "trailing bytes in the batch";
  return out;
}

inline NftBatch mustBuild(Result<NftBatch> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? std::move(r).value() : NftBatch{};
}

}  // namespace edgeplane::sys::testing
