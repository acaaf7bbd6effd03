// SSH keys and signature blobs on OpenSSL 3, strict and bounded.
//
// Formats: RFC 4253 section 6.6 and RFC 8709 / RFC 5656 / RFC 8332 (key and signature blobs),
// OpenSSH PROTOCOL.u2f (security keys). Every length is checked against what is left before
// anything is read, and every encoding must be the canonical one, so that one key has exactly
// one blob and blobs compare bytewise.
#include "reconciler/source/ssh_key.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>
#include <utility>

namespace edgeplane::source::ssh {

struct Curve {
  std::string_view keyType;
  std::string_view sshName;
  const char* opensslGroup;
  size_t pointBytes;  // uncompressed: 0x04 || X || Y
  size_t orderBytes;
  const EVP_MD* (*md)();
};

namespace {

constexpr std::string_view kEd25519SkType = "sk-ssh-ed25519@openssh.com";
constexpr std::string_view kEcdsaSkType = "sk-ecdsa-sha2-nistp256@openssh.com";

constexpr std::array<Curve, 3> kCurves = {{
    {"ecdsa-sha2-nistp256", "nistp256", "P-256", 65, 32, EVP_sha256},
    {"ecdsa-sha2-nistp384", "nistp384", "P-384", 97, 48, EVP_sha384},
    {"ecdsa-sha2-nistp521", "nistp521", "P-521", 133, 66, EVP_sha512},
}};

constexpr size_t kRsaMinBits = 2048;
constexpr size_t kRsaMaxBits = 16384;  // OpenSSH's own limit

// A positive mpint in its one canonical form; returns the magnitude (no sign byte).
std::optional<std::string_view> positiveMpint(std::string_view m) {
  if (m.empty()) {
    return std::nullopt;  // zero
  }
  const auto first = static_cast<unsigned char>(m[0]);
  if ((first & 0x80) != 0) {
    return std::nullopt;  // negative
  }
  if (first == 0) {
    if (m.size() == 1 || (static_cast<unsigned char>(m[1]) & 0x80) == 0) {
      return std::nullopt;  // a leading zero that is not a sign byte
    }
    m.remove_prefix(1);
  }
  return m;
}

size_t bitLength(std::string_view magnitude) {
  if (magnitude.empty()) {
    return 0;
  }
  unsigned top = static_cast<unsigned char>(magnitude[0]);
  size_t bits = (magnitude.size() - 1) * 8;
  while (top != 0) {
    ++bits;
    top >>= 1;
  }
  return bits;
}

// --- OpenSSL handles ---

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};

const unsigned char* bytesOf(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

Result<Pkey> ed25519Pkey(std::string_view raw) {
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytesOf(raw), raw.size());
  if (p == nullptr) {
    return cryptoError("invalid ssh-ed25519 public key");
  }
  return Pkey(p);
}

Result<Pkey> fromParams(const char* algorithm, OSSL_PARAM* params, std::string_view what) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, algorithm, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    return cryptoError("invalid " + std::string(what) + " public key");
  }
  Pkey pkey(raw);
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(
      EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return cryptoError("invalid " + std::string(what) + " public key");
  }
  return pkey;
}

Result<Pkey> ecdsaPkey(const Curve& curve, std::string_view point) {
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                       const_cast<char*>(curve.opensslGroup), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, const_cast<char*>(point.data()),
                                        point.size()),
      OSSL_PARAM_construct_end(),
  };
  return fromParams("EC", params, curve.keyType);
}

Result<Pkey> rsaPkey(std::string_view e, std::string_view n) {
  std::unique_ptr<BIGNUM, BnFree> bnE(BN_bin2bn(bytesOf(e), static_cast<int>(e.size()), nullptr));
  std::unique_ptr<BIGNUM, BnFree> bnN(BN_bin2bn(bytesOf(n), static_cast<int>(n.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bnE || !bnN || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bnN.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bnE.get()) != 1) {
    return cryptoError("invalid ssh-rsa public key");
  }
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) {
    return cryptoError("invalid ssh-rsa public key");
  }
  return fromParams("RSA", params.get(), "ssh-rsa");
}

std::string sha256Of(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

}  // namespace

void putString(std::string& out, std::string_view s) {
  const auto len = static_cast<std::uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((len >> shift) & 0xff));
  }
  out.append(s);
}

Error cryptoError(std::string message) {
  ERR_clear_error();
  return terminal(std::move(message));
}

void PkeyFree::operator()(EVP_PKEY* p) const {
  EVP_PKEY_free(p);
}

