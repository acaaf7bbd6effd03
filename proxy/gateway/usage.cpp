// See usage.h.
#include "proxy/gateway/usage.h"

#include <utility>

namespace edgeplane::proxy::gateway {

void UsageCount::add(const UsageCount& other) {
  requests += other.requests;
  if (other.lastUsedMs >= lastUsedMs) {
    lastUsedMs = other.lastUsedMs;
    lastIp = other.lastIp;
  }
  for (size_t i = 0; i < classes.size(); ++i) {
    classes[i] += other.classes[i];
  }
  for (const auto& [code, n] : other.codes) {
    codes[code] += n;
  }
}

void UsageShard::record(std::string_view gateway, std::string_view keyId, const IpAddress& client,
                        int status, int64_t wallMs) {
  std::lock_guard lock(mu_);
  scratch_.assign(gateway).push_back('\0');
  scratch_.append(keyId);
  auto it = counts_.find(scratch_);
  if (it == counts_.end()) {
    it = counts_.emplace(scratch_, UsageCount{}).first;
  }
  UsageCount& c = it->second;
  ++c.requests;
  c.lastUsedMs = wallMs;
  c.lastIp = client;
  if (status >= 100 && status <= 599) {
    ++c.classes[static_cast<size_t>(status / 100 - 1)];
  }
  ++c.codes[status];
}

std::shared_ptr<UsageShard> Runtime::addShard() {
  auto shard = std::make_shared<UsageShard>();
  std::lock_guard lock(mu_);
  shards_.push_back(shard);
  return shard;
}

void Runtime::collect() {
  std::lock_guard lock(mu_);
  for (const auto& shard : shards_) {
    std::unordered_map<std::string, UsageCount> counts;
    {
      std::lock_guard shardLock(shard->mu_);
      counts.swap(shard->counts_);
    }
    for (const auto& [name, count] : counts) {
      size_t nul = name.find('\0');
      std::string gateway = name.substr(0, nul);
      std::string keyId = name.substr(nul + 1);
      for (const auto& [code, n] : count.codes) {
        totals_[TotalKey{gateway, keyId, code}] += n;
      }
      if (!keyId.empty()) {
        keyTotals_[keyId].add(count);
        pending_[keyId].add(count);
      }
    }
  }
}

std::vector<KeyUsageDelta> Runtime::takePending() {
  std::lock_guard lock(mu_);
  std::vector<KeyUsageDelta> out;
  out.reserve(pending_.size());
  for (auto& [id, count] : pending_) {
    out.push_back(KeyUsageDelta{id, std::move(count)});
  }
  pending_.clear();
  return out;
}

void Runtime::restorePending(std::vector<KeyUsageDelta> deltas) {
  std::lock_guard lock(mu_);
  for (KeyUsageDelta& d : deltas) {
    pending_[d.keyId].add(d.count);
  }
}

std::map<Runtime::TotalKey, uint64_t> Runtime::totals() const {
  std::lock_guard lock(mu_);
  return totals_;
}

std::map<std::string, UsageCount> Runtime::keyTotals() const {
  std::lock_guard lock(mu_);
  return keyTotals_;
}

bool Runtime::setBlocked(std::set<std::string, std::less<>> ids) {
  std::lock_guard lock(mu_);
  if (ids == blocked_) {
    return false;
  }
  blocked_ = std::move(ids);
  return true;
}

std::set<std::string, std::less<>> Runtime::blocked() const {
  std::lock_guard lock(mu_);
  return blocked_;
}

}  // namespace edgeplane::proxy::gateway
