// The nftables driver: edgeplane's own `ip edgeplane` table per namespace, via libnftnl.
//
// The table is core::kTableName in every namespace edgeplane manages (family ip). The rules
// match the uplinks by core::kHostLinkPrefix / kNsLinkPrefix ("eph-*"), the names the link
// driver gives them. The driver's parts, pure ones first:
//   nft_table.h    the values: a table's role, map elements and counters;
//   nft_ruleset.h  (internal) the skeleton of each role, its canonical descriptions and the
//                  checks on map elements;
//   nft_codec.h    batches built from values, and the kernel's messages decoded;
//   nft_diff.h     observed vs desired table, and a dumped table interpreted;
//   nft_socket.h   the netlink socket: the only I/O.
#pragma once

#include "reconciler/core/host_state.h"
#include "reconciler/system/nft_codec.h"
#include "reconciler/system/nft_diff.h"
#include "reconciler/system/nft_socket.h"
#include "reconciler/system/nft_table.h"
