// The bounded fetch: a child process per fetch, killed at the deadline (see fetch_child.h).
#include "reconciler/cli/fetch_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

namespace edgeplane::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxChildOutput = 64 * 1024;
constexpr int kExitRetryable = 75;  // EX_TEMPFAIL
constexpr int kExitTerminal = 1;

std::string secondsText(std::chrono::milliseconds ms) {
  const auto tenths = ms.count() / 100;
  return std::to_string(tenths / 10) + (tenths % 10 != 0 ? "." + std::to_string(tenths % 10) : "") +
         " s";
}

void killAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);  // its process group, in case libgit2 ever spawns a helper
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::vector<std::string> defaultFetchHelper() {
  return {"/proc/self/exe"};
}

void removeStaleGitLocks(const fs::path& cacheDir) {
  std::error_code ec;
  fs::recursive_directory_iterator it(cacheDir, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() == ".lock" && it->is_regular_file(ec)) {
      fs::remove(p, ec);
    }
  }
}

Result<void> fetchInChild(const fs::path& cacheDir, const source::SourceSpec& spec,
                          std::chrono::milliseconds timeout,
                          const std::vector<std::string>& helper) {
  if (helper.empty()) {
    return terminal("fetch: no helper command");
  }
  std::vector<std::string> args = helper;
  args.insert(args.end(), {"__fetch", cacheDir.string(), spec.url, spec.ref});
  if (spec.sshKey) {
    args.push_back(spec.sshKey->string());
  }
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return retryable(std::string("fetch: pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return retryable(std::string("fetch: fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a parent that dies takes its fetch with it
    if (::getppid() != parent) {
      ::_exit(kExitRetryable);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the agent blocks SIGTERM for its sigwait
    ::dup2(fds[1], STDOUT_FILENO);               // dup2 clears O_CLOEXEC on the copy
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  ::setpgid(pid, pid);  // also from this side: no window where the kill misses the group

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string output;
  bool timedOut = false;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) {
      break;
    }
    if (rc <= 0) {
      continue;
    }
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;  // EOF: the child is done (or died)
    }
    if (output.size() < kMaxChildOutput) {
      output.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fds[0]);
  if (timedOut) {
    killAndReap(pid);
    removeStaleGitLocks(cacheDir);
    return retryable("fetch " + spec.url + ": no answer within " + secondsText(timeout) +
                     " (source fetch_timeout); the fetch was stopped");
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return retryable(std::string("fetch: waitpid: ") + std::strerror(errno));
    }
  }
  if (auto nl = output.find('\n'); nl != std::string::npos) {
    output.resize(nl);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && output.starts_with("ok ")) {
    return {};
  }
  if (output.starts_with("retryable ")) {
    return retryable(output.substr(10));
  }
  if (output.starts_with("terminal ")) {
    return terminal(output.substr(9));
  }
  if (WIFSIGNALED(status)) {
    removeStaleGitLocks(cacheDir);
    return retryable("fetch " + spec.url + ": the fetch process was killed by signal " +
                     std::to_string(WTERMSIG(status)));
  }
  return retryable("fetch " + spec.url + ": the fetch process failed (exit status " +
                   std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
}

int fetchChildMain(const std::vector<std::string>& args) {
  if (args.size() < 3 || args.size() > 4) {
    std::cout << "terminal usage: __fetch CACHE URL REF [SSH_KEY]\n";
    return kExitTerminal;
  }
  source::SourceSpec spec{args[1], args[2], std::nullopt};
  if (args.size() == 4) {
    spec.sshKey = args[3];
  }
  // libgit2 calls a local repository that is not there an "unsupported URL protocol".
  std::string local = spec.url.starts_with("file://") ? spec.url.substr(7) : spec.url;
  std::error_code ec;
  if (local.starts_with("/") && !fs::exists(local, ec)) {
    std::cout << "retryable fetch " << spec.url << ": no repository at " << local
              << " (moved or removed?)\n";
    return kExitRetryable;
  }
  auto src = source::GitSource::open(args[0], spec);
  Result<source::FetchResult> fetched =
      src ? src->fetch() : Result<source::FetchResult>(src.error());
  if (!fetched) {
    std::string message = fetched.error().message;
    for (char& c : message) {
      if (c == '\n' || c == '\r') {
        c = ' ';
      }
    }
    std::cout << (fetched.error().retryable ? "retryable " : "terminal ") << message << "\n";
    return fetched.error().retryable ? kExitRetryable : kExitTerminal;
  }
  std::cout << "ok " << fetched->commitId << "\n";
  return 0;
}

}  // namespace edgeplane::cli