bool isSupportedKeyType(std::string_view type) {
  if (type == "ssh-ed25519" || type == "ssh-rsa" || type == kEd25519SkType ||
      type == kEcdsaSkType) {
    return true;
  }
  for (const Curve& c : kCurves) {
    if (type == c.keyType) {
      return true;
    }
  }
  return false;
}

std::optional<std::string_view> blobKeyType(std::string_view blob) {
  WireReader r(blob);
  std::string_view type;
  if (!r.string(type)) {
    return std::nullopt;
  }
  return type;
}

Result<PublicKey> parsePublicKey(std::string_view blob) {
  WireReader r(blob);
  std::string_view type;
  if (!r.string(type)) {
    return terminal("malformed public key");
  }
  PublicKey key;
  key.type = std::string(type);
  // A security key's blob is the plain key's with its application string after it.
  const bool ed25519Sk = type == kEd25519SkType;
  if (type == "ssh-ed25519" || ed25519Sk) {
    key.kind = ed25519Sk ? KeyKind::Ed25519Sk : KeyKind::Ed25519;
    if (!r.string(key.material) || key.material.size() != 32 ||
        (ed25519Sk && !r.string(key.application)) || !r.done()) {
      return terminal("malformed " + key.type + " public key");
    }
    auto pkey = ed25519Pkey(key.material);
    if (!pkey) {
      return pkey.error();
    }
    key.pkey = std::move(pkey).value();
    return key;
  }
  const bool ecdsaSk = type == kEcdsaSkType;
  for (const Curve& c : kCurves) {
    // nistp256 is the only curve of security keys.
    if (type != c.keyType && !(ecdsaSk && &c == &kCurves[0])) {
      continue;
    }
    key.kind = ecdsaSk ? KeyKind::EcdsaSk : KeyKind::Ecdsa;
    key.curve = &c;
    std::string_view curveName;
    if (!r.string(curveName) || curveName != c.sshName || !r.string(key.material) ||
        key.material.size() != c.pointBytes || key.material[0] != 0x04 ||
        (ecdsaSk && !r.string(key.application)) || !r.done()) {
      return terminal("malformed " + key.type + " public key");
    }
    auto pkey = ecdsaPkey(c, key.material);
    if (!pkey) {
      return pkey.error();
    }
    key.pkey = std::move(pkey).value();
    return key;
  }
  if (type == "ssh-rsa") {
    key.kind = KeyKind::Rsa;
    std::string_view e;
    std::string_view n;
    if (!r.string(e) || !r.string(n) || !r.done()) {
      return terminal("malformed ssh-rsa public key");
    }
    auto eMag = positiveMpint(e);
    auto nMag = positiveMpint(n);
    if (!eMag || !nMag || eMag->size() > 8 || (static_cast<unsigned char>(eMag->back()) & 1) == 0 ||
        bitLength(*eMag) < 2) {
      return terminal("malformed ssh-rsa public key");
    }
    const size_t bits = bitLength(*nMag);
    if (bits < kRsaMinBits || bits > kRsaMaxBits) {
      return terminal("ssh-rsa key of " + std::to_string(bits) + " bits; between " +
                      std::to_string(kRsaMinBits) + " and " + std::to_string(kRsaMaxBits) +
                      " are accepted");
    }
    key.rsaE = *eMag;
    key.rsaN = *nMag;
    auto pkey = rsaPkey(key.rsaE, key.rsaN);
    if (!pkey) {
      return pkey.error();
    }
    key.pkey = std::move(pkey).value();
    return key;
  }
  return terminal("unsupported key type '" + key.type + "'");
}

