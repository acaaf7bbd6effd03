// WireGuard UAPI text codec (https://www.wireguard.com/xplatform/): set requests built, get
// replies parsed, and the inverses for the tests and the fuzzer. Pure: no socket, no process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/wireguard.h"
#include "schema/result.h"

namespace edgeplane::sys {

// Bounds on what a UAPI peer may send us; anything beyond is an error, never a crash.
struct UapiLimits {
  size_t maxReplyBytes = size_t{64} << 20;
  size_t maxPeers = 100000;
  size_t maxAllowedIps = 1000000;  // over all peers
};

// Keys are lowercase hex; every line is key=value; a request and a reply end with a blank line.

// "set=1\n" + the request's device fields and peer operations + "\n".
std::string encodeUapiSet(const WgSetRequest& request);
inline constexpr std::string_view kUapiGet = "get=1\n\n";

// Parses the whole reply to get=1, through its final "errno=N\n\n". Unknown keys with a
// well-formed name are skipped (forward compatibility); anything else out of shape -- a
// duplicate or misplaced key, a bad number, key, endpoint or prefix, bytes after the end,
// a reply over the limits -- is an error. errno != 0 is an error carrying that errno.
// The device's ifname and publicKey are left empty (UAPI reports neither).
Result<WgDevice> parseUapiGetReply(std::string_view reply, const UapiLimits& limits = {});
// "errno=0\n\n" -> ok; "errno=N\n\n" -> an error naming N; anything else is malformed.
Result<void> parseUapiSetReply(std::string_view reply);

// What wireguard-go answers get=1 with, for the tests and the fuzzer (the inverse of the parser).
std::string encodeUapiGetReply(const WgDevice& device);
// Parses a set request back into a WgSetRequest, for the tests and the fuzzer. As with generic
// netlink, peers that are not removed come back as Kind::Add, zero keys/keepalive unset.
Result<WgSetRequest> parseUapiSet(std::string_view request, const UapiLimits& limits = {});

}  // namespace edgeplane::sys
