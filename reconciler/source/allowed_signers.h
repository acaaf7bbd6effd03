// OpenSSH allowed_signers files: who may sign, parsed strictly, and the namespace patterns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/result.h"

namespace edgeplane::source {

// One key line of an allowed_signers file (see ssh-keygen(1), "ALLOWED SIGNERS").
struct AllowedSigner {
  std::vector<std::string> principals;
  // namespaces="…": a comma list of patterns (`*`, `?`, `!negation`); unset allows any.
  std::optional<std::string> namespaces;
  // valid-after / valid-before, in seconds since the epoch.
  std::optional<std::int64_t> validAfter;
  std::optional<std::int64_t> validBefore;
  // A CA key: it vouches for certificates, which are not supported, so it matches nothing.
  bool certAuthority = false;
  // no-touch-required: a security key's signature need not attest user presence.
  bool noTouchRequired = false;
  std::string keyType;   // "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ssh-rsa", …
  std::string keyBlob;   // the public key in SSH wire form (the decoded base64)
  std::size_t line = 0;  // 1-based, for messages
};

// Bounds on untrusted input; anything beyond is an error, never a large allocation.
inline constexpr std::size_t kMaxAllowedSignersBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxAllowedSigners = 10000;

// Parses an allowed_signers file: `principals [options] keytype base64 [comment]` per line,
// `#` comments and blank lines skipped. Strict, like OpenSSH: any malformed line or unknown
// option fails the whole file, naming the line. Supported keys: ssh-ed25519,
// ecdsa-sha2-nistp256/384/521, ssh-rsa (2048 to 16384 bits), and the security keys
// sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com. A well-formed line of
// another key type (ssh-dss, certificates, …) is skipped, with a warning in `warnings` if
// given, so that one such signer does not refuse every commit.
// Options: cert-authority, namespaces="…", valid-after="…", valid-before="…" (the time
// forms YYYYMMDD[HHMM[SS]], a trailing Z for UTC, else local time, as OpenSSH reads them),
// no-touch-required (a security key's signature need not attest user presence, which is
// otherwise required, as ssh-keygen asks for it by default).
Result<std::vector<AllowedSigner>> parseAllowedSigners(
    std::string_view text, std::vector<std::string>* warnings = nullptr);

// OpenSSH's match_pattern_list over a comma list of `*`/`?` patterns, `!` negating: 1 when a
// positive pattern matches `s` and no negated one does; -1 when a negated one matches; 0: none.
int matchPatternList(std::string_view s, std::string_view list);

}  // namespace edgeplane::source
