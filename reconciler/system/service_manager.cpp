// The service manager's notification protocol, spoken directly (see service_manager.h).
// systemd declares $NOTIFY_SOCKET a stable interface for independent implementations
// (sd_notify(3), NOTES): one datagram to an AF_UNIX socket. Not linking libsystemd for it keeps
// that library and the compressors and crypto it loads out of every edgeplane run.
#include "reconciler/system/service_manager.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace edgeplane {

namespace {

// Longer STATUS= texts are cut: the manager reads a notice of at most 4096 bytes, and drops
// one that is longer, READY=1 and all.
constexpr size_t kMaxStatusBytes = 1024;

// A STATUS= value: one line (a newline would start another assignment), no NUL (the manager
// ignores a notice holding one) nor other control byte, at most kMaxStatusBytes, cut at a
// character boundary and marked with "…" when cut.
std::string statusValue(std::string_view text) {
  std::string out(text.substr(0, std::min(text.size(), kMaxStatusBytes + 1)));
  for (char& c : out) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7f) {
      c = ' ';
    }
  }
  if (out.size() > kMaxStatusBytes) {
    size_t end = kMaxStatusBytes - 3;  // room for "…"
    while (end > 0 && (static_cast<unsigned char>(out[end]) & 0xc0) == 0x80) {
      --end;  // not inside a UTF-8 sequence
    }
    out.resize(end);
    out += "…";
  }
  return out;
}

// A whole decimal number, nothing else.
std::optional<uint64_t> decimal(const char* text) {
  if (text == nullptr) {
    return std::nullopt;
  }
  const std::string_view s(text);
  uint64_t value = 0;
  const auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || err != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return value;
}

// One datagram to $NOTIFY_SOCKET: an absolute path, or "@name" for an abstract socket. Any
// other value (unset, relative, too long) sends nothing. The variables stay set: the children
// (wireguard-go, the fetch child) are not the main PID, and a later notice still needs them.
// The kernel attaches our credentials for the manager, which asks for them (SO_PASSCRED).
void notify(const std::string& message) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr) {
    return;
  }
  const std::string_view name(env);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if ((!name.starts_with('/') && !name.starts_with('@')) || name.size() < 2 ||
      name.size() >= sizeof(addr.sun_path)) {
    return;
  }
  std::memcpy(addr.sun_path, name.data(), name.size());
  socklen_t length = offsetof(sockaddr_un, sun_path) + name.size();
  if (name.starts_with('@')) {
    addr.sun_path[0] = '\0';  // abstract: the name is the bytes after the NUL, no terminator
  } else {
    ++length;  // a path: its terminating NUL counts
  }
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  (void)::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr), length);
  ::close(fd);
}

}  // namespace

sigset_t blockDaemonSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return signals;
}

bool stderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) {
    return false;
  }
  const std::string_view text(env);
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return false;
  }
  uint64_t dev = 0;
  uint64_t ino = 0;
  const auto d = std::from_chars(text.data(), text.data() + colon, dev);
  const auto i = std::from_chars(text.data() + colon + 1, text.data() + text.size(), ino);
  if (d.ec != std::errc() || d.ptr != text.data() + colon || i.ec != std::errc() ||
      i.ptr != text.data() + text.size()) {
    return false;
  }
  struct stat st {};
  return ::fstat(2, &st) == 0 && static_cast<uint64_t>(st.st_dev) == dev &&
         static_cast<uint64_t>(st.st_ino) == ino;
}

std::string_view logPrefix(LogPriority p) {
  static const bool journal = stderrIsJournal();
  if (!journal) {
    return "";
  }
  switch (p) {
    case LogPriority::kErr:
      return "<3>";
    case LogPriority::kWarning:
      return "<4>";
    case LogPriority::kNotice:
      return "<5>";
    case LogPriority::kInfo:
      return "<6>";
    case LogPriority::kDebug:
      return "<7>";
  }
  return "";
}

void ServiceManager::ready(std::string_view status) {
  notify("READY=1\nSTATUS=" + statusValue(status));
}

void ServiceManager::status(std::string_view status) {
  notify("STATUS=" + statusValue(status));
}

void ServiceManager::reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec =
      static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceManager::stopping(std::string_view status) {
  notify("STOPPING=1\nSTATUS=" + statusValue(status));
}

void ServiceManager::watchdog() {
  notify("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> ServiceManager::watchdogInterval() {
  // On when WATCHDOG_USEC is a positive number and WATCHDOG_PID, if set, is this process: a
  // child that inherited the variables is not the one the manager watches.
  const std::optional<uint64_t> usec = decimal(std::getenv("WATCHDOG_USEC"));
  if (!usec || *usec == 0) {
    return std::nullopt;
  }
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr) {
    const std::optional<uint64_t> watched = decimal(pid);
    if (!watched || *watched != static_cast<uint64_t>(::getpid())) {
      return std::nullopt;
    }
  }
  // At most an hour between keep-alives: a wait of the half of a larger value could overflow.
  const auto half = std::chrono::microseconds(static_cast<int64_t>(*usec / 2));
  return std::min<std::chrono::microseconds>(half, std::chrono::hours(1));
}

Watchdog::Watchdog(std::function<bool()> alive) : alive_(std::move(alive)) {
  const auto interval = ServiceManager::watchdogInterval();
  if (!interval) {
    return;
  }
  thread_ = std::thread([this, every = *interval] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      if (alive_()) {
        ServiceManager::watchdog();
      }
      lock.lock();
      cv_.wait_for(lock, every, [this] { return stop_; });
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace edgeplane
