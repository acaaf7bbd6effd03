// The state directory's trust checks: its owner and mode, and the lock file in it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "reconciler/system/file_write.h"
#include "reconciler/system/lock.h"
#include "schema/mode_text.h"
#include "schema/store.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::sys {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Result<StateLock> lockNow(const fs::path& dir) {
  return StateLock::acquire(dir, milliseconds(0), [](long) {});
}

// Why `r` was refused, or a marker that it was not.
template <typename T>
std::string refusal(const Result<T>& r) {
  return r.ok() ? std::string("(accepted)") : r.error().message;
}

// Both ways into the state directory: the run lock and the store.
std::vector<std::string> refusals(const fs::path& dir) {
  return {refusal(lockNow(dir)), refusal(Store::open(dir))};
}

class StateDirTrust : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = tmp_.path() / "state";
    ASSERT_EQ(::mkdir(state_.c_str(), 0700), 0);
  }
  testing::TempDir tmp_;
  fs::path state_;
};

TEST_F(StateDirTrust, AMissingDirectoryIsCreated0700EvenWithUmask0) {
  const fs::path fresh = tmp_.path() / "new" / "state";
  const mode_t old = ::umask(0);
  auto lock = lockNow(fresh);
  ::umask(old);
  ASSERT_TRUE(lock.ok()) << lock.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(StateDirTrust, AGroupOrWorldWritableDirectoryIsRefusedAndLeftAsItIs) {
  for (mode_t mode : {0770, 0702, 0777}) {
    ASSERT_EQ(::chmod(state_.c_str(), mode), 0);
    for (const auto& message : refusals(state_)) {
      EXPECT_TRUE(contains(message, state_.string())) << message;
      EXPECT_TRUE(contains(message, modeText(mode))) << message;
      EXPECT_TRUE(contains(message, "writable by group or others")) << message;
    }
    struct stat st {};
    ASSERT_EQ(::stat(state_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, mode) << "the mode was changed instead of refused";
    EXPECT_FALSE(fs::exists(state_ / "lock"));
    EXPECT_FALSE(fs::exists(state_ / "state.db"));
  }
}

TEST_F(StateDirTrust, ADirectoryOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another uid needs root";
  }
  ASSERT_EQ(::chown(state_.c_str(), 65534, 65534), 0);
  for (const auto& message : refusals(state_)) {
    EXPECT_TRUE(contains(message, state_.string())) << message;
    EXPECT_TRUE(contains(message, "owned by uid 65534")) << message;
  }
  EXPECT_FALSE(fs::exists(state_ / "lock"));
  EXPECT_FALSE(fs::exists(state_ / "state.db"));
}

TEST_F(StateDirTrust, ALockFileThatIsASymlinkIsRefusedAndItsTargetUntouched) {
  const fs::path victim = tmp_.path() / "victim";
  std::ofstream(victim) << "precious\n";
  ASSERT_EQ(::symlink(victim.c_str(), (state_ / "lock").c_str()), 0);
  auto lock = lockNow(state_);
  ASSERT_FALSE(lock.ok());
  EXPECT_TRUE(contains(lock.error().message, (state_ / "lock").string())) << lock.error().message;
  EXPECT_TRUE(contains(lock.error().message, "symbolic link")) << lock.error().message;
  EXPECT_EQ(readAll(victim), "precious\n");

  const fs::path dangling = tmp_.path() / "created-through-the-link";
  fs::remove(state_ / "lock");
  ASSERT_EQ(::symlink(dangling.c_str(), (state_ / "lock").c_str()), 0);
  EXPECT_FALSE(lockNow(state_).ok());
  EXPECT_FALSE(fs::exists(dangling));
}

TEST_F(StateDirTrust, ALockFileOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "chown to another uid needs root";
  }
  std::ofstream(state_ / "lock") << "";
  ASSERT_EQ(::chown((state_ / "lock").c_str(), 65534, 65534), 0);
  auto lock = lockNow(state_);
  ASSERT_FALSE(lock.ok());
  EXPECT_TRUE(contains(lock.error().message, "owned by uid 65534")) << lock.error().message;
}

