// Per-worker pool of idle upstream (backend) connections for the HTTP handlers.
//
// Keyed by (route namespace, backend endpoint): a connection made in a tenant's namespace is
// only ever reused for the same namespace and address, so tenants that reuse private
// addresses stay apart. At most `maxIdlePerBackend` idle sockets per key, each dropped after
// `idleTimeout`. An idle socket stays in the worker's epoll with its pool entry as the target:
// any event on it (the backend closed, or sent bytes nobody asked for) drops it, so a dead
// socket is seldom handed out. Taking one re-targets its epoll registration to the taker.
//
// Not thread-safe: one pool per worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

class UpstreamPool {
 public:
  explicit UpstreamPool(Context& ctx) : ctx_(ctx) {}
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // An idle connected socket for the key, now registered with `target`/`tag` (edge-triggered
  // IN|OUT|RDHUP), or -1.
  int take(std::string_view netns, const Endpoint& backend, EventTarget* target, uint32_t tag);
  // Gives a healthy idle socket back (the caller read its response completely); closed
  // instead when the key is full or the worker is draining.
  void put(std::string_view netns, const Endpoint& backend, int fd);
  // Closes every idle socket (worker shutdown).
  void clear();

  size_t idleCount() const { return idle_; }
  uint64_t reused() const { return reused_; }

 private:
  class Entry;
  friend class Entry;
  static std::string key(std::string_view netns, const Endpoint& backend);
  void drop(Entry* entry);

  Context& ctx_;
  std::unordered_map<std::string, std::vector<Entry*>> idleByKey_;
  size_t idle_ = 0;
  uint64_t reused_ = 0;
};

}  // namespace edgeplane::proxy
