// The worker's services to handlers (Context): epoll registration, timers, the ready list,
// deferred deletion, namespaced sockets, the pipe pool, randomness and the access log.
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include "proxy/engine/shared.h"
#include "proxy/engine/worker.h"

#include <cerrno>

namespace edgeplane::proxy::engine_detail {

namespace {
constexpr size_t kMaxPooledPipes = 128;
constexpr size_t kMinPipeBytes = 65536;
constexpr uint64_t kTagMask = 7;
}  // namespace

std::shared_ptr<const ActiveConfig> Worker::currentConfig() {
  uint64_t version = shared_.configVersion.load(std::memory_order_acquire);
  if (version != configVersion_) {
    config_ = shared_.config.load(std::memory_order_acquire);
    configVersion_ = version;
  }
  return config_;
}

bool Worker::watch(int fd, EventTarget* target, uint32_t tag, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = reinterpret_cast<uint64_t>(target) | (tag & kTagMask);
  return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Worker::rewatch(int fd, EventTarget* target, uint32_t tag, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = reinterpret_cast<uint64_t>(target) | (tag & kTagMask);
  return ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void Worker::unwatch(int fd) {
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
}

void Worker::schedule(EventTarget* target, int64_t deadlineMs) {
  timers_.schedule(target, deadlineMs);
}

void Worker::unschedule(EventTarget* target) {
  timers_.unschedule(target);
}

void Worker::markReady(EventTarget* target) {
  if (!target->inReady_) {
    target->inReady_ = true;
    ready_.push_back(target);
  }
}

void Worker::retire(std::unique_ptr<EventTarget> target) {
  if (!target) {
    return;
  }
  target->retired_ = true;
  unschedule(target.get());
  graveyard_.push_back(std::move(target));
}

int Worker::upstreamSocket(std::string_view netns, int family) {
  return netns_->tcpSocket(netns, family);
}

bool Worker::acquirePipe(int& readFd, int& writeFd, size_t& capacity) {
  if (!pipePool_.empty()) {
    readFd = pipePool_.back().first;
    writeFd = pipePool_.back().second;
    pipePool_.pop_back();
    capacity = pipeSize_;
    return true;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return false;
  }
  // Never below the kernel's default 64 KiB: a pipe holds data only in flight (an idle
  // connection has none), and 16 KiB pipes cost about 20% of bulk throughput in our loopback
  // measurements (more syscalls per byte).
  size_t want = std::max(shared_.options.bufferBytes, kMinPipeBytes);
  int size = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(want));
  if (size <= 0) {
    size = ::fcntl(fds[1], F_GETPIPE_SZ);
  }
  if (size <= 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  pipeSize_ = static_cast<size_t>(size);
  readFd = fds[0];
  writeFd = fds[1];
  capacity = pipeSize_;
  return true;
}

// A pipe still holding bytes (a connection cut mid-stream) is closed, never reused.
void Worker::releasePipe(int readFd, int writeFd, bool dirty) {
  if (!dirty && pipePool_.size() < kMaxPooledPipes) {
    pipePool_.emplace_back(readFd, writeFd);
  } else {
    ::close(readFd);
    ::close(writeFd);
  }
}

uint32_t Worker::random() {
  // xorshift64*: per worker, no locks; balancing needs spread, not secrecy.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return static_cast<uint32_t>((rng_ * 0x2545F4914F6CDD1Dull) >> 32);
}

void Worker::accessLog(std::string_view line) {
  if (shared_.options.accessLog) {
    [[maybe_unused]] ssize_t w = ::write(2, line.data(), line.size());
  }
}

void Worker::eventLog(std::string_view line) {
  eventLog_.append(line);
  if (eventLog_.size() >= kEventLogFlushBytes) {
    flushEventLog();
  }
}

void Worker::flushEventLog() {
  size_t done = 0;
  while (done < eventLog_.size()) {
    ssize_t w = ::write(2, eventLog_.data() + done, eventLog_.size() - done);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      break;  // stderr is gone or full: the records are dropped, the data path goes on
    }
    done += static_cast<size_t>(w);
  }
  eventLog_.clear();
}

}  // namespace edgeplane::proxy::engine_detail
