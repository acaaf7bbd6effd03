// SSHSIG verification on OpenSSL 3: the armored signature decoded, checked against the
// allowed signers, and the signed commit taken apart as git does.
//
// Formats: OpenSSH PROTOCOL.sshsig (the signature blob), git's commit object (the `gpgsig`
// header). The key and signature blobs inside are ssh_key.cpp's; who may sign is
// allowed_signers.cpp's.
#include "reconciler/source/sshsig.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <utility>

#include "reconciler/source/ssh_key.h"
#include "schema/encoding.h"

namespace edgeplane::source {
namespace {

using ssh::nextLine;

// --- Armor ---

constexpr std::string_view kBeginSignature = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kEndSignature = "-----END SSH SIGNATURE-----";

Result<std::string> dearmor(std::string_view text) {
  if (text.size() > kMaxArmoredSignatureBytes) {
    return terminal("signature is larger than " + std::to_string(kMaxArmoredSignatureBytes) +
                    " bytes");
  }
  std::string_view rest = text;
  const std::string_view first = nextLine(rest);
  if (first != kBeginSignature) {
    if (first.starts_with("-----BEGIN PGP SIGNATURE-----")) {
      return terminal("an OpenPGP signature, not an SSH signature");
    }
    if (first.starts_with("-----BEGIN SIGNED MESSAGE-----")) {
      return terminal("an X.509 signature, not an SSH signature");
    }
    return terminal("not an SSH signature: no '" + std::string(kBeginSignature) + "' line");
  }
  std::string b64;
  bool ended = false;
  while (!rest.empty()) {
    const std::string_view line = nextLine(rest);
    if (line == kEndSignature) {
      ended = true;
      break;
    }
    if (line.empty()) {
      return terminal("malformed SSH signature: empty line in the armor");
    }
    for (char c : line) {
      if (!isBase64Char(c) && c != '=') {
        return terminal("malformed SSH signature: invalid base64 character");
      }
    }
    b64.append(line);
  }
  if (!ended) {
    return terminal("malformed SSH signature: no '" + std::string(kEndSignature) + "' line");
  }
  for (char c : rest) {
    if (c != '\n' && c != '\r') {
      return terminal("malformed SSH signature: text after the end line");
    }
  }
  auto blob = decodeBase64(b64);
  if (!blob) {
    return terminal("malformed SSH signature: invalid base64");
  }
  return std::move(*blob);
}

// PROTOCOL.sshsig section 2: the fields of a signature blob, viewing into it.
struct SshSigBlob {
  std::string_view publicKey;
  std::string_view ns;
  std::string_view reserved;
  std::string_view hashAlgorithm;
  std::string_view signature;
};

Result<SshSigBlob> decodeSshSig(std::string_view blob) {
  ssh::WireReader r(blob);
  std::string_view magic;
  std::uint32_t version = 0;
  SshSigBlob sig;
  if (!r.bytes(6, magic) || magic != "SSHSIG") {
    return terminal("malformed SSH signature: no SSHSIG preamble");
  }
  if (!r.u32(version)) {
    return terminal("malformed SSH signature: truncated");
  }
  if (version != 1) {
    return terminal("unsupported SSH signature version " + std::to_string(version));
  }
  if (!r.string(sig.publicKey) || !r.string(sig.ns) || !r.string(sig.reserved) ||
      !r.string(sig.hashAlgorithm) || !r.string(sig.signature)) {
    return terminal("malformed SSH signature: truncated");
  }
  if (!r.done()) {
    return terminal("malformed SSH signature: trailing data");
  }
  return sig;
}

// PROTOCOL.sshsig section 3: what the key actually signed, given what git signed.
Result<std::string> signedData(const SshSigBlob& sig, std::string_view payload) {
  const EVP_MD* md = nullptr;
  if (sig.hashAlgorithm == "sha256") {
    md = EVP_sha256();
  } else if (sig.hashAlgorithm == "sha512") {
    md = EVP_sha512();
  } else {
    return terminal("unsupported SSH signature hash algorithm '" + std::string(sig.hashAlgorithm) +
                    "'");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLen = 0;
  if (EVP_Digest(payload.data(), payload.size(), digest, &digestLen, md, nullptr) != 1) {
    return ssh::cryptoError("cannot hash the signed content");
  }
  std::string data = "SSHSIG";
  ssh::putString(data, sig.ns);
  ssh::putString(data, sig.reserved);
  ssh::putString(data, sig.hashAlgorithm);
  ssh::putString(data, std::string_view(reinterpret_cast<const char*>(digest), digestLen));
  return data;
}

// Why `signer`, a line with the signing key, does not vouch for this signature in `ns`;
// nullopt when it does.
std::optional<std::string> refusalBy(const AllowedSigner& signer, std::string_view ns,
                                     const std::optional<ssh::SkSignature>& sk,
                                     std::optional<std::int64_t> verifyTime) {
  const std::string who =
      "allowed signer " + signer.principals.front() + " (line " + std::to_string(signer.line) + ")";
  if (signer.namespaces && matchPatternList(ns, *signer.namespaces) != 1) {
    return who + " may not sign namespace '" + std::string(ns) + "'";
  }
  if (sk && (sk->flags & ssh::kSkUserPresent) == 0 && !signer.noTouchRequired) {
    return who + " needs user presence (a touch of the security key), which the " +
           "signature does not attest; the line's no-touch-required option waives it";
  }
  if (signer.validAfter || signer.validBefore) {
    if (!verifyTime) {
      return who + " has a validity period and no signing time is known";
    }
    if (signer.validAfter && *verifyTime < *signer.validAfter) {
      return who + " is not yet valid at the signing time";
    }
    if (signer.validBefore && *verifyTime > *signer.validBefore) {
      return who + " has expired at the signing time";
    }
  }
  return std::nullopt;
}

}  // namespace

std::string sshFingerprint(std::string_view keyBlob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(keyBlob.data(), keyBlob.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return "SHA256:?";
  }
  return "SHA256:" +
         encodeBase64(std::string_view(reinterpret_cast<const char*>(digest), len), false);
}

Result<std::optional<SshSignedCommit>> splitSignedCommit(std::string_view object) {
  if (object.size() > kMaxCommitObjectBytes) {
    return terminal("the commit object is larger than " + std::to_string(kMaxCommitObjectBytes) +
                    " bytes");
  }
  constexpr std::string_view kKey = "gpgsig";
  std::string signature;
  std::string payload;
  bool saw = false;
  bool inSignature = false;  // continuation lines belong to the gpgsig header
  bool inOther = false;      // ... or to another gpgsig… header, left out like it
  while (!object.empty()) {
    const size_t nl = object.find('\n');
    const size_t len = nl == std::string_view::npos ? object.size() : nl + 1;
    const std::string_view line = object.substr(0, len);
    if (line.front() == '\n') {
      payload.append(object);  // the blank line and the message, whatever they hold
      break;
    }
    object.remove_prefix(len);
    if ((inSignature || inOther) && line.front() == ' ') {
      if (inSignature) {
        signature.append(line.substr(1));
      }
      continue;
    }
    inSignature = false;
    inOther = false;
    if (line.starts_with(kKey) && line.size() > kKey.size() && line[kKey.size()] == ' ') {
      if (saw) {
        return terminal("more than one gpgsig header; git would join them into one signature");
      }
      saw = true;
      inSignature = true;
      signature.append(line.substr(kKey.size() + 1));
      continue;
    }
    if (line.starts_with(kKey)) {
      inOther = true;
      continue;
    }
    payload.append(line);
  }
  if (!saw) {
    return std::optional<SshSignedCommit>();
  }
  return std::optional<SshSignedCommit>(SshSignedCommit{std::move(signature), std::move(payload)});
}

Result<VerifiedSignature> verifySshSig(std::string_view armored, std::string_view payload,
                                       std::string_view ns,
                                       const std::vector<AllowedSigner>& signers,
                                       std::optional<std::int64_t> verifyTime) {
  if (ns.empty()) {
    return terminal("no signature namespace given");
  }
  auto blob = dearmor(armored);
  if (!blob) {
    return blob.error();
  }
  auto sig = decodeSshSig(*blob);
  if (!sig) {
    return sig.error();
  }
  auto key = ssh::parsePublicKey(sig->publicKey);
  if (!key) {
    return terminal("SSH signature key: " + key.error().message);
  }
  if (sig->ns != ns) {
    return terminal("signature is for namespace '" + std::string(sig->ns) + "', expected '" +
                    std::string(ns) + "'");
  }
  auto data = signedData(*sig, payload);
  if (!data) {
    return data.error();
  }
  auto sk = ssh::verifyWithKey(*key, sig->signature, *data);
  if (!sk) {
    return sk.error();
  }

  const std::string fingerprint = sshFingerprint(sig->publicKey);
  std::string refusal;
  for (const AllowedSigner& signer : signers) {
    if (signer.certAuthority || signer.keyBlob != sig->publicKey) {
      continue;
    }
    if (auto why = refusalBy(signer, ns, *sk, verifyTime)) {
      if (refusal.empty()) {
        refusal = std::move(*why);
      }
      continue;
    }
    VerifiedSignature verified;
    verified.principal = signer.principals.front();
    verified.principals = signer.principals;
    verified.keyType = key->type;
    verified.fingerprint = fingerprint;
    verified.hashAlgorithm = std::string(sig->hashAlgorithm);
    verified.signerLine = signer.line;
    return verified;
  }
  if (!refusal.empty()) {
    return terminal("signature by " + key->type + " " + fingerprint + " refused: " + refusal);
  }
  return terminal("signed by " + key->type + " key " + fingerprint +
                  ", which is not an allowed signer");
}

}  // namespace edgeplane::source
