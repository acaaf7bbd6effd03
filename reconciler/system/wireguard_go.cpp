// wireguard-go supervision: posix_spawn in its own session, a pid file with the start time,
// SIGTERM then SIGKILL, and the owner of a UAPI socket found through SO_PEERCRED.
#include "reconciler/system/wireguard_go.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "reconciler/system/file_write.h"
#include "reconciler/system/wg_uapi.h"
#include "reconciler/system/wg_uapi_codec.h"
#include "schema/encoding.h"
#include "schema/net.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace edgeplane::sys {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// --- process helpers ---

struct ProcStat {
  char state = 0;
  uint64_t startTime = 0;
};

std::optional<ProcStat> readProcStat(pid_t pid) {
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) {
    return std::nullopt;
  }
  std::string_view text(buf, static_cast<size_t>(n));
  const size_t close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 >= text.size()) {
    return std::nullopt;
  }
  // After "(comm) ": field 3 is the state, field 22 the start time.
  std::string_view rest = text.substr(close + 2);
  ProcStat st;
  st.state = rest.front();
  for (int field = 3; field < 22; ++field) {
    const size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) {
      return std::nullopt;
    }
    rest.remove_prefix(sp + 1);
  }
  const size_t end = std::min(rest.find(' '), rest.size());
  auto start = parseDecimal(rest.substr(0, end), UINT64_MAX, LeadingZeros::Allowed);
  if (!start) {
    return std::nullopt;
  }
  st.startTime = *start;
  return st;
}

// Whether `pid` (started at `startTime`) still runs. Reaps it when it is our exited child.
bool processRunning(pid_t pid, uint64_t startTime) {
  int status = 0;
  (void)::waitpid(pid, &status, WNOHANG);  // ECHILD when it is not ours: fine
  auto st = readProcStat(pid);
  if (!st || st->startTime != startTime) {
    return false;
  }
  if (st->state == 'Z' || st->state == 'X') {
    // Dead. If it is our child, reap it: a multi-threaded one shows as a zombie a little
    // before it can be reaped, so wait (it is exiting already); ECHILD at once if not ours.
    (void)::waitpid(pid, &status, 0);
    return false;
  }
  return true;
}

// Waits until the process is gone, up to `timeout`.
bool waitGone(pid_t pid, uint64_t startTime, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (processRunning(pid, startTime)) {
    if (Clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

Result<void> mkdirPrivate(const std::string& dir) {
  if (dir.empty()) {
    return terminal("no state directory configured for wireguard-go");
  }
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos == dir.size() || dir[pos] == '/') {
      const std::string prefix = dir.substr(0, pos);
      if (::mkdir(prefix.c_str(), 0700) != 0) {
        const int err = errno;
        if (err != EEXIST) {
          return terminal("create " + prefix + ": " + errnoText(err));
        }
      }
    }
  }
  return {};
}

// The last non-empty line of a log file, for error messages (wireguard-go's logs hold no
// keys).
std::string lastLogLine(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return {};
  }
  char buf[2048];
  const off_t size = ::lseek(fd, 0, SEEK_END);
  const off_t from = size > static_cast<off_t>(sizeof(buf)) ? size - sizeof(buf) : 0;
  const ssize_t n = ::pread(fd, buf, sizeof(buf), from);
  ::close(fd);
  if (n <= 0) {
    return {};
  }
  std::string_view text(buf, static_cast<size_t>(n));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  const size_t nl = text.rfind('\n');
  std::string_view line = nl == std::string_view::npos ? text : text.substr(nl + 1);
  return std::string(line.substr(0, 300));
}

bool isExecutable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// The environment, minus what would make wireguard-go adopt descriptors it does not have.
std::vector<std::string> childEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.starts_with("WG_TUN_FD=") || kv.starts_with("WG_UAPI_FD=") ||
        kv.starts_with("WG_PROCESS_FOREGROUND=")) {
      continue;
    }
    env.emplace_back(kv);
  }
  env.emplace_back("WG_PROCESS_FOREGROUND=1");
  return env;
}

