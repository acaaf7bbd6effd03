// Independent pieces of work spread over a few threads, the caller's among them: the one pool of
// the loops that parse chunks and observe namespaces and interfaces side by side.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <system_error>
#include <thread>
#include <vector>

namespace edgeplane {

// Calls fn(i) once for each i in [0, n), on up to `threads` threads, and returns when every
// call has returned. The calling thread is one of them; a helper that cannot be started leaves
// its share to the others (with none, the caller does it all). Indices are taken in order, so
// with one thread the calls are made in order. fn must not throw: each call keeps its own
// outcome (an error, or an exception_ptr) in a slot of its index.
template <typename Fn>
void forEachIndex(size_t n, size_t threads, Fn fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      fn(i);
    }
  };
  std::vector<std::jthread> helpers;
  for (size_t t = 1; t < std::min(threads, n); ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no thread to be had: fewer helpers
    }
  }
  work();
}  // the helpers are joined here

}  // namespace edgeplane
