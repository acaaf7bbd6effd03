// SSHSIG and allowed_signers against keys and signatures made by the real ssh-keygen.
#include "reconciler/source/sshsig.h"
#include "tests/support/command.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeplane::source {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::readFile;
using testing::runCommand;

void writeFile(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// --- Base64 and SSH wire helpers, to take real signatures apart and build broken ones ---

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64Encode(std::string_view in) {
  std::string out;
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) {
      out.push_back(kAlphabet[(n >> shift) & 63]);
    }
  }
  if (in.size() - i == 1) {
    const std::uint32_t n = at(i) << 16;
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8);
    out += {kAlphabet[(n >> 18) & 63], kAlphabet[(n >> 12) & 63], kAlphabet[(n >> 6) & 63], '='};
  }
  return out;
}

std::string b64Decode(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) {
      continue;  // '=' and newlines
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string armor(std::string_view blob) {
  std::string b64 = b64Encode(blob);
  std::string out = "-----BEGIN SSH SIGNATURE-----\n";
  for (size_t i = 0; i < b64.size(); i += 70) {
    out += b64.substr(i, 70) + "\n";
  }
  return out + "-----END SSH SIGNATURE-----\n";
}

std::string dearmor(std::string_view armored) {
  const size_t begin = armored.find('\n') + 1;
  const size_t end = armored.find("-----END");
  return b64Decode(armored.substr(begin, end - begin));
}

std::string sshString(std::string_view s) {
  std::string out;
  const auto len = static_cast<std::uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((len >> shift) & 0xff));
  }
  return out + std::string(s);
}

// The fields of an SSHSIG blob, to rebuild it with one of them changed.
struct SigFields {
  std::string publicKey;
  std::string ns;
  std::string reserved;
  std::string hashAlgorithm;
  std::string signature;

  std::string blob(std::uint32_t version = 1) const {
    std::string out = "SSHSIG";
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((version >> shift) & 0xff));
    }
    return out + sshString(publicKey) + sshString(ns) + sshString(reserved) +
           sshString(hashAlgorithm) + sshString(signature);
  }
};

SigFields splitBlob(std::string_view blob) {
  SigFields f;
  size_t pos = 10;  // magic + version
  auto next = [&]() {
    std::uint32_t len = 0;
    for (int i = 0; i < 4; ++i) {
      len = (len << 8) | static_cast<unsigned char>(blob[pos + static_cast<size_t>(i)]);
    }
    std::string s(blob.substr(pos + 4, len));
    pos += 4 + len;
    return s;
  };
  f.publicKey = next();
  f.ns = next();
  f.reserved = next();
  f.hashAlgorithm = next();
  f.signature = next();
  return f;
}

// --- Keys, made once for the whole suite (RSA generation is slow) ---

class SshSigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (runCommand("command -v ssh-keygen").status != 0) {
      return;  // SetUp() skips every test
    }
    char tmpl[] = "/tmp/edgeplane-sshsig-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = new fs::path(tmpl);
    for (const auto& [name, args] : std::vector<std::pair<std::string, std::string>>{
             {"alice", "-t ed25519"},
             {"mallory", "-t ed25519"},
             {"p256", "-t ecdsa -b 256"},
             {"p384", "-t ecdsa -b 384"},
             {"p521", "-t ecdsa -b 521"},
             {"rsa", "-t rsa -b 3072"},
             {"rsa1024", "-t rsa -b 1024"},
         }) {
      std::string command = "ssh-keygen -q " + args;
      command += " -N '' -C " + name + " -f " + (*dir_ / name).string();
      const CommandResult r = runCommand(command);
      ASSERT_EQ(r.status, 0) << r.output;
    }
  }
  void SetUp() override {
    if (dir_ == nullptr) {
      GTEST_SKIP() << "ssh-keygen is not installed";
    }
  }
  static void TearDownTestSuite() {
    if (dir_ == nullptr) {
      return;
    }
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    dir_ = nullptr;
  }

  static fs::path key(const std::string& name) { return *dir_ / name; }

  // "ssh-ed25519 AAAA… alice" without the newline.
  static std::string publicLine(const std::string& name) {
    std::string line = readFile(key(name).string() + ".pub");
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
      line.pop_back();
    }
    return line;
  }

  // The armored signature `ssh-keygen -Y sign` makes over `content`.
  static std::string sign(const std::string& keyName, std::string_view content,
                          const std::string& ns = "git", const std::string& extra = "") {
    static int counter = 0;
    const fs::path file = *dir_ / ("msg" + std::to_string(++counter));
    writeFile(file, content);
    const CommandResult r = runCommand("ssh-keygen -Y sign -n " + ns + " " + extra + " -f " +
                                       key(keyName).string() + " " + file.string());
    EXPECT_EQ(r.status, 0) << r.output;
    return readFile(file.string() + ".sig");
  }

  static std::vector<AllowedSigner> signers(const std::string& text) {
    auto parsed = parseAllowedSigners(text);
    EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().message);
    return parsed.ok() ? parsed.value() : std::vector<AllowedSigner>{};
  }

  static std::string aliceLine() { return "alice@example.com " + publicLine("alice") + "\n"; }

  static fs::path* dir_;
};

fs::path* SshSigTest::dir_ = nullptr;