// Opens the log for appending, after setting a log over 1 MiB aside as <log>.old.
Result<int> openLog(const std::string& path) {
  struct stat logStat {};
  if (::stat(path.c_str(), &logStat) == 0 && logStat.st_size > (1 << 20)) {
    ::rename(path.c_str(), (path + ".old").c_str());
  }
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    return terminal("open " + path + ": " + errnoText(err));
  }
  return fd;
}

}  // namespace

std::optional<std::string> findExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return isExecutable(name) ? std::optional(name) : std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs =
      path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (!dirs.empty()) {
    const size_t colon = std::min(dirs.find(':'), dirs.size());
    std::string dir(dirs.substr(0, colon));
    dirs.remove_prefix(std::min(colon + 1, dirs.size()));
    if (dir.empty()) {
      continue;
    }
    const std::string candidate = dir + "/" + name;
    if (isExecutable(candidate)) {
      return candidate;
    }
  }
  return std::nullopt;
}

std::string WireguardGo::socketPath(std::string_view ifname) const {
  return env_.socketDir + "/" + std::string(ifname) + ".sock";
}

std::string WireguardGo::pidFilePath(std::string_view ifname) const {
  return env_.stateDir + "/wireguard/" + std::string(ifname) + ".pid";
}

std::string WireguardGo::logFilePath(std::string_view ifname) const {
  return env_.stateDir + "/wireguard/" + std::string(ifname) + ".log";
}

bool WireguardGo::socketAnswers(std::string_view ifname) const {
  auto fd = uapiConnect(socketPath(ifname), ifname);
  if (!fd) {
    return false;
  }
  ::close(*fd);
  return true;
}

