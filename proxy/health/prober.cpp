// The active health prober's thread: schedule, non-blocking probes on one epoll, judgement.
#include "proxy/health/prober.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/netns_socket.h"
#include "schema/json_text.h"

namespace edgeplane::proxy::health {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSweepEvery = std::chrono::seconds(1);
constexpr int kEventBatch = 64;

enum class Phase : uint8_t { Connecting, Sending, Reading };

std::string_view phaseText(Phase p) {
  switch (p) {
    case Phase::Connecting:
      return "connecting";
    case Phase::Sending:
      return "sending the request";
    case Phase::Reading:
      break;
  }
  return "waiting for the status line";
}

struct Probe {
  int fd = -1;
  std::shared_ptr<HealthEntry> entry;
  Clock::time_point started;
  Clock::time_point deadline;
  Phase phase = Phase::Connecting;
  std::string request;
  size_t sent = 0;
  std::string reply;
};

struct Target {
  std::shared_ptr<HealthEntry> entry;
  Clock::time_point due;
  bool inFlight = false;
};

struct Due {
  Clock::time_point at;
  const HealthEntry* entry = nullptr;
  bool operator>(const Due& o) const { return at > o.at; }
};

ProbeResult fail(std::string why) {
  return ProbeResult{false, std::move(why)};
}

std::string requestFor(const HealthKey& key) {
  const HealthSpec& spec = *key.spec;
  std::string host = spec.host.empty() ? key.backend.str() : spec.host;
  return "GET " + spec.path + " HTTP/1.1\r\nHost: " + host +
         "\r\nUser-Agent: edgeplane-health/1\r\nConnection: close\r\n\r\n";
}

ProbeResult judge(std::string_view line, const HealthSpec& spec) {
  if (line.ends_with('\r')) {
    line.remove_suffix(1);
  }
  auto status = parseStatusLine(line);
  if (!status) {
    return fail("malformed status line");
  }
  if (!spec.expect.matches(*status)) {
    return fail("status " + std::to_string(*status) + " (expected " + spec.expect.str() + ")");
  }
  return ProbeResult{true, {}};
}

}  // namespace

std::string formatEvent(const HealthEvent& event) {
  std::string line = "health route=";
  appendJsonString(line, event.route);
  line += " backend=" + event.backend.str() + (event.up ? " up" : " down") + " reason=";
  appendJsonString(line, event.reason);
  return line;
}

// Everything the prober thread owns. Only that thread touches it.
struct Prober::Loop {
  explicit Loop(Prober& owner) : owner_(owner), netns_(owner.options_.netnsDir) {}
  ~Loop();

  Result<void> init();
  void follow(const ActiveConfig& config);
  void startDue(Clock::time_point now);
  void expire(Clock::time_point now);
  void onReady(int fd, uint32_t events);
  int waitMs(Clock::time_point now) const;
  void sweep(Clock::time_point now);

  int epollFd_ = -1;

 private:
  void start(Target& target, Clock::time_point now);
  std::optional<ProbeResult> advance(Probe& probe, uint32_t events);
  std::optional<ProbeResult> readStatus(Probe& probe);
  void finish(const std::shared_ptr<HealthEntry>& entry, Clock::time_point started,
              const ProbeResult& result);
  void close(Probe& probe);
  void report(const HealthEntry& entry, Transition t, const std::string& reason);

  Prober& owner_;
  NetnsSocketFactory netns_;
  std::map<const HealthEntry*, Target> targets_;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> queue_;
  std::unordered_map<int, std::unique_ptr<Probe>> probes_;
  std::mt19937_64 rng_{std::random_device{}()};
  Clock::time_point nextSweep_ = Clock::now() + kSweepEvery;
};

Prober::Loop::~Loop() {
  for (auto& [fd, probe] : probes_) {
    ::close(fd);
  }
  if (epollFd_ >= 0) {
    ::close(epollFd_);
  }
}

