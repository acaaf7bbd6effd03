// Certificates on the host with OpenSSL: read a PEM pair, issue a self-signed P-256 one.
#include "reconciler/system/certs.h"

#include "reconciler/system/cert_generations.h"
#include "reconciler/system/cert_memo.h"
#include "reconciler/system/dir_at.h"
#include "reconciler/system/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <system_error>

#include "schema/c_ptr.h"
#include "schema/encoding.h"
#include "schema/pem_key.h"
#include "schema/unique_fd.h"

namespace edgeplane::sys {
namespace {

namespace fs = std::filesystem;

using X509Ptr = CPtr<X509, X509_free>;
using PkeyPtr = PrivateKey;
using BioPtr = CPtr<BIO, BIO_free_all>;
using NamesPtr = CPtr<GENERAL_NAMES, GENERAL_NAMES_free>;

// A name used as a directory name under certs/: no separators, no dot files.
bool safeName(const std::string& name) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  return std::regex_match(name, re);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return s;
}

int64_t unixTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return 0;
  }
  return static_cast<int64_t>(::timegm(&tm));
}

std::vector<std::string> dnsNames(X509* cert) {
  std::vector<std::string> out;
  NamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) {
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type != GEN_DNS) {
      continue;
    }
    const ASN1_IA5STRING* s = n->d.dNSName;
    out.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                    static_cast<size_t>(ASN1_STRING_length(s)))));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<std::string> fingerprintOf(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) {
    return terminal("cannot compute the certificate's SHA-256");
  }
  return toHex(md, len);
}

std::string pem(int (*write)(BIO*, void*), void* what) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), what) != 1) {
    return "";
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

int writeCertPem(BIO* b, void* c) {
  return PEM_write_bio_X509(b, static_cast<X509*>(c));
}
int writeKeyPem(BIO* b, void* k) {
  return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0, nullptr,
                                  nullptr);
}

bool addExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return false;
  }
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A P-256 key and a self-signed certificate for `domains` (CN = the first), valid from `now`
// for kGeneratedCertDays, with a random 128-bit serial (its hex in `serialHex`).
Result<std::pair<X509Ptr, PkeyPtr>> generate(const std::vector<std::string>& domains, int64_t now,
                                             std::string& serialHex) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) {
    return terminal("OpenSSL could not generate a P-256 key");
  }
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) {
    return terminal("OpenSSL's random generator failed");
  }
  serial[0] &= 0x7f;  // a positive INTEGER
  serial[0] |= 0x01;  // and no leading zero byte to strip
  serialHex = toHex(serial, sizeof(serial));
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  const bool serialOk = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  time_t from = static_cast<time_t>(now);
  X509_NAME* name = X509_get_subject_name(cert.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(domains.front().c_str());
  std::string san;
  for (const auto& d : domains) {
    san += (san.empty() ? "DNS:" : ",DNS:") + d;
  }
  const bool ok = serialOk && X509_set_version(cert.get(), 2) == 1 &&
                  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, 0, &from) &&
                  X509_time_adj_ex(X509_getm_notAfter(cert.get()),
                                   static_cast<int>(kGeneratedCertDays), 0, &from) &&
                  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0) == 1 &&
                  X509_set_issuer_name(cert.get(), name) == 1 &&
                  X509_set_pubkey(cert.get(), key.get()) == 1 &&
                  addExtension(cert.get(), NID_subject_alt_name, san) &&
                  addExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
                  addExtension(cert.get(), NID_key_usage, "critical,digitalSignature") &&
                  addExtension(cert.get(), NID_ext_key_usage, "serverAuth") &&
                  X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) {
    return terminal("OpenSSL could not build the certificate for " + domains.front());
  }
  return std::make_pair(std::move(cert), std::move(key));
}

}  // namespace