constexpr std::string_view kPayload =
    "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
    "author A U Thor <author@example.com> 1700000000 +0000\n"
    "committer A U Thor <author@example.com> 1700000000 +0000\n"
    "\n"
    "edge: open port 22015\n";

// --- Verification ---

TEST_F(SshSigTest, VerifiesEd25519SignatureFromSshKeygen) {
  const std::string sig = sign("alice", kPayload);
  auto verified = verifySshSig(sig, kPayload, kGitNamespace, signers(aliceLine()));
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->principal, "alice@example.com");
  EXPECT_EQ(verified->keyType, "ssh-ed25519");
  EXPECT_EQ(verified->hashAlgorithm, "sha512");  // ssh-keygen's default
  EXPECT_EQ(verified->signerLine, 1u);
  // The fingerprint is the one ssh-keygen prints for the key.
  const CommandResult fp = runCommand("ssh-keygen -lf " + key("alice").string() + ".pub");
  ASSERT_EQ(fp.status, 0);
  EXPECT_TRUE(contains(fp.output, verified->fingerprint)) << fp.output << verified->fingerprint;
}

TEST_F(SshSigTest, VerifiesSha256Signature) {
  const std::string sig = sign("alice", kPayload, "git", "-O hashalg=sha256");
  auto verified = verifySshSig(sig, kPayload, kGitNamespace, signers(aliceLine()));
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->hashAlgorithm, "sha256");
}

TEST_F(SshSigTest, VerifiesEmptyPayload) {
  const std::string sig = sign("alice", "");
  auto verified = verifySshSig(sig, "", kGitNamespace, signers(aliceLine()));
  ASSERT_TRUE(verified.ok()) << verified.error().message;
}

TEST_F(SshSigTest, VerifiesEcdsaAndRsaKeys) {
  for (const std::string name : {"p256", "p384", "p521", "rsa"}) {
    SCOPED_TRACE(name);
    const std::string sig = sign(name, kPayload);
    const auto allowed = signers(name + "@example.com " + publicLine(name) + "\n");
    auto verified = verifySshSig(sig, kPayload, kGitNamespace, allowed);
    ASSERT_TRUE(verified.ok()) << verified.error().message;
    EXPECT_EQ(verified->principal, name + "@example.com");
    // ...and the same signature is refused over other content.
    EXPECT_FALSE(verifySshSig(sig, std::string(kPayload) + " ", kGitNamespace, allowed).ok());
  }
}

TEST_F(SshSigTest, PicksTheLineOfTheSigningKey) {
  const std::string text = "# team keys\n\n" + std::string("mallory@example.com ") +
                           publicLine("mallory") + "\n" + "bob@example.com,alice@example.com " +
                           publicLine("alice") + " a trailing comment\n";
  auto verified = verifySshSig(sign("alice", kPayload), kPayload, kGitNamespace, signers(text));
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->principal, "bob@example.com");
  EXPECT_EQ(verified->principals,
            (std::vector<std::string>{"bob@example.com", "alice@example.com"}));
  EXPECT_EQ(verified->signerLine, 4u);
}

TEST_F(SshSigTest, RefusesWrongNamespace) {
  const std::string sig = sign("alice", kPayload, "file");
  auto verified = verifySshSig(sig, kPayload, kGitNamespace, signers(aliceLine()));
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(contains(verified.error().message, "namespace 'file'")) << verified.error().message;
  EXPECT_FALSE(verified.error().retryable);
  // Asking for the namespace it was made in works: the refusal was about the namespace only.
  EXPECT_TRUE(verifySshSig(sig, kPayload, "file", signers(aliceLine())).ok());
}

TEST_F(SshSigTest, RefusesTamperedPayload) {
  const std::string sig = sign("alice", kPayload);
  std::string tampered(kPayload);
  tampered.replace(tampered.find("22015"), 5, "22016");
  auto verified = verifySshSig(sig, tampered, kGitNamespace, signers(aliceLine()));
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(contains(verified.error().message, "does not match")) << verified.error().message;
}

TEST_F(SshSigTest, RefusesUnknownKey) {
  const std::string sig = sign("mallory", kPayload);
  auto verified = verifySshSig(sig, kPayload, kGitNamespace, signers(aliceLine()));
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(contains(verified.error().message, "not an allowed signer"))
      << verified.error().message;
  // Named by fingerprint, so an operator can tell which key it was.
  const CommandResult fp = runCommand("ssh-keygen -lf " + key("mallory").string() + ".pub");
  const std::string fingerprint = fp.output.substr(fp.output.find("SHA256:"), 50);
  EXPECT_TRUE(contains(verified.error().message, fingerprint)) << verified.error().message;
  // No allowed signers at all: nothing verifies.
  EXPECT_FALSE(verifySshSig(sign("alice", kPayload), kPayload, kGitNamespace, {}).ok());
}

