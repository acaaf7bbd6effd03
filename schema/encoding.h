// Byte encodings with strict decoders: standard base64 and base64url (RFC 4648), hex, and
// decimal numbers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgeplane {

// Standard base64 (RFC 4648), canonical only: padded, no whitespace, unused bits zero -
// exactly what an encoder produces, so one value has one spelling.
bool isBase64Char(char c);
std::optional<std::string> decodeBase64(std::string_view text);
std::string encodeBase64(std::string_view bytes, bool pad = true);
// base64url without padding (RFC 4648 section 5; JWS, ACME tokens and DNS-01 TXT values).
std::string encodeBase64Url(std::string_view bytes);
// Its decoder: the url alphabet only, no padding, unused bits zero; nullopt otherwise.
std::optional<std::string> decodeBase64Url(std::string_view text);

// Hex helpers for digests. hexValue: a hex digit's value (either case), -1 for any other byte.
int hexValue(char c);
// Every byte of `text` is a hex digit (either case); true for "".
bool allHex(std::string_view text);
// A full commit id as git writes one in a SHA-1 repository: 40 hex digits (either case).
bool isFullCommitId(std::string_view text);
std::optional<std::array<uint8_t, 32>> parseHex32(std::string_view text);
std::string toHex(const uint8_t* data, size_t len);

// Whether a decimal number may be written with leading zeros ("010"). The config refuses them,
// so that one value has one spelling; the WireGuard UAPI's numbers, and those of the process
// files wireguard-go's supervision reads (/proc, its pid file), take them, as the UAPI's own
// parsers do.
enum class LeadingZeros : uint8_t { Refused, Allowed };
// ASCII decimal digits only (no sign, no spaces), at most 20 of them, whose value is at most
// `max`; nullopt otherwise (also on overflow). "0" itself is never a leading zero.
std::optional<uint64_t> parseDecimal(std::string_view text, uint64_t max, LeadingZeros zeros);

}  // namespace edgeplane