namespace {

// A security key's signature blob goes on with byte flags and uint32 counter; what the
// authenticator signed, sha256(application) || flags || counter || sha256(data), is put in
// `u2fData`.
Result<SkSignature> readSkSignature(WireReader& r, const PublicKey& key, std::string_view data,
                                    std::string& u2fData) {
  std::string_view flags;
  SkSignature details;
  if (!r.bytes(1, flags) || !r.u32(details.counter)) {
    return terminal("malformed " + key.type + " signature");
  }
  details.flags = static_cast<std::uint8_t>(flags[0]);
  const std::string appHash = sha256Of(key.application);
  const std::string dataHash = sha256Of(data);
  if (appHash.empty() || dataHash.empty()) {
    return cryptoError("cannot hash the signed content");
  }
  u2fData = appHash;
  u2fData.append(flags);
  for (int shift = 24; shift >= 0; shift -= 8) {
    u2fData.push_back(static_cast<char>((details.counter >> shift) & 0xff));
  }
  u2fData.append(dataHash);
  return details;
}

// An SSH ECDSA signature (mpint r, mpint s) as the DER that OpenSSL verifies.
Result<std::string> ecdsaDer(const PublicKey& key, std::string_view sig) {
  WireReader rs(sig);
  std::string_view rRaw;
  std::string_view sRaw;
  if (!rs.string(rRaw) || !rs.string(sRaw) || !rs.done()) {
    return terminal("malformed " + key.type + " signature");
  }
  auto rMag = positiveMpint(rRaw);
  auto sMag = positiveMpint(sRaw);
  if (!rMag || !sMag || rMag->size() > key.curve->orderBytes ||
      sMag->size() > key.curve->orderBytes) {
    return terminal("malformed " + key.type + " signature");
  }
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> ecSig(ECDSA_SIG_new());
  BIGNUM* bnR = BN_bin2bn(bytesOf(*rMag), static_cast<int>(rMag->size()), nullptr);
  BIGNUM* bnS = BN_bin2bn(bytesOf(*sMag), static_cast<int>(sMag->size()), nullptr);
  if (!ecSig || bnR == nullptr || bnS == nullptr || ECDSA_SIG_set0(ecSig.get(), bnR, bnS) != 1) {
    BN_free(bnR);
    BN_free(bnS);
    return cryptoError("out of memory decoding an ECDSA signature");
  }
  const int len = i2d_ECDSA_SIG(ecSig.get(), nullptr);
  if (len <= 0) {
    return cryptoError("malformed " + key.type + " signature");
  }
  std::string der(static_cast<size_t>(len), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(ecSig.get(), &out) != len) {
    return cryptoError("malformed " + key.type + " signature");
  }
  return der;
}

// An RSA signature left-padded to the modulus' length, and in `md` the hash its algorithm
// names. SHA-1 ("ssh-rsa") is refused, as OpenSSH's sshsig refuses it.
Result<std::string> rsaSignature(const PublicKey& key, std::string_view algorithm,
                                 std::string_view sig, const EVP_MD*& md) {
  if (algorithm == "rsa-sha2-256") {
    md = EVP_sha256();
  } else if (algorithm == "rsa-sha2-512") {
    md = EVP_sha512();
  } else {
    return terminal("RSA signature algorithm '" + std::string(algorithm) +
                    "' refused: rsa-sha2-256 or rsa-sha2-512 required");
  }
  const size_t modBytes = key.rsaN.size();
  if (sig.empty() || sig.size() > modBytes) {
    return terminal("malformed ssh-rsa signature");
  }
  std::string der(modBytes - sig.size(), '\0');  // OpenSSH pads short signatures the same way
  der.append(sig);
  return der;
}

}  // namespace

Result<std::optional<SkSignature>> verifyWithKey(const PublicKey& key, std::string_view sigBlob,
                                                 std::string_view data) {
  const bool sk = key.kind == KeyKind::Ed25519Sk || key.kind == KeyKind::EcdsaSk;
  WireReader r(sigBlob);
  std::string_view algorithm;
  std::string_view sig;
  if (!r.string(algorithm) || !r.string(sig)) {
    return terminal("malformed signature blob");
  }
  std::optional<SkSignature> skSig;
  std::string u2fData;
  if (sk) {
    auto details = readSkSignature(r, key, data, u2fData);
    if (!details) {
      return details.error();
    }
    data = u2fData;
    skSig = *details;
  }
  if (!r.done()) {
    return terminal("malformed signature blob");
  }
  const EVP_MD* md = nullptr;
  std::string der;  // the signature as OpenSSL wants it
  switch (key.kind) {
    case KeyKind::Ed25519:
    case KeyKind::Ed25519Sk:
      if (algorithm != key.type || sig.size() != 64) {
        return terminal("malformed " + key.type + " signature");
      }
      der = std::string(sig);
      break;
    case KeyKind::Ecdsa:
    case KeyKind::EcdsaSk: {
      if (algorithm != key.type) {
        return terminal("signature algorithm '" + std::string(algorithm) + "' does not match its " +
                        key.type + " key");
      }
      auto ecdsa = ecdsaDer(key, sig);
      if (!ecdsa) {
        return ecdsa.error();
      }
      der = std::move(*ecdsa);
      md = key.curve->md();
      break;
    }
    case KeyKind::Rsa: {
      auto rsa = rsaSignature(key, algorithm, sig, md);
      if (!rsa) {
        return rsa.error();
      }
      der = std::move(*rsa);
      break;
    }
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.pkey.get()) != 1) {
    return cryptoError("cannot set up " + key.type + " verification");
  }
  if (EVP_DigestVerify(ctx.get(), bytesOf(der), der.size(), bytesOf(data), data.size()) != 1) {
    return cryptoError("signature does not match the signed content (changed after signing?)");
  }
  return skSig;
}

std::string_view nextLine(std::string_view& text) {
  const size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  return line;
}

}  // namespace edgeplane::source::ssh
