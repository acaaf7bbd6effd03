#include "reconciler/cli/heap_tuning.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace edgeplane::cli {
namespace {

constexpr int kMmapThreshold = 32 << 20;  // glibc's largest on 64-bit
constexpr int kTrimThreshold = 256 << 20;
constexpr int kTopPad = 32 << 20;
constexpr uintptr_t kHugePage = 2 << 20;  // x86-64 and arm64 with 4 KiB pages

// Whether the operator set malloc up through glibc's environment (GLIBC_TUNABLES, MALLOC_*):
// glibc has read it by now, and it wins.
bool mallocSetByEnvironment() {
  if (const char* tunables = std::getenv("GLIBC_TUNABLES");
      tunables != nullptr &&
      std::string_view(tunables).find("glibc.malloc.") != std::string_view::npos) {
    return true;
  }
  for (const char* name : {"MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                           "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
      return true;
    }
  }
  return false;
}

}  // namespace

void tuneHeapForOneShotRun() {
  if (mallocSetByEnvironment()) {
    return;
  }
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
