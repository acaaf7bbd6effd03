// SSHSIG verification and allowed_signers parsing, strict and bounded, on OpenSSL 3.
//
// Formats: OpenSSH PROTOCOL.sshsig (the signature blob), RFC 4253 section 6.6 and RFC 8709
// / RFC 5656 / RFC 8332 (key and signature blobs), ssh-keygen(1) "ALLOWED SIGNERS". Every
// length is checked against what is left before anything is read, and every encoding must
// be the canonical one, so that one key has exactly one blob and blobs compare bytewise.
#include "reconciler/source/sshsig.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <array>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

#include "schema/net.h"

namespace edgeplane::source {
namespace {

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

void putString(std::string& out, std::string_view s) {
  const auto len = static_cast<std::uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((len >> shift) & 0xff));
  }
  out.append(s);
}

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

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
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
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

const unsigned char* bytesOf(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// OpenSSL keeps failure reasons on a thread-local queue; ours are in the Result instead.
Error cryptoError(std::string message) {
  ERR_clear_error();
  return terminal(std::move(message));
}

// --- Public keys ---

// The Sk kinds are FIDO security keys (OpenSSH PROTOCOL.u2f): an Ed25519 or P-256 key bound
// to an application string, whose signatures also cover the authenticator's flags and counter.
enum class KeyKind { Ed25519, Ecdsa, Rsa, Ed25519Sk, EcdsaSk };

constexpr std::string_view kEd25519SkType = "sk-ssh-ed25519@openssh.com";
constexpr std::string_view kEcdsaSkType = "sk-ecdsa-sha2-nistp256@openssh.com";
// PROTOCOL.u2f: the authenticator saw a touch. ssh-keygen asks for it by default.
constexpr std::uint8_t kSkUserPresent = 0x01;

struct Curve {
  std::string_view keyType;
  std::string_view sshName;
  const char* opensslGroup;
  size_t pointBytes;  // uncompressed: 0x04 || X || Y
  size_t orderBytes;
  const EVP_MD* (*md)();
};

constexpr std::array<Curve, 3> kCurves = {{
    {"ecdsa-sha2-nistp256", "nistp256", "P-256", 65, 32, EVP_sha256},
    {"ecdsa-sha2-nistp384", "nistp384", "P-384", 97, 48, EVP_sha384},
    {"ecdsa-sha2-nistp521", "nistp521", "P-521", 133, 66, EVP_sha512},
}};

constexpr size_t kRsaMinBits = 2048;
constexpr size_t kRsaMaxBits = 16384;  // OpenSSH's own limit

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

// Parses and validates a public key blob; the returned key views into `blob`.
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

std::string sha256Of(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

// Verifies an SSH signature blob (string algorithm, string signature) made by `key` over
// `data` (RFC 8709 section 6, RFC 5656 section 3.1.2, RFC 8332 section 3). A security key's
// blob also carries byte flags and uint32 counter, and what the authenticator signed is
// sha256(application) || flags || counter || sha256(data) (PROTOCOL.u2f, "Signatures"); its
// flags and counter are returned for the caller to judge.
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
    data = u2fData;
    skSig = details;
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
      if (!ecSig || bnR == nullptr || bnS == nullptr ||
          ECDSA_SIG_set0(ecSig.get(), bnR, bnS) != 1) {
        BN_free(bnR);
        BN_free(bnS);
        return cryptoError("out of memory decoding an ECDSA signature");
      }
      const int len = i2d_ECDSA_SIG(ecSig.get(), nullptr);
      if (len <= 0) {
        return cryptoError("malformed " + key.type + " signature");
      }
      der.resize(static_cast<size_t>(len));
      auto* out = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_ECDSA_SIG(ecSig.get(), &out) != len) {
        return cryptoError("malformed " + key.type + " signature");
      }
      md = key.curve->md();
      break;
    }
    case KeyKind::Rsa: {
      // SHA-1 ("ssh-rsa") is refused, as OpenSSH's sshsig refuses it.
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
      der.assign(modBytes - sig.size(), '\0');  // OpenSSH pads short signatures the same way
      der.append(sig);
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

// --- Armor ---

constexpr std::string_view kBeginSignature = "-----BEGIN SSH SIGNATURE-----";
constexpr std::string_view kEndSignature = "-----END SSH SIGNATURE-----";

// Splits off the next line, without its "\n" or "\r\n".
std::string_view nextLine(std::string_view& text) {
  const size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  if (!line.empty() && line.back() == '\r') {
    line.remove_suffix(1);
  }
  return line;
}

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

// --- Patterns (OpenSSH match.c) ---

bool matchPattern(std::string_view s, std::string_view p) {
  size_t si = 0;
  size_t pi = 0;
  size_t starP = std::string_view::npos;
  size_t starS = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++si;
      ++pi;
    } else if (pi < p.size() && p[pi] == '*') {
      starP = pi++;
      starS = si;
    } else if (starP != std::string_view::npos) {
      pi = starP + 1;
      si = ++starS;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') {
    ++pi;
  }
  return pi == p.size();
}

