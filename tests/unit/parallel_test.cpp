// forEachIndex: every index once, on the threads asked for, in order on one.
#include "schema/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace edgeplane {
namespace {

TEST(ForEachIndex, CallsEveryIndexOnceAcrossThreads) {
  std::vector<int> calls(1000, 0);
  std::mutex m;
  std::set<std::thread::id> threads;
  forEachIndex(calls.size(), 4, [&](size_t i) {
    ++calls[i];  // each index is given to one thread only
    const std::lock_guard lock(m);
    threads.insert(std::this_thread::get_id());
  });
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_EQ(calls[i], 1) << i;
  }
  EXPECT_LE(threads.size(), 4U);
}

// Four calls that each wait (at most 5 s) for all four to have started: they meet only when they
// run side by side, on four threads.
TEST(ForEachIndex, RunsTheCallsSideBySide) {
  std::mutex m;
  std::condition_variable cv;
  size_t started = 0;
  std::atomic<size_t> met{0};
  forEachIndex(4, 4, [&](size_t) {
    std::unique_lock lock(m);
    ++started;
    cv.notify_all();
    if (cv.wait_for(lock, std::chrono::seconds(5), [&] { return started == 4; })) {
      ++met;
    }
  });
  EXPECT_EQ(met.load(), 4U);
}

// Every call has returned when forEachIndex does, the helpers' too (they are joined).
TEST(ForEachIndex, ReturnsOnlyWhenEveryCallHas) {
  std::vector<std::atomic<bool>> done(4);
  forEachIndex(done.size(), 4, [&](size_t i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(i == 0 ? 0 : 50));
    done[i] = true;
  });
  for (size_t i = 0; i < done.size(); ++i) {
    EXPECT_TRUE(done[i].load()) << i;
  }
}

TEST(ForEachIndex, OneThreadCallsInOrderOnTheCaller) {
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<size_t> order;
  forEachIndex(5, 1, [&](size_t i) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(i);
  });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(ForEachIndex, NoWorkStartsNoThread) {
  int calls = 0;
  forEachIndex(0, 4, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ForEachIndex, NoMoreThreadsThanWork) {
  const std::thread::id caller = std::this_thread::get_id();
  std::thread::id ran;
  forEachIndex(1, 4, [&](size_t) { ran = std::this_thread::get_id(); });
  EXPECT_EQ(ran, caller) << "one piece of work: no helper";
}

}  // namespace
}  // namespace edgeplane
