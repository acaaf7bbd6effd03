// The nftables driver's values in nft syntax, for messages and logs.
#include "reconciler/system/nft_table.h"

namespace edgeplane::sys {

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

}  // namespace edgeplane::sys