TEST_F(SshSigTest, SignerNamespacesOption) {
  const std::string sig = sign("alice", kPayload);
  const std::string pub = publicLine("alice");
  auto check = [&](const std::string& options) {
    return verifySshSig(sig, kPayload, kGitNamespace,
                        signers("alice@example.com " + options + " " + pub + "\n"));
  };
  auto other = check("namespaces=\"other\"");
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(contains(other.error().message, "may not sign namespace 'git'"))
      << other.error().message;
  EXPECT_TRUE(check("namespaces=\"git\"").ok());
  EXPECT_TRUE(check("namespaces=\"file,git\"").ok());
  EXPECT_TRUE(check("namespaces=\"g*\"").ok());
  EXPECT_TRUE(check("NAMESPACES=\"gi?\"").ok());
  EXPECT_FALSE(check("namespaces=\"*,!git\"").ok());
  EXPECT_FALSE(check("namespaces=\"\"").ok());
  // A line for another namespace does not hide a later line that allows this one.
  const std::string two = "alice@example.com namespaces=\"file\" " + pub + "\n" +
                          "alice@example.com namespaces=\"git\" " + pub + "\n";
  auto verified = verifySshSig(sig, kPayload, kGitNamespace, signers(two));
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->signerLine, 2u);
}

TEST_F(SshSigTest, CertAuthorityLineMatchesNoPlainKey) {
  const std::string text = "*@example.com cert-authority " + publicLine("alice") + "\n";
  auto verified = verifySshSig(sign("alice", kPayload), kPayload, kGitNamespace, signers(text));
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(contains(verified.error().message, "not an allowed signer"));
}

TEST_F(SshSigTest, ValidityPeriodIsCheckedAtTheGivenTime) {
  const std::string sig = sign("alice", kPayload);
  const std::string pub = publicLine("alice");
  const auto window = signers(
      "alice@example.com valid-after=\"20200101Z\",valid-before=\"20300101Z\" " + pub + "\n");
  ASSERT_EQ(window.size(), 1u);
  EXPECT_EQ(window[0].validAfter, 1577836800);
  EXPECT_EQ(window[0].validBefore, 1893456000);
  EXPECT_TRUE(verifySshSig(sig, kPayload, kGitNamespace, window, 1700000000).ok());
  auto early = verifySshSig(sig, kPayload, kGitNamespace, window, 1500000000);
  ASSERT_FALSE(early.ok());
  EXPECT_TRUE(contains(early.error().message, "not yet valid")) << early.error().message;
  auto late = verifySshSig(sig, kPayload, kGitNamespace, window, 1900000000);
  ASSERT_FALSE(late.ok());
  EXPECT_TRUE(contains(late.error().message, "expired")) << late.error().message;
  auto unknown = verifySshSig(sig, kPayload, kGitNamespace, window);
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message, "no signing time")) << unknown.error().message;
}

// --- Malformed signatures ---

TEST_F(SshSigTest, RefusesMalformedArmor) {
  const std::string sig = sign("alice", kPayload);
  const auto allowed = signers(aliceLine());
  auto refused = [&](const std::string& armored, std::string_view why) {
    auto verified = verifySshSig(armored, kPayload, kGitNamespace, allowed);
    EXPECT_FALSE(verified.ok()) << armored;
    if (!verified.ok()) {
      EXPECT_TRUE(contains(verified.error().message, why)) << verified.error().message;
    }
  };
  refused("", "not an SSH signature");
  refused(" " + sig, "not an SSH signature");
  refused(sig.substr(0, sig.find("-----END")), "no '-----END SSH SIGNATURE-----' line");
  refused(sig + "trailing text\n", "text after the end line");
  refused("-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----\n", "OpenPGP");
  std::string badChar = sig;
  badChar[40] = '*';
  refused(badChar, "invalid base64 character");
  std::string emptyLine = sig;
  emptyLine.insert(sig.find('\n') + 1, "\n");
  refused(emptyLine, "empty line");
  // Base64 that is not canonical: a dropped character, a wrong pad, non-zero spare bits.
  std::string dropped = sig;
  dropped.erase(40, 1);
  refused(dropped, "invalid base64");
  const std::string blob = dearmor(sig);
  const std::string b64 = b64Encode(blob);
  if (const size_t pad = b64.find('='); pad != std::string::npos) {
    // The character before the padding has spare low bits, which must be zero.
    std::string spareBits = b64;
    spareBits[pad - 1] = kAlphabet[kAlphabet.find(b64[pad - 1]) | 1];
    refused("-----BEGIN SSH SIGNATURE-----\n" + spareBits + "\n-----END SSH SIGNATURE-----\n",
            "invalid base64");
  }
  refused("-----BEGIN SSH SIGNATURE-----\n" + b64 + "==\n-----END SSH SIGNATURE-----\n",
          "invalid base64");
  refused(std::string(kMaxArmoredSignatureBytes + 1, 'A'), "larger than");
  // CRLF line endings and no final newline are fine.
  std::string crlf;
  for (char c : sig) {
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  }
  EXPECT_TRUE(verifySshSig(crlf, kPayload, kGitNamespace, allowed).ok());
  EXPECT_TRUE(verifySshSig(sig.substr(0, sig.size() - 1), kPayload, kGitNamespace, allowed).ok());
}

