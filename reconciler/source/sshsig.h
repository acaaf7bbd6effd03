// SSH signatures as git's gpg.format=ssh makes them: SSHSIG checked against allowed_signers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/source/allowed_signers.h"
#include "schema/result.h"

namespace edgeplane::source {

// The namespace git signs commits and tags in (`ssh-keygen -Y sign -n git`).
inline constexpr std::string_view kGitNamespace = "git";

// What a commit's signature covers: the armored `gpgsig` header and the commit object
// without it, byte for byte as git signed it.
struct SshSignedCommit {
  std::string signature;
  std::string payload;
};

// Bound on a commit object read for its signature; git itself has none, a config commit is small.
inline constexpr std::size_t kMaxCommitObjectBytes = std::size_t{1} << 20;

// Takes a raw commit object apart as git does (commit.c, parse_buffer_signed_by_header), so
// that what verifies here is what `git verify-commit` calls signed: only the header counts, up
// to the first blank line; the header whose key is exactly `gpgsig` and its continuation lines
// (a leading space) are the signature, and the payload is the object without them. Other
// `gpgsig…` headers (`gpgsig-sha256`, made over the SHA-256 form of the commit) are no
// signature here and are left out of the payload, as git leaves them out; any other header
// (`xgpgsig`) is payload. A second `gpgsig` header is refused, where git would join them.
// nullopt: the commit is unsigned.
Result<std::optional<SshSignedCommit>> splitSignedCommit(std::string_view object);

struct VerifiedSignature {
  std::string principal;  // the first principal of the matching allowed_signers line
  std::vector<std::string> principals;
  std::string keyType;
  std::string fingerprint;    // "SHA256:…", as `ssh-keygen -l` prints it
  std::string hashAlgorithm;  // "sha256" or "sha512"
  std::size_t signerLine = 0;
};

// Bound on untrusted input; anything beyond is an error, never a large allocation.
inline constexpr std::size_t kMaxArmoredSignatureBytes = std::size_t{64} << 10;

// Verifies an armored SSHSIG (PROTOCOL.sshsig) over `payload` in namespace `ns`, and that the
// signing key is an allowed signer for `ns` (and, if the line has validity times, at
// `verifyTime`; without one such a line matches nothing). RSA keys must sign with
// rsa-sha2-256/512. Every failure is terminal: a signature does not become valid later.
Result<VerifiedSignature> verifySshSig(std::string_view armored, std::string_view payload,
                                       std::string_view ns,
                                       const std::vector<AllowedSigner>& signers,
                                       std::optional<std::int64_t> verifyTime = std::nullopt);

// "SHA256:" + unpadded base64 of the SHA-256 of a public key blob.
std::string sshFingerprint(std::string_view keyBlob);

}  // namespace edgeplane::source
