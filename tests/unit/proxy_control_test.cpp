// Tests of the proxy's control side: config builder, store watcher, traffic accounting, metrics
// text, the admin API over real sockets, and the edgeplane-proxy binary end to end.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "edgeplane_version.h"
#include "proxy/admin.h"
#include "proxy/control.h"
#include "proxy/gateway/config.h"
#include "proxy/tls/acme_alpn.h"
#include "proxy/tls/context.h"
#include "reconciler/cli/publish.h"
#include "schema/proxy_feed.h"
#include "schema/snapshot.h"
#include "schema/store.h"
#include "tests/support/eventually.h"
#include "tests/support/leak_check.h"
#include "tests/support/notify_socket.h"
#include "tests/support/prometheus_parse.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cert.h"

namespace edgeplane::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::TempDir;

SnapshotRoute passthrough(const std::string& name, std::vector<std::string> hosts,
                          const std::string& ns = "tenant-a") {
  SnapshotRoute r;
  r.kind = RouteKind::Passthrough;
  r.name = name;
  r.hostnames = std::move(hosts);
  r.namespace_name = ns;
  r.netns = netnsName(ns);
  r.backends = {*Endpoint::parse("10.50.0.12:443")};
  return r;
}

ProxySnapshot snapshotOf(std::vector<SnapshotRoute> routes) {
  ProxySnapshot s;
  s.host = "edge-1";
  s.routes = std::move(routes);
  return s;
}

std::shared_ptr<const ActiveConfig> build(const ProxySnapshot& s, int64_t generation,
                                          const ActiveConfig* previous) {
  auto built = buildActiveConfig(s, generation, snapshotToJson(s), previous);
  EXPECT_TRUE(built.ok()) << (built.ok() ? "" : built.error().message);
  return built.ok() ? built.value() : nullptr;
}

const ActiveRoute* routeByKey(const ActiveConfig& c, const std::string& key) {
  for (const auto& r : c.routes) {
    if (r->spec.key() == key) {
      return r.get();
    }
  }
  return nullptr;
}

// The reconciler's side: what its store holds, published for the proxy as an apply does.
void publish(const fs::path& stateDir, Store& store) {
  auto fed = cli::publishProxyFeed(stateDir, store);
  EXPECT_TRUE(fed.ok()) << (fed.ok() ? "" : fed.error().message);
}

// The reconciler's side: a separate connection writing a snapshot generation, published.
int64_t writeSnapshot(const fs::path& stateDir, const std::string& body) {
  auto store = Store::open(stateDir);
  EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
  auto generation = (*store)->writeSnapshot(body, 1'700'000'000'000, std::nullopt);
  EXPECT_TRUE(generation.ok());
  publish(stateDir, **store);
  return generation.ok() ? *generation : -1;
}

// The proxy's own store, where its counters go.
Result<std::unique_ptr<Store>> proxyStore(const fs::path& stateDir) {
  StoreOptions options;
  options.fileName = std::string(kProxyCounters);
  return Store::open(proxyOwnDir(stateDir), options);
}

std::vector<TrafficSample> storedTraffic(const fs::path& stateDir, int64_t since = 0) {
  auto store = proxyStore(stateDir);
  EXPECT_TRUE(store.ok());
  auto samples = (*store)->trafficSince(since);
  EXPECT_TRUE(samples.ok());
  return samples.ok() ? *samples : std::vector<TrafficSample>{};
}

// A Controller over a temp state dir with a settable clock and captured log lines.
struct Fixture {
  TempDir dir;
  Metrics metrics;
  std::atomic<int64_t> clock{1'700'000'000'000};
  std::mutex logMu;
  std::vector<std::string> logs;
  std::vector<int64_t> published;  // generations the sink received
  std::unique_ptr<Controller> controller;

  std::shared_ptr<AcmeChallengeBoard> challenges = std::make_shared<AcmeChallengeBoard>();

  explicit Fixture(std::chrono::milliseconds poll = 500ms) {
    ControllerOptions o;
    o.stateDir = dir.path();
    o.acmeChallenges = challenges;
    o.pollInterval = poll;
    o.clock = [this] { return clock.load(); };
    o.log = [this](std::string_view line) {
      std::lock_guard lock(logMu);
      logs.emplace_back(line);
    };
    controller = std::make_unique<Controller>(o, metrics);
    controller->setSink([this](const std::shared_ptr<const ActiveConfig>& c) {
      std::lock_guard lock(logMu);
      published.push_back(c->generation);
    });
  }
  size_t logsContaining(const std::string& needle) {
    std::lock_guard lock(logMu);
    size_t n = 0;
    for (const auto& l : logs) {
      n += l.find(needle) != std::string::npos ? 1 : 0;
    }
    return n;
  }
};

// ---- the config builder ----

TEST(ActiveConfigBuilder, StatsFollowRouteKeysAcrossGenerations) {
  auto s1 = snapshotOf({passthrough("alpha", {"a.example.com"}),
                        passthrough("beta", {"b.example.com", "*.apps.example.com"})});
  auto c1 = build(s1, 1, nullptr);
  ASSERT_TRUE(c1);
  ASSERT_EQ(c1->routes.size(), 2u);
  EXPECT_EQ(c1->generation, 1);
  EXPECT_EQ(c1->json, snapshotToJson(s1));
  const ActiveRoute* alpha1 = routeByKey(*c1, "passthrough alpha");
  ASSERT_NE(alpha1, nullptr);
  alpha1->stats->bytesIn += 100;
  alpha1->stats->connections += 3;
  routeByKey(*c1, "passthrough beta")->stats->bytesOut += 7;

  // The table's RouteIds index the routes vector.
  auto id = c1->table->lookup("x.apps.example.com");
  ASSERT_TRUE(id);
  EXPECT_EQ(c1->routes[*id]->spec.key(), "passthrough beta");

  // alpha kept (hostnames changed, same key), beta removed, gamma new.
  auto s2 = snapshotOf(
      {passthrough("alpha", {"a2.example.com"}), passthrough("gamma", {"g.example.com"})});
  auto c2 = build(s2, 2, c1.get());
  ASSERT_TRUE(c2);
  const ActiveRoute* alpha2 = routeByKey(*c2, "passthrough alpha");
  ASSERT_NE(alpha2, nullptr);
  EXPECT_EQ(alpha2->stats, alpha1->stats);  // the same object, not a copy
  EXPECT_EQ(alpha2->stats->bytesIn.load(), 100u);
  EXPECT_EQ(alpha2->stats->connections.load(), 3u);
  const ActiveRoute* gamma = routeByKey(*c2, "passthrough gamma");
  ASSERT_NE(gamma, nullptr);
  EXPECT_EQ(gamma->stats->bytesIn.load(), 0u);
  EXPECT_EQ(gamma->stats->connections.load(), 0u);
  EXPECT_EQ(routeByKey(*c2, "passthrough beta"), nullptr);
  EXPECT_FALSE(c2->table->lookup("b.example.com"));
  EXPECT_FALSE(c2->table->lookup("a.example.com"));
  EXPECT_EQ(c2->routes[*c2->table->lookup("a2.example.com")]->spec.key(), "passthrough alpha");

  // Same name, other kind: another key, so fresh stats.
  SnapshotRoute site = passthrough("alpha", {"s.example.com"});
  site.kind = RouteKind::Site;
  auto c3 = build(snapshotOf({site}), 3, c2.get());
  ASSERT_TRUE(c3);
  EXPECT_NE(c3->routes[0]->stats, alpha1->stats);
  EXPECT_EQ(c3->routes[0]->stats->bytesIn.load(), 0u);
}

TEST(ActiveConfigBuilder, RefusesRoutingTableIssuesAndDuplicateKeys) {
  auto contested = snapshotOf(
      {passthrough("one", {"same.example.com"}), passthrough("two", {"same.example.com"})});
  auto r1 = buildActiveConfig(contested, 5, "{}", nullptr);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().message.find("same.example.com"), std::string::npos) << r1.error().message;
  EXPECT_NE(r1.error().message.find("passthrough two"), std::string::npos) << r1.error().message;

  auto invalid = snapshotOf({passthrough("bad", {"not a host"})});
  auto r2 = buildActiveConfig(invalid, 6, "{}", nullptr);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.error().message.find("not a host"), std::string::npos) << r2.error().message;

  auto twice =
      snapshotOf({passthrough("dup", {"a.example.com"}), passthrough("dup", {"b.example.com"})});
  auto r3 = buildActiveConfig(twice, 7, "{}", nullptr);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.error().message.find("appears twice"), std::string::npos) << r3.error().message;
}

// Certificate loading itself is tls_tests' subject; here: a broken certificate is reported
// per name and does not refuse the snapshot, and no certificates means no TLS set.
TEST(ActiveConfigBuilder, ReportsCertificatesLeftOutWithoutRefusing) {
  TempDir dir;
  auto s = snapshotOf({passthrough("alpha", {"a.example.com"})});
  auto none = build(s, 1, nullptr);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->tls, nullptr);

  SnapshotCertificate cert;
  cert.name = "web";
  cert.fingerprint = std::string(64, 'a');
  cert.cert_file = (dir.path() / "web.crt").string();
  cert.key_file = (dir.path() / "web.key").string();
  s.certificates = {cert};
  std::vector<std::string> errors;
  auto built = buildActiveConfig(s, 2, "{}", none.get(), nullptr, nullptr, &errors);
  ASSERT_TRUE(built.ok()) << built.error().message;
  ASSERT_NE(built.value()->tls, nullptr);
  EXPECT_EQ(built.value()->tls->size(), 0u);
  EXPECT_EQ(built.value()->tls->find("web"), nullptr);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("web: " + cert.cert_file, 0), 0u) << errors[0];
}

TEST(ActiveConfigBuilder, EmptyConfigRoutesNothing) {
  auto c = emptyConfig();
  EXPECT_EQ(c->generation, 0);
  EXPECT_TRUE(c->routes.empty());
  ASSERT_TRUE(c->table);
  EXPECT_FALSE(c->table->lookup("anything.example.com"));
}

SnapshotRoute checkedSite(const std::string& name, std::vector<std::string> backends) {
  SnapshotRoute r = passthrough(name, {name + ".example.com"});
  r.kind = RouteKind::Site;
  r.certificate = name;
  r.backends.clear();
  for (const std::string& b : backends) {
    r.backends.push_back(*Endpoint::parse(b));
  }
  r.health_path = "/healthz";
  r.health_interval = std::chrono::milliseconds(10000);
  r.health_timeout = std::chrono::milliseconds(2000);
  return r;
}

std::shared_ptr<health::HealthEntry> entryOf(const health::HealthRegistry& registry,
                                             const ActiveRoute& route, size_t i) {
  auto keys = health::healthKeys(route.spec);
  EXPECT_TRUE(keys.ok());
  return keys.ok() && i < keys->size() ? registry.find((*keys)[i]) : nullptr;
}