TEST_F(SshSigTest, RefusesMalformedBlobs) {
  const std::string sig = sign("alice", kPayload);
  const auto allowed = signers(aliceLine());
  const std::string blob = dearmor(sig);
  const SigFields fields = splitBlob(blob);
  ASSERT_EQ(armor(blob), sig);  // the helpers round-trip a real signature
  auto refused = [&](const std::string& b, std::string_view why) {
    auto verified = verifySshSig(armor(b), kPayload, kGitNamespace, allowed);
    EXPECT_FALSE(verified.ok());
    if (!verified.ok()) {
      EXPECT_TRUE(contains(verified.error().message, why)) << verified.error().message;
    }
  };
  refused("SSHSIH" + blob.substr(6), "no SSHSIG preamble");
  refused(fields.blob(2), "version 2");
  refused(blob + "x", "trailing data");
  std::string huge = blob;
  huge[10] = huge[11] = huge[12] = huge[13] = '\xff';  // publickey length 0xffffffff
  refused(huge, "truncated");
  SigFields f = fields;
  f.hashAlgorithm = "sha1";
  refused(f.blob(), "hash algorithm 'sha1'");
  f = fields;
  f.ns = "file";  // changed after signing: the signature covers the namespace
  auto swapped = verifySshSig(armor(f.blob()), kPayload, "file", allowed);
  EXPECT_FALSE(swapped.ok());
  f = fields;
  f.reserved = "x";  // likewise the reserved field
  refused(f.blob(), "does not match");
  f = fields;
  f.signature = sshString("ssh-ed25519") + sshString(std::string(63, 'x'));
  refused(f.blob(), "malformed ssh-ed25519 signature");
  f = fields;
  f.signature = sshString("rsa-sha2-512") + sshString(std::string(64, 'x'));
  refused(f.blob(), "malformed ssh-ed25519 signature");
  f = fields;
  f.publicKey = sshString("ssh-ed25519") + sshString(std::string(31, 'k'));
  refused(f.blob(), "malformed ssh-ed25519 public key");
  f = fields;
  f.publicKey = sshString("ssh-dss") + sshString("p");
  refused(f.blob(), "unsupported key type 'ssh-dss'");

  // Every prefix of a good blob, and every single-byte change, is refused.
  for (size_t n = 0; n < blob.size(); ++n) {
    EXPECT_FALSE(verifySshSig(armor(blob.substr(0, n)), kPayload, kGitNamespace, allowed).ok())
        << "prefix " << n;
  }
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string changed = blob;
    changed[i] = static_cast<char>(changed[i] ^ 0x01);
    EXPECT_FALSE(verifySshSig(armor(changed), kPayload, kGitNamespace, allowed).ok())
        << "byte " << i;
  }
}

TEST_F(SshSigTest, RsaMustUseSha2) {
  const std::string sig = sign("rsa", kPayload);
  const auto allowed = signers("r@example.com " + publicLine("rsa") + "\n");
  SigFields f = splitBlob(dearmor(sig));
  ASSERT_EQ(f.signature.substr(4, 12), "rsa-sha2-512");
  // Rename the algorithm to SHA-1 "ssh-rsa": refused before any maths.
  std::string body = f.signature.substr(4 + 12);
  f.signature = sshString("ssh-rsa") + body;
  auto verified = verifySshSig(armor(f.blob()), kPayload, kGitNamespace, allowed);
  ASSERT_FALSE(verified.ok());
  EXPECT_TRUE(contains(verified.error().message, "rsa-sha2-256 or rsa-sha2-512"))
      << verified.error().message;
}

TEST_F(SshSigTest, RefusesNonSshArguments) {
  const std::string sig = sign("alice", kPayload);
  EXPECT_FALSE(verifySshSig(sig, kPayload, "", signers(aliceLine())).ok());
}

// --- allowed_signers ---

