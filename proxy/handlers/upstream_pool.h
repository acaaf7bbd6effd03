// Per-worker upstream (backend) connections for the HTTP handlers, and the pool of idle ones.
//
// Every upstream connection is an UpstreamLink, registered with the worker's epoll once, when
// it is made (edge-triggered IN|OUT|RDHUP); its events go to the handler that owns it, so
// taking an idle connection or giving it back costs no epoll_ctl. Idle links are keyed by
// (route namespace, backend endpoint): a connection made in a tenant's namespace is only ever
// reused for the same namespace and address, so tenants that reuse private addresses stay
// apart. At most `upstreamIdlePerBackend` idle links per key, each closed after
// `upstreamIdleTimeout`; any event on an idle link (the backend closed, or sent bytes nobody
// asked for) closes it, and so does a release while such an event waits unread, so a dead
// socket is seldom handed out.
//
// Not thread-safe: one pool per worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

class UpstreamPool;

// One upstream connection; owned by the pool, used by one handler at a time.
class UpstreamLink final : public EventTarget {
 public:
  int fd() const { return fd_; }

  // Interface
  void onIo(uint32_t tag, uint32_t events) override;
  void onTimer() override;

 private:
  friend class UpstreamPool;
  UpstreamLink(UpstreamPool& pool, std::string netns, const Endpoint& backend, int fd)
      : pool_(pool), netns_(std::move(netns)), backend_(backend), fd_(fd) {}

  UpstreamPool& pool_;
  std::string netns_;
  Endpoint backend_;
  int fd_;
  EventTarget* owner_ = nullptr;  // nullptr: idle in the pool
  uint32_t ownerTag_ = 0;
};

class UpstreamPool {
 public:
  explicit UpstreamPool(Context& ctx) : ctx_(ctx) {}
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // A new connection to `backend` in `netns`: `fd` (connect() started) is registered with the
  // worker's epoll for `owner`/`tag`. nullptr (and `fd` closed) if epoll refuses it.
  UpstreamLink* adopt(std::string_view netns, const Endpoint& backend, int fd, EventTarget* owner,
                      uint32_t tag);
  // An idle connection for the key, now owned by `owner`/`tag`, or nullptr.
  UpstreamLink* take(std::string_view netns, const Endpoint& backend, EventTarget* owner,
                     uint32_t tag);
  // The owner is done with `link`: idle again when `reusable` (both the request and the
  // response went through whole), nothing waits on it (no byte, no end of stream), the key has
  // room and the worker is not draining; else closed.
  void release(UpstreamLink* link, bool reusable);
  // Closes every idle link (worker shutdown: no owner is left).
  void clear();

  size_t idleCount() const { return idle_; }
  uint64_t reused() const { return reused_; }

 private:
  friend class UpstreamLink;
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Idle = std::map<Endpoint, std::vector<UpstreamLink*>>;

  void close(UpstreamLink* link);  // closes and retires; removes it from the idle lists
  std::vector<UpstreamLink*>* idleList(std::string_view netns, const Endpoint& backend);
  void forgetIfEmpty(std::string_view netns, const Endpoint& backend);

  Context& ctx_;
  std::unordered_map<std::string, Idle, NameHash, std::equal_to<>> idle_by_netns_;
  size_t idle_ = 0;
  uint64_t reused_ = 0;
};

}  // namespace edgeplane::proxy