// The holder's pid is written over the previous one in place: a waiter reads a whole number,
// never an empty file, and no stale digits of a longer pid are left behind.
TEST_F(StateDirTrust, TheHolderPidReplacesALongerOneWithoutTruncating) {
  std::ofstream(state_ / "lock") << "123456789012345678\n";
  ::chmod((state_ / "lock").c_str(), 0600);
  auto lock = lockNow(state_);
  ASSERT_TRUE(lock.ok()) << lock.error().message;
  EXPECT_EQ(std::stol(readAll(state_ / "lock")), static_cast<long>(::getpid()));
}

// Files of edgeplane's own in the state directory (the ACME account key) are read without
// following a symbolic link; a missing one is not an error, a FIFO does not hang the read.
TEST_F(StateDirTrust, OwnFilesAreReadWithoutFollowingSymlinks) {
  const fs::path own = state_ / "key.pem";
  std::ofstream(own) << "secret\n";
  auto read = readOwnFile(own.string());
  ASSERT_TRUE(read.ok()) << read.error().message;
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, "secret\n");

  auto missing = readOwnFile((state_ / "absent").string());
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());

  const fs::path victim = tmp_.path() / "victim";
  std::ofstream(victim) << "not edgeplane's\n";
  const fs::path link = state_ / "link.pem";
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  const std::string why = refusal(readOwnFile(link.string()));
  EXPECT_TRUE(contains(why, link.string())) << why;
  EXPECT_TRUE(contains(why, "symbolic link")) << why;

  const fs::path fifo = state_ / "fifo.pem";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(contains(refusal(readOwnFile(fifo.string())), "not a regular file"));
}

// With a prefix: a file that starts with it is read whole; one that does not comes back only
// as far as it was read to tell (a cache entry for other inputs is not read through).
TEST_F(StateDirTrust, AnOwnFileIsReadPastAPrefixOnlyWhenItStartsWithIt) {
  const fs::path own = state_ / "entry";
  const std::string body(100000, 'b');
  std::ofstream(own) << "header A\n" << body;
  auto whole = readOwnFile(own.string(), "header A\n");
  ASSERT_TRUE(whole.ok() && whole->has_value());
  EXPECT_EQ(**whole, "header A\n" + body);
  auto other = readOwnFile(own.string(), "header B\n");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_LE((*other)->size(), 9u);
  EXPECT_FALSE((*other)->starts_with("header B\n"));
  // A file shorter than the prefix, and one equal to it.
  std::ofstream(own, std::ios::trunc) << "head";
  auto shorter = readOwnFile(own.string(), "header A\n");
  ASSERT_TRUE(shorter.ok() && shorter->has_value());
  EXPECT_EQ(**shorter, "head");
  std::ofstream(own, std::ios::trunc) << "header A\n";
  auto equal = readOwnFile(own.string(), "header A\n");
  ASSERT_TRUE(equal.ok() && equal->has_value());
  EXPECT_EQ(**equal, "header A\n");
}

// Giving up says how long it waited, also under a second (it said "0 s" for 300 ms), in the
// same words as publish.lock's wait.
TEST_F(StateDirTrust, GivingUpOnTheLockSaysHowLongItWaited) {
  auto held = lockNow(state_);
  ASSERT_TRUE(held.ok()) << held.error().message;
  long holder = -1;
  auto again = StateLock::acquire(state_, milliseconds(300), [&](long pid) { holder = pid; });
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(again.error().retryable);
  EXPECT_EQ(holder, static_cast<long>(::getpid()));
  EXPECT_TRUE(contains(again.error().message, "gave up after 300ms")) << again.error().message;
}

}  // namespace
}  // namespace edgeplane::sys