TEST_F(SshSigTest, ParsesAllowedSignersForms) {
  const std::string pub = publicLine("alice");
  const std::string p256 = publicLine("p256");
  const std::string text =
      "# comment\r\n"
      "\r\n"
      "   \t\n"
      "  alice@example.com " +
      pub + "\r\n" + "\"Alice Smith,bob\" " + p256 + " comment with spaces\n" +
      "*@example.com cert-authority,Namespaces=\"git,file\" " + pub + "\n" +
      "carol valid-after=\"20240101\",valid-before=\"202501011200Z\" " + pub;
  auto parsed = parseAllowedSigners(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const auto& s = parsed.value();
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].principals, std::vector<std::string>{"alice@example.com"});
  EXPECT_EQ(s[0].line, 4u);
  EXPECT_EQ(s[0].keyType, "ssh-ed25519");
  EXPECT_EQ(s[0].keyBlob.size(), 51u);  // string type + string 32-byte key
  EXPECT_FALSE(s[0].namespaces.has_value());
  EXPECT_FALSE(s[0].certAuthority);
  EXPECT_EQ(s[1].principals, (std::vector<std::string>{"Alice Smith", "bob"}));
  EXPECT_EQ(s[1].keyType, "ecdsa-sha2-nistp256");
  EXPECT_TRUE(s[2].certAuthority);
  EXPECT_EQ(s[2].namespaces, "git,file");
  EXPECT_EQ(s[2].principals, std::vector<std::string>{"*@example.com"});
  ASSERT_TRUE(s[3].validAfter.has_value());  // local time: only its presence is portable
  EXPECT_EQ(s[3].validBefore, 1735732800);
  EXPECT_EQ(s[3].line, 7u);
  // An empty file, or one of comments only, allows nobody.
  auto empty = parseAllowedSigners("# nobody yet\n\n");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(SshSigTest, RefusesMalformedAllowedSigners) {
  const std::string pub = publicLine("alice");
  const std::string keyB64 = pub.substr(pub.find(' ') + 1, pub.rfind(' ') - pub.find(' ') - 1);
  const std::string p256B64 = [&] {
    const std::string l = publicLine("p256");
    return l.substr(l.find(' ') + 1, l.rfind(' ') - l.find(' ') - 1);
  }();
  auto refused = [&](const std::string& text, std::string_view why) {
    auto parsed = parseAllowedSigners(text);
    EXPECT_FALSE(parsed.ok()) << text;
    if (!parsed.ok()) {
      EXPECT_TRUE(contains(parsed.error().message, why)) << parsed.error().message;
      EXPECT_FALSE(parsed.error().retryable);
    }
  };
  const std::string good = "a@x " + pub + "\n";
  refused(good + "b@x\n", "allowed_signers:2: missing key");
  refused(good + good + "c@x ssh-ed25519\n", "allowed_signers:3: missing key data");
  refused("a@x frobnicate=\"1\" " + pub + "\n", "unknown option 'frobnicate'");
  refused("a@x namespaces=\"git\",namespaces=\"x\" " + pub + "\n", "multiple \"namespaces\"");
  refused("a@x namespaces=\"git " + pub + "\n", "unterminated quote");
  refused("a@x namespaces=git " + pub + "\n", "bad quoting");
  refused("a@x namespaces=\"git\", " + pub + "\n", "unexpected end of options");
  refused("a@x cert-authorityx " + pub + "\n", "unknown option");
  refused("a@x,,b@x " + pub + "\n", "empty principal");
  refused("\"a@x " + pub + "\n", "unterminated quote in principals");
  refused("a@x ssh-ed25519 " + keyB64.substr(0, keyB64.size() - 4) + "\n", "");
  refused("a@x ssh-ed25519 " + keyB64 + "=\n", "not valid base64");
  refused("a@x ssh-ed25519 !" + keyB64.substr(1) + "\n", "not valid base64");
  refused("a@x ssh-ed25519 " + p256B64 + "\n", "the line says ssh-ed25519");
  // An unknown key type is skipped (SkipsUnknownKeyTypesWithAWarning), but only on a line
  // whose key data is of that type.
  refused("a@x ssh-dss AAAAB3NzaC1kc3MAAACBAP\n", "not valid base64");
  refused("a@x ssh-ed448 AAAA\n", "key data is not a ssh-ed448 key");
  refused("a@x sk-ssh-ed25519@openssh.com AAAA\n", "malformed public key");
  refused("\"Alice Smith\",bob " + pub + "\n", "text after the quoted principals");
  refused("alice\"x " + pub + "\n", "quote inside the principals");
  refused("a@x valid-after=\"20230230\" " + pub + "\n", "invalid valid-after time");
  refused("a@x valid-after=\"2023\" " + pub + "\n", "invalid valid-after time");
  refused("a@x valid-after=\"20250101Z\",valid-before=\"20240101Z\" " + pub + "\n",
          "before \"valid-after\"");
  refused("a@x " + publicLine("rsa1024") + "\n", "1024 bits");
  refused(std::string("a@x ") + pub + "\n" + std::string(1, '\0'), "NUL");
  refused(std::string(kMaxAllowedSignersBytes + 1, '#'), "larger than");
  // An ed25519 blob whose key is 31 bytes, and one with bytes after the key.
  const std::string blob = b64Decode(keyB64);
  refused("a@x ssh-ed25519 " + b64Encode(blob.substr(0, 4 + 11) + sshString(std::string(31, 'k'))) +
              "\n",
          "malformed ssh-ed25519 public key");
  refused("a@x ssh-ed25519 " + b64Encode(blob + "x") + "\n", "malformed ssh-ed25519 public key");
}

TEST_F(SshSigTest, RefusesOffCurveEcdsaKey) {
  const std::string line = publicLine("p256");
  const std::string b64 = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
  std::string blob = b64Decode(b64);
  blob.back() = static_cast<char>(blob.back() ^ 0x01);  // Y no longer on the curve
  auto parsed = parseAllowedSigners("a@x ecdsa-sha2-nistp256 " + b64Encode(blob) + "\n");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(contains(parsed.error().message, "invalid ecdsa-sha2-nistp256 public key"))
      << parsed.error().message;
}

TEST_F(SshSigTest, BoundsTheNumberOfSigners) {
  const std::string line = "a@x " + publicLine("alice") + "\n";
  std::string text;
  for (size_t i = 0; i < kMaxAllowedSigners; ++i) {
    text += line;
  }
  ASSERT_LE(text.size() + line.size(), kMaxAllowedSignersBytes);
  auto atLimit = parseAllowedSigners(text);
  ASSERT_TRUE(atLimit.ok()) << atLimit.error().message;
  EXPECT_EQ(atLimit->size(), kMaxAllowedSigners);
  auto over = parseAllowedSigners(text + line);
  ASSERT_FALSE(over.ok());
  EXPECT_TRUE(contains(over.error().message, "more than"));
}

// --- Security keys (FIDO: sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com) ---

// OpenSSH's own vectors (regress/unittests/sshsig/testdata, made by its mktestdata.sh with the
// sk-dummy authenticator): `ssh-keygen -Y sign -n unittest` over kRegressData, flags 0x01
// (user present), counter 0x12345678.
constexpr std::string_view kRegressData = "This is a test, this is only a test";
constexpr std::string_view kRegressEd25519SkKey =
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIJsaDYXQYruc6bilCYDI"
    "K4YSOeG+zmrRO2M9t03//7LHAAAABHNzaDo= ED25519-SK test key";
