// The bounded fetch: a child process per fetch, killed at the deadline (see fetch_child.h).
#include "reconciler/cli/fetch_child.h"

#include "reconciler/cli/fetch_confine.h"
#include "reconciler/net/module.h"
#include "schema/encoding.h"
#include "schema/git_url.h"
#include "schema/net.h"
#include "schema/result.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

namespace edgeplane::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxChildOutput = 64 * 1024;
constexpr int kExitRetryable = 75;  // EX_TEMPFAIL
constexpr int kExitTerminal = 1;

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

namespace {

constexpr int kChildModuleFd = 3;

// The child's command line and environment, built before the fork: after it, the child makes
// only async-signal-safe calls. argv and envp point into this object, which therefore stays put.
class ChildExec {
 public:
  ChildExec(const fs::path& cacheDir, const source::SourceSpec& spec,
            const std::vector<std::string>& helper, int moduleFd) {
    const std::string urlPrefix = std::string(kFetchUrlEnv) + "=";
    const std::string moduleFdPrefix = std::string(kFetchModuleFdEnv) + "=";
    moduleVar_ = moduleFdPrefix + std::to_string(kChildModuleFd);
    // A url with a password goes to the child in its environment (readable by its owner only),
    // not on its command line (readable by everyone).
    const bool secretUrl = hasPassword(spec.url);
    args_ = helper;
    args_.insert(args_.end(), {"__fetch", cacheDir.string(), secretUrl ? "-" : spec.url, spec.ref,
                               std::to_string(spec.fetchMaxSize)});
    if (spec.sshKey) {
      args_.push_back(spec.sshKey->string());
    }
    for (auto& a : args_) {
      argv_.push_back(a.data());
    }
    argv_.push_back(nullptr);
    urlVar_ = urlPrefix + spec.url;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string_view var(*e);
      if (!var.starts_with(urlPrefix) && !var.starts_with(moduleFdPrefix)) {
        envp_.push_back(*e);
      }
    }
    if (secretUrl) {
      envp_.push_back(urlVar_.data());
    }
    if (moduleFd >= 0) {
      envp_.push_back(moduleVar_.data());
    }
    envp_.push_back(nullptr);
  }
  ChildExec(const ChildExec&) = delete;
  ChildExec& operator=(const ChildExec&) = delete;

  char* const* argv() const { return argv_.data(); }
  char* const* envp() const { return envp_.data(); }

 private:
  std::vector<std::string> args_;
  std::string urlVar_;
  std::string moduleVar_;
  std::vector<char*> argv_;
  std::vector<char*> envp_;
};

// Forks the child, its stdout the pipe's write end `out` and the module at kChildModuleFd, and
// execs `exec`. In the child, only async-signal-safe calls.
Result<pid_t> spawnChild(const ChildExec& exec, int out, int moduleFd) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    return retryable(std::string("fetch: fork: ") + errnoText(err));
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
    ::dup2(out, STDOUT_FILENO);                  // dup2 clears O_CLOEXEC on the copy
    if (moduleFd == kChildModuleFd) {
      ::fcntl(moduleFd, F_SETFD, 0);
    } else if (moduleFd >= 0) {
      ::dup2(moduleFd, kChildModuleFd);
    }
    ::execve(exec.argv()[0], exec.argv(), exec.envp());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from this side: no window where the kill misses the group
  return pid;
}

// The child's output from `in` (its first kMaxChildOutput bytes) until EOF or a failed read;
// false when `deadline` came first.
bool readChild(int in, std::chrono::steady_clock::time_point started,
               std::chrono::steady_clock::time_point deadline, const FetchTick& tick,
               std::string& output) {
  for (;;) {
    if (tick) {
      tick(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 started));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{in, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) {
      return true;
    }
    if (rc <= 0) {
      continue;
    }
    char buf[4096];
    const ssize_t n = ::read(in, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return true;  // EOF: the child is done (or died)
    }
    if (output.size() < kMaxChildOutput) {
      output.append(buf, static_cast<size_t>(n));
    }
  }
}

// What the child's exit `status` and the first line of its `output` say.
Result<std::string> childResult(int status, std::string output, const std::string& shownUrl,
                                const fs::path& cacheDir) {
  if (auto nl = output.find('\n'); nl != std::string::npos) {
    output.resize(nl);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && output.starts_with("ok ")) {
    std::string commit = output.substr(3);
    if (!isFullCommitId(commit)) {
      return terminal("fetch " + shownUrl + ": the fetch child did not name a commit");
    }
    return commit;
  }
  if (output.starts_with("retryable ")) {
    return retryable(output.substr(10));
  }
  if (output.starts_with("terminal ")) {
    return terminal(output.substr(9));
  }
  if (WIFSIGNALED(status)) {
    removeStaleGitLocks(cacheDir);
    return retryable("fetch " + shownUrl + ": the fetch process was killed by signal " +
                     std::to_string(WTERMSIG(status)));
  }
  return retryable("fetch " + shownUrl + ": the fetch process failed (exit status " +
                   std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
}

}  // namespace

