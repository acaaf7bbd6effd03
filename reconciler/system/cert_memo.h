// What certificate and key pairs inspected to, kept in the state directory by the pair's names
// and bytes: a run whose certificates did not change does not parse them again (OpenSSL 3 takes
// ~0.1 ms to parse a certificate and ~0.35 ms to decode an EC key, on every run, per pair).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "reconciler/core/host_state.h"
#include "reconciler/system/cache_file.h"

namespace edgeplane::sys {

// Inspecting a pair is a function of its file names and bytes alone (readCertPair's verdict
// on them), so an entry is found by the SHA-256 of exactly those: bytes that differ in any way
// are inspected again. The file (<state-dir>/inspected-certs, 0600) holds no key material, only
// the views and their digests; it is read only by the same build (programIdentity), checked by
// a seal under the state directory's cache key (cache_file.h), and replaced whole; the temporary
// files of runs killed while writing it are removed on first use. Thread-safe.
class CertMemo {
 public:
  // `file` empty: the memo lives in memory only. `program`: whose entries count; `key`: what
  // seals the file. The file is written only into a directory that exists and passes
  // ensureStateDir's checks.
  CertMemo(std::filesystem::path file, std::string program, const CacheKey& key);
  // This process's memo of <stateDir>/inspected-certs (one per state directory, shared by
  // every CertStore on it; in memory only for an empty stateDir, or when the cache key cannot be
  // read or made).
  static std::shared_ptr<CertMemo> of(const std::string& stateDir);

  using Inspect = std::function<core::CertView()>;
  // inspect(), or what it gave before for the same names and bytes.
  core::CertView inspect(const std::string& certPem, const std::string& keyPem,
                         const std::string& certFile, const std::string& keyFile,
                         const Inspect& inspect);
  // Writes the file when this memo inspected anything since it last did: the entries it read
  // and the new ones, one per pair of file names (the latest), none for a certificate file
  // that is gone (a removed generation). The memory holds the same.
  void save();

  size_t inspections() const;  // how many pairs inspect() had to inspect

 private:
  void loadOnce();  // with mu_ held

  std::filesystem::path file_;
  std::string program_;
  CacheKey key_;
  mutable std::mutex mu_;
  bool loaded_ = false;
  std::map<std::string, core::CertView, std::less<>> entries_;  // by hex digest
  size_t inspections_ = 0;
  size_t saved_ = 0;  // inspections_ when the file was last written
};

}  // namespace edgeplane::sys