constexpr std::string_view kRegressEd25519SkSig =
    "-----BEGIN SSH SIGNATURE-----\n"
    "U1NIU0lHAAAAAQAAAEoAAAAac2stc3NoLWVkMjU1MTlAb3BlbnNzaC5jb20AAAAgmxoNhd\n"
    "Biu5zpuKUJgMgrhhI54b7OatE7Yz23Tf//sscAAAAEc3NoOgAAAAh1bml0dGVzdAAAAAAA\n"
    "AAAGc2hhNTEyAAAAZwAAABpzay1zc2gtZWQyNTUxOUBvcGVuc3NoLmNvbQAAAEAi+7eTjW\n"
    "/+LQ2M+sCD+KFtH1n7VFFJon/SZFsxODyV8cWTlFKj617Ys1Ur5TV6uaEXQhck8rBA2oQI\n"
    "HTPANLIPARI0Vng=\n"
    "-----END SSH SIGNATURE-----\n";
constexpr std::string_view kRegressEcdsaSkKey =
    "sk-ecdsa-sha2-nistp256@openssh.com AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAI"
    "bmlzdHAyNTYAAABBBKDVa5jRcT5V7E6ysmwVi7HJWh7p5D+hebLPakQcpnD2ajJZ6G/4WzuhlYWnclWY63JspDp299"
    "Rlhq5AT86/g8AAAAAEc3NoOg== ECDSA-SK test key";
constexpr std::string_view kRegressEcdsaSkSig =
    "-----BEGIN SSH SIGNATURE-----\n"
    "U1NIU0lHAAAAAQAAAH8AAAAic2stZWNkc2Etc2hhMi1uaXN0cDI1NkBvcGVuc3NoLmNvbQ\n"
    "AAAAhuaXN0cDI1NgAAAEEEoNVrmNFxPlXsTrKybBWLsclaHunkP6F5ss9qRBymcPZqMlno\n"
    "b/hbO6GVhadyVZjrcmykOnb31GWGrkBPzr+DwAAAAARzc2g6AAAACHVuaXR0ZXN0AAAAAA\n"
    "AAAAZzaGE1MTIAAAB3AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20A\n"
    "AABIAAAAIHohGwyy8iKT3zwd1TYA9V/Ioo7h/3zCJUtyq/Qigt/HAAAAIGzidTwq7D/kFa\n"
    "7Xjcp/KkdbIs4MfQpfAW/0OciajlpzARI0Vng=\n"
    "-----END SSH SIGNATURE-----\n";

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr), 1);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string u32(std::uint32_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
  return out;
}

// A security key made in software: signs as an authenticator would, by the layout of OpenSSH's
// PROTOCOL.u2f, so that any flags and counter can be tried.
class SoftSk {
 public:
  explicit SoftSk(bool ecdsa, std::string application = "ssh:")
      : ecdsa_(ecdsa), application_(std::move(application)) {
    pkey_ = ecdsa ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                  : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    EXPECT_NE(pkey_, nullptr);
  }
  ~SoftSk() { EVP_PKEY_free(pkey_); }
  SoftSk(const SoftSk&) = delete;
  SoftSk& operator=(const SoftSk&) = delete;

  std::string type() const {
    return ecdsa_ ? "sk-ecdsa-sha2-nistp256@openssh.com" : "sk-ssh-ed25519@openssh.com";
  }
  std::string publicBlob() const {
    unsigned char buf[128];
    size_t len = 0;
    if (ecdsa_) {
      EXPECT_EQ(EVP_PKEY_get_octet_string_param(pkey_, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf,
                                                sizeof buf, &len),
                1);
      return sshString(type()) + sshString("nistp256") +
             sshString(std::string(reinterpret_cast<char*>(buf), len)) + sshString(application_);
    }
    len = sizeof buf;
    EXPECT_EQ(EVP_PKEY_get_raw_public_key(pkey_, buf, &len), 1);
    return sshString(type()) + sshString(std::string(reinterpret_cast<char*>(buf), len)) +
           sshString(application_);
  }
  std::string signerLine(const std::string& options = "") const {
    return "sk@example.com " + (options.empty() ? "" : options + " ") + type() + " " +
           b64Encode(publicBlob()) + " soft-sk\n";
  }

