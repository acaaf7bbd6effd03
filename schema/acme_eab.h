// The ACME external account binding credentials (RFC 8555 section 7.3.4) read from their
// host-local, owner-only file: the key id and MAC key a CA hands out with an account.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane {

struct AcmeEab {
  std::string kid;
  std::string macKey;  // the decoded HMAC key bytes
};

// `text` is a TOML file of exactly two strings, `kid` and `hmac_key` (base64url, as CAs give
// it). Refused (terminal) with the file named and the line of the fault, never the key itself.
Result<AcmeEab> parseAcmeEab(std::string_view text, const std::string& file);

// The file read with readSecretFile (a regular file, 0600 or stricter) and then parsed.
Result<AcmeEab> readAcmeEabFile(const std::filesystem::path& file);

}  // namespace edgeplane