TEST(ActiveConfigBuilder, BackendHealthFollowsKeysAcrossGenerations) {
  int64_t now = 1'700'000'000'000;
  health::HealthRegistry registry([&] { return now; });
  auto s1 = snapshotOf({checkedSite("shop", {"10.50.0.12:8080", "10.50.0.13:8080"})});
  auto c1 = buildActiveConfig(s1, 1, "{}", nullptr, &registry);
  ASSERT_TRUE(c1.ok()) << c1.error().message;
  const ActiveRoute& shop1 = *(*c1)->routes[0];
  ASSERT_EQ(shop1.health.size(), 2u);
  EXPECT_TRUE(shop1.health[0]->up.load());
  auto down = entryOf(registry, shop1, 1);
  ASSERT_NE(down, nullptr);
  for (int i = 0; i < 3; ++i) {
    down->record(health::ProbeResult{false, "connect: Connection refused"}, now);
  }
  ASSERT_FALSE(shop1.health[1]->up.load());

  // Generation 2: shop keeps its backends (their state too); a passthrough joins, unchecked.
  auto s2 = snapshotOf({passthrough("alpha", {"a.example.com"}),
                        checkedSite("shop", {"10.50.0.13:8080", "10.50.0.12:8080"})});
  auto c2 = buildActiveConfig(s2, 2, "{}", c1->get(), &registry);
  ASSERT_TRUE(c2.ok()) << c2.error().message;
  const ActiveRoute& shop2 = *routeByKey(**c2, "site shop");
  EXPECT_EQ(shop2.health[0], shop1.health[1]);
  EXPECT_FALSE(shop2.health[0]->up.load());
  EXPECT_EQ(shop2.health[1], shop1.health[0]);
  EXPECT_EQ(routeByKey(**c2, "passthrough alpha")->health.size(), 1u);
  EXPECT_EQ(registry.size(), 3u);

  // A malformed check refuses the snapshot and leaves the registry as it was.
  SnapshotRoute bad = checkedSite("zeta", {"10.50.0.14:8080"});
  bad.health_expect_status = "200-100";
  auto c3 = buildActiveConfig(snapshotOf({bad}), 3, "{}", c2->get(), &registry);
  ASSERT_FALSE(c3.ok());
  EXPECT_NE(c3.error().message.find("route \"site zeta\" health check"), std::string::npos)
      << c3.error().message;
  EXPECT_EQ(registry.size(), 3u);
  EXPECT_EQ(entryOf(registry, shop2, 0), down);

  // Without a registry (the builder's other users) nothing is attached.
  auto plain = buildActiveConfig(s2, 4, "{}", nullptr);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE((*plain)->routes[0]->health.empty());
}

// ---- the controller and the store ----

TEST(Controller, StartsWithNothingPublished) {
  Fixture f;
  ReloadOutcome o = f.controller->reload();
  EXPECT_EQ(o.active, 0);
  EXPECT_FALSE(o.changed);
  EXPECT_FALSE(o.storeError);
  EXPECT_TRUE(o.error.empty()) << o.error;
  EXPECT_EQ(f.controller->current()->generation, 0);
  // Published files without any snapshot yet: still generation 0, and no error.
  auto store = Store::open(f.dir.path());
  ASSERT_TRUE(store.ok());
  publish(f.dir.path(), **store);
  ReloadOutcome o2 = f.controller->reload();
  EXPECT_EQ(o2.active, 0);
  EXPECT_FALSE(o2.storeError);
  EXPECT_TRUE(o2.error.empty()) << o2.error;
}

// The root of a review's finding: the proxy (root, parsing the Internet's TLS and HTTP) wrote
// the reconciler's store, whose rows decide what a run removes. It now serves from the
// published files with the store unreadable, and its counters go to its own store.
TEST(Controller, ServesFromThePublishedFilesAndNeverWritesTheReconcilersStore) {
  Fixture f;
  int64_t g = writeSnapshot(f.dir.path(),
                            snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  {
    auto store = Store::open(f.dir.path());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->putAcmeChallenge({"tok-1", "a.example.com", "tok-1.thumb", 1}));
    ASSERT_TRUE((*store)->blockApiKey("key-1", 5));
    publish(f.dir.path(), **store);
  }
  // The store moved away (and its -wal, -shm): the proxy neither reads nor makes one.
  const fs::path aside = f.dir.path() / "aside";
  fs::create_directory(aside);
  for (const char* name : {"state.db", "state.db-wal", "state.db-shm"}) {
    if (fs::exists(f.dir.path() / name)) {
      fs::rename(f.dir.path() / name, aside / name);
    }
  }

  ReloadOutcome o = f.controller->reload();
  ASSERT_TRUE(o.changed) << o.error;
  EXPECT_EQ(o.active, g);
  EXPECT_EQ(f.challenges->lookup("tok-1"), "tok-1.thumb");
  EXPECT_EQ(f.logsContaining("API keys blocked on this host: key-1"), 1U);
  auto stats = f.controller->current()->routes[0]->stats;
  stats->bytesIn += 5;
  stats->connections += 1;
  f.clock = 1'700'000'010'000;
  auto flushed = f.controller->flushTraffic();
  ASSERT_TRUE(flushed.ok()) << flushed.error().message;
  EXPECT_EQ(*flushed, 1u);
  ASSERT_TRUE(f.controller->pruneTraffic().ok());
  ASSERT_TRUE(f.controller->flushUsage().ok());
  auto acme = f.controller->acmeStates();
  ASSERT_TRUE(acme.ok()) << acme.error().message;

  EXPECT_EQ(storedTraffic(f.dir.path()),
            (std::vector<TrafficSample>{{"passthrough a", 1'700'000'010'000, 5, 0, 1}}));
  for (const char* name : {"state.db", "state.db-wal", "state.db-shm"}) {
    EXPECT_FALSE(fs::exists(f.dir.path() / name)) << name;
  }
}

// ACME HTTP-01 and TLS-ALPN-01 answers follow the published ones on every reload notice (and poll),
// with or without a new snapshot generation.
TEST(Controller, ReloadReadsThePendingAcmeChallenges) {
  Fixture f;
  auto store = Store::open(f.dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->putAcmeChallenge({"tok-1", "a.example.com", "tok-1.thumb", 1}));
  // TLS-ALPN-01: by domain (lower-cased as SNI is), never served as an HTTP-01 token.
  ASSERT_TRUE((*store)->putAcmeChallenge(
      {"tok-2", "B.Example.com", "tok-2.thumb", 2, AcmeChallengeType::TlsAlpn01}));
  publish(f.dir.path(), **store);
  (void)f.controller->reload();
  EXPECT_EQ(f.challenges->lookup("tok-1"), "tok-1.thumb");
  EXPECT_FALSE(f.challenges->lookup("tok-2").has_value());
  EXPECT_EQ(f.challenges->lookupTlsAlpn("b.example.com"), "tok-2.thumb");
  EXPECT_FALSE(f.challenges->hasTlsAlpn("a.example.com"));
  EXPECT_EQ(f.logsContaining("pending ACME challenges: 1 http-01, 1 tls-alpn-01, 0 dns-01"), 1U);
  ASSERT_TRUE((*store)->removeAcmeChallenges({"tok-1", "tok-2"}));
  publish(f.dir.path(), **store);
  (void)f.controller->reload();
  EXPECT_FALSE(f.challenges->lookup("tok-1").has_value());
  EXPECT_FALSE(f.challenges->hasTlsAlpn("b.example.com"));
  EXPECT_EQ(f.challenges->size(), 0U);
}

// DNS-01 answers: by TXT name, a wildcard and its base name sharing one with both values
// (base64url(SHA-256(key authorization))); without --dns the proxy says nobody serves them.
TEST(Controller, ReloadReadsThePendingDns01Answers) {
  Fixture f;
  auto store = Store::open(f.dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->putAcmeChallenge(
      {"tok-a", "Example.com", "tok-a.thumb", 1, AcmeChallengeType::Dns01}));
  ASSERT_TRUE((*store)->putAcmeChallenge(
      {"tok-b", "*.example.com", "tok-b.thumb", 2, AcmeChallengeType::Dns01}));
  publish(f.dir.path(), **store);
  (void)f.controller->reload();
  EXPECT_EQ(f.challenges->lookupDns01("_acme-challenge.example.com"),
            (std::vector<std::string>{tls::dns01TxtValue("tok-a.thumb"),
                                      tls::dns01TxtValue("tok-b.thumb")}));
  EXPECT_FALSE(f.challenges->lookup("tok-a").has_value());  // no HTTP-01 token
  EXPECT_FALSE(f.challenges->hasTlsAlpn("example.com"));
  EXPECT_EQ(f.logsContaining("pending ACME challenges: 0 http-01, 0 tls-alpn-01, 2 dns-01"), 1U);
  EXPECT_EQ(f.logsContaining("this proxy runs without --dns"), 1U);
  ASSERT_TRUE((*store)->removeAcmeChallenges({"tok-a", "tok-b"}));
  publish(f.dir.path(), **store);
  (void)f.controller->reload();
  EXPECT_FALSE(f.challenges->lookupDns01("_acme-challenge.example.com").has_value());
}

