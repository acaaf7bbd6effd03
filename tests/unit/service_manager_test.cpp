// The service manager's notification protocol as the daemons speak it: datagrams to the
// $NOTIFY_SOCKET a path or an abstract name gives, nothing when it is unusable, and the watchdog
// interval from WATCHDOG_USEC and WATCHDOG_PID as sd_watchdog_enabled(3) reads them.
#include "reconciler/system/service_manager.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/notify_socket.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

using testing::NotifySocket;
using testing::TempDir;

// Sets (or unsets, with nullopt) one environment variable for the scope, restoring it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      old_ = old;
    }
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value) {
      ::setenv(name_, value->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ServiceManagerTest, NoticesReachASocketByPath) {
  TempDir dir;
  NotifySocket socket(dir.path() / "notify");
  ASSERT_TRUE(socket.bound());
  const ScopedEnv env("NOTIFY_SOCKET", socket.path().string());
  ServiceManager::ready("serving 3 routes\nand a second line");
  ServiceManager::stopping("draining");
  ServiceManager::watchdog();
  ASSERT_TRUE(socket.waitFor("WATCHDOG=1"));
  ASSERT_EQ(socket.messages().size(), 3u);
  // One datagram per notice; a STATUS= value stays on one line.
  EXPECT_EQ(socket.messages()[0], "READY=1\nSTATUS=serving 3 routes and a second line");
  EXPECT_EQ(socket.messages()[1], "STOPPING=1\nSTATUS=draining");
  EXPECT_EQ(socket.messages()[2], "WATCHDOG=1");
}

// systemd ignores a notice with a NUL byte before its end, and one longer than it reads (4096
// bytes): a status text must give neither, or READY=1 is lost with it and the unit never starts.
TEST(ServiceManagerTest, AStatusTextCannotLoseItsNotice) {
  TempDir dir;
  NotifySocket socket(dir.path() / "notify");
  ASSERT_TRUE(socket.bound());
  const ScopedEnv env("NOTIFY_SOCKET", socket.path().string());
  ServiceManager::ready(std::string("failed: name \"a\0b\"\ttab\x1b[31m", 27));
  ServiceManager::status(std::string(10000, 'x') + "end");
  ServiceManager::status(std::string(2000, 'x') + "\xc3\xa9\xc3\xa9\xc3\xa9");  // é, 2 bytes each
  ASSERT_TRUE(socket.waitForMessages(3));
  const std::vector<std::string> st = socket.linesStarting("STATUS=");
  EXPECT_EQ(st[0], "STATUS=failed: name \"a b\" tab [31m");
  for (const std::string& m : socket.messages()) {
    EXPECT_EQ(m.find('\0'), std::string::npos);
    EXPECT_LE(m.size(), 4096u);
  }
  // A long text is cut, on a character boundary, and says so.
  EXPECT_TRUE(st[1].ends_with("…")) << st[1].substr(st[1].size() - 10);
  EXPECT_LT(st[1].size(), 2000u);
  const std::string& cut = st[2];
  EXPECT_TRUE(cut.ends_with("…"));
  const std::string kept = cut.substr(0, cut.size() - std::string("…").size());
  EXPECT_NE(static_cast<unsigned char>(kept.back()), 0xc3u);  // not half of an é
}

TEST(ServiceManagerTest, NoticesReachAnAbstractSocket) {
  const std::string name = "@edgeplane-notify-test-" + std::to_string(::getpid());
  NotifySocket socket(name);
  ASSERT_TRUE(socket.bound());
  const ScopedEnv env("NOTIFY_SOCKET", name);
  ServiceManager::reloading();
  ServiceManager::status("applied abc123");
  ASSERT_TRUE(socket.waitFor("STATUS=applied abc123"));
  ASSERT_EQ(socket.messages().size(), 2u);
  EXPECT_TRUE(socket.messages()[0].starts_with("RELOADING=1\nMONOTONIC_USEC="));
}

TEST(ServiceManagerTest, AnUnusableSocketNameSendsNothingAndDoesNotFail) {
  TempDir dir;
  NotifySocket socket(dir.path() / "notify");
  ASSERT_TRUE(socket.bound());
  for (const char* value : {"", "relative/notify", "@"}) {
    const ScopedEnv env("NOTIFY_SOCKET", std::string(value));
    ServiceManager::ready("ignored");
  }
  {
    const ScopedEnv env("NOTIFY_SOCKET", "/" + std::string(200, 'x'));  // longer than sun_path
    ServiceManager::ready("ignored");
  }
  {
    const ScopedEnv env("NOTIFY_SOCKET", (dir.path() / "nobody-listens").string());
    ServiceManager::ready("ignored");
  }
  {
    const ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
    ServiceManager::ready("ignored");
  }
  const ScopedEnv env("NOTIFY_SOCKET", socket.path().string());
  ServiceManager::status("last");
  ASSERT_TRUE(socket.waitFor("STATUS=last"));
  EXPECT_EQ(socket.messages().size(), 1u);  // none of the notices before reached it
}

TEST(ServiceManagerTest, TheWatchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly) {
  const std::string self = std::to_string(::getpid());
  auto interval = [](std::optional<std::string> usec, std::optional<std::string> pid) {
    const ScopedEnv u("WATCHDOG_USEC", std::move(usec));
    const ScopedEnv p("WATCHDOG_PID", std::move(pid));
    return ServiceManager::watchdogInterval();
  };
  EXPECT_EQ(interval("400000", std::nullopt), std::chrono::microseconds(200000));
  EXPECT_EQ(interval("400000", self), std::chrono::microseconds(200000));
  EXPECT_EQ(interval("3", self), std::chrono::microseconds(1));
  // Another process's watchdog (a child that inherited the variables): off.
  EXPECT_EQ(interval("400000", std::to_string(::getpid() + 1)), std::nullopt);
  EXPECT_EQ(interval("400000", "not-a-pid"), std::nullopt);
  // Off, or not a number.
  EXPECT_EQ(interval(std::nullopt, std::nullopt), std::nullopt);
  EXPECT_EQ(interval("0", std::nullopt), std::nullopt);
  EXPECT_EQ(interval("", std::nullopt), std::nullopt);
  EXPECT_EQ(interval("12s", std::nullopt), std::nullopt);
  EXPECT_EQ(interval("-5", std::nullopt), std::nullopt);
  // A value too large for a wait: the keep-alive still comes, at most once an hour.
  EXPECT_EQ(interval("18446744073709551615", std::nullopt), std::chrono::hours(1));
}

// The longest path sun_path holds (107 bytes and its NUL) is used; one byte more is not.
TEST(ServiceManagerTest, APathUpToTheAddressSizeIsUsed) {
  TempDir dir;
  std::string base = dir.path().string() + "/";
  ASSERT_LT(base.size(), 100u);
  const std::string longest = base + std::string(107 - base.size(), 'n');
  NotifySocket socket(longest);
  ASSERT_TRUE(socket.bound());
  {
    const ScopedEnv env("NOTIFY_SOCKET", longest + "x");  // 108 bytes: no room for its NUL
    ServiceManager::status("too long");
  }
  const ScopedEnv env("NOTIFY_SOCKET", longest);
  ServiceManager::status("fits");
  ASSERT_TRUE(socket.waitFor("STATUS=fits"));
  EXPECT_EQ(socket.messages().size(), 1u);
}

}  // namespace
}  // namespace edgeplane