namespace {

// A PEM file's bytes (a chain, a key: small); "" or why not. Opened without blocking and
// read only when it is a regular file: a FIFO in its place would hang the run.
constexpr size_t kMaxPemBytes = 1 << 20;
std::string readPem(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return errnoText(err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return "not a regular file";
  }
  // Sized up front: a key's bytes are not left behind in a buffer outgrown by append().
  if (st.st_size > 0) {
    out.reserve(std::min(static_cast<size_t>(st.st_size), kMaxPemBytes) + 1);
  }
  char buf[16384];
  std::string why;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      why = errnoText(err);
      break;
    }
    if (n == 0) {
      break;
    }
    if (out.size() + static_cast<size_t>(n) > kMaxPemBytes) {
      why = errnoText(EFBIG);
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  OPENSSL_cleanse(buf, sizeof(buf));
  ::close(fd);
  return why;
}

// What readCertPair says of a pair, given its bytes (read once, so that what is judged is what
// a copy holds).
core::CertView inspectPair(const std::string& certPem, const std::string& keyPem,
                           const std::string& certFile, const std::string& keyFile) {
  core::CertView v;
  v.certFile = certFile;
  v.keyFile = keyFile;
  BioPtr cb(BIO_new_mem_buf(certPem.data(), static_cast<int>(certPem.size())));
  X509Ptr cert(cb ? PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    v.error = certFile + " is not a PEM certificate";
    return v;
  }
  auto fp = fingerprintOf(cert.get());
  if (!fp) {
    v.error = fp.error().message;
    return v;
  }
  v.fingerprint = *fp;
  v.domains = dnsNames(cert.get());
  v.notBefore = unixTime(X509_get0_notBefore(cert.get()));
  v.notAfter = unixTime(X509_get0_notAfter(cert.get()));
  v.selfIssued =
      X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())) == 0;
  PrivateKey key = readPrivateKeyPem(keyPem);  // an encrypted key is refused, not prompted for
  if (!key) {
    v.error = keyFile + " is not an unencrypted PEM private key";
    return v;
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    v.error = keyFile + " does not match the certificate in " + certFile;
  }
  return v;
}

// What inspectPair says of these bytes, through `memo` when there is one.
core::CertView inspectThrough(CertMemo* memo, const std::string& certPem, const std::string& keyPem,
                              const std::string& certFile, const std::string& keyFile) {
  auto inspect = [&] { return inspectPair(certPem, keyPem, certFile, keyFile); };
  return memo != nullptr ? memo->inspect(certPem, keyPem, certFile, keyFile, inspect) : inspect();
}

// The pair's bytes and what they are; the key's bytes are the caller's to wipe.
core::CertView loadPair(const std::string& certFile, const std::string& keyFile,
                        std::string& certPem, std::string& keyPem, CertMemo* memo) {
  if (std::string why = readPem(certFile, certPem); !why.empty()) {
    core::CertView v;
    v.certFile = certFile;
    v.keyFile = keyFile;
    v.error = "cannot read " + certFile + ": " + why;
    return v;
  }
  if (std::string why = readPem(keyFile, keyPem); !why.empty()) {
    core::CertView v = inspectThrough(memo, certPem, "", certFile, keyFile);
    if (!v.fingerprint.empty()) {  // the certificate reads: the key is what is wrong
      v.error = "cannot read " + keyFile + ": " + why;
    }
    return v;
  }
  return inspectThrough(memo, certPem, keyPem, certFile, keyFile);
}

core::CertView readPair(const std::string& certFile, const std::string& keyFile, CertMemo* memo) {
  std::string certPem;
  std::string keyPem;
  core::CertView v = loadPair(certFile, keyFile, certPem, keyPem, memo);
  OPENSSL_cleanse(keyPem.data(), keyPem.size());
  return v;
}

// A copy of a "files" pair names its source in <generation>/source: "CERT_FILE\nKEY_FILE\n".
std::string sourceText(const core::CertTarget& t) {
  return t.certFile + "\n" + t.keyFile + "\n";
}

}  // namespace

core::CertView readCertPair(const std::string& certFile, const std::string& keyFile) {
  return readPair(certFile, keyFile, nullptr);
}

CertStore::CertStore(std::string stateDir, int64_t now)
    : stateDir_(std::move(stateDir)), now_(now), memo_(CertMemo::of(stateDir_)) {}