// A published file that cannot be read is logged once however many polls see it, and its
// recovery is logged too (the polls alone, no reload notice).
TEST(Controller, AnUnreadablePublishedStateIsLoggedOnceAndItsRecoveryToo) {
  Fixture f(20ms);
  writeSnapshot(f.dir.path(), snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  ASSERT_TRUE(f.controller->reload().changed);
  const fs::path state = publishedDir(f.dir.path()) / kPublishedState;
  const std::string good = [&] {
    std::ifstream in(state);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::ofstream(state) << "{damaged";
  f.controller->startWatcher();
  auto waitFor = [&](const std::string& line) {
    (void)testing::eventually([&] { return f.logsContaining(line) > 0; }, 2s);
  };
  waitFor("cannot read the blocked API keys");
  std::this_thread::sleep_for(150ms);  // several more polls
  EXPECT_EQ(f.logsContaining("cannot read the blocked API keys"), 1U);
  std::ofstream(state) << good;
  waitFor("readable again");
  f.controller->stopWatcher();
  EXPECT_EQ(f.logsContaining("the published files are readable again"), 1U);
}

// Both files damaged at once (the state unreadable, a newer snapshot cut short): each problem
// logged once, not the two in turn at every poll (a review's finding).
TEST(Controller, TwoDamagedPublishedFilesAreEachLoggedOnce) {
  Fixture f(20ms);
  writeSnapshot(f.dir.path(), snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  ASSERT_TRUE(f.controller->reload().changed);
  writeSnapshot(f.dir.path(), snapshotToJson(snapshotOf({passthrough("b", {"b.example.com"})})));
  const fs::path snapshot = publishedDir(f.dir.path()) / kPublishedSnapshot;
  fs::resize_file(snapshot, fs::file_size(snapshot) - 4);
  std::ofstream(publishedDir(f.dir.path()) / kPublishedState) << "{damaged";
  f.controller->startWatcher();
  (void)testing::eventually(
      [&] {
        return f.logsContaining("cannot read the blocked API keys") > 0 &&
               f.logsContaining("cannot read the routing snapshot") > 0;
      },
      2s);
  std::this_thread::sleep_for(300ms);  // some fifteen more polls
  f.controller->stopWatcher();
  EXPECT_EQ(f.logsContaining("cannot read the blocked API keys"), 1U);
  EXPECT_EQ(f.logsContaining("cannot read the routing snapshot"), 1U);
}

TEST(Controller, LoadsRefusesAndKeepsTheOldConfig) {
  Fixture f;
  auto s1 = snapshotOf({passthrough("alpha", {"a.example.com"})});
  int64_t g1 = writeSnapshot(f.dir.path(), snapshotToJson(s1));
  ReloadOutcome first = f.controller->reload();
  EXPECT_TRUE(first.changed);
  EXPECT_EQ(first.active, g1);
  EXPECT_EQ(f.metrics.generation.load(), g1);
  EXPECT_EQ(f.metrics.reloads.load(), 0u);  // the startup load is not a reload
  auto c1 = f.controller->current();
  c1->routes[0]->stats->bytesIn += 42;

  // JSON the strict decoder refuses (the store itself only takes valid JSON): refused,
  // counted, logged once; the old config stays.
  int64_t bad = writeSnapshot(f.dir.path(), "{\"version\":99,\"host\":\"edge-1\",\"routes\":[]}");
  ReloadOutcome refused = f.controller->reload();
  EXPECT_FALSE(refused.changed);
  EXPECT_EQ(refused.active, g1);
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(*refused.refused, bad);
  EXPECT_FALSE(refused.error.empty());
  EXPECT_EQ(f.controller->current(), c1);
  EXPECT_EQ(f.controller->refusedCount(), 1u);
  EXPECT_EQ(f.logsContaining("refused snapshot generation " + std::to_string(bad)), 1u);
  // Asking again neither re-counts nor re-logs it.
  ReloadOutcome again = f.controller->reload();
  EXPECT_EQ(again.refused, bad);
  EXPECT_EQ(f.controller->refusedCount(), 1u);
  EXPECT_EQ(f.logsContaining("refused snapshot generation " + std::to_string(bad)), 1u);

  // Another bad generation is a new refusal (the builder's own refusals are tested above:
  // the strict decoder already refuses the host name clashes the routing table would report).
  int64_t bad2 = writeSnapshot(f.dir.path(), "{\"version\":1}");
  ReloadOutcome refused2 = f.controller->reload();
  EXPECT_EQ(refused2.refused, bad2);
  EXPECT_EQ(f.controller->refusedCount(), 2u);
  EXPECT_EQ(f.controller->current()->generation, g1);

  // A good one after the bad ones is taken, and the stats survive.
  auto s2 =
      snapshotOf({passthrough("alpha", {"a.example.com"}), passthrough("beta", {"b.example.com"})});
  int64_t g2 = writeSnapshot(f.dir.path(), snapshotToJson(s2));
  ReloadOutcome ok = f.controller->reload();
  EXPECT_TRUE(ok.changed);
  EXPECT_EQ(ok.active, g2);
  EXPECT_FALSE(ok.refused);
  EXPECT_EQ(f.metrics.reloads.load(), 1u);
  EXPECT_EQ(routeByKey(*f.controller->current(), "passthrough alpha")->stats->bytesIn.load(), 42u);
  // Nothing newer: no change, no count.
  ReloadOutcome same = f.controller->reload();
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(same.active, g2);
  EXPECT_EQ(f.metrics.reloads.load(), 1u);
  std::lock_guard lock(f.logMu);
  EXPECT_EQ(f.published, (std::vector<int64_t>{0, g1, g2}));  // 0: handed over by setSink
}

// The engine is handed a generation before the admin API (current()) and the generation gauge
// name it: a client that reads generation g from /api/v1/config is routed by g.
TEST(Controller, TheEngineHasAGenerationBeforeTheAdminApiNamesIt) {
  Fixture f;
  std::vector<std::pair<int64_t, int64_t>> seen;  // (handed over, named then), at each handover
  f.controller->setSink([&](const std::shared_ptr<const ActiveConfig>& c) {
    seen.emplace_back(c->generation, f.controller->current()->generation);
    EXPECT_EQ(f.metrics.generation.load(), f.controller->current()->generation);
  });
  int64_t g = writeSnapshot(f.dir.path(),
                            snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  ASSERT_TRUE(f.controller->reload().changed);
  EXPECT_EQ(seen, (std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {g, 0}}));
  EXPECT_EQ(f.controller->current()->generation, g);
  EXPECT_EQ(f.metrics.generation.load(), g);
}

TEST(Controller, WatcherNoticesANewGenerationWithoutANotice) {
  Fixture f(50ms);
  ASSERT_TRUE(Store::open(f.dir.path()).ok());
  f.controller->startWatcher();
  int64_t g = writeSnapshot(f.dir.path(),
                            snapshotToJson(snapshotOf({passthrough("w", {"w.example.com"})})));
  // The watcher logs the load after it has published the new config: wait for the line, not
  // for the generation, or the check can run between the two (it did, once, in CI).
  (void)testing::eventually([&] { return f.logsContaining("noticed by polling") > 0; }, 2s);
  EXPECT_EQ(f.controller->current()->generation, g);
  EXPECT_EQ(f.logsContaining("noticed by polling"), 1u);

  // A refused generation is logged once however many polls see it.
  int64_t bad = writeSnapshot(f.dir.path(), "[]");
  const std::string refusal = "refused snapshot generation " + std::to_string(bad);
  (void)testing::eventually([&] { return f.logsContaining(refusal) > 0; }, 2s);
  std::this_thread::sleep_for(200ms);  // several more polls
  EXPECT_EQ(f.controller->refusedCount(), 1u);
  EXPECT_EQ(f.logsContaining(refusal), 1u);
  EXPECT_EQ(f.controller->current()->generation, g);
  f.controller->stopWatcher();
}

TEST(Controller, TrafficFlushWritesDeltasOnly) {
  Fixture f;
  auto s1 =
      snapshotOf({passthrough("alpha", {"a.example.com"}), passthrough("beta", {"b.example.com"})});
  writeSnapshot(f.dir.path(), snapshotToJson(s1));
  ASSERT_TRUE(f.controller->reload().changed);
  auto c1 = f.controller->current();
  auto alpha = routeByKey(*c1, "passthrough alpha")->stats;
  auto beta = routeByKey(*c1, "passthrough beta")->stats;

  alpha->bytesIn += 1000;
  alpha->bytesOut += 5000;
  alpha->connections += 2;
  f.clock = 1'700'000'010'000;
  auto n1 = f.controller->flushTraffic();
  ASSERT_TRUE(n1.ok()) << n1.error().message;
  EXPECT_EQ(*n1, 1u);  // beta had nothing: no sample
  EXPECT_EQ(storedTraffic(f.dir.path()),
            (std::vector<TrafficSample>{{"passthrough alpha", 1'700'000'010'000, 1000, 5000, 2}}));

  // Nothing new: nothing written.
  f.clock = 1'700'000'020'000;
  auto n2 = f.controller->flushTraffic();
  ASSERT_TRUE(n2.ok());
  EXPECT_EQ(*n2, 0u);

  alpha->bytesIn += 1;
  beta->connections += 1;
  beta->bytesOut += 10;
  f.clock = 1'700'000'030'000;
  ASSERT_EQ(f.controller->flushTraffic().value(), 2u);
  auto since = storedTraffic(f.dir.path(), 1'700'000'030'000);
  EXPECT_EQ(since, (std::vector<TrafficSample>{{"passthrough alpha", 1'700'000'030'000, 1, 0, 0},
                                               {"passthrough beta", 1'700'000'030'000, 0, 10, 1}}));

  // beta is removed while a connection still holds its stats: its last bytes are still
  // flushed, then it is forgotten once nothing holds it.
  writeSnapshot(f.dir.path(),
                snapshotToJson(snapshotOf({passthrough("alpha", {"a.example.com"})})));
  ASSERT_TRUE(f.controller->reload().changed);
  c1.reset();  // the old config is gone; `beta` is what a live connection would hold
  beta->bytesIn += 77;
  f.clock = 1'700'000'040'000;
  ASSERT_EQ(f.controller->flushTraffic().value(), 1u);
  EXPECT_EQ(storedTraffic(f.dir.path(), 1'700'000'040'000),
            (std::vector<TrafficSample>{{"passthrough beta", 1'700'000'040'000, 77, 0, 0}}));
  EXPECT_EQ(beta.use_count(), 2);  // still tracked: the connection is open
  beta->bytesIn += 3;
  std::weak_ptr<RouteStats> weak = beta;
  beta.reset();  // the connection ends
  f.clock = 1'700'000'050'000;
  ASSERT_EQ(f.controller->flushTraffic().value(), 1u);
  EXPECT_EQ(storedTraffic(f.dir.path(), 1'700'000'050'000),
            (std::vector<TrafficSample>{{"passthrough beta", 1'700'000'050'000, 3, 0, 0}}));
  EXPECT_TRUE(weak.expired());  // and then no longer tracked

  // trafficSince: stored samples plus the live deltas, summed per route.
  alpha->bytesIn += 9;
  auto t = f.controller->trafficSince(1'700'000'000'000);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, (std::vector<RouteTraffic>{{"passthrough alpha", 1010, 5000, 2},
                                           {"passthrough beta", 80, 10, 1}}));
  auto later = f.controller->trafficSince(1'700'000'035'000);
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(*later, (std::vector<RouteTraffic>{{"passthrough alpha", 9, 0, 0},
                                               {"passthrough beta", 80, 0, 0}}));
}

// Regression: a removed route's last connection ending while a flush is writing (after the
// flush read the counters, before it decided to forget the stats) lost that connection's final
// bytes: the stats were dropped as "no longer held" with the new bytes never written. The
// clock, which the flush reads in between, stands in for the worker finishing at that moment.
TEST(Controller, TrafficOfAConnectionEndingDuringAFlushIsNotLost) {
  TempDir dir;
  std::atomic<int64_t> clock{1'700'000'000'000};
  std::function<void()> duringFlush;
  ControllerOptions o;
  o.stateDir = dir.path();
  o.clock = [&] {
    if (duringFlush) {
      std::exchange(duringFlush, nullptr)();
    }
    return clock.load();
  };
  o.log = [](std::string_view) {};
  Metrics m;
  Controller c(o, m);
  writeSnapshot(dir.path(), snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"}),
                                                       passthrough("b", {"b.example.com"})})));
  ASSERT_TRUE(c.reload().changed);
  // What a live connection on route b holds: its config (and through it b's stats).
  std::shared_ptr<const ActiveConfig> connection = c.current();
  std::shared_ptr<RouteStats> b = routeByKey(*connection, "passthrough b")->stats;
  std::weak_ptr<RouteStats> weakB = b;
  b.reset();
  {
    std::shared_ptr<RouteStats> live = weakB.lock();
    ASSERT_NE(live, nullptr);
    live->bytesIn += 10;
  }
  // Route b is removed; the connection goes on.
  writeSnapshot(dir.path(), snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  ASSERT_TRUE(c.reload().changed);

  // The connection relays its last 5 bytes and ends while the flush is under way.
  duringFlush = [&] {
    if (std::shared_ptr<RouteStats> live = weakB.lock()) {  // else the total below is short
      live->bytesIn += 5;
    }
    connection.reset();
  };
  clock = 1'700'000'010'000;
  ASSERT_EQ(c.flushTraffic().value(), 1u);
  clock = 1'700'000'020'000;
  ASSERT_TRUE(c.flushTraffic().ok());
  int64_t total = 0;
  for (const TrafficSample& s : storedTraffic(dir.path())) {
    EXPECT_EQ(s.route, "passthrough b");
    total += s.bytesIn;
  }
  EXPECT_EQ(total, 15);
  EXPECT_TRUE(weakB.expired());  // and forgotten once those bytes are written
}