// 1: a positive pattern matches and no negated one does; -1: a negated one matches; 0: none.
int matchPatternList(std::string_view s, std::string_view list) {
  int result = 0;
  while (true) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    const bool negated = !item.empty() && item[0] == '!';
    if (negated) {
      item.remove_prefix(1);
    }
    if (matchPattern(s, item)) {
      if (negated) {
        return -1;
      }
      result = 1;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return result;
}

// --- allowed_signers ---

bool isSpace(char c) {
  return c == ' ' || c == '\t';
}

void skipSpace(std::string_view& s) {
  while (!s.empty() && isSpace(s.front())) {
    s.remove_prefix(1);
  }
}

std::string_view takeToken(std::string_view& s) {
  size_t n = 0;
  while (n < s.size() && !isSpace(s[n])) {
    ++n;
  }
  std::string_view token = s.substr(0, n);
  s.remove_prefix(n);
  return token;
}

bool iequalsPrefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) {
    return false;
  }
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') {
      a = static_cast<char>(a - 'A' + 'a');
    }
    if (a != prefix[i]) {
      return false;
    }
  }
  return true;
}

// OpenSSH's opt_dequote: "…" with \" for a quote.
std::optional<std::string> dequote(std::string_view& s) {
  if (s.empty() || s.front() != '"') {
    return std::nullopt;
  }
  std::string out;
  size_t i = 1;
  for (; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '"') {
      ++i;
    }
    out.push_back(s[i]);
  }
  if (i == s.size()) {
    return std::nullopt;
  }
  s.remove_prefix(i + 1);
  return out;
}

bool allDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

int number(std::string_view digits) {
  int n = 0;
  for (char c : digits) {
    n = n * 10 + (c - '0');
  }
  return n;
}

// OpenSSH's parse_absolute_time: YYYYMMDD[HHMM[SS]][Z].
std::optional<std::int64_t> parseTime(std::string_view s) {
  bool utc = false;
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) {
    utc = true;
    s.remove_suffix(1);
  }
  if ((s.size() != 8 && s.size() != 12 && s.size() != 14) || !allDigits(s)) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = number(s.substr(0, 4)) - 1900;
  tm.tm_mon = number(s.substr(4, 2)) - 1;
  tm.tm_mday = number(s.substr(6, 2));
  if (s.size() >= 12) {
    tm.tm_hour = number(s.substr(8, 2));
    tm.tm_min = number(s.substr(10, 2));
  }
  if (s.size() == 14) {
    tm.tm_sec = number(s.substr(12, 2));
  }
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59) {
    return std::nullopt;
  }
  const std::tm wanted = tm;
  tm.tm_isdst = -1;
  const std::time_t t = utc ? ::timegm(&tm) : ::mktime(&tm);
  std::tm back{};
  if (t == static_cast<std::time_t>(-1) ||
      (utc ? ::gmtime_r(&t, &back) : ::localtime_r(&t, &back)) == nullptr) {
    return std::nullopt;
  }
  // Normalisation moved the date (the 31st of a 30-day month): not a real time.
  if (back.tm_year != wanted.tm_year || back.tm_mon != wanted.tm_mon ||
      back.tm_mday != wanted.tm_mday) {
    return std::nullopt;
  }
  return static_cast<std::int64_t>(t);
}

