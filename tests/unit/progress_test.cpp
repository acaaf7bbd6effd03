// The progress line of a fetch or an apply: its text and redraws (pure), nothing at all when
// stderr is not a terminal, and a line drawn and cleared on a pseudo-terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "reconciler/cli/commands.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/progress.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::cli {
namespace {

using std::chrono::milliseconds;
using testing::TempDir;

TEST(ProgressLine, RedrawReplacesTheLineInPlace) {
  size_t shown = 0;
  EXPECT_EQ(progressRedraw("fetching x (1s)", shown, 80), "\rfetching x (1s)");
  EXPECT_EQ(shown, 15u);
  // A shorter line blanks the rest of the longer one, and leaves the cursor after its text.
  EXPECT_EQ(progressRedraw("step 2", shown, 80), "\rstep 2" + std::string(9, ' ') + "\rstep 2");
  EXPECT_EQ(shown, 6u);
  EXPECT_EQ(progressRedraw("step 3", shown, 80), "\rstep 3");
  EXPECT_EQ(progressClear(shown), "\r      \r");
  EXPECT_EQ(shown, 0u);
  EXPECT_EQ(progressClear(shown), "");  // nothing shown: nothing to clear
}

TEST(ProgressLine, NeverWrapsNorCutsACharacterNorPassesControls) {
  size_t shown = 0;
  EXPECT_EQ(progressRedraw("abcdef", shown, 4), "\rabc");  // a column left for the cursor
  EXPECT_EQ(shown, 3u);
  shown = 0;
  EXPECT_EQ(progressRedraw("\xc3\xa9\xc3\xa9\xc3\xa9", shown, 3), "\r\xc3\xa9\xc3\xa9");
  EXPECT_EQ(shown, 2u);
  shown = 0;
  const std::string line = progressRedraw("peer \x1b[2Jx\rgone", shown, 80);
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  EXPECT_EQ(line.rfind('\r'), 0u) << line;  // only the leading one
}

TEST(ProgressLine, Texts) {
  EXPECT_EQ(fetchProgressText("https://git.example/cfg.git", milliseconds(3400)),
            "fetching https://git.example/cfg.git (3s)");
  EXPECT_EQ(applyProgressText(4, "create wireguard tenant-a"),
            "applying: step 4: create wireguard tenant-a");
}

// Puts `fd` in place of stderr for the lifetime of the object.
class StderrTo {
 public:
  explicit StderrTo(int fd) : saved_(::dup(STDERR_FILENO)) { ::dup2(fd, STDERR_FILENO); }
  ~StderrTo() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
  }

 private:
  int saved_;
};

// Everything readable on `fd` within `wait`.
std::string drain(int fd, milliseconds wait) {
  std::string out;
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A fetch that takes a while, with progress asked for, as `plan` and `apply` run it.
Result<std::string> slowFetch(const std::filesystem::path& cache) {
  Options o;
  o.progress = true;
  o.git = GitSettings{};
  o.git->url = "https://user:secret@git.example/cfg.git";
  o.fetchHelper = {"/bin/sh", "-c", "sleep 1.6; echo 'ok 0123456789abcdef0123456789abcdef01234567'",
                   "sh"};
  return fetchWithProgress(o, cache, {"https://git.example/cfg.git", "main", {}});
}

// Logs, pipes and tests see no change: not a byte of progress when stderr is not a terminal.
TEST(ProgressLine, NothingWhenStderrIsNotATerminal) {
  TempDir dir;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  {
    StderrTo pipe(fds[1]);
    EXPECT_TRUE(slowFetch(dir.path() / "cache").ok());
    Progress direct(STDERR_FILENO, milliseconds(0));
    direct.update("applying: step 1: create namespace a");
  }
  ::close(fds[1]);
  EXPECT_EQ(drain(fds[0], milliseconds(100)), "");
  ::close(fds[0]);
}

// On a terminal: the line appears once the delay has passed, with the url's password hidden,
// and is blanked out at the end.
TEST(ProgressLine, DrawnAndClearedOnATerminal) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    GTEST_SKIP() << "no pseudo-terminal here";
  }
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(slave, 0);
  TempDir dir;
  {
    StderrTo terminal(slave);
    EXPECT_TRUE(slowFetch(dir.path() / "cache").ok());
  }
  const std::string seen = drain(master, milliseconds(200));
  EXPECT_NE(seen.find("\rfetching https://user:***@git.example/cfg.git (1s)"), std::string::npos)
      << seen;
  EXPECT_EQ(seen.find("secret"), std::string::npos) << seen;
  const std::string width(std::string("fetching https://user:***@git.example/cfg.git (1s)").size(),
                          ' ');
  EXPECT_TRUE(seen.ends_with("\r" + width + "\r")) << seen;
  ::close(slave);
  ::close(master);
}

}  // namespace
}  // namespace edgeplane::cli
