// process_* series from /proc/self (see process_metrics.h).
#include "reconciler/system/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <sstream>
#include <vector>

#include "schema/file_text.h"
#include "schema/prometheus_text.h"

namespace edgeplane {

namespace {

std::optional<std::string> readProcFile(const char* path) {
  Result<std::string> text = readFileText(path);
  if (!text) {
    return std::nullopt;
  }
  return std::move(*text);
}

std::optional<uint64_t> bootTime() {
  auto stat = readProcFile("/proc/stat");
  if (!stat) {
    return std::nullopt;
  }
  std::istringstream lines(*stat);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("btime ")) {
      uint64_t value = 0;
      auto [end, ec] = std::from_chars(line.data() + 6, line.data() + line.size(), value);
      if (ec == std::errc()) {
        return value;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<ProcessStats> parseProcStat(std::string_view stat, long ticksPerSecond, long pageSize,
                                          uint64_t bootTime) {
  // "pid (comm) state ppid ...": comm may contain anything, so fields count from its last ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string_view::npos || ticksPerSecond <= 0 || pageSize <= 0) {
    return std::nullopt;
  }
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state)
  std::string_view rest = stat.substr(close + 1);
  while (!rest.empty()) {
    const size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(start);
    const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  auto field = [&](size_t number) -> std::optional<uint64_t> {  // proc(5)'s 1-based numbering
    if (number < 3 || number - 3 >= fields.size()) {
      return std::nullopt;
    }
    std::string_view f = fields[number - 3];
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), value);
    if (ec != std::errc() || end != f.data() + f.size()) {
      return std::nullopt;
    }
    return value;
  };
  auto utime = field(14);
  auto stime = field(15);
  auto start = field(22);
  auto vsize = field(23);
  auto rss = field(24);
  if (!utime || !stime || !start || !vsize || !rss) {
    return std::nullopt;
  }
  ProcessStats s;
  const auto ticks = static_cast<double>(ticksPerSecond);
  s.cpuSeconds = static_cast<double>(*utime + *stime) / ticks;
  s.startTimeSeconds = static_cast<double>(bootTime) + static_cast<double>(*start) / ticks;
  s.virtualBytes = *vsize;
  s.residentBytes = *rss * static_cast<uint64_t>(pageSize);
  return s;
}

std::optional<ProcessStats> readProcessStats() {
  auto stat = readProcFile("/proc/self/stat");
  auto boot = bootTime();
  if (!stat || !boot) {
    return std::nullopt;
  }
  auto s = parseProcStat(*stat, ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE), *boot);
  if (!s) {
    return std::nullopt;
  }
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++s->openFds;
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    s->maxFds = limit.rlim_cur;
  }
  return s;
}

void appendProcessMetrics(std::string& out) {
  auto s = readProcessStats();
  if (!s) {
    return;
  }
  using prometheus::family;
  using prometheus::sample;
  family(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.");
  sample(out, "process_cpu_seconds_total", {}, s->cpuSeconds);
  family(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  sample(out, "process_resident_memory_bytes", {}, s->residentBytes);
  family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  sample(out, "process_virtual_memory_bytes", {}, s->virtualBytes);
  family(out, "process_open_fds", "gauge", "Open file descriptors.");
  sample(out, "process_open_fds", {}, s->openFds);
  family(out, "process_max_fds", "gauge", "The limit of open file descriptors (RLIMIT_NOFILE).");
  sample(out, "process_max_fds", {}, s->maxFds);
  family(out, "process_start_time_seconds", "gauge", "When the process started, unix seconds.");
  sample(out, "process_start_time_seconds", {}, s->startTimeSeconds);
}

}  // namespace edgeplane
