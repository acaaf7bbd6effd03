// The nftables observation cache (see nft_observation_cache.h).
#include "reconciler/system/nft_observation_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>

#include "reconciler/system/cache_file.h"
#include "reconciler/system/file_write.h"
#include "schema/store.h"

namespace edgeplane::sys {
namespace {

constexpr std::string_view kMagic = "edgeplane nft observation 1\n";

std::string header(const NftObservationKey& key) {
  return std::string(kMagic) + "program " + key.program + "\nboot " + key.bootId + "\nnetns " +
         std::to_string(key.netnsCookie) + "\ngeneration " + std::to_string(key.generation) + "\n";
}

// The next line of `text` (without its '\n'); false when no complete line is left.
bool nextLine(std::string_view& text, std::string_view& line) {
  const size_t end = text.find('\n');
  if (end == std::string_view::npos) {
    return false;
  }
  line = text.substr(0, end);
  text.remove_prefix(end + 1);
  return true;
}

// Splits `line` at single spaces into exactly `n` non-empty fields.
template <size_t N>
bool fields(std::string_view line, std::array<std::string_view, N>& out) {
  for (size_t i = 0; i < N; ++i) {
    const size_t space = i + 1 < N ? line.find(' ') : line.size();
    if (space == std::string_view::npos || space == 0) {
      return false;
    }
    out[i] = line.substr(0, space);
    line.remove_prefix(i + 1 < N ? space + 1 : space);
  }
  return line.empty();
}

template <typename T>
bool number(std::string_view text, T& out) {
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), out);
  return err == std::errc() && end == text.data() + text.size();
}

std::optional<core::PortMapping> mapping(std::string_view line) {
  std::array<std::string_view, 4> f;
  if (!fields(line, f)) {
    return std::nullopt;
  }
  core::PortMapping m;
  if (f[0] == "tcp") {
    m.protocol = Protocol::Tcp;
  } else if (f[0] == "udp") {
    m.protocol = Protocol::Udp;
  } else {
    return std::nullopt;
  }
  auto port = PortRange::parse(f[1]);
  auto address = IpAddress::parse(f[2]);
  if (!port || !address) {
    return std::nullopt;
  }
  m.port = *port;
  m.address = *address;
  if (f[3] != "-") {
    uint16_t target = 0;
    if (!number(f[3], target)) {
      return std::nullopt;
    }
    m.targetPort = target;
  }
  return m;
}

}  // namespace

std::string encodeNftObservation(const NftObservationKey& key, const NftObservation& seen) {
  std::string out = header(key);
  if (!seen) {
    return out + "table absent\nend\n";
  }
  out += std::string("table ") + (seen->intact ? "intact " : "altered ") +
         std::to_string(seen->mappings.size()) + "\n";
  for (const core::PortMapping& m : seen->mappings) {
    out += m.protocol == Protocol::Tcp ? "tcp " : "udp ";
    out += m.port.str();
    out += ' ';
    out += m.address.str();
    out += ' ';
    out += m.targetPort ? std::to_string(*m.targetPort) : std::string("-");
    out += '\n';
  }
  return out + "end\n";
}

std::optional<NftObservation> decodeNftObservation(std::string_view text,
                                                   const NftObservationKey& key) {
  const std::string want = header(key);
  if (!text.starts_with(want)) {
    return std::nullopt;
  }
  text.remove_prefix(want.size());
  std::string_view line;
  if (!nextLine(text, line)) {
    return std::nullopt;
  }
  NftObservation seen;
  if (line == "table absent") {
    seen = std::nullopt;
  } else {
    std::array<std::string_view, 3> f;
    size_t count = 0;
    if (!fields(line, f) || f[0] != "table" || (f[1] != "intact" && f[1] != "altered") ||
        !number(f[2], count) || count > text.size() / 8) {  // a mapping line has 8+ bytes
      return std::nullopt;
    }
    core::NftTableView v;
    v.intact = f[1] == "intact";
    v.mappings.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      auto m = nextLine(text, line) ? mapping(line) : std::nullopt;
      // Observations are sorted (the planner's order): anything else was not written here.
      if (!m || (!v.mappings.empty() && !(v.mappings.back() < *m))) {
        return std::nullopt;
      }
      v.mappings.push_back(*m);
    }
    seen = std::move(v);
  }
  if (!nextLine(text, line) || line != "end" || !text.empty()) {
    return std::nullopt;
  }
  return seen;
}

const std::string& bootId() {
  static const std::string id = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string s;
    std::getline(in, s);
    return s;
  }();
  return id;
}

std::string NftObservationCache::file(const std::string& scope) const {
  return dir_ + "/" + (scope.empty() ? std::string("host") : "ns-" + scope);
}

std::optional<NftObservation> NftObservationCache::find(const std::string& scope,
                                                        const NftObservationKey& key) {
  if (dir_.empty() || scope.find('/') != std::string::npos) {
    return std::nullopt;
  }
  if (!swept_) {  // once per run: what runs killed while writing an entry left
    swept_ = true;
    removeTemporaryFilesOfDeadProcesses(dir_, "");
  }
  if (auto it = kept_.find(scope); it != kept_.end() && it->second.first == key) {
    return it->second.second;
  }
  const CacheKey* sealKey = this->sealKey();
  if (sealKey == nullptr) {
    return std::nullopt;
  }
  std::optional<std::string> read = readChecked(file(scope), "", *sealKey);
  if (!read) {
    return std::nullopt;
  }
  std::optional<NftObservation> seen = decodeNftObservation(*read, key);
  if (seen) {
    kept_.insert_or_assign(scope, std::pair(key, *seen));
  }
  return seen;
}

void NftObservationCache::store(const std::string& scope, const NftObservationKey& key,
                                const NftObservation& seen) {
  if (dir_.empty() || scope.find('/') != std::string::npos) {
    return;
  }
  // Only inside an existing state directory (observing never creates one); checked once.
  if (!dirReady_) {
    struct stat st {};
    const std::filesystem::path dir(dir_);
    dirReady_ = ::stat(dir.parent_path().c_str(), &st) == 0 && ensureStateDir(dir).ok();
  }
  const CacheKey* sealKey = this->sealKey();
  if (!*dirReady_ || sealKey == nullptr) {
    return;
  }
  kept_.insert_or_assign(scope, std::pair(key, seen));
  writeChecked(file(scope), encodeNftObservation(key, seen), *sealKey);
}

const CacheKey* NftObservationCache::sealKey() {
  if (!sealKey_) {
    auto k = cacheKeyIn(std::filesystem::path(dir_).parent_path());
    sealKey_ = k ? std::optional(*k) : std::nullopt;
  }
  return *sealKey_ ? &**sealKey_ : nullptr;
}

void NftObservationCache::forget(const std::string& scope) {
  kept_.erase(scope);
  if (!dir_.empty() && scope.find('/') == std::string::npos) {
    ::unlink(file(scope).c_str());
  }
}

}  // namespace edgeplane::sys
