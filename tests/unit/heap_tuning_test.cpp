// A one-shot command's heap (heap_tuning.h): a block below the mmap threshold comes from the
// heap, and the heap carries the huge-page advice. Each case runs in a child process, since the
// tuning is for the whole process.
#include "reconciler/cli/heap_tuning.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

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

// Each case in a fresh process (threadsafe: the child runs the test binary anew), so that no
// earlier test's frees have moved glibc's dynamic mmap threshold or filled the heap.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcMalloc = false;  // AddressSanitizer's: the tuning does nothing there
#else
constexpr bool kGlibcMalloc = true;
#endif

class HeapTuning : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kGlibcMalloc) {
      GTEST_SKIP() << "AddressSanitizer's malloc is not glibc's";
    }
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

// Whether a 1 MiB block (above glibc's default mmap threshold of 128 KiB, below the tuned one)
// is taken from the heap rather than mapped on its own. The block is left allocated.
bool aMebibyteBlockIsInTheHeap() {
  void* volatile block = std::malloc(1 << 20);
  return heapView(reinterpret_cast<uintptr_t>(block)).holds;
}

[[noreturn]] void fail(const char* why) {
  std::cerr << why << "\n";
  std::_Exit(1);
}

TEST_F(HeapTuning, TheHeapIsGrownKeptAdvisedAndSharedByEveryThread) {
  const bool thp = std::filesystem::exists("/sys/kernel/mm/transparent_hugepage");
  EXPECT_EXIT(
      {
        const auto before = reinterpret_cast<uintptr_t>(sbrk(0));
        tuneHeapForOneShotRun();
        // Grown by the block and the pad, and not trimmed back when the block was freed.
        if (reinterpret_cast<uintptr_t>(sbrk(0)) - before < (40U << 20)) {
          fail("the heap was not grown by 40 MiB or more, or was trimmed back");
        }
        void* volatile block = std::malloc(1 << 20);
        const HeapView view = heapView(reinterpret_cast<uintptr_t>(block));
        if (!view.holds) {
          fail("a 1 MiB block was mapped on its own, not taken from the heap");
        }
        if (thp && !view.advised) {
          fail("no heap mapping carries MADV_HUGEPAGE");
        }
        // Another thread's block comes from the same heap (one arena), not an arena of its own.
        bool otherInHeap = false;
        std::thread([&otherInHeap] { otherInHeap = aMebibyteBlockIsInTheHeap(); }).join();
        if (!otherInHeap) {
          fail("another thread's block is not in the heap (an arena of its own)");
        }
        std::_Exit(0);
      },
      testing::ExitedWithCode(0), "");
}

TEST_F(HeapTuning, WithoutItABlockThatSizeIsMappedOnItsOwn) {
  // The checks above can fail: glibc's defaults map such a block by itself.
  EXPECT_EXIT({ std::_Exit(aMebibyteBlockIsInTheHeap() ? 1 : 0); }, testing::ExitedWithCode(0), "");
}

TEST_F(HeapTuning, MallocSetUpByTheEnvironmentIsLeftAsItIs) {
  EXPECT_EXIT(
      {
        // As an operator would opt out; glibc reads its own settings before main, this run's
        // defaults are glibc's either way.
        ::setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=0", 1);
        tuneHeapForOneShotRun();
        std::_Exit(aMebibyteBlockIsInTheHeap() ? 1 : 0);
      },
      testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace edgeplane::cli
