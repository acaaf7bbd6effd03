// The UAPI codec's line-level pieces, shared by its two directions: wg_uapi_codec.cpp (what
// edgeplane sends and reads back) and wg_uapi_inverse.cpp (the inverses, for the tests' and the
// fuzzer's round trips). Strict, pure. Internal to the codec.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::sys::uapi_detail {

inline constexpr std::string_view kGetWhat = "get reply";
inline constexpr std::string_view kSetWhat = "set request";

// A key as the protocol writes it: 64 lowercase hex digits.
std::string hexKey(const WgKey& key);
// 64 lowercase or uppercase hex digits.
std::optional<WgKey> parseHexKey(std::string_view text);
// An address with its /length (the protocol always gives one).
std::optional<IpPrefix> parsePrefix(std::string_view text);
// Splits a complete message (`what`: kGetWhat, kSetWhat) into its lines. It must be at most
// `maxBytes` long, end with "\n\n" and hold no other empty line; the lines exclude that final
// empty line. The error names the message: "UAPI <what> exceeds …", "malformed UAPI <what>: …".
Result<std::vector<std::string_view>> splitMessage(std::string_view text, std::string_view what,
                                                   size_t maxBytes);
// "malformed UAPI <what>: <why>", for the message as a whole.
Error malformed(std::string_view what, std::string_view why);
// "malformed UAPI <what>: line <n>: <why>", never the line itself (it may carry a key).
Error malformed(std::string_view what, size_t lineNo, std::string_view why);
// key=value, the key well-formed (lowercase letters, digits, '_'; 1 to 64); nullopt otherwise.
std::optional<std::pair<std::string_view, std::string_view>> splitLine(std::string_view line);

}  // namespace edgeplane::sys::uapi_detail