// OpenSSH's sshsigopt_parse.
std::optional<std::string> parseOptions(std::string_view opts, AllowedSigner& signer) {
  while (!opts.empty()) {
    if (iequalsPrefix(opts, "cert-authority")) {
      opts.remove_prefix(std::string_view("cert-authority").size());
      signer.certAuthority = true;
    } else if (iequalsPrefix(opts, "no-touch-required")) {
      opts.remove_prefix(std::string_view("no-touch-required").size());
      signer.noTouchRequired = true;
    } else if (iequalsPrefix(opts, "namespaces=")) {
      opts.remove_prefix(std::string_view("namespaces=").size());
      if (signer.namespaces) {
        return "multiple \"namespaces\" clauses";
      }
      auto value = dequote(opts);
      if (!value) {
        return "bad quoting in namespaces";
      }
      signer.namespaces = std::move(*value);
    } else if (iequalsPrefix(opts, "valid-after=") || iequalsPrefix(opts, "valid-before=")) {
      const bool after = iequalsPrefix(opts, "valid-after=");
      opts.remove_prefix(after ? std::string_view("valid-after=").size()
                               : std::string_view("valid-before=").size());
      std::optional<std::int64_t>& slot = after ? signer.validAfter : signer.validBefore;
      const char* name = after ? "valid-after" : "valid-before";
      if (slot) {
        return std::string("multiple \"") + name + "\" clauses";
      }
      auto value = dequote(opts);
      if (!value) {
        return std::string("bad quoting in ") + name;
      }
      slot = parseTime(*value);
      if (!slot) {
        return std::string("invalid ") + name + " time '" + *value + "'";
      }
    } else {
      return "unknown option '" + std::string(opts.substr(0, opts.find_first_of(",="))) + "'";
    }
    if (opts.empty()) {
      break;
    }
    if (opts.front() != ',') {
      return "unknown option";
    }
    opts.remove_prefix(1);
    if (opts.empty()) {
      return "unexpected end of options";
    }
  }
  if (signer.validAfter && signer.validBefore && *signer.validBefore <= *signer.validAfter) {
    return "\"valid-before\" time is before \"valid-after\"";
  }
  return std::nullopt;
}

// A key type we do not verify (ssh-dss, certificates, a newer OpenSSH's, ...). No option name
// looks like this, so the token cannot have been meant as options.
bool isOtherKeyType(std::string_view token) {
  return token.find_first_of("=\"") == std::string_view::npos &&
         (token.starts_with("ssh-") || token.starts_with("ecdsa-") || token.starts_with("sk-") ||
          token.ends_with("@openssh.com"));
}

// The options field: everything up to the first unquoted blank.
std::optional<std::string_view> takeOptions(std::string_view& s) {
  bool quoted = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted && c == '\\' && i + 1 < s.size() && s[i + 1] == '"') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && isSpace(c)) {
      break;
    }
  }
  if (quoted) {
    return std::nullopt;
  }
  std::string_view opts = s.substr(0, i);
  s.remove_prefix(i);
  return opts;
}

// The type named first in a key blob, if it has one.
std::optional<std::string_view> blobKeyType(std::string_view blob) {
  WireReader r(blob);
  std::string_view type;
  if (!r.string(type)) {
    return std::nullopt;
  }
  return type;
}