Result<void> Prober::Loop::init() {
  epollFd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epollFd_ < 0) {
    const int err = errno;
    return terminal("health prober: epoll_create1: " + errnoText(err));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = owner_.wakeFd_;
  if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, owner_.wakeFd_, &ev) != 0) {
    const int err = errno;
    return terminal("health prober: epoll_ctl: " + errnoText(err));
  }
  if (int rc = netns_.init(); rc < 0) {
    return terminal("health prober: cannot open its own network namespace: " + errnoText(-rc));
  }
  return {};
}

void Prober::Loop::follow(const ActiveConfig& config) {
  std::map<const HealthEntry*, Target> next;
  auto now = Clock::now();
  for (const auto& route : config.routes) {
    auto keys = healthKeys(route->spec);
    if (!keys) {
      continue;  // refused by attach(): never in a published config
    }
    for (size_t i = 0; i < keys->size() && i < route->health.size(); ++i) {
      const HealthKey& key = (*keys)[i];
      if (!key.spec) {
        continue;
      }
      auto entry = owner_.registry_.find(key);
      // Only the entry this config's workers read: a registry already a generation ahead
      // (attached, not yet handed over) has no say over this one.
      if (entry == nullptr || entry->health() != route->health[i] || next.count(entry.get())) {
        continue;
      }
      auto old = targets_.find(entry.get());
      if (old != targets_.end() && old->second.entry == entry) {
        next.emplace(entry.get(), std::move(old->second));
      } else {
        next.emplace(entry.get(), Target{entry, now, false});
      }
    }
  }
  targets_ = std::move(next);
  queue_ = {};
  for (const auto& [ptr, target] : targets_) {
    if (!target.inFlight) {
      queue_.push(Due{target.due, ptr});
    }
  }
}

void Prober::Loop::startDue(Clock::time_point now) {
  while (probes_.size() < owner_.options_.maxInFlight && !queue_.empty() &&
         queue_.top().at <= now) {
    Due due = queue_.top();
    queue_.pop();
    auto it = targets_.find(due.entry);
    if (it == targets_.end() || it->second.inFlight || it->second.due != due.at) {
      continue;  // stale: the target was dropped or rescheduled since
    }
    start(it->second, now);
  }
}

void Prober::Loop::start(Target& target, Clock::time_point now) {
  target.inFlight = true;
  owner_.started_.fetch_add(1, std::memory_order_relaxed);
  std::shared_ptr<HealthEntry> entry = target.entry;  // finish() may reschedule `target`
  if (Transition t = entry->markPassive(owner_.registry_.now()); t != Transition::None) {
    report(*entry, t, entry->state().lastError);
  }
  const HealthKey& key = entry->key();
  int family = key.backend.address.family == IpAddress::Family::V6 ? AF_INET6 : AF_INET;
  int fd = netns_.tcpSocket(key.netns, family);
  if (fd < 0) {
    finish(entry, now, fail("socket in netns \"" + key.netns + "\": " + errnoText(-fd)));
    return;
  }
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(key.backend, ss);
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&ss), len);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    finish(entry, now, fail("connect: " + errnoText(err)));
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.fd = fd;
  if (::epoll_ctl(epollFd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    ::close(fd);
    finish(entry, now, fail("epoll_ctl: " + errnoText(err)));
    return;
  }
  auto probe = std::make_unique<Probe>();
  probe->fd = fd;
  probe->entry = entry;
  probe->started = now;
  probe->deadline = now + key.spec->timeout;
  probe->phase = rc == 0 ? Phase::Sending : Phase::Connecting;
  probe->request = requestFor(key);
  probes_.emplace(fd, std::move(probe));
}

