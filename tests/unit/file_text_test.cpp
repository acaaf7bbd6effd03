// Whole-file reading (schema/file_text.h): readFileText, and readFull / readToEnd, the reads
// under it and under readSecretFile and sys::readOwnFile (whose own tests are in cli_test and
// state_dir_test).
#include "schema/file_text.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

std::string refusal(const Result<std::string>& r) {
  return r.ok() ? std::string("(read)") : r.error().message;
}

// A pipe whose ends are closed with the test.
struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    closeWriter();
    ::close(fds[0]);
  }
  void write(std::string_view s) const {
    EXPECT_EQ(::write(fds[1], s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  void closeWriter() {
    if (fds[1] >= 0) {
      ::close(fds[1]);
      fds[1] = -1;
    }
  }
  int reader() const { return fds[0]; }
  int fds[2] = {-1, -1};
};

TEST(FileText, AFileIsReadWholeWhateverItsSizeSays) {
  testing::TempDir dir;
  const fs::path big = dir.path() / "big.toml";
  std::string text;
  for (int i = 0; text.size() < (1U << 20) + 7; ++i) {
    text += "line " + std::to_string(i) + "\n";
  }
  std::ofstream(big) << text;
  auto read = readFileText(big);
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(*read, text);

  const fs::path empty = dir.path() / "empty.toml";
  std::ofstream{empty};
  auto none = readFileText(empty);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_EQ(*none, "");

  // /proc says size 0 and has more: read to its end all the same.
  auto status = readFileText("/proc/self/status");
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_NE(status->find("\nPid:"), std::string::npos);
  EXPECT_EQ(status->back(), '\n');
}

TEST(FileText, WhatCannotBeReadIsNamedWithTheReason) {
  testing::TempDir dir;
  const std::string missing = refusal(readFileText(dir.path() / "missing.toml"));
  EXPECT_EQ(missing, "cannot read " + (dir.path() / "missing.toml").string() +
                         ": No such file or directory");
  EXPECT_EQ(refusal(readFileText(dir.path())),
            "cannot read " + dir.path().string() + ": Is a directory");
}

// readFull gathers short reads until it has what was asked for, and leaves the rest unread;
// fewer bytes than asked for is the end of the file.
TEST(FileText, ReadFullGathersShortReadsAndStopsAtWhatWasAsked) {
  Pipe p;
  std::thread writer([&p] {
    for (const char* piece : {"ab", "cd", "efgh", "ijkl"}) {
      p.write(piece);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    p.closeWriter();
  });
  char buf[16] = {};
  size_t got = 0;
  EXPECT_EQ(readFull(p.reader(), buf, 6, got), 0);
  EXPECT_EQ(std::string(buf, got), "abcdef");
  EXPECT_EQ(readFull(p.reader(), buf, sizeof buf, got), 0);
  EXPECT_EQ(std::string(buf, got), "ghijkl");
  EXPECT_EQ(readFull(p.reader(), buf, sizeof buf, got), 0);
  EXPECT_EQ(got, 0U);
  writer.join();
}

// Pieces that come one at a time, each shorter than the room left: read on to the end, not
// taken for the end.
TEST(FileText, ReadToEndReadsOnPastShortReads) {
  Pipe p;
  std::thread writer([&p] {
    for (const char* piece : {"ab", "cd", "ef"}) {
      p.write(piece);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    p.closeWriter();
  });
  std::string text(64, '\0');
  EXPECT_EQ(readToEnd(p.reader(), text, 0), 0);
  writer.join();
  EXPECT_EQ(text, "abcdef");
}

TEST(FileText, ReadToEndKeepsWhatIsThereAndGrows) {
  Pipe p;
  const std::string rest(10000, 'r');
  std::thread writer([&] {
    p.write(rest);
    p.closeWriter();
  });
  std::string text = "head";
  text.resize(6);  // room for two more bytes only
  EXPECT_EQ(readToEnd(p.reader(), text, 4), 0);
  writer.join();
  EXPECT_EQ(text, "head" + rest);
}

TEST(FileText, AFailedReadGivesItsErrno) {
  Pipe p;
  char buf[4];
  size_t got = 7;
  EXPECT_EQ(readFull(p.fds[1], buf, sizeof buf, got), EBADF);  // the write end
  EXPECT_EQ(got, 0U);
  std::string text(4, '\0');
  EXPECT_EQ(readToEnd(p.fds[1], text, 0), EBADF);
}

std::atomic<int> interrupted{0};
void onSignal(int) {
  ++interrupted;
}

// A signal that interrupts the read (a handler without SA_RESTART, as the agent's) is not a
// failure: the read goes on, and the bytes that come after are read.
TEST(FileText, AnInterruptedReadIsRetried) {
  struct sigaction sa {};
  struct sigaction old {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  Pipe p;
  int err = -1;
  size_t got = 0;
  char buf[8] = {};
  std::atomic<bool> started{false};
  std::thread reader([&] {
    started = true;
    err = readFull(p.reader(), buf, 5, got);
  });
  while (!started) {
    std::this_thread::yield();
  }
  interrupted = 0;
  for (int i = 0; i < 5; ++i) {  // the reader is blocked in read() by then
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ::pthread_kill(reader.native_handle(), SIGUSR1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  p.write("hello");
  reader.join();
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_GT(interrupted.load(), 0);
  EXPECT_EQ(err, 0);
  EXPECT_EQ(std::string(buf, got), "hello");
}

}  // namespace
}  // namespace edgeplane