// nullopt: a well-formed line of a key type we cannot verify, skipped with a warning so that
// one such signer (a type from a newer OpenSSH, say) does not lock every other one out.
Result<std::optional<AllowedSigner>> parseSignerLine(std::string_view line, size_t lineNo,
                                                     std::vector<std::string>* warnings) {
  auto bad = [lineNo](const std::string& why) {
    return terminal("allowed_signers:" + std::to_string(lineNo) + ": " + why);
  };
  AllowedSigner signer;
  signer.line = lineNo;

  std::string_view principals;
  if (line.front() == '"') {
    const size_t close = line.find('"', 1);
    if (close == std::string_view::npos) {
      return bad("unterminated quote in principals");
    }
    principals = line.substr(1, close - 1);
    line.remove_prefix(close + 1);
    if (!line.empty() && !isSpace(line.front())) {
      return bad("text after the quoted principals");
    }
  } else {
    principals = takeToken(line);
    if (principals.find('"') != std::string_view::npos) {
      return bad("a quote inside the principals; quote the whole field");
    }
  }
  while (true) {
    const size_t comma = principals.find(',');
    const std::string_view p = principals.substr(0, comma);
    if (p.empty()) {
      return bad("empty principal");
    }
    signer.principals.emplace_back(p);
    if (comma == std::string_view::npos) {
      break;
    }
    principals.remove_prefix(comma + 1);
  }

  skipSpace(line);
  std::string_view rest = line;
  std::string_view keyType = takeToken(rest);
  if (keyType.empty()) {
    return bad("missing key");
  }
  if (!isSupportedKeyType(keyType) && !isOtherKeyType(keyType)) {
    auto opts = takeOptions(line);
    if (!opts) {
      return bad("unterminated quote in options");
    }
    if (auto why = parseOptions(*opts, signer)) {
      return bad("bad options: " + *why);
    }
    skipSpace(line);
    rest = line;
    keyType = takeToken(rest);
    if (keyType.empty()) {
      return bad("missing key");
    }
  }
  skipSpace(rest);
  const std::string_view b64 = takeToken(rest);
  if (b64.empty()) {
    return bad("missing key data");
  }
  auto blob = decodeBase64(b64);
  if (!blob) {
    return bad("key data is not valid base64");
  }
  if (!isSupportedKeyType(keyType)) {
    if (blobKeyType(*blob) != keyType) {
      return bad("key data is not a " + std::string(keyType) + " key");
    }
    if (warnings != nullptr) {
      warnings->push_back("allowed_signers:" + std::to_string(lineNo) + ": key type '" +
                          std::string(keyType) + "' is not supported; the line is skipped");
    }
    return std::optional<AllowedSigner>();
  }
  auto key = parsePublicKey(*blob);
  if (!key) {
    return bad(key.error().message);
  }
  if (key->type != keyType) {
    return bad("key data is a " + key->type + " key, the line says " + std::string(keyType));
  }
  signer.keyType = std::string(keyType);
  signer.keyBlob = std::move(*blob);
  // What is left, if anything, is a comment.
  return std::optional<AllowedSigner>(std::move(signer));
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

Result<std::vector<AllowedSigner>> parseAllowedSigners(std::string_view text,
                                                       std::vector<std::string>* warnings) {
  if (text.size() > kMaxAllowedSignersBytes) {
    return terminal("allowed_signers is larger than " + std::to_string(kMaxAllowedSignersBytes) +
                    " bytes");
  }
  if (text.find('\0') != std::string_view::npos) {
    return terminal("allowed_signers contains a NUL byte");
  }
  std::vector<AllowedSigner> signers;
  size_t lineNo = 0;
  while (!text.empty()) {
    std::string_view line = nextLine(text);
    ++lineNo;
    skipSpace(line);
    if (line.empty() || line.front() == '#') {
      continue;
    }
    if (signers.size() == kMaxAllowedSigners) {
      return terminal("allowed_signers has more than " + std::to_string(kMaxAllowedSigners) +
                      " keys");
    }
    auto signer = parseSignerLine(line, lineNo, warnings);
    if (!signer) {
      return signer.error();
    }
    if (signer->has_value()) {
      signers.push_back(std::move(**signer));
    }
  }
  return signers;
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
  // PROTOCOL.sshsig section 2.
  WireReader r(*blob);
  std::string_view magic;
  std::uint32_t version = 0;
  std::string_view publicKey;
  std::string_view sigNamespace;
  std::string_view reserved;
  std::string_view hashAlgorithm;
  std::string_view signature;
  if (!r.bytes(6, magic) || magic != "SSHSIG") {
    return terminal("malformed SSH signature: no SSHSIG preamble");
  }
  if (!r.u32(version)) {
    return terminal("malformed SSH signature: truncated");
  }
  if (version != 1) {
    return terminal("unsupported SSH signature version " + std::to_string(version));
  }
  if (!r.string(publicKey) || !r.string(sigNamespace) || !r.string(reserved) ||
      !r.string(hashAlgorithm) || !r.string(signature)) {
    return terminal("malformed SSH signature: truncated");
  }
  if (!r.done()) {
    return terminal("malformed SSH signature: trailing data");
  }
  auto key = parsePublicKey(publicKey);
  if (!key) {
    return terminal("SSH signature key: " + key.error().message);
  }
  if (sigNamespace != ns) {
    return terminal("signature is for namespace '" + std::string(sigNamespace) + "', expected '" +
                    std::string(ns) + "'");
  }
  const EVP_MD* md = nullptr;
  if (hashAlgorithm == "sha256") {
    md = EVP_sha256();
  } else if (hashAlgorithm == "sha512") {
    md = EVP_sha512();
  } else {
    return terminal("unsupported SSH signature hash algorithm '" + std::string(hashAlgorithm) +
                    "'");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLen = 0;
  if (EVP_Digest(payload.data(), payload.size(), digest, &digestLen, md, nullptr) != 1) {
    return cryptoError("cannot hash the signed content");
  }
  // PROTOCOL.sshsig section 3: what the key actually signed.
  std::string signedData = "SSHSIG";
  putString(signedData, sigNamespace);
  putString(signedData, reserved);
  putString(signedData, hashAlgorithm);
  putString(signedData, std::string_view(reinterpret_cast<const char*>(digest), digestLen));
  auto sk = verifyWithKey(*key, signature, signedData);
  if (!sk) {
    return sk.error();
  }

  const std::string fingerprint = sshFingerprint(publicKey);
  std::string refusal;
  for (const AllowedSigner& signer : signers) {
    if (signer.certAuthority || signer.keyBlob != publicKey) {
      continue;
    }
    const std::string who = "allowed signer " + signer.principals.front() + " (line " +
                            std::to_string(signer.line) + ")";
    if (signer.namespaces && matchPatternList(ns, *signer.namespaces) != 1) {
      if (refusal.empty()) {
        refusal = who + " may not sign namespace '" + std::string(ns) + "'";
      }
      continue;
    }
    if (*sk && ((*sk)->flags & kSkUserPresent) == 0 && !signer.noTouchRequired) {
      if (refusal.empty()) {
        refusal = who + " needs user presence (a touch of the security key), which the " +
                  "signature does not attest; the line's no-touch-required option waives it";
      }
      continue;
    }
    if (signer.validAfter || signer.validBefore) {
      if (!verifyTime) {
        if (refusal.empty()) {
          refusal = who + " has a validity period and no signing time is known";
        }
        continue;
      }
      if (signer.validAfter && *verifyTime < *signer.validAfter) {
        if (refusal.empty()) {
          refusal = who + " is not yet valid at the signing time";
        }
        continue;
      }
      if (signer.validBefore && *verifyTime > *signer.validBefore) {
        if (refusal.empty()) {
          refusal = who + " has expired at the signing time";
        }
        continue;
      }
    }
    VerifiedSignature verified;
    verified.principal = signer.principals.front();
    verified.principals = signer.principals;
    verified.keyType = key->type;
    verified.fingerprint = fingerprint;
    verified.hashAlgorithm = std::string(hashAlgorithm);
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
