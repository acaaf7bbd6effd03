// sd_notify(3) through libsystemd (see service_manager.h).
#include "reconciler/system/service_manager.h"

#include <pthread.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <charconv>
#include <cstdint>
#include <cstdlib>

namespace edgeplane {

namespace {

// A STATUS= value is one line: a newline would start another assignment.
std::string oneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  return out;
}

void notify(const std::string& message) {
  // unset_environment = 0: child processes (wireguard-go, the fetch child) never notify, as they
  // are not the main PID; keeping the variables lets a later notice still find the socket.
  (void)sd_notify(0, message.c_str());
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
  notify("READY=1\nSTATUS=" + oneLine(status));
}

void ServiceManager::status(std::string_view status) {
  notify("STATUS=" + oneLine(status));
}

void ServiceManager::reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t usec =
      static_cast<uint64_t>(now.tv_sec) * 1000000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void ServiceManager::stopping(std::string_view status) {
  notify("STOPPING=1\nSTATUS=" + oneLine(status));
}

void ServiceManager::watchdog() {
  notify("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> ServiceManager::watchdogInterval() {
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process.
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    return std::nullopt;
  }
  return std::chrono::microseconds(usec / 2);
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