TEST(Controller, TrafficStaysPendingWhileTheStoreIsBusyAndPrunesOldSamples) {
  TempDir dir;
  std::vector<std::string> logs;
  std::atomic<int64_t> clock{1'700'000'000'000};
  ControllerOptions o;
  o.stateDir = dir.path();
  o.store.busyTimeout = 50ms;
  o.clock = [&clock] { return clock.load(); };
  o.log = [&logs](std::string_view line) { logs.emplace_back(line); };
  Metrics m;
  Controller c(o, m);
  writeSnapshot(dir.path(), snapshotToJson(snapshotOf({passthrough("a", {"a.example.com"})})));
  ASSERT_TRUE(c.reload().changed);
  auto stats = c.current()->routes[0]->stats;
  stats->bytesIn += 5;
  stats->connections += 1;

  // Another connection holds the proxy store's write lock: the flush fails after the busy
  // timeout, logs once, and loses nothing.
  ASSERT_TRUE(proxyStore(dir.path()).ok());  // made, as the proxy's watcher does at start
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open((proxyOwnDir(dir.path()) / kProxyCounters).c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto failed = c.flushTraffic();
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.error().retryable) << failed.error().message;
  stats->bytesIn += 2;
  EXPECT_FALSE(c.flushTraffic().ok());
  EXPECT_EQ(std::count_if(
                logs.begin(), logs.end(),
                [](const std::string& l) { return l.starts_with("cannot write traffic samples"); }),
            1);
  auto pending = c.trafficSince(0);  // readers are not blocked (WAL)
  ASSERT_TRUE(pending.ok()) << pending.error().message;
  EXPECT_EQ(*pending, (std::vector<RouteTraffic>{{"passthrough a", 7, 0, 1}}));
  ASSERT_EQ(sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);

  clock = 1'700'000'010'000;
  ASSERT_EQ(c.flushTraffic().value(), 1u);
  EXPECT_EQ(storedTraffic(dir.path()),
            (std::vector<TrafficSample>{{"passthrough a", 1'700'000'010'000, 7, 0, 1}}));

  // Pruning: samples older than the retention (30 days) go, younger ones stay.
  {
    auto store = proxyStore(dir.path());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(
        (*store)->addTraffic({"passthrough x", clock - 31LL * 24 * 3600 * 1000, 1, 1, 1}).ok());
    ASSERT_TRUE(
        (*store)->addTraffic({"passthrough x", clock - 29LL * 24 * 3600 * 1000, 2, 2, 2}).ok());
  }
  auto pruned = c.pruneTraffic();
  ASSERT_TRUE(pruned.ok()) << pruned.error().message;
  EXPECT_EQ(*pruned, 1);
  auto left = storedTraffic(dir.path());
  ASSERT_EQ(left.size(), 2u);
  EXPECT_EQ(left[0].bytesIn, 2);
  EXPECT_EQ(left[1].route, "passthrough a");
}

// ---- metrics text ----

using edgeplane::testing::ParsedMetrics;
using edgeplane::testing::parseMetrics;

TEST(MetricsText, ParsesBackWithEveryErrorKind) {
  Metrics m;
  m.connectionsOpen = 3;
  m.connectionsTotal = 17;
  m.bytesIn = 1234;
  m.bytesOut = 5678;
  m.reloads = 4;
  m.tlsCertificateErrors = 2;
  m.backendAttemptFailures = 8;
  m.generation = 9;
  m.count(ErrorKind::NoRoute);
  m.count(ErrorKind::NoRoute);
  m.count(ErrorKind::HelloTimeout);
  SnapshotRoute odd = passthrough("q", {"q.example.com"});
  odd.name = "we\"ird\\name";  // label escaping (names are validated; the format must not care)
  auto config = build(snapshotOf({passthrough("alpha", {"a.example.com"}), odd}), 9, nullptr);
  ASSERT_TRUE(config);
  config->routes[0]->stats->bytesIn = 10;
  config->routes[0]->stats->bytesOut = 20;
  config->routes[0]->stats->connections = 2;
  config->routes[0]->stats->failures = 1;

  ParsedMetrics p = parseMetrics(renderMetrics(m, *config, 6));
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.types["edgeplane_proxy_connections_open"], "gauge");
  EXPECT_EQ(p.types["edgeplane_proxy_connections_total"], "counter");
  EXPECT_EQ(p.types["edgeplane_proxy_snapshot_generation"], "gauge");
  EXPECT_EQ(p.samples["edgeplane_proxy_connections_open"], 3);
  EXPECT_EQ(p.samples["edgeplane_proxy_connections_total"], 17);
  EXPECT_EQ(p.samples["edgeplane_proxy_bytes_total{direction=\"in\"}"], 1234);
  EXPECT_EQ(p.samples["edgeplane_proxy_bytes_total{direction=\"out\"}"], 5678);
  EXPECT_EQ(p.samples["edgeplane_proxy_reloads_total"], 4);
  EXPECT_EQ(p.types["edgeplane_proxy_tls_certificate_errors_total"], "counter");
  EXPECT_EQ(p.samples["edgeplane_proxy_tls_certificate_errors_total"], 2);
  EXPECT_EQ(p.samples["edgeplane_proxy_backend_attempt_failures_total"], 8);
  EXPECT_EQ(p.samples["edgeplane_proxy_snapshot_generation"], 9);
  EXPECT_EQ(p.samples["edgeplane_proxy_snapshot_refused_total"], 6);
  EXPECT_EQ(p.samples["edgeplane_proxy_routes"], 2);
  for (size_t i = 0; i < kErrorKinds; ++i) {
    auto kind = static_cast<ErrorKind>(i);
    std::string key = "edgeplane_proxy_errors_total{kind=\"" + std::string(toString(kind)) + "\"}";
    ASSERT_EQ(p.samples.count(key), 1u) << key;
    double want = kind == ErrorKind::NoRoute ? 2 : kind == ErrorKind::HelloTimeout ? 1 : 0;
    EXPECT_EQ(p.samples[key], want) << key;
  }
  EXPECT_EQ(
      p.samples["edgeplane_proxy_route_connections_total{kind=\"passthrough\",route=\"alpha\"}"],
      2);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_bytes_total{kind=\"passthrough\",route=\"alpha\","
                      "direction=\"in\"}"],
            10);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_bytes_total{kind=\"passthrough\",route=\"alpha\","
                      "direction=\"out\"}"],
            20);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_failures_total{kind=\"passthrough\",route=\"alpha\"}"],
            1);
  EXPECT_EQ(p.samples.count("edgeplane_proxy_route_connections_total{kind=\"passthrough\",route="
                            "\"we\\\"ird\\\\name\"}"),
            1u);
  EXPECT_EQ(p.samples["edgeplane_proxy_build_info{version=\"" EDGEPLANE_VERSION "\"}"], 1);
  // Every route series names the kind and the route apart (one used to pack "passthrough x").
  for (const auto& [key, value] : p.samples) {
    if (key.find("route=\"") != std::string::npos) {
      EXPECT_NE(key.find("{kind=\"passthrough\",route=\""), std::string::npos) << key;
    }
  }
}

// Gateway "ping": GET /t and POST /r, both on 10.50.0.5:80, no health checks.
SnapshotRoute pingGateway() {
  SnapshotRoute gateway = passthrough("ping", {"m.example.com"});
  gateway.kind = RouteKind::Gateway;
  gateway.backends.clear();
  gateway.endpoints = {
      SnapshotEndpoint{"/t", "GET", {*Endpoint::parse("10.50.0.5:80")}, Balance::RoundRobin},
      SnapshotEndpoint{"/r", "POST", {*Endpoint::parse("10.50.0.5:80")}, Balance::RoundRobin}};
  return gateway;
}

TEST(BackendHealthApi, ListsEveryBackendAndExportsTheUpGauge) {
  int64_t now = 1'700'000'000'000;
  health::HealthRegistry registry([&] { return now; });
  SnapshotRoute gateway = pingGateway();
  auto s = snapshotOf({gateway, checkedSite("shop", {"10.50.0.12:8080", "[fd00::7]:8080"})});
  auto built = buildActiveConfig(s, 1, "{}", nullptr, &registry);
  ASSERT_TRUE(built.ok()) << built.error().message;
  const ActiveConfig& config = **built;
  now += 61'000;
  auto entry = entryOf(registry, *config.routes[1], 0);
  ASSERT_NE(entry, nullptr);
  for (int i = 0; i < 3; ++i) {
    entry->record(health::ProbeResult{false, "status 500 (expected 200-399)"}, now);
  }
  entryOf(registry, *config.routes[1], 1)->record(health::ProbeResult{true, {}}, now);

  EXPECT_EQ(renderBackends(registry, config),
            "[{\"route\":\"gateway ping\",\"netns\":\"ep-tenant-a\",\"backend\":\"10.50.0.5:80\","
            "\"up\":true,\"checked\":false,\"last_change\":\"2023-11-14T22:13:20Z\","
            "\"consecutive_failures\":0,\"last_error\":\"\"},"
            "{\"route\":\"gateway ping\",\"netns\":\"ep-tenant-a\",\"backend\":\"10.50.0.5:80\","
            "\"up\":true,\"checked\":false,\"last_change\":\"2023-11-14T22:13:20Z\","
            "\"consecutive_failures\":0,\"last_error\":\"\"},"
            "{\"route\":\"site shop\",\"netns\":\"ep-tenant-a\",\"backend\":\"10.50.0.12:8080\","
            "\"up\":false,\"checked\":true,\"last_change\":\"2023-11-14T22:14:21Z\","
            "\"consecutive_failures\":3,\"last_error\":\"status 500 (expected 200-399)\"},"
            "{\"route\":\"site shop\",\"netns\":\"ep-tenant-a\",\"backend\":\"[fd00::7]:8080\","
            "\"up\":true,\"checked\":true,\"last_change\":\"2023-11-14T22:13:20Z\","
            "\"consecutive_failures\":0,\"last_error\":\"\"}]\n");

  Metrics m;
  ParsedMetrics p = parseMetrics(renderMetrics(m, config, 0));
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.types["edgeplane_proxy_backend_up"], "gauge");
  // The gateway's backend once, though two endpoints list it.
  EXPECT_EQ(
      p.samples
          ["edgeplane_proxy_backend_up{kind=\"gateway\",route=\"ping\",backend=\"10.50.0.5:80\"}"],
      1);
  EXPECT_EQ(
      p.samples
          ["edgeplane_proxy_backend_up{kind=\"site\",route=\"shop\",backend=\"10.50.0.12:8080\"}"],
      0);
  EXPECT_EQ(
      p.samples
          ["edgeplane_proxy_backend_up{kind=\"site\",route=\"shop\",backend=\"[fd00::7]:8080\"}"],
      1);
  size_t series = 0;
  for (const auto& [key, value] : p.samples) {
    series += key.starts_with("edgeplane_proxy_backend_up{") ? 1 : 0;
  }
  EXPECT_EQ(series, 3u);
}

// A gateway endpoint with a health_check: its backends are checked with the endpoint's spec
// (down after failed probes, in the gateway's per-endpoint slice too), the other endpoint's are
// not, and GET /api/v1/backends shows which is which.
TEST(BackendHealthApi, GatewayEndpointWithAHealthCheck) {
  int64_t now = 1'700'000'000'000;
  health::HealthRegistry registry([&] { return now; });
  SnapshotRoute gateway = pingGateway();
  gateway.endpoints[0].health_path = "/ready";
  gateway.endpoints[0].health_unhealthy_threshold = 2;
  auto built = buildActiveConfig(snapshotOf({gateway}), 1, "{}", nullptr, &registry);
  ASSERT_TRUE(built.ok()) << built.error().message;
  const ActiveConfig& config = **built;
  const ActiveRoute& route = *config.routes[0];
  ASSERT_EQ(route.health.size(), 2u);
  auto checked = entryOf(registry, route, 0);
  auto unchecked = entryOf(registry, route, 1);
  ASSERT_NE(checked, nullptr);
  ASSERT_NE(unchecked, nullptr);
  ASSERT_TRUE(checked->key().spec.has_value());
  EXPECT_EQ(checked->key().spec->path, "/ready");
  EXPECT_EQ(checked->key().spec->host, "m.example.com");
  EXPECT_FALSE(unchecked->key().spec.has_value());
  now += 1'000;
  for (int i = 0; i < 2; ++i) {
    checked->record(health::ProbeResult{false, "status 500 (expected 200-399)"}, now);
  }
  EXPECT_FALSE(route.health[0]->up.load());
  EXPECT_TRUE(route.health[1]->up.load());

  // The gateway sees it per endpoint: /t has no healthy backend left, /r has its one.
  ASSERT_NE(config.gateway, nullptr);
  const gateway::GatewayEntry* g = config.gateway->find(&route);
  ASSERT_NE(g, nullptr);
  ASSERT_EQ(g->endpoints.size(), 2u);
  ASSERT_EQ(g->endpoints[0]->health.size(), 1u);
  EXPECT_FALSE(g->endpoints[0]->health[0]->up.load());
  ASSERT_EQ(g->endpoints[1]->health.size(), 1u);
  EXPECT_TRUE(g->endpoints[1]->health[0]->up.load());

  EXPECT_EQ(renderBackends(registry, config),
            "[{\"route\":\"gateway ping\",\"netns\":\"ep-tenant-a\",\"backend\":\"10.50.0.5:80\","
            "\"up\":false,\"checked\":true,\"last_change\":\"2023-11-14T22:13:21Z\","
            "\"consecutive_failures\":2,\"last_error\":\"status 500 (expected 200-399)\"},"
            "{\"route\":\"gateway ping\",\"netns\":\"ep-tenant-a\",\"backend\":\"10.50.0.5:80\","
            "\"up\":true,\"checked\":false,\"last_change\":\"2023-11-14T22:13:20Z\","
            "\"consecutive_failures\":0,\"last_error\":\"\"}]\n");
}

