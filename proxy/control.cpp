// The proxy's control side: published snapshot -> ActiveConfig, the watcher, traffic accounting.
#include "proxy/control.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

#include "proxy/gateway/config.h"
#include "proxy/tls/acme_alpn.h"
#include "proxy/tls/context.h"

namespace edgeplane::proxy {

namespace fs = std::filesystem;

std::shared_ptr<const ActiveConfig> emptyConfig() {
  auto config = std::make_shared<ActiveConfig>();
  std::vector<RouteTableIssue> issues;
  config->table = RoutingTable::build({}, issues);
  config->gateway = gateway::GatewayConfig::build(*config, {}, nullptr);
  return config;
}

Result<std::shared_ptr<const ActiveConfig>> buildActiveConfig(
    const ProxySnapshot& snapshot, int64_t generation, std::string json,
    const ActiveConfig* previous, health::HealthRegistry* health,
    std::shared_ptr<tls::TicketKeys> ticketKeys, std::vector<std::string>* tlsErrors) {
  std::unordered_map<std::string, std::shared_ptr<RouteStats>> kept;
  if (previous != nullptr) {
    for (const auto& route : previous->routes) {
      kept.emplace(route->spec.key(), route->stats);
    }
  }

  auto config = std::make_shared<ActiveConfig>();
  config->generation = generation;
  config->json = std::move(json);
  std::vector<std::string> problems;
  std::set<std::string> keys;
  std::vector<RouteHosts> hosts;
  hosts.reserve(snapshot.routes.size());
  for (const SnapshotRoute& spec : snapshot.routes) {
    auto route = std::make_unique<ActiveRoute>();
    route->spec = spec;
    std::string key = spec.key();
    if (!keys.insert(key).second) {
      problems.push_back("route \"" + key + "\" appears twice");
    }
    auto found = kept.find(key);
    route->stats = found != kept.end() ? found->second : std::make_shared<RouteStats>();
    hosts.push_back(RouteHosts{static_cast<RouteId>(config->routes.size()), spec.hostnames});
    config->routes.push_back(std::move(route));
  }

  std::vector<RouteTableIssue> issues;
  config->table = RoutingTable::build(hosts, issues);
  for (const RouteTableIssue& issue : issues) {
    std::string key = issue.route < config->routes.size() ? config->routes[issue.route]->spec.key()
                                                          : "route #" + std::to_string(issue.route);
    problems.push_back("route \"" + key + "\" host name \"" + issue.hostname +
                       "\": " + issue.reason);
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& p : problems) {
      message += message.empty() ? "" : "; ";
      message += p;
    }
    return terminal(message);
  }
  // Loaded only for a config that will be published: reading keys is not free.
  if (!snapshot.certificates.empty()) {
    config->tls = tls::ContextSet::build(snapshot.certificates,
                                         previous != nullptr ? previous->tls.get() : nullptr,
                                         std::move(ticketKeys), tlsErrors);
  }
  // Last: attach() drops the registry's entries this config does not use.
  if (health != nullptr) {
    if (auto attached = health->attach(*config); !attached) {
      return attached.error();
    }
  }
  // After health: the endpoints take their slices of it. The runtime (rate limits, usage,
  // blocked keys) lives as long as the process.
  config->gateway = gateway::GatewayConfig::build(
      *config, snapshot.api_keys,
      previous != nullptr && previous->gateway ? previous->gateway->runtimePtr() : nullptr);
  return std::shared_ptr<const ActiveConfig>(std::move(config));
}

