// The certificate driver: observes and materialises the TLS certificates the proxy serves.
//
// Generated certificates (issuer "self-signed", the ACME placeholder and ACME certificates)
// and copies of "files" pairs live under <state-dir>/certs/<name>/: each issue or install writes a
// new generation directory (16 random hex digits) holding cert.pem and key.pem (0600, created
// exclusively, fsynced), then swaps the `current` symlink to it in one rename. The snapshot
// names the generation's files, so the proxy never sees a certificate with another generation's
// key; the previous generation is kept for a proxy still on the last snapshot, older ones are
// removed. Keys are never printed nor logged. A "files" pair is copied at apply (its generation
// keeps the source paths in `source`): the proxy's unit cannot read /home, /root or /tmp, and the
// copy stays the pair the snapshot's fingerprint names while the operator's files are replaced.
// certs/ and certs/<name> are never followed when they are symbolic links (whoever writes the
// state directory could point them at /etc): they are listed, written and removed through
// directories opened with O_NOFOLLOW, one level at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "reconciler/core/apply.h"
#include "reconciler/core/host_state.h"
#include "reconciler/core/target.h"
#include "reconciler/system/cert_memo.h"
#include "schema/result.h"

namespace edgeplane::sys {

// Lifetime of a generated certificate.
inline constexpr int64_t kGeneratedCertDays = 90;

// Reads a PEM certificate (leaf first) and its PEM private key: fingerprint, DNS SANs,
// validity, and whether the key matches. What is wrong goes to CertView::error (never the
// key's bytes); only the absence of an answer is an Error.
core::CertView readCertPair(const std::string& certFile, const std::string& keyFile);

// What install requires of a pair beyond being whole: an ACME order's answer must be for the
// names asked for and valid now.
struct CertInstallCheck {
  // The leaf's DNS names must be exactly these (lower-case, sorted, as CertView has them);
  // empty: any.
  std::vector<std::string> domains;
  // notBefore no more than kInstallClockSkew ahead of now, notAfter still to come.
  bool validNow = false;
};
// How far ahead of this host's clock a CA's notBefore may be (its clock, or a backdate unmade).
constexpr int64_t kInstallClockSkew = 300;

class CertStore : public core::CertDriver {
 public:
  // `now` is the clock for issuing (unix seconds); 0: the system clock.
  explicit CertStore(std::string stateDir, int64_t now = 0);

  // Every generated certificate under <state-dir>/certs, and each "files" target's files.
  // Fills `into.generatedCerts`, `into.fileCerts` and `into.now`.
  Result<void> observe(const std::vector<core::CertTarget>& targets, core::HostState& into) const;
  // The two halves of observe: the generated certificates (`into.generatedCerts` and
  // `into.now`), which no target decides, and the "files" targets' files (`into.fileCerts`).
  Result<void> observeGenerated(core::HostState& into) const;
  void observeFiles(const std::vector<core::CertTarget>& targets, core::HostState& into) const;

  // Interface
  Result<core::CertView> issue(const core::CertTarget& cert) override;
  // Writes `certPem` (a chain, leaf first) and its key as a new generation of certificate
  // `name` and switches `current` to it (an issued ACME certificate, a copy of a "files"
  // pair, whose `source` is then kept beside it); the key is wiped from memory after. The pair
  // is read back before the switch: one that is not whole (the key is not the leaf's) or fails
  // `check` is refused, removed, and the generation in place stays current.
  Result<core::CertView> install(const std::string& name, const std::string& certPem,
                                 std::string keyPem, const std::string& source = "",
                                 const CertInstallCheck& check = {});
  // A "files" pair, read once and served from a copy: the current generation when it holds the
  // same certificate from the same paths, else a new one. A pair with an error is not copied
  // (the view names the operator's files).
  Result<core::CertView> read(const core::CertTarget& cert) override;
  Result<void> remove(const std::string& name) override;

  std::string certDir(const std::string& name) const;  // <state-dir>/certs/<name>

 private:
  int64_t now() const;

  std::string stateDir_;
  int64_t now_;
  std::shared_ptr<CertMemo> memo_;  // CertMemo::of(stateDir_): pairs are parsed once per content
};

}  // namespace edgeplane::sys
