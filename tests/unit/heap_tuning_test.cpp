// A one-shot command's heap (heap_tuning.h): a block below the mmap threshold comes from the
// heap, and the heap carries the huge-page advice. Each case runs in a child process, since the
// tuning is for the whole process.
#include "reconciler/cli/heap_tuning.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

namespace edgeplane::cli {
namespace {

// The [heap] mappings of this process: whether `address` lies in one, and whether one of them
// carries the huge-page advice ("hg" among its VmFlags).
struct HeapView {
  bool holds = false;
  bool advised = false;
};

HeapView heapView(uintptr_t address) {
  HeapView view;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inHeap = false;
  while (std::getline(smaps, line)) {
    uintptr_t from = 0;
    uintptr_t to = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> from >> dash >> to && dash == '-') {
      inHeap = line.ends_with("[heap]");
      view.holds = view.holds || (inHeap && from <= address && address < to);
      continue;
    }
    if (inHeap && line.starts_with("VmFlags:") && (line + " ").find(" hg ") != std::string::npos) {
      view.advised = true;
    }
  }
  return view;
}

TEST(HeapTuning, ABlockBelowTheThresholdComesFromTheAdvisedHeap) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's malloc is not glibc's: the tuning does nothing there";
#endif
  const bool thp = std::filesystem::exists("/sys/kernel/mm/transparent_hugepage");
  EXPECT_EXIT(
      {
        tuneHeapForOneShotRun();
        // 1 MiB: above glibc's default mmap threshold (128 KiB), below the tuned one.
        void* volatile block = std::malloc(1 << 20);
        const HeapView view = heapView(reinterpret_cast<uintptr_t>(block));
        if (!view.holds) {
          std::cerr << "a 1 MiB block was mapped on its own, not taken from the heap\n";
          std::_Exit(1);
        }
        if (thp && !view.advised) {
          std::cerr << "no heap mapping carries MADV_HUGEPAGE\n";
          std::_Exit(1);
        }
        std::free(block);
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST(HeapTuning, WithoutItABlockThatSizeIsMappedOnItsOwn) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's malloc is not glibc's";
#endif
  // The check above can fail: glibc's defaults map such a block by itself.
  EXPECT_EXIT(
      {
        void* volatile block = std::malloc(1 << 20);
        std::_Exit(heapView(reinterpret_cast<uintptr_t>(block)).holds ? 1 : 0);
      },
      testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace edgeplane::cli
