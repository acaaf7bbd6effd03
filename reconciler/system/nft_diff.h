// What it takes to go from the observed nftables table to the desired one: the diff, the batch
// that carries it out, and the reading of a dumped table as a table state. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "reconciler/system/nft_codec.h"
#include "reconciler/system/nft_table.h"
#include "schema/result.h"

namespace edgeplane::sys {

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

}  // namespace edgeplane::sys

namespace edgeplane::sys::nft_detail {

// A dumped table as a table state: `intact` when its flags, maps, chains and rules are exactly
// one role's skeleton (that role, else the role its maps suggest), its elements sorted, and the
// counters of the rules still recognisable.
NftTableState interpret(const ObservedTable& t);

}  // namespace edgeplane::sys::nft_detail
