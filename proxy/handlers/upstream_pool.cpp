// Per-worker upstream connections and their idle pool (see upstream_pool.h).
#include "proxy/handlers/upstream_pool.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <memory>

namespace edgeplane::proxy {

constexpr uint32_t kLinkEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

void UpstreamLink::onIo(uint32_t /*tag*/, uint32_t events) {
  if (owner_ != nullptr) {
    owner_->onIo(ownerTag_, events);
  } else if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    pool_.close(this);  // idle: the backend closed, or sent bytes nobody asked for
  }
}

void UpstreamLink::onTimer() {
  if (owner_ == nullptr) {
    pool_.close(this);  // idle for upstreamIdleTimeout
  }
}

UpstreamPool::~UpstreamPool() {
  clear();
}

std::vector<UpstreamLink*>* UpstreamPool::idleList(std::string_view netns,
                                                   const Endpoint& backend) {
  auto byNetns = idle_by_netns_.find(netns);
  if (byNetns == idle_by_netns_.end()) {
    return nullptr;
  }
  auto byBackend = byNetns->second.find(backend);
  return byBackend == byNetns->second.end() ? nullptr : &byBackend->second;
}

// Keys whose last idle link went are dropped: backends come and go with the config.
void UpstreamPool::forgetIfEmpty(std::string_view netns, const Endpoint& backend) {
  auto byNetns = idle_by_netns_.find(netns);
  if (byNetns == idle_by_netns_.end()) {
    return;
  }
  auto byBackend = byNetns->second.find(backend);
  if (byBackend != byNetns->second.end() && byBackend->second.empty()) {
    byNetns->second.erase(byBackend);
  }
  if (byNetns->second.empty()) {
    idle_by_netns_.erase(byNetns);
  }
}

UpstreamLink* UpstreamPool::adopt(std::string_view netns, const Endpoint& backend, int fd,
                                  EventTarget* owner, uint32_t tag) {
  auto* link = new UpstreamLink(*this, std::string(netns), backend, fd);
  link->owner_ = owner;
  link->ownerTag_ = tag;
  if (!ctx_.watch(fd, link, 0, kLinkEvents)) {
    ::close(fd);
    delete link;
    return nullptr;
  }
  return link;
}

namespace {

// Nothing waits on the link: no byte and no end of stream. An event that came while a handler
// owned the link went to the handler, and the link is edge-triggered: the pool would not hear
// of that backend's close or stray bytes again.
bool quiet(int fd) {
  char byte;
  ssize_t n;
  do {
    n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

UpstreamLink* UpstreamPool::take(std::string_view netns, const Endpoint& backend,
                                 EventTarget* owner, uint32_t tag) {
  // An idle link's own event (stray bytes, the backend's close) may not have been dispatched
  // yet, so each candidate is checked again: one with something waiting is closed, not lent.
  for (std::vector<UpstreamLink*>* list; (list = idleList(netns, backend)) != nullptr;) {
    UpstreamLink* link = list->back();  // the most recently used: the least likely to be closed
    list->pop_back();
    forgetIfEmpty(netns, backend);
    --idle_;
    if (!quiet(link->fd_)) {
      close(link);
      continue;
    }
    ctx_.unschedule(link);
    link->owner_ = owner;
    link->ownerTag_ = tag;
    ++reused_;
    return link;
  }
  return nullptr;
}

void UpstreamPool::release(UpstreamLink* link, bool reusable) {
  link->owner_ = nullptr;
  const EngineOptions& o = ctx_.options();
  if (!reusable || ctx_.draining() || !quiet(link->fd_)) {
    close(link);
    return;
  }
  std::vector<UpstreamLink*>& list = idle_by_netns_[link->netns_][link->backend_];
  if (list.size() >= o.upstreamIdlePerBackend) {
    close(link);
    return;
  }
  list.push_back(link);
  ++idle_;
  ctx_.schedule(link, ctx_.now() + o.upstreamIdleTimeout.count());
}

void UpstreamPool::close(UpstreamLink* link) {
  if (link->owner_ == nullptr) {
    if (std::vector<UpstreamLink*>* list = idleList(link->netns_, link->backend_)) {
      auto it = std::find(list->begin(), list->end(), link);
      if (it != list->end()) {
        list->erase(it);
        --idle_;
        forgetIfEmpty(link->netns_, link->backend_);
      }
    }
  }
  ::close(link->fd_);  // also leaves the epoll set
  link->fd_ = -1;
  link->owner_ = nullptr;
  ctx_.unschedule(link);
  ctx_.retire(std::unique_ptr<EventTarget>(link));
}

void UpstreamPool::clear() {
  for (auto& [netns, byBackend] : idle_by_netns_) {
    for (auto& [backend, list] : byBackend) {
      for (UpstreamLink* link : list) {
        ::close(link->fd_);
        ctx_.unschedule(link);
        delete link;
      }
    }
  }
  idle_by_netns_.clear();
  idle_ = 0;
}

}  // namespace edgeplane::proxy