// The https handler's per-request series, for terminated routes only.
TEST(MetricsText, TerminatedRoutesHaveRequestSeries) {
  Metrics m;
  SnapshotRoute web = passthrough("web", {"web.example.com"});
  web.kind = RouteKind::Site;
  auto config = build(snapshotOf({web, passthrough("raw", {"raw.example.com"})}), 1, nullptr);
  ASSERT_TRUE(config);
  RouteStats& s = *config->routes[0]->stats;
  s.observeRequest(200, 3);
  s.observeRequest(204, 40);
  s.observeRequest(502, 20000);
  s.upstreamConnectErrors = 2;
  ParsedMetrics p = parseMetrics(renderMetrics(m, *config, 0));
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  const std::string route = "kind=\"site\",route=\"web\"";
  EXPECT_EQ(p.types["edgeplane_proxy_route_http_request_duration_seconds"], "histogram");
  EXPECT_EQ(p.samples["edgeplane_proxy_route_http_responses_total{" + route + ",class=\"2xx\"}"],
            2);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_http_responses_total{" + route + ",class=\"5xx\"}"],
            1);
  const std::string bucket = "edgeplane_proxy_route_http_request_duration_seconds_bucket{" + route;
  EXPECT_EQ(p.samples[bucket + ",le=\"0.005\"}"], 1);
  EXPECT_EQ(p.samples[bucket + ",le=\"0.05\"}"], 2);
  EXPECT_EQ(p.samples[bucket + ",le=\"10\"}"], 2);
  EXPECT_EQ(p.samples[bucket + ",le=\"+Inf\"}"], 3);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_http_request_duration_seconds_count{" + route + "}"],
            3);
  EXPECT_DOUBLE_EQ(
      p.samples["edgeplane_proxy_route_http_request_duration_seconds_sum{" + route + "}"], 20.043);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_upstream_connect_errors_total{" + route + "}"], 2);
  EXPECT_EQ(p.samples.count(
                "edgeplane_proxy_route_upstream_connect_errors_total{kind=\"passthrough\",route=\""
                "raw\"}"),
            0u);
}

// /metrics through the admin handler: the served certificates' expiry (a certificate left out
// of the generation is not served, so not exported) and the reconciler's ACME state from the
// store (failures, renewal time) per certificate.
TEST(MetricsText, CertificateExpiryAndAcmeStateAsPublished) {
  Fixture f;
  const testing::TestCertificate tc = testing::makeTestCertificate({"web.example.com"});
  std::ofstream(f.dir.path() / "web.crt") << tc.certPem;
  std::ofstream(f.dir.path() / "web.key") << tc.keyPem;
  SnapshotCertificate web{"web",
                          tc.fingerprint,
                          (f.dir.path() / "web.crt").string(),
                          (f.dir.path() / "web.key").string(),
                          {"web.example.com"},
                          1767225600};
  SnapshotCertificate broken = web;
  broken.name = "broken";
  broken.cert_file = (f.dir.path() / "missing.crt").string();
  ProxySnapshot snap = snapshotOf({passthrough("alpha", {"a.example.com"})});
  snap.certificates = {broken, web};
  auto store = Store::open(f.dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  ASSERT_TRUE((*store)->writeSnapshot(snapshotToJson(snap), 1, std::nullopt));
  ASSERT_TRUE((*store)->putAcmeState({"web", "http-01 web.example.com", 3,
                                      "urn:ietf:params:acme:error:connection: refused", 1000, 2000,
                                      1766000000000}));
  ASSERT_TRUE((*store)->putAcmeState(
      {"pending", "tls-alpn-01 p.example.com", 0, "", 1000, std::nullopt, std::nullopt}));
  publish(f.dir.path(), **store);
  ASSERT_TRUE(f.controller->reload().changed);

  AdminResponse r = handleAdminRequest(*f.controller, f.metrics, "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  ParsedMetrics p = parseMetrics(r.body);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.types["edgeplane_certificate_not_after_seconds"], "gauge");
  EXPECT_EQ(p.samples["edgeplane_certificate_not_after_seconds{certificate=\"web\"}"], 1767225600);
  EXPECT_EQ(p.samples.count("edgeplane_certificate_not_after_seconds{certificate=\"broken\"}"), 0U);
  EXPECT_EQ(p.types["edgeplane_acme_consecutive_failures"], "gauge");
  EXPECT_EQ(p.samples["edgeplane_acme_consecutive_failures{certificate=\"web\"}"], 3);
  EXPECT_EQ(p.samples["edgeplane_acme_consecutive_failures{certificate=\"pending\"}"], 0);
  EXPECT_EQ(p.samples["edgeplane_acme_renewal_seconds{certificate=\"web\"}"], 1766000000);
  EXPECT_EQ(p.samples.count("edgeplane_acme_renewal_seconds{certificate=\"pending\"}"), 0U);

  // Success clears the failures: the next scrape says so, no reload needed.
  ASSERT_TRUE((*store)->putAcmeState(
      {"web", "http-01 web.example.com", 0, "", 3000, std::nullopt, 1767000000000}));
  publish(f.dir.path(), **store);
  p = parseMetrics(handleAdminRequest(*f.controller, f.metrics, "GET", "/metrics").body);
  EXPECT_EQ(p.samples["edgeplane_acme_consecutive_failures{certificate=\"web\"}"], 0);
  EXPECT_EQ(p.samples["edgeplane_acme_renewal_seconds{certificate=\"web\"}"], 1767000000);
}

// ---- the admin API over real sockets ----

struct HttpReply {
  int status = 0;
  std::string head;
  std::string body;
};

HttpReply httpCall(const sockaddr* addr, socklen_t len, const std::string& method,
                   const std::string& target, const std::string& headers = "") {
  HttpReply reply;
  auto started = std::chrono::steady_clock::now();
  int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, addr, len) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
    ::close(fd);
    return reply;
  }
  std::string req = method + " " + target +
                    " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: "
                    "0\r\n" +
                    headers + "\r\n";
  EXPECT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string all;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    all.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_LT(took, 2s) << method << " " << target << " took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  size_t split = all.find("\r\n\r\n");
  reply.head = all.substr(0, split);
  reply.body = split == std::string::npos ? "" : all.substr(split + 4);
  if (all.starts_with("HTTP/1.")) {
    reply.status = std::atoi(all.c_str() + 9);
  }
  return reply;
}

struct AdminClient {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string headers;  // each "Name: value\r\n"

  HttpReply call(const std::string& method, const std::string& target) const {
    return httpCall(reinterpret_cast<const sockaddr*>(&addr), len, method, target, headers);
  }

  static AdminClient unixSocket(const fs::path& path) {
    AdminClient c;
    auto* un = reinterpret_cast<sockaddr_un*>(&c.addr);
    un->sun_family = AF_UNIX;
    std::strncpy(un->sun_path, path.c_str(), sizeof(un->sun_path) - 1);
    c.len = sizeof(sockaddr_un);
    return c;
  }
  static AdminClient loopback(uint16_t port) {
    AdminClient c;
    auto* in = reinterpret_cast<sockaddr_in*>(&c.addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c.len = sizeof(sockaddr_in);
    return c;
  }
};

TEST(AdminAddress, ListenAddressesMayAskForAnEphemeralPort) {
  auto v4 = parseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->port, 0);
  EXPECT_EQ(v4->address.str(), "127.0.0.1");
  auto v6 = parseListenAddress("[::1]:0");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->port, 0);
  EXPECT_EQ(parseListenAddress("0.0.0.0:443")->port, 443);
  for (const char* bad : {"127.0.0.1:", ":0", "example.com:0", "127.0.0.1:65536", "::1:0"}) {
    EXPECT_FALSE(parseListenAddress(bad)) << bad;
  }
}

TEST(AdminAddress, ParsesAndRefusesNonLoopback) {
  auto u = AdminAddress::parse("unix:/run/x.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->unixPath, fs::path("/run/x.sock"));
  EXPECT_EQ(u->str(), "unix:/run/x.sock");
  auto t = AdminAddress::parse("127.0.0.2:9000");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->str(), "127.0.0.2:9000");
  EXPECT_TRUE(AdminAddress::parse("[::1]:9000").ok());
  for (const char* bad : {"0.0.0.0:9000", "10.0.0.1:80", "[::]:9000", "[fd00::1]:1"}) {
    auto r = AdminAddress::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find("not loopback"), std::string::npos) << r.error().message;
  }
  for (const char* bad : {"unix:", "localhost:9000", "9000", ""}) {
    EXPECT_FALSE(AdminAddress::parse(bad).ok()) << bad;
  }
  EXPECT_FALSE(AdminAddress::parse("unix:/" + std::string(200, 'x')).ok());
}

