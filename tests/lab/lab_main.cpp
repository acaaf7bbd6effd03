// GoogleTest main for the lab tests: isolates the whole process as a fresh edge host first.

#include <dirent.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace {

// A namespace identity as the kernel exposes it through nsfs.
using NsId = std::pair<dev_t, ino_t>;

bool nsId(const std::string& path, NsId& id) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return false;
  }
  id = {st.st_dev, st.st_ino};
  return true;
}

bool report(const char* step) {
  std::fprintf(stderr, "lab_tests: %s: %s\n", step, std::strerror(errno));
  return false;
}

bool mkdirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      const std::string prefix = path.substr(0, pos);
      if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
        return report(("mkdir " + prefix).c_str());
      }
    }
  }
  return true;
}

bool loopbackUp() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return report("socket for loopback");
  }
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    ok = ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok) {
    report("bring lo up");
  }
  ::close(fd);
  return ok;
}

// The same edge host `tools/lab run` builds, so that everything the tests create (namespaces,
// links, nftables, WireGuard devices) dies with the process and never touches the host. Must
// run while the process is single-threaded: unshare(CLONE_NEWNS) refuses otherwise.
// Returns the exit status to use on failure, 0 on success.
int isolate() {
  if (::unshare(CLONE_NEWNS | CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "lab tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN): %s\n",
                 std::strerror(errno));
    return 1;
  }
  // Nothing mounted from here on may propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    report("make / private");
    return 1;
  }
  for (const char* dir : {"/run/netns", "/run/wireguard"}) {
    if (!mkdirs(dir)) {
      return 1;
    }
    if (::mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
      report((std::string("mount tmpfs on ") + dir).c_str());
      return 1;
    }
  }
  // sysfs reflects the network namespace of whoever mounts it; without this /sys/class/net
  // would show the real host's interfaces (`ip netns exec` remounts it for the same reason).
  if (::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    std::fprintf(stderr, "lab_tests: warning: cannot remount /sys: %s\n", std::strerror(errno));
  }
  if (!loopbackUp()) {
    return 1;
  }
  ::setenv("EDGEPLANE_LAB", "1", 1);
  return 0;
}

// Pids of processes, other than this one, that live in the lab: in its mount namespace, its
// network namespace or one under its /run/netns. Those namespaces are private to this process
// and its descendants, so everything found is something a test started.
std::vector<pid_t> labProcesses() {
  std::vector<NsId> nets;
  NsId mnt{};
  NsId id{};
  if (nsId("/proc/self/ns/net", id)) {
    nets.push_back(id);
  }
  const bool haveMnt = nsId("/proc/self/ns/mnt", mnt);
  if (DIR* dir = ::opendir("/run/netns")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.' && nsId(std::string("/run/netns/") + entry->d_name, id)) {
        nets.push_back(id);
      }
    }
    ::closedir(dir);
  }
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) {
    return pids;
  }
  while (const dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    const long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0' || pid == ::getpid()) {
      continue;
    }
    const std::string base = std::string("/proc/") + entry->d_name;
    bool ours = false;
    if (nsId(base + "/ns/net", id)) {
      for (const NsId& net : nets) {
        ours = ours || net == id;
      }
    }
    if (!ours && haveMnt && nsId(base + "/ns/mnt", id)) {
      ours = id == mnt;
    }
    if (ours) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(proc);
  return pids;
}

// Stops what tests left running (a daemon under `ip netns exec`, a backend): SIGTERM, a short
// grace, then SIGKILL. Zombies are children of ours that were never waited for; reaping is
// the test's business, a zombie holds nothing.
void stopLeftovers() {
  std::vector<pid_t> pids = labProcesses();
  if (pids.empty()) {
    return;
  }
  std::fprintf(stderr, "lab_tests: stopping %zu process(es) left running by tests\n", pids.size());
  for (const pid_t pid : pids) {
    ::kill(pid, SIGTERM);
  }
  for (int i = 0; i < 30 && !pids.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    pids = labProcesses();
    std::erase_if(pids, [](pid_t pid) {
      char state = 0;
      const std::string path = "/proc/" + std::to_string(pid) + "/stat";
      if (FILE* f = std::fopen(path.c_str(), "r")) {
        // The state follows the command name, which ends at the last ')'.
        char buf[512] = {};
        const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
        std::fclose(f);
        const char* close = std::strrchr(buf, ')');
        if (n > 0 && close != nullptr && close[1] == ' ') {
          state = close[2];
        }
      }
      return state == 0 || state == 'Z' || state == 'X';
    });
  }
  for (const pid_t pid : pids) {
    ::kill(pid, SIGKILL);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (const int status = isolate(); status != 0) {
    return status;
  }
  testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  stopLeftovers();
  return result;
}