  // The armored SSHSIG over `message` in namespace "git", hash sha512, as ssh-keygen makes it.
  std::string sign(std::string_view message, std::uint8_t flags, std::uint32_t counter) const {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digestLen = 0;
    EXPECT_EQ(EVP_Digest(message.data(), message.size(), digest, &digestLen, EVP_sha512(), nullptr),
              1);
    const std::string toSign = "SSHSIG" + sshString("git") + sshString("") + sshString("sha512") +
                               sshString(std::string(reinterpret_cast<char*>(digest), digestLen));
    const std::string u2f = sha256(application_) + std::string(1, static_cast<char>(flags)) +
                            u32(counter) + sha256(toSign);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, ecdsa_ ? EVP_sha256() : nullptr, nullptr, pkey_), 1);
    size_t sigLen = 0;
    EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &sigLen, bytes(u2f), u2f.size()), 1);
    std::string sig(sigLen, '\0');
    EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sigLen, bytes(u2f),
                             u2f.size()),
              1);
    sig.resize(sigLen);
    EVP_MD_CTX_free(ctx);
    if (ecdsa_) {  // DER -> string(mpint r, mpint s)
      const unsigned char* p = bytes(sig);
      ECDSA_SIG* ec = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
      EXPECT_NE(ec, nullptr);
      sig = sshString(mpint(ECDSA_SIG_get0_r(ec))) + sshString(mpint(ECDSA_SIG_get0_s(ec)));
      ECDSA_SIG_free(ec);
    }
    SigFields f;
    f.publicKey = publicBlob();
    f.ns = "git";
    f.hashAlgorithm = "sha512";
    f.signature = sshString(type()) + sshString(sig) + std::string(1, static_cast<char>(flags)) +
                  u32(counter);
    return armor(f.blob());
  }

 private:
  static const unsigned char* bytes(const std::string& s) {
    return reinterpret_cast<const unsigned char*>(s.data());
  }
  static std::string mpint(const BIGNUM* bn) {
    std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    if (!out.empty() && (static_cast<unsigned char>(out[0]) & 0x80) != 0) {
      out.insert(out.begin(), '\0');
    }
    return out;
  }

  bool ecdsa_;
  std::string application_;
  EVP_PKEY* pkey_ = nullptr;
};

constexpr std::uint8_t kUserPresent = 0x01;

TEST_F(SshSigTest, VerifiesOpenSshSecurityKeyVectors) {
  const auto allowed = signers("ed@example.com " + std::string(kRegressEd25519SkKey) + "\n" +
                               "ec@example.com " + std::string(kRegressEcdsaSkKey) + "\n");
  ASSERT_EQ(allowed.size(), 2u);
  auto ed = verifySshSig(kRegressEd25519SkSig, kRegressData, "unittest", allowed);
  ASSERT_TRUE(ed.ok()) << ed.error().message;
  EXPECT_EQ(ed->principal, "ed@example.com");
  EXPECT_EQ(ed->keyType, "sk-ssh-ed25519@openssh.com");
  auto ec = verifySshSig(kRegressEcdsaSkSig, kRegressData, "unittest", allowed);
  ASSERT_TRUE(ec.ok()) << ec.error().message;
  EXPECT_EQ(ec->principal, "ec@example.com");
  EXPECT_EQ(ec->keyType, "sk-ecdsa-sha2-nistp256@openssh.com");
  // The same signatures over other content, or in another namespace, do not verify.
  EXPECT_FALSE(verifySshSig(kRegressEd25519SkSig, "This is a test", "unittest", allowed).ok());
  EXPECT_FALSE(verifySshSig(kRegressEcdsaSkSig, kRegressData, "git", allowed).ok());
}

TEST_F(SshSigTest, VerifiesSecurityKeySignatures) {
  for (const bool ecdsa : {false, true}) {
    const SoftSk sk(ecdsa);
    SCOPED_TRACE(sk.type());
    const auto allowed = signers(sk.signerLine());
    ASSERT_EQ(allowed.size(), 1u);
    EXPECT_EQ(allowed[0].keyType, sk.type());
    const std::string sig = sk.sign(kPayload, kUserPresent, 7);
    auto verified = verifySshSig(sig, kPayload, kGitNamespace, allowed);
    ASSERT_TRUE(verified.ok()) << verified.error().message;
    EXPECT_EQ(verified->principal, "sk@example.com");
    EXPECT_EQ(verified->keyType, sk.type());
    EXPECT_EQ(verified->fingerprint, sshFingerprint(sk.publicBlob()));
    // Flags and counter are signed: changing either breaks the signature.
    for (const auto& [flagsDelta, counterDelta] : {std::pair{0x04, 0u}, std::pair{0, 1u}}) {
      std::string blob = dearmor(sig);
      SigFields f = splitBlob(blob);
      const size_t tail = f.signature.size() - 5;
      f.signature[tail] = static_cast<char>(f.signature[tail] ^ flagsDelta);
      f.signature.replace(tail + 1, 4, u32(7 + counterDelta));
      auto refused = verifySshSig(armor(f.blob()), kPayload, kGitNamespace, allowed);
      ASSERT_FALSE(refused.ok());
      EXPECT_TRUE(contains(refused.error().message, "does not match")) << refused.error().message;
    }
    // ssh-keygen agrees (verifying needs no authenticator).
    writeFile(*dir_ / "sk_signers", sk.signerLine());
    writeFile(*dir_ / "sk.sig", sig);
    writeFile(*dir_ / "sk.msg", kPayload);
    const CommandResult byKeygen = runCommand(
        "ssh-keygen -Y verify -n git -I sk@example.com -f " + (*dir_ / "sk_signers").string() +
        " -s " + (*dir_ / "sk.sig").string() + " < " + (*dir_ / "sk.msg").string());
    EXPECT_EQ(byKeygen.status, 0) << byKeygen.output;
  }
}