void exerciseAdmin(Fixture& f, const AdminClient& client) {
  // Before main has bound the listeners the API cannot say which are off: 503, not "off"
  // (the reconciler would pick tls-alpn-01 for a proxy whose :80 is just not bound yet).
  HttpReply unbound = client.call("GET", "/api/v1/listeners");
  EXPECT_EQ(unbound.status, 503) << unbound.body;
  EXPECT_NE(unbound.body.find("not bound yet"), std::string::npos) << unbound.body;
  f.controller->setListeners(Listeners{"0.0.0.0:443", "off", "127.0.0.1:53"});
  HttpReply bound = client.call("GET", "/api/v1/listeners");
  EXPECT_EQ(bound.status, 200);
  EXPECT_EQ(bound.body, "{\"https\":\"0.0.0.0:443\",\"http\":\"off\",\"dns\":\"127.0.0.1:53\"}\n");

  // No snapshot yet.
  HttpReply empty = client.call("GET", "/api/v1/config");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "{\"generation\":0,\"snapshot\":null}\n");

  auto s = snapshotOf({passthrough("alpha", {"a.example.com"})});
  int64_t g = writeSnapshot(f.dir.path(), snapshotToJson(s));
  HttpReply reload = client.call("POST", "/api/v1/reload");
  EXPECT_EQ(reload.status, 200);
  EXPECT_EQ(reload.body, "{\"generation\":" + std::to_string(g) + ",\"changed\":true}\n");
  HttpReply config = client.call("GET", "/api/v1/config");
  EXPECT_EQ(config.status, 200);
  EXPECT_NE(config.head.find("Content-Type: application/json"), std::string::npos);
  EXPECT_EQ(config.body,
            "{\"generation\":" + std::to_string(g) + ",\"snapshot\":" + snapshotToJson(s) + "}\n");

  // A refused snapshot: still 200, the active generation, and why.
  int64_t bad = writeSnapshot(f.dir.path(), "{\"version\":1,\"host\":7}");
  HttpReply refused = client.call("POST", "/api/v1/reload");
  EXPECT_EQ(refused.status, 200);
  EXPECT_NE(refused.body.find("{\"generation\":" + std::to_string(g) +
                              ",\"changed\":false,\"refused_generation\":" + std::to_string(bad) +
                              ",\"error\":\""),
            std::string::npos)
      << refused.body;

  // Traffic: a stored sample plus a live delta.
  auto stats = f.controller->current()->routes[0]->stats;
  stats->bytesIn += 100;
  stats->connections += 1;
  ASSERT_TRUE(f.controller->flushTraffic().ok());
  stats->bytesOut += 50;
  HttpReply traffic = client.call("GET", "/api/v1/traffic?since=1700000000");
  EXPECT_EQ(traffic.status, 200);
  EXPECT_EQ(traffic.body,
            "{\"since\":1700000000,\"until\":1700000000,\"routes\":[{\"route\":\"passthrough "
            "alpha\",\"bytes_in\":100,\"bytes_out\":50,\"connections\":1}]}\n");
  HttpReply future = client.call("GET", "/api/v1/traffic?x=1&since=1800000000");
  EXPECT_EQ(future.status, 200);
  EXPECT_NE(future.body.find("\"routes\":[]"), std::string::npos) << future.body;
  for (const char* badQuery :
       {"/api/v1/traffic", "/api/v1/traffic?since=", "/api/v1/traffic?since=-1",
        "/api/v1/traffic?since=12abc", "/api/v1/traffic?since=99999999999999999999"}) {
    HttpReply r = client.call("GET", badQuery);
    EXPECT_EQ(r.status, 400) << badQuery;
    EXPECT_NE(r.body.find("\"error\":"), std::string::npos) << r.body;
  }

  HttpReply metrics = client.call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos);
  ParsedMetrics p = parseMetrics(metrics.body);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.samples["edgeplane_proxy_snapshot_generation"], static_cast<double>(g));
  EXPECT_EQ(p.samples["edgeplane_proxy_snapshot_refused_total"], 1);

  // The backends of the active config (a passthrough: no health check, always up).
  HttpReply backends = client.call("GET", "/api/v1/backends");
  EXPECT_EQ(backends.status, 200);
  EXPECT_EQ(backends.body,
            "[{\"route\":\"passthrough alpha\",\"netns\":\"ep-tenant-a\",\"backend\":"
            "\"10.50.0.12:443\",\"up\":true,\"checked\":false,\"last_change\":"
            "\"2023-11-14T22:13:20Z\",\"consecutive_failures\":0,\"last_error\":\"\"}]\n");
  EXPECT_EQ(
      p.samples
          ["edgeplane_proxy_backend_up{kind=\"passthrough\",route=\"alpha\",backend=\"10.50.0.12:"
           "443\"}"],
      1);
  EXPECT_EQ(client.call("POST", "/api/v1/backends").status, 405);

  HttpReply notFound = client.call("GET", "/api/v1/nothing");
  EXPECT_EQ(notFound.status, 404);
  HttpReply root = client.call("GET", "/");
  EXPECT_EQ(root.status, 404);
  HttpReply wrongMethod = client.call("DELETE", "/api/v1/config");
  EXPECT_EQ(wrongMethod.status, 405);
  EXPECT_NE(wrongMethod.head.find("Allow: GET"), std::string::npos) << wrongMethod.head;
  HttpReply getReload = client.call("GET", "/api/v1/reload");
  EXPECT_EQ(getReload.status, 405);
  EXPECT_NE(getReload.head.find("Allow: POST"), std::string::npos) << getReload.head;
  HttpReply postMetrics = client.call("POST", "/metrics");
  EXPECT_EQ(postMetrics.status, 405);

  // Garbage instead of HTTP: that connection fails, the server goes on.
  {
    int fd = ::socket(client.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&client.addr), client.len), 0);
    std::string junk(70000, 'x');
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
  EXPECT_EQ(client.call("GET", "/metrics").status, 200);
}

TEST(AdminServer, ServesOnAUnixSocket) {
  Fixture f;
  fs::path sock = f.dir.path() / "admin.sock";
  // A stale socket file from a dead process is replaced.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::strncpy(un.sun_path, sock.c_str(), sizeof(un.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0);
    ::close(fd);
  }
  auto address = AdminAddress::parse("unix:" + sock.string());
  ASSERT_TRUE(address.ok());
  AdminAccess access;
  access.ownUid = ::geteuid();
  auto server = AdminServer::start(*address, *f.controller, f.metrics, access);
  ASSERT_TRUE(server.ok()) << server.error().message;
  EXPECT_EQ((*server)->address(), "unix:" + sock.string());
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A second server on the same live socket is refused, and leaves the first one alone.
  auto second = AdminServer::start(*address, *f.controller, f.metrics, access);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message.find("another process"), std::string::npos)
      << second.error().message;

  exerciseAdmin(f, AdminClient::unixSocket(sock));
  server->reset();
  EXPECT_FALSE(fs::exists(sock));  // removed on stop

  // A regular file in the way is not replaced.
  std::ofstream(sock) << "precious";
  auto blocked = AdminServer::start(*address, *f.controller, f.metrics, access);
  ASSERT_FALSE(blocked.ok());
  EXPECT_NE(blocked.error().message.find("not a socket"), std::string::npos);
  EXPECT_TRUE(fs::is_regular_file(sock));
}

// An owner-only token file holding `token`.
fs::path writeTokenFile(const fs::path& dir, const std::string& token, mode_t mode = 0600) {
  fs::path file = dir / "admin.token";
  std::ofstream(file, std::ios::trunc) << token << "\n";
  EXPECT_EQ(::chmod(file.c_str(), mode), 0);
  return file;
}

constexpr const char* kAdminToken = "0123456789abcdef0123456789abcdef";

TEST(AdminServer, ServesOnLoopbackTcpOnlyWithTheToken) {
  Fixture f;
  auto address = AdminAddress::parse("127.0.0.1:0");
  ASSERT_TRUE(address.ok());
  // Without a token a TCP admin API would be open to every local user: refused.
  auto open = AdminServer::start(*address, *f.controller, f.metrics, AdminAccess{});
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("--admin-token-file"), std::string::npos)
      << open.error().message;

  auto token = loadAdminToken(writeTokenFile(f.dir.path(), kAdminToken));
  ASSERT_TRUE(token.ok()) << token.error().message;
  AdminAccess access;
  access.token = *token;
  auto server = AdminServer::start(*address, *f.controller, f.metrics, access);
  ASSERT_TRUE(server.ok()) << server.error().message;
  std::string bound = (*server)->address();
  ASSERT_TRUE(bound.starts_with("127.0.0.1:")) << bound;
  int port = std::stoi(bound.substr(10));
  ASSERT_GT(port, 0);
  AdminClient client = AdminClient::loopback(static_cast<uint16_t>(port));

  int64_t generation = f.controller->current()->generation;
  for (const std::string& headers :
       {std::string(), std::string("Authorization: Bearer wrong-token-wrong-token\r\n"),
        std::string("Authorization: Bearer ") + kAdminToken + "x\r\n",
        std::string("Authorization: Basic ") + kAdminToken + "\r\n",
        std::string("Authorization: Bearer\r\n"),
        // Two fields, one of them right: refused, not "any of them".
        std::string("Authorization: Bearer nope\r\nAuthorization: Bearer ") + kAdminToken +
            "\r\n"}) {
    client.headers = headers;
    for (const auto& [method, target] :
         std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/config"},
                                                          {"GET", "/metrics"},
                                                          {"POST", "/api/v1/reload"},
                                                          {"GET", "/api/v1/nothing"}}) {
      HttpReply r = client.call(method, target);
      EXPECT_EQ(r.status, 401) << headers << method << " " << target;
      EXPECT_NE(r.head.find("WWW-Authenticate: Bearer"), std::string::npos) << r.head;
      EXPECT_EQ(r.body.find("generation"), std::string::npos) << r.body;
    }
  }
  EXPECT_EQ(f.controller->current()->generation, generation);  // no reload was forced

  client.headers = std::string("Authorization: Bearer ") + kAdminToken + "\r\n";
  exerciseAdmin(f, client);
  client.headers = std::string("authorization: bEaReR ") + kAdminToken + "\r\n";
  EXPECT_EQ(client.call("GET", "/api/v1/config").status, 200);
}

// Poco's dispatcher takes a reference for each worker thread it starts and drops it when that
// thread runs; a pool stopped before a just-started thread ran leaked the dispatcher (LSan caught
// it once in CI). A server stopped while connections arrive must leave nothing behind: under the
// sanitizers the leak check below sees it, elsewhere the stop must still end promptly.
TEST(AdminServer, StoppingWhileConnectionsArriveLeavesNothingBehind) {
  Fixture f;
  fs::path sock = f.dir.path() / "admin.sock";
  auto address = AdminAddress::parse("unix:" + sock.string());
  ASSERT_TRUE(address.ok());
  AdminAccess access;
  access.ownUid = ::geteuid();
  AdminClient client = AdminClient::unixSocket(sock);
  for (int round = 0; round < 30; ++round) {
    auto server = AdminServer::start(*address, *f.controller, f.metrics, access);
    ASSERT_TRUE(server.ok()) << server.error().message;
    std::vector<int> fds;
    for (int i = 0; i < 6; ++i) {
      int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&client.addr), client.len), 0);
      fds.push_back(fd);
    }
    // Sweep the stop across the moment the dispatcher starts threads for these connections.
    std::this_thread::sleep_for(std::chrono::microseconds(100 * (round % 10)));
    auto begin = std::chrono::steady_clock::now();
    server->reset();
    EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
    for (int fd : fds) {
      ::close(fd);
    }
  }
  EXPECT_FALSE(edgeplane::testing::leaksFoundNow());
}

TEST(AdminAccess, TokenFileMustBeOwnerOnlyAndLongEnough) {
  TempDir dir;
  auto loose = loadAdminToken(writeTokenFile(dir.path(), kAdminToken, 0640));
  ASSERT_FALSE(loose.ok());
  EXPECT_NE(loose.error().message.find("0640"), std::string::npos) << loose.error().message;
  EXPECT_EQ(loose.error().message.find(kAdminToken), std::string::npos);
  auto shortToken = loadAdminToken(writeTokenFile(dir.path(), "short"));
  ASSERT_FALSE(shortToken.ok());
  EXPECT_NE(shortToken.error().message.find("16"), std::string::npos);
  EXPECT_FALSE(loadAdminToken(dir.path() / "missing").ok());
  auto ok = loadAdminToken(writeTokenFile(dir.path(), kAdminToken));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, apiKeyDigest(kAdminToken));  // the trailing newline is not part of it
}

TEST(AdminAccess, Decisions) {
  AdminAccess tcp;
  tcp.token = apiKeyDigest(kAdminToken);
  std::string right = std::string("Bearer ") + kAdminToken;
  EXPECT_EQ(admitAdminRequest(tcp, false, right, std::nullopt), 0);
  EXPECT_EQ(admitAdminRequest(tcp, false, std::nullopt, std::nullopt), 401);
  EXPECT_EQ(admitAdminRequest(tcp, false, "Bearer ", std::nullopt), 401);
  EXPECT_EQ(admitAdminRequest(tcp, false, kAdminToken, std::nullopt), 401);  // no scheme
  // Root's credentials do not stand in for the token on TCP.
  EXPECT_EQ(admitAdminRequest(tcp, false, std::nullopt, PeerCredentials{0, 0}), 401);
  EXPECT_EQ(admitAdminRequest(AdminAccess{}, false, right, std::nullopt), 401);

  AdminAccess unix;
  unix.ownUid = 998;
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, PeerCredentials{0, 0}), 0);
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, PeerCredentials{998, 998}), 0);
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, PeerCredentials{1000, 1000}), 403);
  EXPECT_EQ(admitAdminRequest(unix, true, right, PeerCredentials{1000, 1000}), 403);
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, std::nullopt), 403);
  unix.allowedGid = 1000;
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, PeerCredentials{1000, 1000}), 0);
  EXPECT_EQ(admitAdminRequest(unix, true, std::nullopt, PeerCredentials{1001, 1001}), 403);
}

