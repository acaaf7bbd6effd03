// The standard process_* Prometheus series of this process, read from /proc/self, for both
// daemons' /metrics.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgeplane {

struct ProcessStats {
  double cpuSeconds = 0;        // user + system
  uint64_t residentBytes = 0;   // RSS
  uint64_t virtualBytes = 0;    // VSZ
  uint64_t openFds = 0;         // entries of /proc/self/fd
  uint64_t maxFds = 0;          // RLIMIT_NOFILE's soft limit
  double startTimeSeconds = 0;  // unix seconds
};

// The fields of a /proc/PID/stat line this needs, given the clock tick rate, the page size
// and the boot time (unix seconds, /proc/stat's btime); nullopt when the line is malformed.
// Pure, for tests: the command name in parentheses may hold spaces and parentheses itself.
std::optional<ProcessStats> parseProcStat(std::string_view stat, long ticksPerSecond, long pageSize,
                                          uint64_t bootTime);

// This process now; nullopt when /proc is not there to read.
std::optional<ProcessStats> readProcessStats();

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, as client libraries name
// them (so the usual dashboards work); nothing when /proc cannot be read.
void appendProcessMetrics(std::string& out);

}  // namespace edgeplane
