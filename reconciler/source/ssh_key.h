// The SSH encodings under SSHSIG and allowed_signers: wire strings, key blobs as OpenSSL keys,
// signature blobs checked against them, and the line splitting both text formats share.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::source::ssh {

// --- SSH wire format (RFC 4251 section 5) ---

class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  bool u32(std::uint32_t& out) {
    if (data_.size() - pos_ < 4) {
      return false;
    }
    out = 0;
    for (size_t i = 0; i < 4; ++i) {
      out = (out << 8) | static_cast<unsigned char>(data_[pos_ + i]);
    }
    pos_ += 4;
    return true;
  }
  bool string(std::string_view& out) {
    std::uint32_t len = 0;
    if (!u32(len) || len > data_.size() - pos_) {
      return false;
    }
    out = data_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  bool bytes(size_t n, std::string_view& out) {
    if (n > data_.size() - pos_) {
      return false;
    }
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

void putString(std::string& out, std::string_view s);

// OpenSSL keeps failure reasons on a thread-local queue; ours are in the Result instead.
Error cryptoError(std::string message);

// --- Public keys ---

// The Sk kinds are FIDO security keys (OpenSSH PROTOCOL.u2f): an Ed25519 or P-256 key bound
// to an application string, whose signatures also cover the authenticator's flags and counter.
enum class KeyKind { Ed25519, Ecdsa, Rsa, Ed25519Sk, EcdsaSk };

// PROTOCOL.u2f: the authenticator saw a touch. ssh-keygen asks for it by default.
inline constexpr std::uint8_t kSkUserPresent = 0x01;

struct Curve;  // an ECDSA curve's names and sizes (ssh_key.cpp)

struct PkeyFree {
  void operator()(EVP_PKEY* p) const;
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct PublicKey {
  KeyKind kind = KeyKind::Ed25519;
  std::string type;
  const Curve* curve = nullptr;
  std::string_view material;  // ed25519: 32 bytes; ecdsa: the point
  std::string_view rsaE;      // magnitudes
  std::string_view rsaN;
  std::string_view application;  // security keys: "ssh:" unless chosen otherwise
  Pkey pkey;
};

// What a security key's signature says besides the signature itself.
struct SkSignature {
  std::uint8_t flags = 0;
  std::uint32_t counter = 0;
};

// ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa and the two security key types.
bool isSupportedKeyType(std::string_view type);

// The type named first in a key blob, if it has one.
std::optional<std::string_view> blobKeyType(std::string_view blob);

// Parses and validates a public key blob; the returned key views into `blob`.
Result<PublicKey> parsePublicKey(std::string_view blob);

// Verifies an SSH signature blob (string algorithm, string signature) made by `key` over
// `data` (RFC 8709 section 6, RFC 5656 section 3.1.2, RFC 8332 section 3). A security key's
// blob also carries byte flags and uint32 counter, and what the authenticator signed is
// sha256(application) || flags || counter || sha256(data) (PROTOCOL.u2f, "Signatures"); its
// flags and counter are returned for the caller to judge.
Result<std::optional<SkSignature>> verifyWithKey(const PublicKey& key, std::string_view sigBlob,
                                                 std::string_view data);

// --- Text ---

// Splits off the next line, without its "\n" or "\r\n".
std::string_view nextLine(std::string_view& text);

}  // namespace edgeplane::source::ssh
