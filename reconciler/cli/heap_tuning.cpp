#include "reconciler/cli/heap_tuning.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

namespace edgeplane::cli {
namespace {

constexpr int kMmapThreshold = 32 << 20;  // glibc's largest on 64-bit
constexpr int kTrimThreshold = 256 << 20;
constexpr int kTopPad = 32 << 20;
constexpr uintptr_t kHugePage = 2 << 20;  // x86-64 and arm64 with 4 KiB pages

}  // namespace

void tuneHeapForOneShotRun() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  mallopt(M_TOP_PAD, kTopPad);
  // Grow the heap now, by the pad and more, so that one advice covers it: a block this size
  // does not fit in what start-up left, and freeing it returns it to the heap's top.
  const auto before = reinterpret_cast<uintptr_t>(sbrk(0));
  // (Through a volatile: a malloc whose block is never used may be left out by the compiler.)
  void* volatile block = std::malloc(kTopPad / 2);
  std::free(block);
  const auto after = reinterpret_cast<uintptr_t>(sbrk(0));
  const uintptr_t from = (before + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t to = after & ~(kHugePage - 1);
  if (before == static_cast<uintptr_t>(-1) || to <= from) {
    return;  // not glibc's heap, or it did not grow: nothing to advise
  }
  // Advice only: where the kernel has no transparent huge pages this fails and changes nothing.
  (void)madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

}  // namespace edgeplane::cli