int64_t CertStore::now() const {
  if (now_ != 0) {
    return now_;
  }
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string CertStore::certDir(const std::string& name) const {
  return (fs::path(stateDir_) / "certs" / name).string();
}

namespace {

// <state-dir>/certs, open (-1: there is none). The state directory is the operator's path;
// certs/ in it is a directory of edgeplane's, never a link.
Result<int> openCertsDir(const std::string& stateDir, bool create) {
  if (create) {
    std::error_code ec;
    fs::create_directories(stateDir, ec);
  }
  const UniqueFd state(::open(stateDir.c_str(), kDirFlags & ~O_NOFOLLOW));
  if (state.get() < 0) {
    const int err = errno;
    if (err == ENOENT && !create) {
      return -1;
    }
    return terminal("open directory " + stateDir + ": " + errnoText(err));
  }
  return openDirAt(state.get(), "certs", (fs::path(stateDir) / "certs").string(), create);
}

// <state-dir>/certs, open; nullopt when there is none yet.
Result<std::optional<UniqueFd>> existingCertsDir(const std::string& stateDir) {
  auto opened = openCertsDir(stateDir, false);
  if (!opened) {
    return opened.error();
  }
  return *opened < 0 ? std::optional<UniqueFd>() : std::optional<UniqueFd>(UniqueFd(*opened));
}

// Whether `dir`/`name` is a directory itself, not a link to one (nor under a linked certs/).
bool realDirectory(const fs::path& root, const std::string& name) {
  struct stat st {};
  return ::lstat(root.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
         ::lstat((root / name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The current generation of certs/<name>, and for a copy of a "files" pair, its source.
struct Current {
  core::CertView view;
  std::optional<std::string> source;  // sourceText() of the pair it copies
};

Current currentGeneration(const fs::path& dir, CertMemo* memo) {
  Current c;
  std::error_code linkEc;
  const fs::path gen = fs::read_symlink(dir / kCurrent, linkEc);
  if (linkEc || gen.has_parent_path() || gen.empty()) {
    c.view.certFile = (dir / kCurrent / "cert.pem").string();
    c.view.keyFile = (dir / kCurrent / "key.pem").string();
    c.view.error = "no current generation";
    return c;
  }
  c.view = readPair((dir / gen / "cert.pem").string(), (dir / gen / "key.pem").string(), memo);
  if (auto source = readOwnFile((dir / gen / kSource).string()); source.ok() && *source) {
    c.source = **source;
  }
  return c;
}

// The copy of `t`'s files in `current`, when it holds what the files hold now (`direct`).
bool copyIsCurrent(const Current& current, const core::CertTarget& t,
                   const core::CertView& direct) {
  return current.source == sourceText(t) && current.view.error.empty() && direct.error.empty() &&
         current.view.fingerprint == direct.fingerprint;
}

}  // namespace

Result<void> CertStore::observe(const std::vector<core::CertTarget>& targets,
                                core::HostState& into) const {
  if (auto generated = observeGenerated(into); !generated) {
    return generated;
  }
  observeFiles(targets, into);
  return {};
}

Result<void> CertStore::observeGenerated(core::HostState& into) const {
  into.now = now();
  const fs::path root = fs::path(stateDir_) / "certs";
  auto certs = existingCertsDir(stateDir_);
  if (!certs || !*certs) {
    return certs ? Result<void>{} : certs.error();  // none yet, or an error
  }
  const int certsFd = (*certs)->get();
  auto names = namesIn(certsFd, root.string());
  if (!names) {
    return names.error();
  }
  for (const std::string& name : *names) {
    const mode_t type = typeAt(certsFd, name);
    if (!safeName(name) || (type != S_IFDIR && type != S_IFLNK)) {
      continue;
    }
    Current c;
    if (type == S_IFLNK) {  // listed (no target names it: removed, the link alone), not read
      c.view.certFile = (root / name / kCurrent / "cert.pem").string();
      c.view.keyFile = (root / name / kCurrent / "key.pem").string();
      c.view.error = symlinkRefused((root / name).string());
    } else {
      c = currentGeneration(root / name, memo_.get());
    }
    if (c.source) {
      // Listed (it goes when no target names it), but no generated certificate.
      c.view.error = "a copy of " + c.source->substr(0, c.source->find('\n')) + " (issuer files)";
    }
    into.generatedCerts[name] = std::move(c.view);
  }
  memo_->save();
  return {};
}

void CertStore::observeFiles(const std::vector<core::CertTarget>& targets,
                             core::HostState& into) const {
  const fs::path root = fs::path(stateDir_) / "certs";
  for (const auto& t : targets) {
    if (t.source != core::CertSource::Files) {
      continue;
    }
    core::CertView direct = readPair(t.certFile, t.keyFile, memo_.get());
    // The copy edgeplane serves, when it is of these very files.
    if (safeName(t.name) && realDirectory(root, t.name)) {
      Current copy = currentGeneration(root / t.name, memo_.get());
      if (copyIsCurrent(copy, t, direct)) {
        into.fileCerts[t.name] = std::move(copy.view);
        continue;
      }
    }
    into.fileCerts[t.name] = std::move(direct);
  }
  memo_->save();
}

Result<core::CertView> CertStore::issue(const core::CertTarget& cert) {
  if (!safeName(cert.name)) {
    return terminal("certificate name \"" + cert.name +
                    "\" cannot name a directory (want [A-Za-z0-9][A-Za-z0-9._-]*)");
  }
  if (cert.domains.empty()) {
    return terminal("certificate " + cert.name + " has no domains");
  }
  std::string serial;
  auto made = generate(cert.domains, now(), serial);
  if (!made) {
    return made.error();
  }
  std::string keyPem = pem(writeKeyPem, made->second.get());
  const std::string certPem = pem(writeCertPem, made->first.get());
  if (keyPem.empty() || certPem.empty()) {
    return terminal("OpenSSL could not encode the certificate for " + cert.name);
  }
  return install(cert.name, certPem, std::move(keyPem));
}

namespace {

// Why a whole pair fails `check` at `now` (unix seconds), or "".
std::string failedCheck(const core::CertView& v, const CertInstallCheck& check, int64_t now) {
  // Exactly the names ordered: a leaf with more would be installed, then planned again at once
  // as "its domains changed" (acmeOrderDue), an order every run.
  if (!check.domains.empty() && v.domains != check.domains) {
    for (const std::string& domain : check.domains) {
      if (std::find(v.domains.begin(), v.domains.end(), domain) == v.domains.end()) {
        return "its leaf does not name " + domain;
      }
    }
    return "its leaf names more than was ordered";
  }
  if (check.validNow && v.notBefore > now + kInstallClockSkew) {
    return "its leaf is not valid before " + std::to_string(v.notBefore) + " (unix time; now " +
           std::to_string(now) + ")";
  }
  if (check.validNow && v.notAfter <= now) {
    return "its leaf expired at " + std::to_string(v.notAfter) + " (unix time; now " +
           std::to_string(now) + ")";
  }
  return "";
}

// The certificate directory of `name` under `stateDir`, open (made when missing).
Result<int> openCertDir(const std::string& stateDir, const std::string& name,
                        const std::string& dir) {
  if (!safeName(name)) {
    return terminal("certificate name \"" + name + "\" cannot name a directory");
  }
  auto certs = openCertsDir(stateDir, true);
  if (!certs) {
    return certs.error();
  }
  const UniqueFd certsFd(*certs);
  return openDirAt(certsFd.get(), name, dir, true);
}

}  // namespace

Result<core::CertView> CertStore::install(const std::string& name, const std::string& certPem,
                                          std::string keyPem, const std::string& source,
                                          const CertInstallCheck& check) {
  const std::string dir = certDir(name);
  unsigned char rnd[8];
  auto opened = RAND_bytes(rnd, sizeof(rnd)) == 1
                    ? openCertDir(stateDir_, name, dir)
                    : Result<int>(terminal("OpenSSL's random generator failed"));
  if (!opened) {
    OPENSSL_cleanse(keyPem.data(), keyPem.size());
    return opened.error();
  }
  const UniqueFd dirFd(*opened);
  const std::string gen = toHex(rnd, sizeof(rnd));
  auto written = writeGeneration(dirFd.get(), dir, gen, certPem, keyPem, source);
  OPENSSL_cleanse(keyPem.data(), keyPem.size());
  if (!written) {
    return written.error();
  }
  // Read back, and judged, before anything serves it.
  const std::string genDir = dir + "/" + gen;
  core::CertView v = readPair(genDir + "/cert.pem", genDir + "/key.pem", memo_.get());
  memo_->save();
  std::string refused = v.error;
  if (refused.empty()) {
    refused = failedCheck(v, check, now());
  }
  if (!refused.empty()) {
    (void)removeAt(dirFd.get(), gen, genDir);
    return terminal("the certificate for " + name +
                    " is refused, the one in place stays: " + refused);
  }
  auto previous = switchCurrent(dirFd.get(), dir, gen);
  if (!previous) {
    return previous.error();
  }
  // Keep the new and the previous generation (a proxy still on the last snapshot).
  pruneGenerations(dirFd.get(), dir, gen, *previous);
  return v;
}

Result<core::CertView> CertStore::read(const core::CertTarget& cert) {
  std::string certPem;
  std::string keyPem;
  core::CertView direct = loadPair(cert.certFile, cert.keyFile, certPem, keyPem, memo_.get());
  if (!direct.error.empty() || !safeName(cert.name)) {
    OPENSSL_cleanse(keyPem.data(), keyPem.size());
    if (direct.error.empty()) {
      return terminal("certificate name \"" + cert.name + "\" cannot name a directory");
    }
    return direct;  // not copied: the error names the operator's files
  }
  // The copy in place, when it is of these very files; not read through a link (install then
  // refuses the link).
  const fs::path root = fs::path(stateDir_) / "certs";
  Current current;
  if (realDirectory(root, cert.name)) {
    current = currentGeneration(root / cert.name, memo_.get());
  }
  if (copyIsCurrent(current, cert, direct)) {
    OPENSSL_cleanse(keyPem.data(), keyPem.size());
    memo_->save();
    return current.view;
  }
  return install(cert.name, certPem, std::move(keyPem), sourceText(cert));
}

Result<void> CertStore::remove(const std::string& name) {
  if (!safeName(name)) {
    return terminal("certificate name \"" + name + "\" cannot name a directory");
  }
  auto certs = existingCertsDir(stateDir_);
  if (!certs || !*certs) {
    return certs ? Result<void>{} : certs.error();  // none yet, or an error
  }
  return removeAt((*certs)->get(), name, certDir(name));
}

}  // namespace edgeplane::sys