Result<std::string> fetchInChild(const fs::path& cacheDir, const source::SourceSpec& spec,
                                 std::chrono::milliseconds timeout,
                                 const std::vector<std::string>& helper, const FetchTick& tick) {
  if (helper.empty()) {
    return terminal("fetch: no helper command");
  }
  // The child is this executable, which may have been replaced on disk by an upgrade since it
  // started, and the module beside it with it: the child gets the module this process loaded.
  if (auto loaded = net::module(); !loaded) {
    return terminal("fetch: " + loaded.error().message);
  }
  const int moduleFd = net::moduleFile();
  const ChildExec exec(cacheDir, spec, helper, moduleFd);
  const std::string shownUrl = redactUrl(spec.url);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    const int err = errno;
    return retryable(std::string("fetch: pipe: ") + errnoText(err));
  }
  auto pid = spawnChild(exec, fds[1], moduleFd);
  ::close(fds[1]);
  if (!pid) {
    ::close(fds[0]);
    return pid.error();
  }
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + timeout;
  std::string output;
  const bool answered = readChild(fds[0], started, deadline, tick, output);
  ::close(fds[0]);
  if (!answered) {
    killAndReap(*pid);
    removeStaleGitLocks(cacheDir);
    return retryable("fetch " + shownUrl + ": no answer within " + formatDuration(timeout) +
                     " (source fetch_timeout); the fetch was stopped");
  }
  // EOF (or a failed poll/read) does not mean the child has exited: it may have closed its
  // stdout and still hang. The deadline holds for the wait too.
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(*pid, &status, WNOHANG);
    if (r == *pid) {
      break;
    }
    if (r < 0) {
      const int err = errno;
      if (err != EINTR) {
        return retryable(std::string("fetch: waitpid: ") + errnoText(err));
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      killAndReap(*pid);
      removeStaleGitLocks(cacheDir);
      return retryable("fetch " + shownUrl + ": the fetch did not end within " +
                       formatDuration(timeout) + " (source fetch_timeout); it was stopped");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return childResult(status, std::move(output), shownUrl, cacheDir);
}

int fetchChildMain(const std::vector<std::string>& args) {
  // libgit2 comes with the net module: loaded before the confinement, as a library linked in
  // would have been at exec, from the descriptor the parent passed when it did.
  if (const char* fd = std::getenv(kFetchModuleFdEnv); fd != nullptr) {
    int n = -1;
    if (std::from_chars(fd, fd + std::strlen(fd), n).ec == std::errc() && n > STDERR_FILENO) {
      net::inheritModuleFile(n);
    }
    ::unsetenv(kFetchModuleFdEnv);
  }
  if (auto loaded = net::module(); !loaded) {
    std::cout << "terminal __fetch: " << loaded.error().message << "\n";
    return kExitTerminal;
  }
  if (auto confined = confineFetchProcess(); !confined) {
    std::cout << "retryable __fetch: " << confined.error().message << "\n";
    return kExitRetryable;
  }
  uint64_t maxSize = 0;
  if (args.size() < 4 || args.size() > 5 ||
      std::from_chars(args[3].data(), args[3].data() + args[3].size(), maxSize).ptr !=
          args[3].data() + args[3].size() ||
      maxSize == 0) {
    std::cout << "terminal usage: __fetch CACHE URL REF MAX_BYTES [SSH_KEY]\n";
    return kExitTerminal;
  }
  std::string url = args[1];
  if (url == "-") {
    const char* fromEnv = std::getenv(kFetchUrlEnv);
    if (fromEnv == nullptr || *fromEnv == '\0') {
      std::cout << "terminal __fetch: url \"-\" but " << kFetchUrlEnv << " is not set\n";
      return kExitTerminal;
    }
    url = fromEnv;
  }
  source::SourceSpec spec{url, args[2], std::nullopt};
  spec.fetchMaxSize = maxSize;
  if (args.size() == 5) {
    spec.sshKey = args[4];
  }
  // libgit2 calls a local repository that is not there an "unsupported URL protocol".
  std::string local = spec.url.starts_with("file://") ? spec.url.substr(7) : spec.url;
  std::error_code ec;
  if (local.starts_with("/") && !fs::exists(local, ec)) {
    std::cout << "retryable fetch " << redactUrl(spec.url) << ": no repository at " << local
              << " (moved or removed?)\n";
    return kExitRetryable;
  }
  auto src = source::GitSource::open(args[0], spec);
  Result<source::FetchResult> fetched =
      src ? src->fetch() : Result<source::FetchResult>(src.error());
  if (!fetched) {
    std::string message = scrubCredentials(fetched.error().message, spec.url);
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
