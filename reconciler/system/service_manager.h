// Talking to the service manager (systemd) from both daemons: sd_notify(3) readiness, status,
// reload and stop notices, the watchdog keep-alive, and syslog priorities on log lines when
// stderr is the journal. Without systemd it does nothing and log lines stay plain text.
#pragma once

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace edgeplane {

// The daemons' signals: SIGTERM, SIGINT (stop) and SIGHUP (reload) blocked in the calling
// thread, SIGPIPE ignored. Called before any thread starts, so every thread inherits the mask
// and only the daemon's sigwait(3) on the returned set sees them; none interrupts a thread
// mid-work. (Unblocked, SIGHUP ends a process with 129, which Restart=on-failure does not
// bring back.)
sigset_t blockDaemonSignals();

// syslog(3) priorities, as journald reads them from a "<N>" line prefix (sd-daemon(3)).
enum class LogPriority : int { kErr = 3, kWarning = 4, kNotice = 5, kInfo = 6, kDebug = 7 };

// True when stderr is a stream to the journal: $JOURNAL_STREAM ("DEVICE:INODE", set by
// systemd for StandardError=journal) names the file stderr is (sd-daemon(3)). A pipe or a
// terminal, or the variable inherited by a process whose stderr went elsewhere: false.
bool stderrIsJournal();

// "<N>" for `p` when stderr is the journal (checked once per process), else "": put it at the
// start of each log line, so that `journalctl -p err` finds the errors. A line without it gets
// the unit's default priority (info).
std::string_view logPrefix(LogPriority p);

// The notices of Type=notify services. Each call sends one datagram to $NOTIFY_SOCKET (if set)
// and never fails the caller: a service manager that went away is no reason to stop serving.
// A status text goes as one line, control bytes made spaces, cut to 1 KiB (the manager drops
// a notice with a NUL byte or over 4 KiB).
class ServiceManager {
 public:
  // READY=1 with a STATUS= line: the service is up (the proxy serves; the agent's first run
  // ended). Also ends a reload (after reloading()).
  static void ready(std::string_view status);
  // STATUS=: one line `systemctl status` shows (the last run's outcome).
  static void status(std::string_view status);
  // RELOADING=1 (with MONOTONIC_USEC=, as Type=notify-reload wants): a reload has begun; ready()
  // ends it.
  static void reloading();
  // STOPPING=1 with a STATUS= line: shutting down (draining).
  static void stopping(std::string_view status);
  // WATCHDOG=1.
  static void watchdog();
  // Half of $WATCHDOG_USEC when the watchdog is on for this process (WatchdogSec=), else nullopt.
  static std::optional<std::chrono::microseconds> watchdogInterval();
};

// Sends WATCHDOG=1 every watchdogInterval() from its own thread while `alive()` returns true
// (a check that the daemon's own loop still makes progress; a false skips that keep-alive, so
// systemd restarts a wedged process). Does nothing when the watchdog is off.
class Watchdog {
 public:
  explicit Watchdog(std::function<bool()> alive);
  ~Watchdog();  // stops and joins the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::function<bool()> alive_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace edgeplane