TEST_F(SshSigTest, SecurityKeySignatureNeedsUserPresence) {
  for (const bool ecdsa : {false, true}) {
    const SoftSk sk(ecdsa);
    SCOPED_TRACE(sk.type());
    const std::string untouched = sk.sign(kPayload, 0x00, 9);
    auto refused = verifySshSig(untouched, kPayload, kGitNamespace, signers(sk.signerLine()));
    ASSERT_FALSE(refused.ok());
    EXPECT_TRUE(contains(refused.error().message, "user presence")) << refused.error().message;
    // Stricter than `ssh-keygen -Y verify` (9.2), which accepts it, and knows no
    // no-touch-required option in allowed_signers.
    // User verification (a PIN) without presence is not presence.
    EXPECT_FALSE(
        verifySshSig(sk.sign(kPayload, 0x04, 10), kPayload, kGitNamespace, signers(sk.signerLine()))
            .ok());
    // The signer's line may waive it, as sshd's no-touch-required does.
    const auto waived = signers(sk.signerLine("no-touch-required"));
    ASSERT_EQ(waived.size(), 1u);
    EXPECT_TRUE(waived[0].noTouchRequired);
    auto accepted = verifySshSig(untouched, kPayload, kGitNamespace, waived);
    EXPECT_TRUE(accepted.ok()) << accepted.error().message;
  }
}

TEST_F(SshSigTest, SecurityKeyLineDoesNotInvalidateTheFile) {
  const SoftSk ed(false);
  const SoftSk ec(true);
  const auto allowed =
      signers(ed.signerLine() + "ec@example.com " + std::string(kRegressEcdsaSkKey) + "\n" +
              aliceLine() + ec.signerLine());
  ASSERT_EQ(allowed.size(), 4u);
  auto verified = verifySshSig(sign("alice", kPayload), kPayload, kGitNamespace, allowed);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->principal, "alice@example.com");
  EXPECT_EQ(verified->signerLine, 3u);
}

TEST_F(SshSigTest, SkipsUnknownKeyTypesWithAWarning) {
  const std::string dss = "ssh-dss " + b64Encode(sshString("ssh-dss") + sshString("p")) + " old";
  const std::string cert =
      "ssh-ed25519-cert-v01@openssh.com " +
      b64Encode(sshString("ssh-ed25519-cert-v01@openssh.com") + sshString("nonce"));
  std::vector<std::string> warnings;
  auto parsed = parseAllowedSigners("old@example.com " + dss + "\n" + aliceLine() +
                                        "c@example.com namespaces=\"git\" " + cert + "\n",
                                    &warnings);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].principals, std::vector<std::string>{"alice@example.com"});
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_TRUE(contains(warnings[0], "allowed_signers:1:")) << warnings[0];
  EXPECT_TRUE(contains(warnings[0], "'ssh-dss'")) << warnings[0];
  EXPECT_TRUE(contains(warnings[0], "skipped")) << warnings[0];
  EXPECT_TRUE(contains(warnings[1], "allowed_signers:3:")) << warnings[1];
  auto verified = verifySshSig(sign("alice", kPayload), kPayload, kGitNamespace, *parsed);
  EXPECT_TRUE(verified.ok()) << verified.error().message;
  // Without a place for warnings the lines are skipped all the same.
  auto quiet = parseAllowedSigners("old@example.com " + dss + "\n" + aliceLine());
  ASSERT_TRUE(quiet.ok()) << quiet.error().message;
  EXPECT_EQ(quiet->size(), 1u);
  // A line that names a type its key data is not is malformed, not unknown.
  auto lying = parseAllowedSigners("a@x ssh-dss " + b64Encode(sshString("ssh-rsa")) + "\n");
  ASSERT_FALSE(lying.ok());
  EXPECT_TRUE(contains(lying.error().message, "allowed_signers:1:")) << lying.error().message;
}

TEST(SshFingerprint, IsUnpaddedBase64OfSha256) {
  // SHA-256("") = e3b0c442…; its base64 without padding.
  EXPECT_EQ(sshFingerprint(""), "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
}

// --- Commit objects taken apart as git does (the end-to-end cases are in git_source_test) ---

TEST(SplitSignedCommit, FollowsGitsHeaderRules) {
  const std::string head =
      "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
      "author A <a@x> 1700000000 +0000\n"
      "committer A <a@x> 1700000000 +0000\n";
  const std::string sig =
      "gpgsig -----BEGIN SSH SIGNATURE-----\n AAAA\n -----END SSH SIGNATURE-----\n";
  // Other gpgsig... headers, with their continuations, are left out of the payload as git
  // does; other headers' continuation lines (a mergetag) stay in it.
  const std::string other = "gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n BBBB\n";
  const std::string mergetag = "mergetag object 1234\n type commit\n";
  auto split = splitSignedCommit(head + other + sig + mergetag + "\nmsg\ngpgsig x\n y\n");
  ASSERT_TRUE(split.ok()) << split.error().message;
  ASSERT_TRUE(split->has_value());
  EXPECT_EQ((*split)->signature,
            "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n");
  EXPECT_EQ((*split)->payload, head + mergetag + "\nmsg\ngpgsig x\n y\n");
  // No message, no final newline.
  auto bare = splitSignedCommit(head + sig.substr(0, sig.size() - 1));
  ASSERT_TRUE(bare.ok() && bare->has_value());
  EXPECT_EQ((*bare)->payload, head);
  // Unsigned, whatever the message holds.
  auto none = splitSignedCommit(head + "\n" + sig);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  auto twice = splitSignedCommit(head + sig + "gpgsig second\n\nmsg\n");
  ASSERT_FALSE(twice.ok());
  EXPECT_TRUE(contains(twice.error().message, "more than one gpgsig header"));
  EXPECT_FALSE(splitSignedCommit(std::string(kMaxCommitObjectBytes + 1, 'x')).ok());
}

}  // namespace
}  // namespace edgeplane::source