std::optional<ProbeResult> Prober::Loop::advance(Probe& probe, uint32_t events) {
  if (probe.phase == Phase::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(probe.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      return fail("connect: " + errnoText(err));
    }
    if ((events & EPOLLOUT) == 0) {
      // A hang-up without an error would otherwise wake this level-triggered loop until the
      // timeout.
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
        return fail("connect: connection closed");
      }
      return std::nullopt;
    }
    probe.phase = Phase::Sending;
  }
  if (probe.phase == Phase::Sending) {
    while (probe.sent < probe.request.size()) {
      ssize_t n = ::send(probe.fd, probe.request.data() + probe.sent,
                         probe.request.size() - probe.sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return std::nullopt;
      }
      if (n < 0) {
        const int err = errno;
        return fail("send: " + errnoText(err));
      }
      probe.sent += static_cast<size_t>(n);
    }
    probe.phase = Phase::Reading;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = probe.fd;
    if (::epoll_ctl(epollFd_, EPOLL_CTL_MOD, probe.fd, &ev) != 0) {
      const int err = errno;
      return fail("epoll_ctl: " + errnoText(err));
    }
    return std::nullopt;
  }
  return readStatus(probe);
}

std::optional<ProbeResult> Prober::Loop::readStatus(Probe& probe) {
  const size_t limit = std::max<size_t>(owner_.options_.maxReplyBytes, 16);
  char buf[1024];
  for (;;) {
    size_t room = std::min(sizeof buf, limit - probe.reply.size());
    ssize_t n = ::recv(probe.fd, buf, room, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return std::nullopt;
    }
    if (n < 0) {
      const int err = errno;
      return fail("recv: " + errnoText(err));
    }
    if (n == 0) {
      return fail(probe.reply.empty() ? "closed without an answer"
                                      : "closed before the end of the status line");
    }
    probe.reply.append(buf, static_cast<size_t>(n));
    if (size_t eol = probe.reply.find('\n'); eol != std::string::npos) {
      return judge(std::string_view(probe.reply).substr(0, eol), *probe.entry->key().spec);
    }
    if (probe.reply.size() >= limit) {
      return fail("no status line in the first " + std::to_string(limit) + " bytes");
    }
  }
}

void Prober::Loop::onReady(int fd, uint32_t events) {
  auto it = probes_.find(fd);
  if (it == probes_.end()) {
    return;
  }
  Probe& probe = *it->second;
  std::optional<ProbeResult> done = advance(probe, events);
  if (!done) {
    return;
  }
  std::shared_ptr<HealthEntry> entry = std::move(probe.entry);
  Clock::time_point started = probe.started;
  close(probe);  // destroys `probe`
  finish(entry, started, *done);
}

void Prober::Loop::expire(Clock::time_point now) {
  std::vector<int> late;
  for (const auto& [fd, probe] : probes_) {
    if (probe->deadline <= now) {
      late.push_back(fd);
    }
  }
  for (int fd : late) {
    Probe& probe = *probes_.at(fd);
    auto timeout = probe.entry->key().spec->timeout;
    ProbeResult result = fail("timeout after " + formatDuration(timeout) + " " +
                              std::string(phaseText(probe.phase)));
    std::shared_ptr<HealthEntry> entry = std::move(probe.entry);
    Clock::time_point started = probe.started;
    close(probe);
    finish(entry, started, result);
  }
}

