// The agent's unix-socket trigger, server and client (see trigger_socket.h).
#include "reconciler/cli/trigger_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "schema/local_address.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxWaiters = 64;
constexpr size_t kMaxRequest = 64;
constexpr std::chrono::milliseconds kRequestTimeout{2000};

Result<sockaddr_un> socketAddress(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof(addr.sun_path)) {
    return terminal("socket path " + p + " is longer than " +
                    std::to_string(sizeof(addr.sun_path) - 1) + " bytes; use a shorter state dir");
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  return addr;
}

void sendAll(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return;
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads one line of at most `max` bytes before `deadline`; nullopt on timeout, EOF or overflow.
std::optional<std::string> readLine(int fd, size_t max,
                                    std::chrono::steady_clock::time_point deadline) {
  std::string line;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return std::nullopt;
    }
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno != EINTR) {
      return std::nullopt;
    }
    if (rc <= 0) {
      continue;
    }
    char c = 0;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return std::nullopt;
    }
    if (c == '\n') {
      return line;
    }
    if (line.size() >= max) {
      return std::nullopt;
    }
    line += c;
  }
}

}  // namespace

struct TriggerSocket::Impl {
  fs::path path;
  int listenFd = -1;
  int wakeRead = -1;
  int wakeWrite = -1;
  std::function<uint64_t()> onTrigger;
  mutable std::mutex mu;  // guards waiters; held across onTrigger + insert (see serve)
  struct Waiter {
    int fd;
    uint64_t ticket;
  };
  std::vector<Waiter> waiters;
  std::thread thread;

  void serve(int fd) {
    auto request = readLine(fd, kMaxRequest, std::chrono::steady_clock::now() + kRequestTimeout);
    if (request && !request->empty() && request->back() == '\r') {
      request->pop_back();
    }
    if (request && *request == "reconcile") {
      onTrigger();
      sendAll(fd, "accepted\n");
    } else if (request && *request == "reconcile-wait") {
      // The ticket and the waiter go in together: complete() for that run cannot slip
      // between them.
      std::lock_guard lock(mu);
      if (waiters.size() >= kMaxWaiters) {
        sendAll(fd, "error too many clients waiting\n");
      } else {
        const uint64_t ticket = onTrigger();
        waiters.push_back({fd, ticket});
        return;  // answered by complete()
      }
    } else {
      sendAll(fd, "error unknown request (send \"reconcile\" or \"reconcile-wait\")\n");
    }
    ::close(fd);
  }

  void loop() {
    for (;;) {
      pollfd p[2] = {{listenFd, POLLIN, 0}, {wakeRead, POLLIN, 0}};
      const int rc = ::poll(p, 2, -1);
      if (rc < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      if ((p[1].revents & POLLIN) != 0) {
        return;
      }
      if ((p[0].revents & POLLIN) != 0) {
        const int fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          serve(fd);
        }
      }
    }
  }
};

TriggerSocket::TriggerSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TriggerSocket::~TriggerSocket() {
  if (!impl_) {
    return;
  }
  if (impl_->wakeWrite >= 0) {
    const char c = 'x';
    (void)!::write(impl_->wakeWrite, &c, 1);
  }
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& w : impl_->waiters) {
      sendAll(w.fd, "error agent stopping\n");
      ::close(w.fd);
    }
    impl_->waiters.clear();
  }
  for (int fd : {impl_->listenFd, impl_->wakeRead, impl_->wakeWrite}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
  std::error_code ec;
  fs::remove(impl_->path, ec);
}

void TriggerSocket::complete(uint64_t run, int64_t runId, RunResult result) {
  const std::string answer =
      "done " + std::to_string(runId) + " " + std::string(toString(result)) + "\n";
  std::lock_guard lock(impl_->mu);
  std::vector<Impl::Waiter> keep;
  for (const auto& w : impl_->waiters) {
    if (w.ticket <= run) {
      sendAll(w.fd, answer);
      ::close(w.fd);
    } else {
      keep.push_back(w);
    }
  }
  impl_->waiters = std::move(keep);
}

size_t TriggerSocket::waiting() const {
  std::lock_guard lock(impl_->mu);
  return impl_->waiters.size();
}

Result<std::unique_ptr<TriggerSocket>> TriggerSocket::listen(const fs::path& path,
                                                             std::function<uint64_t()> onTrigger) {
  auto addr = socketAddress(path);
  if (!addr) {
    return addr.error();
  }
  // A socket file that still answers belongs to a running agent; one that does not is stale.
  std::error_code ec;
  if (fs::exists(fs::symlink_status(path, ec))) {
    if (!fs::is_socket(fs::symlink_status(path, ec))) {
      return terminal(path.string() + " exists and is not a socket; remove it");
    }
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool live = probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&*addr),
                                              sizeof(sockaddr_un)) == 0;
    if (probe >= 0) {
      ::close(probe);
    }
    if (live) {
      return terminal("another agent is already listening on " + path.string());
    }
    fs::remove(path, ec);
  }
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->onTrigger = std::move(onTrigger);
  impl->listenFd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->listenFd < 0) {
    const int err = errno;
    return terminal("socket: " + errnoText(err));
  }
  // Created 0600 from the start: the umask is process-wide, but this runs before any other
  // thread exists in the agent, and fchmod cannot apply to a socket's file.
  const mode_t old = ::umask(0177);
  const int bound =
      ::bind(impl->listenFd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un));
  const int bindErr = errno;
  ::umask(old);
  if (bound != 0) {
    ::close(impl->listenFd);
    return terminal("cannot listen on " + path.string() + ": " + errnoText(bindErr));
  }
  if (auto restricted = restrictSocketFile(path, 0600); !restricted) {
    ::close(impl->listenFd);
    return restricted.error();
  }
  if (::listen(impl->listenFd, 16) != 0) {
    const std::string why = errnoText(errno);
    ::close(impl->listenFd);
    fs::remove(path, ec);
    return terminal("cannot listen on " + path.string() + ": " + why);
  }
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    const std::string why = errnoText(errno);
    ::close(impl->listenFd);
    fs::remove(path, ec);
    return terminal("pipe: " + why);
  }
  impl->wakeRead = wake[0];
  impl->wakeWrite = wake[1];
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->loop(); });
  return std::unique_ptr<TriggerSocket>(new TriggerSocket(std::move(impl)));
}

Result<std::string> requestTrigger(const fs::path& path, bool wait,
                                   std::chrono::milliseconds timeout) {
  auto addr = socketAddress(path);
  if (!addr) {
    return addr.error();
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("socket: " + errnoText(err));
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un)) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED) {
      return retryable("no agent is listening on " + path.string() +
                       " (is `edgeplane agent` running with this state dir?)");
    }
    return terminal("cannot connect to " + path.string() + ": " + errnoText(err));
  }
  sendAll(fd, wait ? "reconcile-wait\n" : "reconcile\n");
  auto answer = readLine(fd, 4096, std::chrono::steady_clock::now() + timeout);
  ::close(fd);
  if (!answer) {
    return retryable("no answer from the agent on " + path.string() + " within " +
                     formatDuration(timeout));
  }
  return *answer;
}

}  // namespace edgeplane::cli