// A peer that is neither root nor the proxy's user is refused on the unix socket even when the
// socket file lets it connect; with --admin-allow-gid its group is let in. Needs root (to be
// another user in a child process).
TEST(AdminServer, UnixSocketChecksThePeersCredentials) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to connect as another user";
  }
  Fixture f;
  fs::path sock = f.dir.path() / "admin.sock";
  auto address = AdminAddress::parse("unix:" + sock.string());
  ASSERT_TRUE(address.ok());
  constexpr uid_t kOther = 65534;
  // The status the child, running as kOther, gets for GET /api/v1/config (-1: no answer).
  auto statusAsOther = [&]() {
    ::chmod(f.dir.path().c_str(), 0755);
    int fds[2];
    EXPECT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      int status = -1;
      if (::setgroups(0, nullptr) == 0 && ::setgid(kOther) == 0 && ::setuid(kOther) == 0) {
        status = AdminClient::unixSocket(sock).call("GET", "/api/v1/config").status;
      }
      (void)::write(fds[1], &status, sizeof status);
      ::_exit(0);
    }
    ::close(fds[1]);
    int status = -2;
    (void)::read(fds[0], &status, sizeof status);
    ::close(fds[0]);
    ::waitpid(pid, nullptr, 0);
    return status;
  };
  AdminAccess access;
  access.ownUid = ::geteuid();
  {
    auto server = AdminServer::start(*address, *f.controller, f.metrics, access);
    ASSERT_TRUE(server.ok()) << server.error().message;
    ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);  // the file no longer keeps it out
    EXPECT_EQ(statusAsOther(), 403);
    EXPECT_EQ(AdminClient::unixSocket(sock).call("GET", "/api/v1/config").status, 200);
  }
  access.allowedGid = kOther;
  auto server = AdminServer::start(*address, *f.controller, f.metrics, access);
  ASSERT_TRUE(server.ok()) << server.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, kOther);
  EXPECT_EQ(statusAsOther(), 200);
}

// ---- the binary ----

#ifdef EDGEPLANE_PROXY_BIN

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) {
      ::close(out);
    }
  }
};

void spawnProxy(Child& c, const std::vector<std::string>& args, const fs::path& errFile) {
  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(pipeFds[1], 1);
    int err = ::open(errFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(err, 2);
    std::vector<char*> argv;
    std::string bin = EDGEPLANE_PROXY_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(pipeFds[1]);
  c.pid = pid;
  c.out = pipeFds[0];
}

// One line from the child's stdout within `timeout` ("" on timeout or EOF).
std::string readLine(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) {
      continue;
    }
    char ch = 0;
    if (::read(fd, &ch, 1) != 1) {
      break;
    }
    if (ch == '\n') {
      return line;
    }
    line += ch;
  }
  return "";
}

std::string run(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) {
    return out;
  }
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
    out.append(buf, n);
  }
  ::pclose(p);
  return out;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int waitExit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

// A plain TCP backend on 127.0.0.1: takes one connection, reads what the proxy relays (a TLS
// ClientHello), answers a fixed line and closes. Passthrough does not care that it is no TLS.
class LineBackend {
 public:
  static constexpr std::string_view kAnswer = "hello-from-backend\n";

  LineBackend() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    socklen_t len = sizeof in;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&in), &len);
    port_ = ntohs(in.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LineBackend() {
    if (thread_.joinable()) {
      thread_.join();
    }
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  // Waits for the one connection to be over; returns the bytes received.
  std::string received() {
    if (thread_.joinable()) {
      thread_.join();
    }
    return received_;
  }

 private:
  void serve() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 15000) != 1) {
      return;
    }
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      return;
    }
    timeval tv{5, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[16384];
    ssize_t n = ::recv(c, buf, sizeof buf, 0);
    if (n > 0) {
      received_.assign(buf, static_cast<size_t>(n));
      (void)::send(c, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
      ::shutdown(c, SHUT_WR);
      while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) {  // until the client is done
        received_.append(buf, static_cast<size_t>(n));
      }
    }
    ::close(c);
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string received_;
};

struct TrafficLine {
  int64_t bytesIn = -1;
  int64_t bytesOut = -1;
  int64_t connections = -1;
};

TrafficLine trafficOf(const std::string& json, const std::string& route) {
  std::smatch m;
  std::regex re("\"route\":\"" + route +
                "\",\"bytes_in\":(\\d+),\"bytes_out\":(\\d+),\"connections\":(\\d+)");
  TrafficLine t;
  if (std::regex_search(json, m, re)) {
    t = {std::stoll(m[1]), std::stoll(m[2]), std::stoll(m[3])};
  }
  return t;
}