void Prober::Loop::close(Probe& probe) {
  int fd = probe.fd;
  ::epoll_ctl(epollFd_, EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  probes_.erase(fd);
}

void Prober::Loop::finish(const std::shared_ptr<HealthEntry>& entry, Clock::time_point started,
                          const ProbeResult& result) {
  const HealthSpec& spec = *entry->key().spec;
  Transition t = entry->record(result, owner_.registry_.now());
  report(*entry, t,
         result.ok ? std::to_string(spec.healthyThreshold) + " consecutive passed probes"
                   : result.error);
  // Counted once recorded and reported: whoever sees the count sees the probe's effects.
  owner_.finished_.fetch_add(1, std::memory_order_release);
  auto it = targets_.find(entry.get());
  if (it == targets_.end() || it->second.entry != entry) {
    return;  // no longer in the followed config
  }
  Target& target = it->second;
  target.inFlight = false;
  std::uniform_int_distribution<int64_t> jitter(0, spec.interval.count() / 10);
  target.due = std::max(Clock::now(), started + spec.interval + Duration(jitter(rng_)));
  queue_.push(Due{target.due, entry.get()});
}

void Prober::Loop::report(const HealthEntry& entry, Transition t, const std::string& reason) {
  if (t == Transition::None || !owner_.options_.onEvent) {
    return;
  }
  const HealthKey& key = entry.key();
  owner_.options_.onEvent(
      HealthEvent{entry.route(), key.netns, key.backend, t == Transition::Up, reason});
}

int Prober::Loop::waitMs(Clock::time_point now) const {
  Clock::time_point next = nextSweep_;
  for (const auto& [fd, probe] : probes_) {
    next = std::min(next, probe->deadline);
  }
  if (probes_.size() < owner_.options_.maxInFlight && !queue_.empty()) {
    next = std::min(next, queue_.top().at);
  }
  if (next <= now) {
    return 0;
  }
  // Rounded up: waking a little early would spin until the deadline.
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::min<int64_t>(ms, 1000));
}

void Prober::Loop::sweep(Clock::time_point now) {
  if (now >= nextSweep_) {
    netns_.sweep();
    nextSweep_ = now + kSweepEvery;
  }
}

// ---- the thread's owner ----

Prober::Prober(HealthRegistry& registry, ProberOptions options)
    : registry_(registry), options_(std::move(options)) {}

Result<std::unique_ptr<Prober>> Prober::start(HealthRegistry& registry, ProberOptions options,
                                              std::shared_ptr<const ActiveConfig> config) {
  std::unique_ptr<Prober> prober(new Prober(registry, std::move(options)));
  prober->wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (prober->wakeFd_ < 0) {
    const int err = errno;
    return terminal("health prober: eventfd: " + errnoText(err));
  }
  prober->pending_ = std::move(config);
  std::promise<Result<void>> ready;
  std::future<Result<void>> started = ready.get_future();
  Prober* self = prober.get();
  // The namespace factory must be created on the thread that uses it (netns_socket.h).
  prober->thread_ = std::thread([self, &ready] {
    Loop loop(*self);
    Result<void> init = loop.init();
    bool ok = init.ok();
    ready.set_value(std::move(init));  // `ready` is not touched after this
    if (ok) {
      self->run(loop);
    }
  });
  Result<void> init = started.get();
  if (!init) {
    prober->thread_.join();
    return init.error();
  }
  return prober;
}

Prober::~Prober() {
  stop();
  if (wakeFd_ >= 0) {
    ::close(wakeFd_);
  }
}

void Prober::setConfig(std::shared_ptr<const ActiveConfig> config) {
  {
    std::lock_guard lock(mu_);
    pending_ = std::move(config);
  }
  uint64_t one = 1;
  (void)!::write(wakeFd_, &one, sizeof one);
}

void Prober::stop() {
  stopping_.store(true);
  if (wakeFd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void Prober::run(Loop& loop) {
  std::shared_ptr<const ActiveConfig> followed;
  epoll_event events[kEventBatch];
  while (!stopping_.load()) {
    {
      std::lock_guard lock(mu_);
      if (pending_) {
        followed = std::move(pending_);
        pending_.reset();
      }
    }
    if (followed) {
      loop.follow(*followed);
      followed.reset();  // the entries are held by the targets; the config may go
    }
    auto now = Clock::now();
    loop.expire(now);
    loop.startDue(now);
    loop.sweep(now);
    int n = ::epoll_wait(loop.epollFd_, events, kEventBatch, loop.waitMs(Clock::now()));
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == wakeFd_) {
        uint64_t count = 0;
        (void)!::read(wakeFd_, &count, sizeof count);
        continue;
      }
      loop.onReady(events[i].data.fd, events[i].events);
    }
  }
}

}  // namespace edgeplane::proxy::health