Controller::Controller(ControllerOptions options, Metrics& metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      health_([this] { return now(); }),
      current_(emptyConfig()) {}

Controller::~Controller() {
  // Joins only: the final flush belongs to an orderly stopWatcher() by the owner.
  {
    std::lock_guard lock(watchMu_);
    stopping_ = true;
  }
  watchCv_.notify_all();
  if (watcher_.joinable()) {
    watcher_.join();
  }
}

void Controller::setSink(Sink sink) {
  std::lock_guard lock(mu_);
  sink_ = std::move(sink);
  if (sink_) {
    sink_(current());
  }
}

std::shared_ptr<const ActiveConfig> Controller::current() const {
  std::lock_guard lock(cfgMu_);
  return current_;
}

uint64_t Controller::refusedCount() const {
  return refused_.load();
}

void Controller::setListeners(Listeners listeners) {
  std::lock_guard lock(listenersMu_);
  listeners_ = std::move(listeners);
}

std::optional<Listeners> Controller::listeners() const {
  std::lock_guard lock(listenersMu_);
  return listeners_;
}

int64_t Controller::now() const {
  if (options_.clock) {
    return options_.clock();
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Controller::log(std::string_view line) const {
  if (options_.log) {
    options_.log(line);
    return;
  }
  std::fprintf(stderr, "edgeplane-proxy: %.*s\n", static_cast<int>(line.size()), line.data());
}

// The proxy's own store, for its counters (usage, traffic): made in <state-dir>/proxy on first
// use. What it serves from comes from the files the reconciler publishes (readPublished*).
Result<Store*> Controller::storeLocked() {
  if (store_) {
    return store_.get();
  }
  StoreOptions options = options_.store;
  options.fileName = std::string(kProxyCounters);
  auto opened = Store::open(proxyOwnDir(options_.stateDir), options);
  if (!opened) {
    return opened.error();
  }
  store_ = std::move(opened.value());
  if (!lastStoreError_.empty()) {
    log("the proxy's store " + store_->path().string() + " works again");
    lastStoreError_.clear();
  }
  return store_.get();
}

// Logs a problem reading a published file once (until it changes); `last` is that file's.
void Controller::feedFailedLocked(std::string& last, const Error& error, std::string_view what) {
  std::string line = std::string(what) + ": " + error.message;
  if (line != last) {
    log(line);
    last = line;
  }
}

// After a published file was read without a problem: a problem logged before is over.
void Controller::feedReadLocked(std::string& last) {
  if (!last.empty()) {
    log("the published files are readable again");
    last.clear();
  }
}

// Refreshes the blocks and the ACME answers from the published state; false when it cannot be
// read (those in force stay).
bool Controller::refreshPublishedLocked() {
  auto state = readPublishedState(options_.stateDir);
  if (!state) {
    feedFailedLocked(lastStateError_, state.error(),
                     "cannot read the blocked API keys and the ACME answers");
    return false;
  }
  feedReadLocked(lastStateError_);
  refreshBlocksLocked(state->blocks);
  refreshChallengesLocked(std::move(state->challenges));
  return true;
}

// Logs a store problem once (until it changes or the store works again). A terminal error
// drops the connection so the next attempt reopens the file (it may have been replaced).
void Controller::storeFailedLocked(const Error& error, std::string_view what) {
  std::string line = std::string(what) + ": " + error.message;
  if (line != lastStoreError_) {
    log(line);
    lastStoreError_ = line;
  }
  if (!error.retryable) {
    store_.reset();
  }
}

void Controller::publishLocked(std::shared_ptr<const ActiveConfig> config) {
  for (const auto& route : config->routes) {
    bool known = std::any_of(tracked_.begin(), tracked_.end(),
                             [&](const Tracked& t) { return t.stats == route->stats; });
    if (!known) {
      // Fresh stats start at zero, so everything counted on them is still to be flushed.
      tracked_.push_back(Tracked{route->spec.key(), route->stats, 0, 0, 0});
    }
  }
  // The engine first: the admin API and the generation gauge name a generation only once
  // it is served.
  if (sink_) {
    sink_(config);
  }
  metrics_.generation.store(config->generation);
  {
    std::lock_guard lock(cfgMu_);
    current_.swap(config);
  }
  // `config` now holds the old generation: freed here, if last, not under the readers' lock.
}

ReloadOutcome Controller::reload() {
  std::lock_guard lock(mu_);
  return reloadLocked(false);
}

ReloadOutcome Controller::reloadLocked(bool fromWatcher) {
  ReloadOutcome out;
  int64_t active = current()->generation;
  out.active = active;
  bool first = !loadedOnce_;
  loadedOnce_ = true;

  refreshPublishedLocked();
  auto latest = readPublishedSnapshot(options_.stateDir);
  if (!latest) {
    feedFailedLocked(lastSnapshotError_, latest.error(), "cannot read the routing snapshot");
    out.error = latest.error().message;
    out.storeError = true;
    return out;
  }
  feedReadLocked(lastSnapshotError_);
  if (!latest->has_value()) {
    return out;  // nothing published yet: the normal state before the first apply
  }
  const Snapshot& snap = **latest;
  if (snap.generation == active) {
    return out;
  }
  if (refusedGeneration_ == snap.generation) {
    out.refused = snap.generation;
    out.error = refusedError_;
    return out;
  }

  auto refuse = [&](const std::string& why) {
    refusedGeneration_ = snap.generation;
    refusedError_ = why;
    refused_.fetch_add(1);
    log("refused snapshot generation " + std::to_string(snap.generation) + ": " + why +
        "; keeping generation " + std::to_string(active));
    out.refused = snap.generation;
    out.error = why;
    return out;
  };
  auto decoded = snapshotFromJson(snap.body);
  if (!decoded) {
    return refuse(decoded.error().message);
  }
  auto previous = current();
  std::vector<std::string> tlsErrors;
  auto built = buildActiveConfig(*decoded, snap.generation, snap.body, previous.get(), &health_,
                                 ticketKeys_, &tlsErrors);
  if (!built) {
    return refuse(built.error().message);
  }
  publishLocked(std::move(built.value()));
  // Once per generation: a refused or unchanged generation is not built again.
  for (const std::string& e : tlsErrors) {
    log("snapshot generation " + std::to_string(snap.generation) + ": certificate " + e +
        "; its routes cannot terminate TLS");
  }
  metrics_.tlsCertificateErrors.fetch_add(tlsErrors.size());
  if (!first) {
    metrics_.reloads.fetch_add(1);
  }
  log("loaded snapshot generation " + std::to_string(snap.generation) + " (" +
      std::to_string(decoded->routes.size()) + " routes" +
      (fromWatcher ? ", noticed by polling" : "") + ")");
  out.active = snap.generation;
  out.changed = true;
  return out;
}

void Controller::pollLocked() {
  refreshPublishedLocked();
  auto generation = readPublishedGeneration(options_.stateDir);
  if (!generation) {
    feedFailedLocked(lastSnapshotError_, generation.error(), "cannot read the routing snapshot");
    return;
  }
  if (*generation == 0 || *generation == current()->generation ||
      refusedGeneration_ == *generation) {
    feedReadLocked(lastSnapshotError_);
    return;
  }
  reloadLocked(true);  // which tells whether the snapshot reads again
}

void Controller::refreshChallengesLocked(std::vector<AcmeChallenge> listed) {
  if (!options_.acmeChallenges) {
    return;
  }
  AcmeChallengeBoard::Map http01;
  AcmeChallengeBoard::Map tlsAlpn01;
  AcmeChallengeBoard::TxtMap dns01;
  size_t nDns = 0;
  for (AcmeChallenge& c : listed) {
    if (c.type == AcmeChallengeType::TlsAlpn01) {
      std::string domain = std::move(c.domain);
      std::transform(domain.begin(), domain.end(), domain.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      tlsAlpn01.insert_or_assign(std::move(domain), std::move(c.keyAuthorization));
    } else if (c.type == AcmeChallengeType::Dns01) {
      // Rows come ordered by token, so a name's values keep one order from poll to poll.
      dns01[dns01RecordName(c.domain)].push_back(tls::dns01TxtValue(c.keyAuthorization));
      ++nDns;
    } else {
      http01.emplace(std::move(c.token), std::move(c.keyAuthorization));
    }
  }
  const size_t nHttp = http01.size();
  const size_t nAlpn = tlsAlpn01.size();
  if (options_.acmeChallenges->replace(std::move(http01), std::move(tlsAlpn01), std::move(dns01))) {
    log("pending ACME challenges: " + std::to_string(nHttp) + " http-01, " + std::to_string(nAlpn) +
        " tls-alpn-01, " + std::to_string(nDns) + " dns-01");
    if (nDns > 0 && !options_.dnsResponder) {
      log("pending dns-01 answers are served by no one: this proxy runs without --dns, so the "
          "CA's validation will fail");
    }
  }
}

Result<std::vector<AcmeState>> Controller::acmeStates() {
  auto state = readPublishedState(options_.stateDir);
  if (!state) {
    return state.error();
  }
  return std::move(state->acme);
}

std::vector<Controller::Delta> Controller::pendingLocked() const {
  std::vector<Delta> out;
  for (const Tracked& t : tracked_) {
    Delta d{t.key, t.stats->bytesIn.load() - t.bytesIn, t.stats->bytesOut.load() - t.bytesOut,
            t.stats->connections.load() - t.connections};
    out.push_back(std::move(d));
  }
  return out;
}

Result<size_t> Controller::flushTraffic() {
  std::lock_guard lock(mu_);
  // Which stats of removed routes nothing holds any more is decided BEFORE the counters are
  // read: once no connection holds them, nothing can add to them, so the values read below
  // are final and dropping them after this write loses nothing. (Deciding after the write
  // lost the last bytes of a connection that ended while the write was under way.)
  auto config = current();
  std::vector<bool> finished(tracked_.size());
  for (size_t i = 0; i < tracked_.size(); ++i) {
    const Tracked& t = tracked_[i];
    bool active = std::any_of(config->routes.begin(), config->routes.end(),
                              [&](const auto& r) { return r->stats == t.stats; });
    finished[i] = !active && t.stats.use_count() == 1;
  }
  // use_count() is a relaxed load: pair it with the release of the last holder's reference so
  // that holder's final counter updates are visible to the loads below.
  std::atomic_thread_fence(std::memory_order_acquire);
  // Read each counter once: what is written is exactly what is marked as flushed.
  std::vector<Tracked> seen;
  seen.reserve(tracked_.size());
  std::map<std::string, Delta> byKey;
  for (const Tracked& t : tracked_) {
    Tracked now{t.key, t.stats, t.stats->bytesIn.load(), t.stats->bytesOut.load(),
                t.stats->connections.load()};
    Delta& d = byKey[t.key];
    d.key = t.key;
    d.bytesIn += now.bytesIn - t.bytesIn;
    d.bytesOut += now.bytesOut - t.bytesOut;
    d.connections += now.connections - t.connections;
    seen.push_back(std::move(now));
  }
  std::vector<TrafficSample> samples;
  int64_t at = now();
  for (const auto& [key, d] : byKey) {
    if (d.bytesIn == 0 && d.bytesOut == 0 && d.connections == 0) {
      continue;
    }
    samples.push_back(TrafficSample{key, at, static_cast<int64_t>(d.bytesIn),
                                    static_cast<int64_t>(d.bytesOut),
                                    static_cast<int64_t>(d.connections)});
  }
  if (!samples.empty()) {
    auto store = storeLocked();
    if (!store) {
      storeFailedLocked(store.error(), "cannot open the proxy's store");
      return store.error();
    }
    auto written = (*store)->transaction([&]() -> Result<void> {
      for (const TrafficSample& s : samples) {
        if (auto r = (*store)->addTraffic(s); !r) {
          return r.error();
        }
      }
      return {};
    });
    if (!written) {
      storeFailedLocked(written.error(), "cannot write traffic samples");
      return written.error();
    }
  }
  // Stats of a removed route are dropped once flushed and no connection holds them anymore
  // (the tracker's reference was the last one before the counters were read).
  tracked_.clear();
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!finished[i]) {
      tracked_.push_back(std::move(seen[i]));
    }
  }
  return samples.size();
}

Result<int64_t> Controller::pruneTraffic() {
  std::lock_guard lock(mu_);
  auto store = storeLocked();
  if (!store) {
    return store.error();
  }
  auto pruned = (*store)->pruneTrafficBefore(now() - options_.trafficRetention.count());
  if (!pruned) {
    storeFailedLocked(pruned.error(), "cannot prune traffic samples");
  }
  return pruned;
}

Result<std::vector<RouteTraffic>> Controller::trafficSince(int64_t sinceMs) {
  std::lock_guard lock(mu_);
  std::map<std::string, RouteTraffic> byKey;
  auto store = storeLocked();
  if (!store) {
    return store.error();
  }
  auto samples = (*store)->trafficSince(sinceMs);
  if (!samples) {
    storeFailedLocked(samples.error(), "cannot read traffic samples");
    return samples.error();
  }
  for (const TrafficSample& s : *samples) {
    RouteTraffic& t = byKey[s.route];
    t.route = s.route;
    t.bytesIn += s.bytesIn;
    t.bytesOut += s.bytesOut;
    t.connections += s.connections;
  }
  // The live deltas happened between the last flush and now, so they belong to any period
  // that has started by now.
  if (sinceMs <= now()) {
    for (const Delta& d : pendingLocked()) {
      if (d.bytesIn == 0 && d.bytesOut == 0 && d.connections == 0) {
        continue;
      }
      RouteTraffic& t = byKey[d.key];
      t.route = d.key;
      t.bytesIn += static_cast<int64_t>(d.bytesIn);
      t.bytesOut += static_cast<int64_t>(d.bytesOut);
      t.connections += static_cast<int64_t>(d.connections);
    }
  }
  std::vector<RouteTraffic> out;
  out.reserve(byKey.size());
  for (auto& [key, t] : byKey) {
    out.push_back(std::move(t));
  }
  return out;
}

void Controller::startWatcher() {
  std::lock_guard lock(watchMu_);
  if (watcher_.joinable()) {
    return;
  }
  stopping_ = false;
  watcher_ = std::thread([this] { watch(); });
}

void Controller::stopWatcher() {
  {
    std::lock_guard lock(watchMu_);
    stopping_ = true;
  }
  watchCv_.notify_all();
  if (watcher_.joinable()) {
    watcher_.join();
  }
  if (auto flushed = flushTraffic(); !flushed) {
    log("final traffic flush failed: " + flushed.error().message);
  }
  if (auto flushed = flushUsage(); !flushed) {
    log("final API key usage flush failed: " + flushed.error().message);
  }
}

void Controller::watch() {
  using Clock = std::chrono::steady_clock;
  auto nextFlush = Clock::now() + options_.flushInterval;
  auto nextPrune = Clock::now();  // once at start, then every pruneInterval
  std::unique_lock lock(watchMu_);
  while (!stopping_) {
    watchCv_.wait_for(lock, options_.pollInterval, [&] { return stopping_; });
    if (stopping_) {
      break;
    }
    lock.unlock();
    {
      std::lock_guard storeLock(mu_);
      pollLocked();
    }
    if (Clock::now() >= nextFlush) {
      (void)flushTraffic();  // failures are logged once; the deltas stay pending
      (void)flushUsage();
      // Clients whose rate-limit allowance is whole again are forgotten (the filter's clock).
      gatewayRuntime().limiter.purge(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
              .count());
      nextFlush = Clock::now() + options_.flushInterval;
    }
    if (Clock::now() >= nextPrune) {
      (void)pruneTraffic();  // a failure is logged once
      nextPrune = Clock::now() + options_.pruneInterval;
    }
    lock.lock();
  }
}

}  // namespace edgeplane::proxy
