// libFuzzer target: untrusted SSH signatures and allowed_signers files through the strict parsers.
//
// The first byte picks the mode:
//   2 mod 4: the rest is a raw commit object, taken apart as git does (splitSignedCommit) and
//         its signature, if any, verified over its payload;
//   other even: the rest is `armored signature` NUL `payload`, verified in namespace "git" against
//         the built-in signers below (the seed corpus holds real signatures by their keys, so
//         the fuzzer starts from inputs that verify);
//   odd:  the rest is an allowed_signers file; if it parses, a real signature is checked
//         against it (so the signer-matching code sees fuzzed options and keys).
// Every input must end as a Result, never a crash, a hang, a leak or an OpenSSL error left
// on the queue.
#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reconciler/source/sshsig.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using edgeplane::fuzz::check;

using namespace edgeplane::source;

// Test keys made for this target only (ssh-keygen -t ed25519 / ecdsa -b 256 / rsa -b 2048).
constexpr std::string_view kSigners =
    "ed25519@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIASArY/orIAaYPS3p1CXQj7g"
    "wAm2Rfc2B1lI63Y9ub+o\n"
    "ops@example.com namespaces=\"git\" ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHA"
    "yNTYAAAAIbmlzdHAyNTYAAABBBID3YlemMgriB5LXaAA+XU05DrQz6HratZm2/3GmdUwQZwpuCGyQ6eH"
    "chajjxaziTbMPgfJxYCMT+m75QPW/fMY=\n"
    "rsa@example.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCJ1XoKx8D6KyyvtcYwaYrNmACE"
    "W0Z0XiXqgzQqw7rsBZ5iLuGiIz1t/BEQIoQlrWGmNv9v1n8UWqSl3Ia57E4fxjWYSydKeyZf+Yct8TgC"
    "GLgjCHwTTFUZxro0AWpe+/uDduGyXReZqINvdQ2SncHOgpbyPY3LDbhQa7g7VjHA5Z7AK22oB7vOhrCH"
    "dJR41g3duNh4uQiaXHhtvh86j/PJJ53LWMoQlxkvlkwo+Hf9fTdJinRGQ9td0rGG7HA85H98n5hK0vOf"
    "ioQnKYuTTCEdCLVNleuL6zLdv0X1lg5KA4SWgfUP3Hc8xwII4CmeFCxCKOE2r/pxC2T2BPwZrbbd\n";

// `ssh-keygen -Y sign -n git` by the ed25519 key above over kSignedPayload.
constexpr std::string_view kSignature =
    "-----BEGIN SSH SIGNATURE-----\n"
    "U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgBICtj+isgBpg9LenUJdCPuDACb\n"
    "ZF9zYHWUjrdj25v6gAAAADZ2l0AAAAAAAAAAZzaGE1MTIAAABTAAAAC3NzaC1lZDI1NTE5\n"
    "AAAAQOtRpFV/E+bVZDqF8pGBFefA6bls/0f+bsydjtAVDrs9IJ5JScfJJMVY86f2zG2dN/\n"
    "hzkyYTQ6JUxtz/R/9gKgA=\n"
    "-----END SSH SIGNATURE-----\n";
constexpr std::string_view kSignedPayload = "fuzz payload\n";

const std::vector<AllowedSigner>& builtinSigners() {
  static const std::vector<AllowedSigner> signers = [] {
    auto parsed = parseAllowedSigners(kSigners);
    check(parsed.ok() && parsed->size() == 3);
    return std::move(parsed).value();
  }();
  return signers;
}

void checkVerified(const edgeplane::Result<VerifiedSignature>& verified) {
  if (verified.ok()) {
    check(!verified->principal.empty());
    check(verified->fingerprint.starts_with("SHA256:"));
    check(verified->hashAlgorithm == "sha256" || verified->hashAlgorithm == "sha512");
  }
  check(ERR_peek_error() == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const bool signersMode = (data[0] & 1) != 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 4 == 2) {
    auto split = splitSignedCommit(rest);
    if (split.ok() && split->has_value()) {
      // The payload is the object less the signature's lines, never more.
      check((*split)->payload.size() + (*split)->signature.size() <= rest.size());
      checkVerified(verifySshSig((*split)->signature, (*split)->payload, kGitNamespace,
                                 builtinSigners(), 1700000000));
    }
    return 0;
  }
  if (!signersMode) {
    const size_t nul = rest.find('\0');
    const std::string_view armored = rest.substr(0, nul);
    const std::string_view payload =
        nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    auto verified = verifySshSig(armored, payload, kGitNamespace, builtinSigners());
    checkVerified(verified);
    if (verified.ok()) {
      // A signature binds its content: the same signature over other bytes never verifies.
      const std::string other = std::string(payload) + "x";
      check(!verifySshSig(armored, other, kGitNamespace, builtinSigners()).ok());
    }
    return 0;
  }
  auto signers = parseAllowedSigners(rest);
  check(ERR_peek_error() == 0);
  if (!signers.ok()) {
    check(!signers.error().message.empty());
    return 0;
  }
  for (const AllowedSigner& signer : *signers) {
    check(!signer.principals.empty() && !signer.keyBlob.empty() && signer.line >= 1);
    for (const std::string& principal : signer.principals) {
      check(!principal.empty());
    }
  }
  checkVerified(verifySshSig(kSignature, kSignedPayload, kGitNamespace, *signers, 1700000000));
  return 0;
}
