// forEachIndex: every index once, on the threads asked for, in order on one.
#include "schema/parallel.h"

#include <gtest/gtest.h>

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
