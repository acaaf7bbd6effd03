// The per-worker idle upstream connection pool (see upstream_pool.h).
#include "proxy/handlers/upstream_pool.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

namespace edgeplane::proxy {

constexpr uint32_t kIdleEvents = EPOLLIN | EPOLLRDHUP | EPOLLET;
constexpr uint32_t kActiveEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// One idle socket; the epoll target while it waits.
class UpstreamPool::Entry final : public EventTarget {
 public:
  Entry(UpstreamPool& pool, std::string key, int fd) : pool_(pool), key_(std::move(key)), fd_(fd) {}

  // Interface
  void onIo(uint32_t, uint32_t) override { pool_.drop(this); }
  void onTimer() override { pool_.drop(this); }

  UpstreamPool& pool_;
  std::string key_;
  int fd_;
};

UpstreamPool::~UpstreamPool() {
  clear();
}

std::string UpstreamPool::key(std::string_view netns, const Endpoint& backend) {
  std::string k(netns);
  k.push_back('|');
  k += backend.str();
  return k;
}

int UpstreamPool::take(std::string_view netns, const Endpoint& backend, EventTarget* target,
                       uint32_t tag) {
  auto it = idleByKey_.find(key(netns, backend));
  while (it != idleByKey_.end() && !it->second.empty()) {
    Entry* e = it->second.back();  // the most recently used: the least likely to be closed
    it->second.pop_back();
    --idle_;
    int fd = e->fd_;
    e->fd_ = -1;
    ctx_.retire(std::unique_ptr<EventTarget>(e));
    if (ctx_.rewatch(fd, target, tag, kActiveEvents)) {
      ++reused_;
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

void UpstreamPool::put(std::string_view netns, const Endpoint& backend, int fd) {
  const EngineOptions& o = ctx_.options();
  std::string k = key(netns, backend);
  std::vector<Entry*>& list = idleByKey_[k];
  if (ctx_.draining() || list.size() >= o.upstreamIdlePerBackend) {
    ::close(fd);
    return;
  }
  auto* e = new Entry(*this, std::move(k), fd);
  if (!ctx_.rewatch(fd, e, 0, kIdleEvents)) {
    ::close(fd);
    delete e;
    return;
  }
  ctx_.schedule(e, ctx_.now() + o.upstreamIdleTimeout.count());
  list.push_back(e);
  ++idle_;
}

void UpstreamPool::drop(Entry* e) {
  auto it = idleByKey_.find(e->key_);
  if (it != idleByKey_.end()) {
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), e), list.end());
    if (list.empty()) {
      idleByKey_.erase(it);
    }
  }
  --idle_;
  ::close(e->fd_);  // also leaves the epoll set
  e->fd_ = -1;
  ctx_.retire(std::unique_ptr<EventTarget>(e));
}

void UpstreamPool::clear() {
  for (auto& [k, list] : idleByKey_) {
    for (Entry* e : list) {
      ::close(e->fd_);
      ctx_.unschedule(e);
      delete e;
    }
  }
  idleByKey_.clear();
  idle_ = 0;
}

}  // namespace edgeplane::proxy