std::optional<pid_t> WireguardGo::socketOwner(std::string_view ifname) const {
  auto fd = uapiConnect(socketPath(ifname), ifname);
  if (!fd) {
    return std::nullopt;
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  const bool ok = ::getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 1;
  ::close(*fd);
  if (!ok) {
    return std::nullopt;
  }
  // Only a process whose last argument is this interface: `wireguard-go -f <ifname>`.
  const std::string path = "/proc/" + std::to_string(cred.pid) + "/cmdline";
  const int cmd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (cmd < 0) {
    return std::nullopt;
  }
  char buf[4096];
  const ssize_t n = ::read(cmd, buf, sizeof(buf));
  ::close(cmd);
  if (n <= 1 || buf[n - 1] != '\0') {
    return std::nullopt;
  }
  std::string_view args(buf, static_cast<size_t>(n - 1));
  const size_t lastNul = args.rfind('\0');
  const std::string_view last = lastNul == std::string_view::npos ? args : args.substr(lastNul + 1);
  if (last != ifname) {
    return std::nullopt;
  }
  return cred.pid;
}

std::optional<pid_t> WireguardGo::runningPid(std::string_view ifname) const {
  // The pid file: "<pid> <start time>\n" (the start time guards against a reused pid).
  auto stored = readOwnFile(pidFilePath(ifname));  // a symlink there counts as no record
  if (stored && *stored) {
    std::string_view text = **stored;
    if (!text.empty() && text.back() == '\n') {
      text.remove_suffix(1);
    }
    const size_t sp = text.find(' ');
    if (sp != std::string_view::npos) {
      auto pid = parseDecimal(text.substr(0, sp), INT32_MAX, LeadingZeros::Allowed);
      auto start = parseDecimal(text.substr(sp + 1), UINT64_MAX, LeadingZeros::Allowed);
      if (pid && start && *pid > 1 && processRunning(static_cast<pid_t>(*pid), *start)) {
        return static_cast<pid_t>(*pid);
      }
    }
  }
  // Not recorded, or not that process any more (a lost state directory, a manual restart):
  // whoever serves the socket, if it is a wireguard-go for this interface.
  return socketOwner(ifname);
}

Result<bool> WireguardGo::stop(std::string_view ifname) {
  bool stopped = false;
  if (auto pid = runningPid(ifname)) {
    auto st = readProcStat(*pid);
    const uint64_t start = st ? st->startTime : 0;
    ::kill(*pid, SIGTERM);
    if (!waitGone(*pid, start, milliseconds(3000))) {
      ::kill(*pid, SIGKILL);
      if (!waitGone(*pid, start, milliseconds(2000))) {
        return retryable("wireguard-go for " + std::string(ifname) + " (pid " +
                         std::to_string(*pid) + ") does not exit");
      }
    }
    stopped = true;
  }
  ::unlink(pidFilePath(ifname).c_str());
  // A killed wireguard-go leaves its socket behind; a live foreign one keeps answering.
  if (!socketAnswers(ifname)) {
    ::unlink(socketPath(ifname).c_str());
  }
  return stopped;
}

Result<pid_t> WireguardGo::spawn(const std::string& exe, std::string_view ifname, int logFd) const {
  std::vector<std::string> envStore = childEnvironment();
  std::vector<char*> envp;
  for (std::string& s : envStore) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::string arg0 = exe;
  std::string arg1 = "-f";
  std::string arg2(ifname);
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, logFd, 1);
  posix_spawn_file_actions_adddup2(&actions, logFd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own session: it outlives this run and ignores our terminal's signals.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t mask;
  sigemptyset(&mask);
  posix_spawnattr_setsigmask(&attr, &mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  pid_t pid = -1;
  const int spawnErr = ::posix_spawn(&pid, arg0.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawnErr != 0) {
    return terminal("spawn " + arg0 + ": " + errnoText(spawnErr));
  }
  return pid;
}

Result<pid_t> WireguardGo::start(std::string_view ifname, const std::string& exe) {
  if (auto r = mkdirPrivate(env_.stateDir + "/wireguard"); !r) {
    return r.error();
  }
  const std::string logPath = logFilePath(ifname);
  auto logFd = openLog(logPath);
  if (!logFd) {
    return logFd.error();
  }
  auto pid = spawn(exe, ifname, *logFd);
  ::close(*logFd);
  if (!pid) {
    return pid.error();
  }
  auto st = readProcStat(*pid);
  if (!st) {
    int status = 0;
    (void)::waitpid(*pid, &status, 0);
    return terminal("wireguard-go exited at once: " + lastLogLine(logPath));
  }
  const std::string pidFile = pidFilePath(ifname);
  if (auto r = replaceFile(pidFile, pidFile + ".tmp",
                           std::to_string(*pid) + " " + std::to_string(st->startTime) + "\n", 0600);
      !r) {
    abandon(ifname, *pid);
    return r.error();
  }
  if (auto r = waitReady(ifname, *pid); !r) {
    return r.error();
  }
  return pid;
}

Result<void> WireguardGo::waitReady(std::string_view ifname, pid_t pid) {
  const std::string logPath = logFilePath(ifname);
  const auto deadline = Clock::now() + env_.startTimeout;
  while (true) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ::unlink(pidFilePath(ifname).c_str());
      const std::string how = WIFEXITED(status)
                                  ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                  : "was killed by signal " + std::to_string(WTERMSIG(status));
      return terminal("wireguard-go " + how + ": " + lastLogLine(logPath) + " (log " + logPath +
                      ")");
    }
    if (socketAnswers(ifname)) {
      return {};
    }
    if (Clock::now() >= deadline) {
      abandon(ifname, pid);
      return retryable("its UAPI socket " + socketPath(ifname) + " did not appear within " +
                       formatDuration(env_.startTimeout));
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
}

void WireguardGo::abandon(std::string_view ifname, pid_t pid) {
  ::kill(pid, SIGTERM);
  if (!waitGone(pid, readProcStat(pid).value_or(ProcStat{}).startTime, milliseconds(2000))) {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  (void)::waitpid(pid, &status, 0);
  ::unlink(pidFilePath(ifname).c_str());
}

}  // namespace edgeplane::sys