TEST(ProxyBinary, StartsServesAdminNoticesSnapshotsAndStopsOnSigterm) {
  TempDir dir;
  fs::path sock = dir.path() / "a.sock";
  // The route's namespace "ep-tenant-a" is the proxy's own: a link to its /proc/self/ns/net.
  fs::path netnsDir = dir.path() / "netns";
  fs::create_directories(netnsDir);
  fs::create_symlink("/proc/self/ns/net", netnsDir / netnsName("tenant-a"));
  Child child;
  spawnProxy(
      child,
      {"--state-dir", dir.path().string(), "--https", "127.0.0.1:0", "--http", "127.0.0.1:0",
       "--admin", "unix:" + sock.string(), "--workers", "2", "--netns-dir", netnsDir.string()},
      dir.path() / "stderr.log");
  std::string line = readLine(child.out, 20s);
  std::smatch m;
  std::regex startup(
      R"(^edgeplane-proxy: listening https=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+) admin=unix:(\S+) generation=(\d+)$)");
  ASSERT_TRUE(std::regex_match(line, m, startup))
      << "startup line: \"" << line << "\"\nstderr: " << slurp(dir.path() / "stderr.log");
  int https = std::stoi(m[1]);
  EXPECT_NE(https, 0);
  EXPECT_NE(std::stoi(m[2]), 0);
  EXPECT_EQ(m[3], sock.string());
  EXPECT_EQ(m[4], "0");
  EXPECT_FALSE(fs::exists(dir.path() / "state.db"));  // the proxy does not create the store

  std::string curl = "curl --silent --show-error --max-time 5 --unix-socket " + sock.string();
  EXPECT_EQ(run(curl + " http://localhost/api/v1/config"),
            "{\"generation\":0,\"snapshot\":null}\n");
  EXPECT_EQ(run(curl + " http://localhost/api/v1/listeners"),
            "{\"https\":\"127.0.0.1:" + std::string(m[1]) +
                "\",\"http\":\"127.0.0.1:" + std::string(m[2]) + "\",\"dns\":\"off\"}\n");

  // Generation 0 routes nothing: a TLS client gets closed without an answer.
  std::string resolve = " --resolve a.example.com:" + std::to_string(https) +
                        ":127.0.0.1 https://a.example.com:" + std::to_string(https) + "/";
  std::string tlsClient = "curl --silent --max-time 5 -o /dev/null -w '%{http_code}'" + resolve;
  EXPECT_EQ(run(tlsClient), "000");

  // A snapshot written straight into the store is noticed without any notice, by the proxy's
  // poll (every 500 ms; the bound leaves room for a loaded machine and the curls' starts).
  LineBackend backend;
  SnapshotRoute route = passthrough("alpha", {"a.example.com"});
  route.backends = {*Endpoint::parse("127.0.0.1:" + std::to_string(backend.port()))};
  auto s = snapshotOf({route});
  int64_t g = writeSnapshot(dir.path(), snapshotToJson(s));
  auto written = std::chrono::steady_clock::now();
  std::string config;
  std::string want =
      "{\"generation\":" + std::to_string(g) + ",\"snapshot\":" + snapshotToJson(s) + "}\n";
  while (std::chrono::steady_clock::now() - written < 5s) {
    config = run(curl + " http://localhost/api/v1/config");
    if (config == want) {
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  auto noticed = std::chrono::steady_clock::now() - written;
  EXPECT_EQ(config, want);
  EXPECT_LT(noticed, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count()
                         << " ms";

  // Now the same client is relayed to the backend: its ClientHello arrives there raw.
  EXPECT_EQ(run(tlsClient), "000");  // the backend answers no TLS, so curl gives up
  std::string hello = backend.received();
  ASSERT_GE(hello.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(hello[0]), 0x16);  // a TLS handshake record
  EXPECT_NE(hello.find("a.example.com"), std::string::npos);

  // Traffic and metrics, once the relay has ended.
  TrafficLine t;
  ParsedMetrics p;
  std::string metrics;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    metrics = run(curl + " http://localhost/metrics");
    p = parseMetrics(metrics);
    t = trafficOf(run(curl + " 'http://localhost/api/v1/traffic?since=0'"), "passthrough alpha");
    if (p.samples["edgeplane_proxy_connections_open"] == 0 &&
        t.bytesOut == static_cast<int64_t>(LineBackend::kAnswer.size())) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(t.connections, 1);
  EXPECT_EQ(t.bytesIn, static_cast<int64_t>(hello.size()));
  EXPECT_EQ(t.bytesOut, static_cast<int64_t>(LineBackend::kAnswer.size()));
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors);
  EXPECT_EQ(p.samples["edgeplane_proxy_snapshot_generation"], static_cast<double>(g));
  EXPECT_EQ(p.samples["edgeplane_proxy_reloads_total"], 1);
  EXPECT_EQ(p.samples["edgeplane_proxy_errors_total{kind=\"no_route\"}"], 1) << metrics;
  EXPECT_EQ(
      p.samples["edgeplane_proxy_route_connections_total{kind=\"passthrough\",route=\"alpha\"}"],
      1);
  EXPECT_EQ(p.samples["edgeplane_proxy_route_bytes_total{kind=\"passthrough\",route=\"alpha\","
                      "direction=\"out\"}"],
            static_cast<double>(LineBackend::kAnswer.size()));

  EXPECT_EQ(run(curl + " -X POST http://localhost/api/v1/reload"),
            "{\"generation\":" + std::to_string(g) + ",\"changed\":false}\n");
  EXPECT_EQ(run(curl + " -o /dev/null -w '%{http_code}' http://localhost/nope"), "404");
  EXPECT_EQ(run(curl + " -o /dev/null -w '%{http_code}' -X PUT http://localhost/metrics"), "405");

  // A second proxy on the same admin socket refuses to start (and leaves the first alone).
  {
    Child second;
    spawnProxy(second,
               {"--state-dir", dir.path().string(), "--https", "127.0.0.1:0", "--http", "off",
                "--admin", "unix:" + sock.string()},
               dir.path() / "second.log");
    EXPECT_EQ(waitExit(second.pid, 10s), 1);
    second.pid = -1;
    std::string secondErr = slurp(dir.path() / "second.log");
    EXPECT_NE(secondErr.find("another process is serving"), std::string::npos) << secondErr;
    EXPECT_EQ(run(curl + " -o /dev/null -w '%{http_code}' http://localhost/metrics"), "200");
  }

  // SIGHUP (`systemctl reload`) re-reads the store and keeps the proxy serving.
  ASSERT_EQ(::kill(child.pid, SIGHUP), 0);
  const std::string reloaded = "SIGHUP: generation " + std::to_string(g) + " is already the newest";
  for (auto until = std::chrono::steady_clock::now() + 5s;
       slurp(dir.path() / "stderr.log").find(reloaded) == std::string::npos &&
       std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(slurp(dir.path() / "stderr.log").find(reloaded), std::string::npos);
  EXPECT_EQ(run(curl + " -o /dev/null -w '%{http_code}' http://localhost/metrics"), "200");

  ASSERT_EQ(::kill(child.pid, SIGTERM), 0);
  int code = waitExit(child.pid, 20s);
  child.pid = -1;
  std::string err = slurp(dir.path() / "stderr.log");
  EXPECT_EQ(code, 0) << err;
  EXPECT_FALSE(fs::exists(sock));
  EXPECT_NE(err.find("loaded snapshot generation " + std::to_string(g)), std::string::npos) << err;
  EXPECT_NE(err.find("SIGTERM"), std::string::npos) << err;

  // The traffic reached the store by the 10 s flush or the one at shutdown.
  TrafficLine stored{0, 0, 0};
  for (const TrafficSample& sample : storedTraffic(dir.path())) {
    EXPECT_EQ(sample.route, "passthrough alpha");
    stored.bytesIn += sample.bytesIn;
    stored.bytesOut += sample.bytesOut;
    stored.connections += sample.connections;
  }
  EXPECT_EQ(stored.connections, 1);
  EXPECT_EQ(stored.bytesIn, static_cast<int64_t>(hello.size()));
  EXPECT_EQ(stored.bytesOut, static_cast<int64_t>(LineBackend::kAnswer.size()));
}

// Also under a service manager: the listener bound as NOTIFY_SOCKET hears READY=1 once the
// proxy serves, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 when the drain starts.
TEST(ProxyBinary, HttpOffAndLoopbackAdminStopOnSigint) {
  TempDir dir;
  Child child;
  fs::path token = writeTokenFile(dir.path(), kAdminToken);
  edgeplane::testing::NotifySocket notify(dir.path() / "notify.sock");
  ASSERT_TRUE(notify.bound());
  ::setenv("NOTIFY_SOCKET", notify.path().c_str(), 1);
  spawnProxy(child,
             {"--state-dir", dir.path().string(), "--https", "127.0.0.1:0", "--http", "off",
              "--admin", "127.0.0.1:0", "--admin-token-file", token.string(), "--workers", "1",
              "--drain-timeout", "2s"},
             dir.path() / "stderr.log");
  ::unsetenv("NOTIFY_SOCKET");
  std::string line = readLine(child.out, 20s);
  std::smatch m;
  std::regex startup(
      R"(^edgeplane-proxy: listening https=127\.0\.0\.1:(\d+) http=off admin=127\.0\.0\.1:(\d+) generation=0$)");
  ASSERT_TRUE(std::regex_match(line, m, startup))
      << "startup line: \"" << line << "\"\nstderr: " << slurp(dir.path() / "stderr.log");
  std::string url = "http://127.0.0.1:" + std::string(m[2]) + "/api/v1/config";
  EXPECT_EQ(run("curl --silent --max-time 5 -H 'Authorization: Bearer " + std::string(kAdminToken) +
                "' " + url),
            "{\"generation\":0,\"snapshot\":null}\n");
  EXPECT_EQ(run("curl --silent --max-time 5 -o /dev/null -w '%{http_code}' " + url), "401");
  // What the reconciler asks before it picks an ACME challenge: the bound listeners.
  EXPECT_EQ(
      run("curl --silent --max-time 5 -H 'Authorization: Bearer " + std::string(kAdminToken) +
          "' http://127.0.0.1:" + std::string(m[2]) + "/api/v1/listeners"),
      "{\"https\":\"127.0.0.1:" + std::string(m[1]) + "\",\"http\":\"off\",\"dns\":\"off\"}\n");
  const std::string healthz = "http://127.0.0.1:" + std::string(m[2]) + "/healthz";
  EXPECT_EQ(run("curl --silent --max-time 5 -H 'Authorization: Bearer " + std::string(kAdminToken) +
                "' " + healthz),
            "{\"status\":\"ok\",\"generation\":0}\n");
  ASSERT_TRUE(notify.waitFor("READY=1"));
  EXPECT_EQ(notify.linesStarting("STATUS="),
            std::vector<std::string>{"STATUS=serving snapshot generation 0"});
  ASSERT_EQ(::kill(child.pid, SIGHUP), 0);
  ASSERT_TRUE(notify.waitFor("READY=1", 2));
  const int reloading = notify.indexOf("RELOADING=1");
  ASSERT_GE(reloading, 1);
  EXPECT_GT(notify.indexOf("READY=1", reloading), reloading);
  ASSERT_EQ(::kill(child.pid, SIGINT), 0);
  int code = waitExit(child.pid, 20s);
  child.pid = -1;
  EXPECT_EQ(code, 0) << slurp(dir.path() / "stderr.log");
  EXPECT_TRUE(notify.waitFor("STOPPING=1", 1, 1s));
}

// --metrics: Prometheus scrapes the proxy over loopback TCP without the admin token; that
// endpoint serves /metrics and /healthz only, so no admin action (reload, config, API keys) is
// reachable through it, while the admin socket still answers as before.
TEST(ProxyBinary, MetricsEndpointServesOnlyMetricsAndHealthz) {
  TempDir dir;
  fs::path sock = dir.path() / "a.sock";
  Child child;
  spawnProxy(child,
             {"--state-dir", dir.path().string(), "--https", "127.0.0.1:0", "--http", "off",
              "--admin", "unix:" + sock.string(), "--metrics", "127.0.0.1:0", "--workers", "1"},
             dir.path() / "stderr.log");
  std::string first = readLine(child.out, 20s);
  std::smatch m;
  ASSERT_TRUE(
      std::regex_match(first, m, std::regex(R"(^edgeplane-proxy: metrics on 127\.0\.0\.1:(\d+)$)")))
      << "\"" << first << "\"\nstderr: " << slurp(dir.path() / "stderr.log");
  const std::string base = "http://127.0.0.1:" + std::string(m[1]);
  ASSERT_TRUE(readLine(child.out, 20s).starts_with("edgeplane-proxy: listening https="));

  const std::string curl = "curl --silent --max-time 5 ";
  const std::string code = curl + "-o /dev/null -w '%{http_code}' ";
  EXPECT_EQ(run(code + base + "/metrics"), "200");
  EXPECT_NE(run(curl + "-D - -o /dev/null " + base + "/metrics")
                .find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos);
  std::string text = run(curl + base + "/metrics");
  ParsedMetrics p = parseMetrics(text);
  EXPECT_TRUE(p.errors.empty()) << ::testing::PrintToString(p.errors) << text;
  EXPECT_EQ(p.types["edgeplane_proxy_connections_total"], "counter");
  EXPECT_EQ(p.samples["edgeplane_proxy_build_info{version=\"" EDGEPLANE_VERSION "\"}"], 1);
  for (const char* family : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                             "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_EQ(p.types.count(family), 1u) << family;
  }
  EXPECT_GT(p.samples["process_resident_memory_bytes"], 0);
  EXPECT_GE(p.samples["process_open_fds"], 3);
  EXPECT_EQ(run(curl + base + "/healthz"), "{\"status\":\"ok\",\"generation\":0}\n");

  // Nothing of the admin API, whatever the method.
  EXPECT_EQ(run(code + "-X POST " + base + "/api/v1/reload"), "404");
  EXPECT_EQ(run(code + base + "/api/v1/config"), "404");
  EXPECT_EQ(run(code + base + "/api/v1/apikeys"), "404");
  EXPECT_EQ(run(code + "-X POST " + base + "/metrics"), "405");
  // The admin socket is unchanged.
  EXPECT_EQ(run(curl + "--unix-socket " + sock.string() + " -X POST http://localhost/api/v1/reload")
                .rfind("{\"generation\":0,", 0),
            0u);

  ASSERT_EQ(::kill(child.pid, SIGTERM), 0);
  EXPECT_EQ(waitExit(child.pid, 20s), 0) << slurp(dir.path() / "stderr.log");
  child.pid = -1;
  EXPECT_EQ(run(code + base + "/metrics"), "000");  // closed with the proxy
}

TEST(ProxyBinary, RefusesBadArguments) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  fs::path looseToken = dir.path() / "loose.token";
  std::ofstream(looseToken) << kAdminToken << "\n";
  ASSERT_EQ(::chmod(looseToken.c_str(), 0644), 0);
  fs::path goodToken = writeTokenFile(dir.path(), kAdminToken);
  std::vector<Case> cases = {
      {{"--admin", "0.0.0.0:9000"}, "not loopback"},
      {{"--admin", "127.0.0.1:0"}, "give --admin-token-file"},
      {{"--admin", "127.0.0.1:0", "--admin-token-file", looseToken.string()}, "has mode 0644"},
      {{"--admin", "127.0.0.1:0", "--admin-token-file", (dir.path() / "none").string()},
       "admin token file"},
      {{"--admin-token-file", goodToken.string()}, "is for a TCP --admin address"},
      {{"--admin", "127.0.0.1:0", "--admin-token-file", goodToken.string(), "--admin-allow-gid",
        "5"},
       "is for the unix socket"},
      {{"--max-connections-per-ip", "x"}, "--max-connections-per-ip: expected an integer"},
      {{"--https", "example.com:443"}, "--https: expected ADDR:PORT"},
      {{"--idle-timeout", "10"},
       "--idle-timeout: '10' is not a duration (like 5s, 1.5s, 500ms, 2m or 1h30m)"},
      {{"--drain-timeout", "0s"}, "--drain-timeout: '0s' is not a positive duration"},
      {{"--connect-timeout", "8d"}, "--connect-timeout: '8d' is not a duration"},
      {{"--hello-timeout", "169h"}, "--hello-timeout: '169h' is longer than the maximum, 168h"},
      {{"--workers", "-1"}, "--workers: expected an integer"},
      {{"--frobnicate"}, "unknown argument"},
      {{"--http"}, "--http needs a value"},
      {{"--state-dir", ""}, "--state-dir: empty path"},
      {{"--netns-dir="}, "--netns-dir: empty path"},
      {{"--admin-token-file", ""}, "--admin-token-file: empty path"},
      {{"--version=1"}, "--version takes no value"},
      {{"--max-connections", "0"}, "--max-connections: expected an integer from 1 to 10000000"},
      {{"--admin-allow-gid", "4294967295"}, "--admin-allow-gid: expected an integer from 0 to"},
      {{"--dns", "53"}, "--dns: expected ADDR:PORT"},
      {{"--response-timeout", "x"}, "--response-timeout: 'x' is not a duration"},
      {{"--metrics", "0.0.0.0:9102"}, "--metrics 0.0.0.0:9102 is not loopback"},
      {{"--metrics", "[::]:9102"}, "is not loopback"},
      {{"--metrics", "unix:/run/m.sock"}, "--metrics takes a loopback ADDR:PORT"},
      {{"--metrics", "9102"}, "--metrics must be unix:PATH or a loopback IP:PORT"},
  };
  for (const Case& c : cases) {
    Child child;
    std::vector<std::string> args = {"--state-dir", dir.path().string()};
    args.insert(args.end(), c.args.begin(), c.args.end());
    spawnProxy(child, args, dir.path() / "stderr.log");
    int code = waitExit(child.pid, 10s);
    child.pid = -1;
    EXPECT_EQ(code, 2) << c.message;
    std::string err = slurp(dir.path() / "stderr.log");
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
  }
  Child version;
  spawnProxy(version, {"--version"}, dir.path() / "stderr.log");
  EXPECT_TRUE(readLine(version.out, 10s).starts_with("edgeplane-proxy "));
  EXPECT_EQ(waitExit(version.pid, 10s), 0);
  version.pid = -1;
}

#endif  // EDGEPLANE_PROXY_BIN

}  // namespace
}  // namespace edgeplane::proxy
