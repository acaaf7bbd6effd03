// Certificate inspections kept by content (see cert_memo.h).
#include "reconciler/system/cert_memo.h"

#include <sys/stat.h>

#include <string_view>
#include <utility>

#include "reconciler/core/state_json.h"
#include "reconciler/system/cache_file.h"
#include "reconciler/system/file_write.h"
#include "reconciler/system/program_identity.h"
#include "schema/encoding.h"
#include "schema/store.h"

namespace edgeplane::sys {
namespace {

constexpr const char* kFile = "inspected-certs";

std::string header(const std::string& program) {
  return "edgeplane inspected certificates\nprogram " + program + "\n\n";
}

// The entries of a file's body, one "<hex digest> <view as JSON>" line each; nothing when any
// line is not one.
std::map<std::string, core::CertView, std::less<>> decodeEntries(std::string_view body) {
  std::map<std::string, core::CertView, std::less<>> out;
  while (!body.empty()) {
    const size_t end = body.find('\n');
    const size_t space = body.find(' ');
    if (end == std::string_view::npos || space == std::string_view::npos || space > end) {
      return {};
    }
    auto view = core::certViewFromJson(std::string(body.substr(space + 1, end - space - 1)));
    if (!view) {
      return {};
    }
    out.emplace(std::string(body.substr(0, space)), std::move(*view));
    body.remove_prefix(end + 1);
  }
  return out;
}

bool exists(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0;
}

}  // namespace

CertMemo::CertMemo(std::filesystem::path file, std::string program, const CacheKey& key)
    : file_(std::move(file)), program_(std::move(program)), key_(key) {}

std::shared_ptr<CertMemo> CertMemo::of(const std::string& stateDir) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<CertMemo>, std::less<>> memos;
  const std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<CertMemo>& memo = memos[stateDir];
  if (!memo) {
    std::filesystem::path file;
    CacheKey key;
    if (!stateDir.empty()) {
      if (auto k = cacheKeyIn(stateDir); k) {
        key = *k;
        file = std::filesystem::path(stateDir) / kFile;
      }
    }
    memo = std::make_shared<CertMemo>(std::move(file), programIdentity(), key);
  }
  return memo;
}

void CertMemo::loadOnce() {
  if (loaded_) {
    return;
  }
  loaded_ = true;
  if (file_.empty()) {
    return;
  }
  // What runs killed while writing the file left (inspected-certs.tmp.<pid>).
  removeTemporaryFilesOfDeadProcesses(file_.parent_path().string(), file_.filename().string());
  const std::string h = header(program_);
  if (auto bytes = readChecked(file_, h, key_)) {
    entries_ = decodeEntries(std::string_view(*bytes).substr(h.size()));
  }
}

core::CertView CertMemo::inspect(const std::string& certPem, const std::string& keyPem,
                                 const std::string& certFile, const std::string& keyFile,
                                 const Inspect& inspect) {
  Sha256 h;
  h.addSized(certFile);
  h.addSized(keyFile);
  h.addSized(certPem);
  h.addSized(keyPem);
  const std::optional<Digest> digest = h.finish();
  if (!digest) {
    return inspect();
  }
  const std::string key = toHex(digest->data(), digest->size());
  {
    const std::lock_guard<std::mutex> lock(mu_);
    loadOnce();
    if (auto it = entries_.find(key); it != entries_.end()) {
      return it->second;
    }
  }
  core::CertView view = inspect();
  const std::lock_guard<std::mutex> lock(mu_);
  ++inspections_;
  // Files hold one pair at a time: what these names held before is not asked for again.
  std::erase_if(entries_, [&](const auto& e) {
    return e.second.certFile == certFile && e.second.keyFile == keyFile;
  });
  entries_.insert_or_assign(key, view);
  return view;
}

void CertMemo::save() {
  const std::lock_guard<std::mutex> lock(mu_);
  if (inspections_ == saved_ || file_.empty()) {
    return;
  }
  saved_ = inspections_;
  struct stat st {};
  const std::filesystem::path dir = file_.parent_path();
  if (::stat(dir.c_str(), &st) != 0 || !ensureStateDir(dir).ok()) {
    return;  // a plan on a laptop writes nothing
  }
  std::erase_if(entries_, [](const auto& e) { return !exists(e.second.certFile); });
  std::string bytes = header(program_);
  for (const auto& [key, view] : entries_) {
    bytes += key + " " + core::certViewToJson(view) + "\n";
  }
  writeChecked(file_, std::move(bytes), key_);
}

size_t CertMemo::inspections() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return inspections_;
}

}  // namespace edgeplane::sys
