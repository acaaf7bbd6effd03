// wireguard-go supervision: one process per interface, started, found again and stopped.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "reconciler/system/wireguard.h"
#include "schema/result.h"

namespace edgeplane::sys {

// wireguard-go, one process per interface, started in the current (host) namespace so that its
// UDP socket and UAPI socket live there. The process outlives the reconciler run that started
// it; its pid (and start time, against pid reuse) is recorded in
// <stateDir>/wireguard/<ifname>.pid and its output goes to <stateDir>/wireguard/<ifname>.log.
class WireguardGo {
 public:
  explicit WireguardGo(WgEnv env) : env_(std::move(env)) {}

  std::string socketPath(std::string_view ifname) const;
  std::string pidFilePath(std::string_view ifname) const;
  std::string logFilePath(std::string_view ifname) const;

  // The recorded wireguard-go, if that process is still running (zombies of ours are reaped).
  // With no record (a lost state directory), the `wireguard-go -f <ifname>` that serves the
  // UAPI socket (SO_PEERCRED), so that it can still be checked and stopped.
  std::optional<pid_t> runningPid(std::string_view ifname) const;
  // Whether anything accepts connections on the interface's UAPI socket.
  bool socketAnswers(std::string_view ifname) const;

  // Stops the running one (SIGTERM, then SIGKILL), drops its pid file and a socket it left
  // behind. True when there was one to stop.
  Result<bool> stop(std::string_view ifname);
  // Spawns `exe -f <ifname>`, records it and waits until its UAPI socket answers.
  Result<pid_t> start(std::string_view ifname, const std::string& exe);
  // Stops a process start() returned, when the rest of the set-up failed.
  void abandon(std::string_view ifname, pid_t pid);

 private:
  Result<pid_t> spawn(const std::string& exe, std::string_view ifname, int logFd) const;
  Result<void> waitReady(std::string_view ifname, pid_t pid);
  std::optional<pid_t> socketOwner(std::string_view ifname) const;

  WgEnv env_;
};

// `name` itself when it holds a '/', else its first match in PATH; nullopt when that is not
// an executable file.
std::optional<std::string> findExecutable(const std::string& name);

}  // namespace edgeplane::sys
