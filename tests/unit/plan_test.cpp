// Planner + executor against the in-memory host: order, idempotence, ownership, prune,
// drift, partial failure, element-level forward changes.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "schema/loader.h"
#include "schema/validate.h"
#include "tests/support/config_check.h"
#include "tests/support/fake_host.h"

namespace edgeplane {
namespace {

using core::Action;
using core::Kind;

constexpr const char* kTwoTenants = R"(
[fleet]
uplink_pool = "100.64.0.0/24"

[[namespace]]
name = "a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "p"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.12/32", "10.60.0.0/16"]
[[namespace.route]]
destination = "10.60.0.0/16"
via = "10.50.0.12"

[[namespace]]
name = "b"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51821
[[namespace.peer]]
name = "p"
public_key = "wFxEcLX/lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0="
allowed_ips = ["10.50.0.12/32"]

[[forward]]
name = "a-ssh"
namespace = "a"
protocol = "tcp"
public_port = 22001
target = "10.50.0.12:22"

[[forward]]
name = "b-dns"
namespace = "b"
protocol = "udp"
public_port = "5300-5301"
target = "10.50.0.12:53"
)";

Desired load(const std::string& toml) {
  return testing::loadClean(toml);
}

struct World {
  explicit World(Desired d) : desired(std::move(d)) {}
  Desired desired;
  testing::FakeHost host;
  core::StoreView store;
  // Preshared keys by peer name, as the cli reads them from the peers' files.
  std::map<std::string, WgKey> psks;

  core::Plan plan() {
    auto target = core::buildTarget(resolveFor(desired, "default"), "default", store);
    EXPECT_TRUE(target.ok()) << (target.ok() ? "" : target.error().message);
    for (auto& [ns, wg] : target->wireguard) {
      for (auto& p : wg.peers) {
        if (auto it = psks.find(p.name); p.pskFile && it != psks.end()) {
          p.presharedKey = it->second;
        }
      }
    }
    return core::plan(*target, host.state, store);
  }
  core::ApplyResult apply() {
    core::Plan p = plan();
    core::ApplyResult r = core::apply(p, host);
    store = core::recordApplied(p, r, store);
    return r;
  }
};

// The forwards taken from the whole config (what the CLI does, to spare copying each with its
// origin) give the same target as those of the host's resolved part: other hosts' namespaces
// and suspended ones are left out.
TEST(Target, ForwardsFromTheWholeConfigAreThoseOfTheHostsPart) {
  std::string placed =
      std::string(kTwoTenants) +
      "[[host]]\nname = \"edge-1\"\n[[host]]\nname = \"edge-2\"\n"
      "[[namespace]]\nname = \"c\"\nhosts = [\"edge-2\"]\n[namespace.wireguard]\n"
      "address = [\"10.50.0.1/24\"]\nlisten_port = 51822\n[[namespace.peer]]\n"
      "name = \"p\"\npublic_key = \"SHHsVqUgFYpHHsIinKzbT7S/OKgFVHI+7uCHG/YtqWY=\"\n"
      "allowed_ips = [\"10.50.0.13/32\"]\n"
      "[[forward]]\nname = \"c-web\"\nnamespace = \"c\"\nprotocol = \"tcp\"\n"
      "public_port = 8080\ntarget = \"10.50.0.13:80\"\n";
  placed.replace(placed.find("name = \"b\"\n"), 11, "name = \"b\"\nsuspended = true\n");
  const Desired all = load(placed);
  const core::StoreView store;
  for (const char* host : {"edge-1", "edge-2"}) {
    auto whole = core::buildTarget(resolveFor(all, host), host, store);
    auto taken = core::buildTarget(resolveFor(all, host, Resolve::AllButForwards), host, store, {},
                                   &all.forwards);
    ASSERT_TRUE(whole.ok() && taken.ok());
    std::vector<std::string> names;
    for (const auto& f : taken->forwards) {
      names.push_back(f.name);
    }
    const std::vector<std::string> want = std::string(host) == "edge-1"
                                              ? std::vector<std::string>{"a-ssh"}
                                              : std::vector<std::string>{"a-ssh", "c-web"};
    EXPECT_EQ(names, want) << host;
    EXPECT_EQ(names.size(), whole->forwards.size());
    for (size_t i = 0; i < names.size() && i < whole->forwards.size(); ++i) {
      EXPECT_EQ(taken->forwards[i].describe(), whole->forwards[i].describe());
    }
  }
}

std::vector<std::string> opLines(const core::Plan& p) {
  std::vector<std::string> out;
  for (const auto& op : p.ops) {
    out.push_back(std::string(toString(op.action)) + " " + std::string(toString(op.kind)) + " " +
                  op.name);
  }
  return out;
}

TEST(Plan, FromEmptyHostCreatesEverythingInDependencyOrder) {
  World w(load(kTwoTenants));
  core::Plan p = w.plan();
  EXPECT_EQ(opLines(p), (std::vector<std::string>{
                            "create namespace a",
                            "create namespace b",
                            "update sysctl host net.ipv4.ip_forward",
                            "create uplink a",
                            "create uplink b",
                            "create wireguard a",
                            "create peer a/p",
                            "create wireguard b",
                            "create peer b/p",
                            "create route a 10.60.0.0/16",
                            "create nftables host",
                            "create nftables a",
                            "create nftables b",
                            "create forward a-ssh",
                            "create forward b-dns",
                        }));
  // The uplink of a depends on namespace a (op 0) and on forwarding (op 2).
  EXPECT_EQ(p.ops[3].dependsOn, (std::vector<size_t>{0, 2}));
  // The route depends on its namespace, uplink and WireGuard interface (its next hop).
  EXPECT_EQ(p.ops[9].dependsOn, (std::vector<size_t>{0, 3, 5}));
  // The forward depends on its namespace, uplink and both tables.
  EXPECT_EQ(p.ops[13].dependsOn, (std::vector<size_t>{0, 3, 10, 11}));
  EXPECT_NE(core::renderText(p).find("Plan: 14 to add, 1 to change, 0 to destroy."),
            std::string::npos);
}

TEST(Plan, UplinksGetStableSlash31sFromThePool) {
  World w(load(kTwoTenants));
  core::Plan p = w.plan();
  EXPECT_EQ(p.target.uplinks.at("a").hostAddress.str(), "100.64.0.0/31");
  EXPECT_EQ(p.target.uplinks.at("a").nsAddress.str(), "100.64.0.1/31");
  EXPECT_EQ(p.target.uplinks.at("b").nsAddress.str(), "100.64.0.3/31");
  ASSERT_TRUE(w.apply().ok());
  // A namespace that sorts first does not move the existing allocations.
  std::string more = std::string(kTwoTenants) + R"(
[[namespace]]
name = "0first"
)";
  w.desired = load(more);
  core::Plan p2 = w.plan();
  EXPECT_EQ(p2.target.uplinks.at("a").nsAddress.str(), "100.64.0.1/31");
  EXPECT_EQ(p2.target.uplinks.at("b").nsAddress.str(), "100.64.0.3/31");
  EXPECT_EQ(p2.target.uplinks.at("0first").nsAddress.str(), "100.64.0.5/31");
}

TEST(Plan, ApplyThenPlanIsEmpty) {
  World w(load(kTwoTenants));
  core::ApplyResult r = w.apply();
  EXPECT_TRUE(r.ok());
  core::Plan again = w.plan();
  EXPECT_TRUE(again.empty()) << core::renderText(again);
  EXPECT_NE(core::renderText(again).find("No changes."), std::string::npos);
}

TEST(Plan, ForwardRangeIsOneHostIntervalAndOneNamespaceElementPerPort) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  const auto& host = *w.host.state.host.table;
  ASSERT_EQ(host.mappings.size(), 2u);
  EXPECT_EQ(host.mappings[1].port.str(), "5300-5301");
  EXPECT_EQ(host.mappings[1].address.str(), "100.64.0.3");
  const auto& b = *w.host.state.namespaces.at("ep-b").table;
  ASSERT_EQ(b.mappings.size(), 2u);
  EXPECT_EQ(b.mappings[0].port.str(), "5300");
  EXPECT_EQ(*b.mappings[0].targetPort, 53);
  EXPECT_EQ(b.mappings[1].port.str(), "5301");
  EXPECT_EQ(*b.mappings[1].targetPort, 54);
}

TEST(Plan, ForeignNamespacesAndRoutesAreListedAndLeftAlone) {
  World w(load(kTwoTenants));
  w.host.state.namespaces["blue"] = {};
  w.host.state.namespaces["ep-stray"] = {};  // our prefix, but the store never created it
  ASSERT_TRUE(w.apply().ok());
  core::RouteView foreign{*IpPrefix::parse("192.168.7.0/24"), IpAddress::parse("100.64.0.0"),
                          "epn-a", false, "static"};
  w.host.state.namespaces["ep-a"].routes.push_back(foreign);
  core::Plan p = w.plan();
  EXPECT_TRUE(p.empty()) << core::renderText(p);
  EXPECT_EQ(p.foreign, (std::vector<std::string>{
                           "namespace blue",
                           "namespace ep-stray",
                           "route 192.168.7.0/24 via 100.64.0.0 in namespace a (proto static)",
                       }));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(w.host.state.namespaces.count("blue"), 1u);
  EXPECT_EQ(w.host.state.namespaces.count("ep-stray"), 1u);
  EXPECT_EQ(w.host.state.namespaces["ep-a"].routes.back(), foreign);
  EXPECT_NE(core::renderText(p).find("Not managed by edgeplane (seen, left alone):"),
            std::string::npos);
}

// The config without namespace b (and its forward).
std::string onlyTenantA() {
  std::string onlyA = kTwoTenants;
  return onlyA.substr(0, onlyA.find("[[namespace]]\nname = \"b\"")) + R"(
[[forward]]
name = "a-ssh"
namespace = "a"
protocol = "tcp"
public_port = 22001
target = "10.50.0.12:22"
)";
}

TEST(Plan, PruneRemovesOnlyWhatLeftTheConfig) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  w.desired = load(onlyTenantA());
  core::Plan p = w.plan();
  EXPECT_EQ(opLines(p), (std::vector<std::string>{
                            "delete forward b-dns",
                            "delete wireguard b",
                            "delete uplink b",
                            "delete namespace b",
                        }));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(w.host.state.namespaces.count("ep-b"), 0u);
  EXPECT_EQ(w.host.state.namespaces.count("ep-a"), 1u);
  EXPECT_EQ(w.host.state.host.table->mappings.size(), 1u);
  EXPECT_TRUE(w.plan().empty());
  EXPECT_EQ(w.store.uplinkIndex.count("b"), 0u);
}

// ip_forward is turned off again when no namespace is left, but only when edgeplane turned it on.
TEST(Plan, IpForwardIsTurnedOffAgainOnlyWhenEdgeplaneTurnedItOn) {
  World w(load(kTwoTenants));
  ASSERT_FALSE(w.host.state.host.ipForward);
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.host.state.host.ipForward);
  EXPECT_TRUE(w.store.owns("sysctl", core::kHostForwardSysctl));
  ASSERT_TRUE(w.apply().ok());  // a later run with nothing to do keeps it owned
  EXPECT_TRUE(w.store.owns("sysctl", core::kHostForwardSysctl));

  w.desired = load("[fleet]\nuplink_pool = \"100.64.0.0/24\"\n");
  core::Plan p = w.plan();
  auto lines = opLines(p);
  EXPECT_NE(std::find(lines.begin(), lines.end(), "delete sysctl host net.ipv4.ip_forward"),
            lines.end())
      << ::testing::PrintToString(lines);
  // A failed restore stays owned, and is tried again.
  w.host.failOn.insert("setHostForwarding off");
  EXPECT_FALSE(w.apply().ok());
  EXPECT_TRUE(w.host.state.host.ipForward);
  EXPECT_TRUE(w.store.owns("sysctl", core::kHostForwardSysctl));
  w.host.failOn.clear();
  ASSERT_TRUE(w.apply().ok());
  EXPECT_FALSE(w.host.state.host.ipForward);
  EXPECT_FALSE(w.store.owns("sysctl", core::kHostForwardSysctl));
  EXPECT_TRUE(w.host.state.namespaces.empty());
  EXPECT_TRUE(w.plan().empty());

  // On a host that had it on before, it stays on when the namespaces go.
  World other(load(kTwoTenants));
  other.host.state.host.ipForward = true;
  ASSERT_TRUE(other.apply().ok());
  EXPECT_FALSE(other.store.owns("sysctl", core::kHostForwardSysctl));
  other.desired = load("[fleet]\nuplink_pool = \"100.64.0.0/24\"\n");
  ASSERT_TRUE(other.apply().ok());
  EXPECT_TRUE(other.host.state.host.ipForward);
  EXPECT_TRUE(other.plan().empty());
}

// A run killed (SIGKILL: no unwinding, nothing recorded after) right before step `killAt` of
// its driver calls: the host keeps what the steps before it did, the store what was written
// before the ops (the intent).
void applyKilledBefore(World& w, const std::string& killAt) {
  struct Killed {};
  core::Plan p = w.plan();
  if (auto intent = core::recordIntent(p, w.store)) {
    w.store = std::move(*intent);
  }
  try {
    core::apply(p, w.host, nullptr, [&](const std::string& what) {
      if (what == killAt) {
        throw Killed{};
      }
    });
    FAIL() << "no step " << killAt;
  } catch (const Killed&) {
  }
}

TEST(Plan, ANamespaceMadeByAKilledRunIsPrunedWhenNoLongerWanted) {
  World w(load(onlyTenantA()));
  ASSERT_TRUE(w.apply().ok());
  w.desired = load(kTwoTenants);
  applyKilledBefore(w, "nftables sync host");
  ASSERT_EQ(w.host.state.namespaces.count("ep-b"), 1u);
  // The operator goes back to the config without b: what the killed run made goes.
  w.desired = load(onlyTenantA());
  core::Plan p = w.plan();
  EXPECT_EQ(opLines(p), (std::vector<std::string>{
                            "delete wireguard b",
                            "delete uplink b",
                            "delete namespace b",
                        }))
      << core::renderText(p);
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(w.host.state.namespaces.count("ep-b"), 0u);
  EXPECT_TRUE(w.plan().empty());
  EXPECT_FALSE(w.store.owns("namespace", "b"));
  EXPECT_EQ(w.store.uplinkIndex.count("b"), 0u);
}

TEST(Plan, AKilledRunsPendingNamespaceIsMadeWithoutDriftOrForgotten) {
  // Killed before b was made: b is still wanted, so it is made, and that is not drift.
  World w(load(kTwoTenants));
  applyKilledBefore(w, "namespace b");
  EXPECT_EQ(w.store.uplinkIndex.count("b"), 1u) << "b's /31 is reserved";
  core::Plan p = w.plan();
  std::string text = core::renderText(p);
  EXPECT_NE(text.find("+ namespace b\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("drift"), std::string::npos) << text;
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
  EXPECT_TRUE(w.store.appliedAs("namespace", "b", ""));

  // Killed before b was made, and b is no longer wanted: nothing to delete, nothing kept.
  World v(load(onlyTenantA()));
  ASSERT_TRUE(v.apply().ok());
  v.desired = load(kTwoTenants);
  applyKilledBefore(v, "namespace b");
  v.desired = load(onlyTenantA());
  EXPECT_TRUE(v.plan().empty()) << core::renderText(v.plan());
  ASSERT_TRUE(v.apply().ok());
  EXPECT_FALSE(v.store.owns("namespace", "b"));
  EXPECT_FALSE(v.store.owns("uplink", "b"));
  EXPECT_EQ(v.store.uplinkIndex.count("b"), 0u);
}

TEST(Plan, DriftIsShownAndRepaired) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  auto& a = w.host.state.namespaces["ep-a"];
  a.routes.erase(
      std::remove_if(a.routes.begin(), a.routes.end(),
                     [](const core::RouteView& r) { return r.destination.length == 16; }),
      a.routes.end());
  a.table->intact = false;  // e.g. `nft flush chain ip edgeplane prerouting`
  w.host.state.namespaces.erase("ep-b");
  core::Plan p = w.plan();
  std::string text = core::renderText(p);
  EXPECT_NE(text.find("+ namespace b  (drift: namespace was deleted outside edgeplane)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("+ route a 10.60.0.0/16  (drift: route was deleted outside edgeplane)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("~ nftables a  (drift: table edgeplane was changed outside edgeplane)"),
            std::string::npos)
      << text;
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty()) << core::renderText(w.plan());
}

TEST(Plan, ElementAddedByHandIsDriftToo) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  w.host.state.namespaces["ep-a"].table->mappings.push_back(
      core::PortMapping{Protocol::Tcp, {9999, 9999}, *IpAddress::parse("10.50.0.99"), 22});
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update nftables a"}));
  EXPECT_EQ(p.ops[0].drift, "map elements changed outside edgeplane");
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
}

TEST(Plan, PartialFailureFailsDependentsOnlyAndIsRetriedNextRun) {
  World w(load(kTwoTenants));
  w.host.failOn.insert("createNamespace b");
  core::Plan p = w.plan();
  core::ApplyResult r = core::apply(p, w.host);
  w.store = core::recordApplied(p, r, w.store);
  std::vector<std::string> failed;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    if (!r.ops[i].ok) {
      failed.push_back(opLines(p)[i] + ": " + r.ops[i].error);
    }
  }
  EXPECT_EQ(failed, (std::vector<std::string>{
                        "create namespace b: createNamespace b: injected failure",
                        "create uplink b: skipped: depends on namespace b, which failed",
                        "create wireguard b: skipped: depends on namespace b, which failed",
                        "create peer b/p: skipped: depends on namespace b, which failed",
                        "create nftables b: skipped: depends on namespace b, which failed",
                        "create forward b-dns: skipped: depends on namespace b, which failed",
                    }));
  // Tenant a is converged; the host table got a's forward but not b's.
  EXPECT_EQ(w.host.state.namespaces.count("ep-a"), 1u);
  ASSERT_TRUE(w.host.state.host.table.has_value());
  EXPECT_EQ(w.host.state.host.table->mappings.size(), 1u);
  EXPECT_FALSE(w.store.owns("namespace", "b"));
  EXPECT_TRUE(w.store.owns("forward", "a-ssh"));
  // Next run: only b's work remains.
  w.host.failOn.clear();
  EXPECT_EQ(opLines(w.plan()), (std::vector<std::string>{
                                   "create namespace b",
                                   "create uplink b",
                                   "create wireguard b",
                                   "create peer b/p",
                                   "create nftables b",
                                   "create forward b-dns",
                               }));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
}

TEST(Plan, ChangingOneForwardAmongManyIsOneElementChange) {
  std::string toml = R"(
[[namespace]]
name = "a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "p"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/24"]
)";
  auto forwards = [&](int changed) {
    std::string out = toml;
    for (int i = 0; i < 100; ++i) {
      out += "[[forward]]\nname = \"f" + std::to_string(i) + "\"\nnamespace = \"a\"\n" +
             "protocol = \"tcp\"\npublic_port = " + std::to_string(20000 + i) +
             "\ntarget = \"10.50.0." + std::to_string(i == changed ? 200 : 10 + i) + ":22\"\n";
    }
    return out;
  };
  World w(load(forwards(-1)));
  ASSERT_TRUE(w.apply().ok());
  w.desired = load(forwards(42));
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update forward f42"}));
  EXPECT_EQ(p.ops[0].changes,
            (std::vector<core::FieldChange>{{"target", "10.50.0.52:22", "10.50.0.200:22"}}));
  EXPECT_EQ(p.ops[0].drift, "");  // the config changed, not the host
  w.host.syncs.clear();
  ASSERT_TRUE(w.apply().ok());
  // Only a's table: the host's still points port 20042 at a's uplink, so it is neither read
  // back nor sent (at 10k forwards its dump alone cost a one-forward change ~20 ms).
  ASSERT_EQ(w.host.syncs.size(), 1u);
  EXPECT_EQ(w.host.syncs[0].scope, "a");
  EXPECT_EQ(w.host.syncs[0].added, 1u);
  EXPECT_EQ(w.host.syncs[0].removed, 1u);
  EXPECT_FALSE(w.host.syncs[0].rebuilt);
  EXPECT_TRUE(w.plan().empty());
}

TEST(Plan, ForwardChangedByHandIsDriftAndRepaired) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  auto& m = w.host.state.namespaces["ep-a"].table->mappings;
  ASSERT_EQ(m.size(), 1u);
  m[0].targetPort = 2222;
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update forward a-ssh"}));
  EXPECT_EQ(p.ops[0].drift, "forward changed outside edgeplane");
  EXPECT_EQ(p.ops[0].changes,
            (std::vector<core::FieldChange>{{"target", "10.50.0.12:2222", "10.50.0.12:22"}}));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
}

TEST(Plan, SuspendedNamespaceWithdrawsForwardsButStays) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  std::string suspended = kTwoTenants;
  suspended.replace(suspended.find("name = \"b\"\n"), 11, "name = \"b\"\nsuspended = true\n");
  w.desired = load(suspended);
  EXPECT_EQ(opLines(w.plan()), (std::vector<std::string>{"delete forward b-dns"}));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(w.host.state.namespaces.count("ep-b"), 1u);
  EXPECT_TRUE(w.plan().empty());
}

TEST(Plan, JsonHasResourceChangesAndSummary) {
  World w(load(kTwoTenants));
  std::string json = core::renderJson(w.plan());
  EXPECT_EQ(json.rfind("{\"format_version\":1,\"host\":\"default\",\"resource_changes\":[{"
                       "\"action\":\"create\","
                       "\"kind\":\"namespace\",\"name\":\"a\",\"scope\":\"a\",\"summary\":null,"
                       "\"changes\":[{\"field\":\"netns\",\"before\":null,\"after\":\"ep-a\"}],"
                       "\"drift\":null,\"error\":null,\"depends_on\":[]}",
                       0),
            0u)
      << json;
  EXPECT_NE(json.find("\"summary\":{\"add\":14,\"change\":1,\"destroy\":0}}"), std::string::npos);
}

// Numbers are JSON numbers (issue 14): ports, keepalives, counts and a sysctl's value; a port
// range, a name or an address stays a string, and an absent side is null.
TEST(Plan, JsonValuesAreTyped) {
  core::Plan p;
  p.host = "h";
  core::Op wg;
  wg.kind = Kind::WireGuard;
  wg.name = "a";
  wg.changes = {{"listen_port", "51820", "51821"},
                {"persistent_keepalive", "25", ""},
                {"address", "", "10.50.0.1/24"}};
  core::Op forward;
  forward.kind = Kind::Forward;
  forward.name = "ssh";
  forward.changes = {{"public_port", "", "30000-30010"}, {"mappings", "", "1"}};
  p.ops = {wg, forward};
  const std::string json = core::renderJson(p);
  EXPECT_EQ(json.rfind("{\"format_version\":1,", 0), 0u) << json;
  for (const char* typed : {
           R"({"field":"listen_port","before":51820,"after":51821})",
           R"({"field":"persistent_keepalive","before":25,"after":null})",
           R"({"field":"address","before":null,"after":"10.50.0.1/24"})",
           R"({"field":"public_port","before":null,"after":"30000-30010"})",
           R"({"field":"mappings","before":null,"after":1})",
       }) {
    EXPECT_NE(json.find(typed), std::string::npos) << typed << "\n" << json;
  }
}

constexpr const char* kPeers = R"(
[[namespace]]
name = "a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "p1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.11/32"]
endpoint = "192.0.2.1:51821"
[[namespace.peer]]
name = "p2"
public_key = "wFxEcLX/lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0="
allowed_ips = ["10.50.0.12/32"]
endpoint = "192.0.2.2:51822"
)";

TEST(PlanWireGuard, ChangingOnePeerTouchesOnlyThatPeer) {
  World w(load(kPeers));
  ASSERT_TRUE(w.apply().ok());
  auto& peers = w.host.state.namespaces["ep-a"].wireguard->peers;
  peers[0].lastHandshake = 1700000000;  // as if p1 had a live session
  peers[0].rxBytes = 4242;
  std::string changed = kPeers;
  changed.replace(changed.find("192.0.2.2:51822"), 15, "192.0.2.9:51822");
  w.desired = load(changed);
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p2"}));
  EXPECT_EQ(p.ops[0].changes,
            (std::vector<core::FieldChange>{{"endpoint", "192.0.2.2:51822", "192.0.2.9:51822"}}));
  EXPECT_EQ(p.ops[0].drift, "");
  w.host.peerSyncs.clear();
  ASSERT_TRUE(w.apply().ok());
  ASSERT_EQ(w.host.peerSyncs.size(), 1u);
  EXPECT_EQ(w.host.peerSyncs[0], (std::vector<std::string>{"p2"}));
  EXPECT_EQ(w.host.state.namespaces["ep-a"].wireguard->peers[0].lastHandshake, 1700000000);
  EXPECT_EQ(w.host.state.namespaces["ep-a"].wireguard->peers[0].rxBytes, 4242u);
  EXPECT_TRUE(w.plan().empty());
}

TEST(PlanWireGuard, PeerRemovedByHandAndDeadInterfaceAreDrift) {
  World w(load(kPeers));
  ASSERT_TRUE(w.apply().ok());
  auto& wg = w.host.state.namespaces["ep-a"].wireguard;
  wg->peers.erase(wg->peers.begin());  // `wg set wg-a peer … remove`
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"create peer a/p1"}));
  EXPECT_EQ(p.ops[0].drift, "peer was removed outside edgeplane");
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
  wg.reset();  // wireguard-go killed: the interface is gone
  auto& links = w.host.state.namespaces["ep-a"].links;
  links.erase(std::remove_if(links.begin(), links.end(),
                             [](const core::LinkView& l) { return l.name == "wg-a"; }),
              links.end());
  p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"create wireguard a", "create peer a/p1",
                                                  "create peer a/p2"}));
  EXPECT_EQ(p.ops[0].drift, "interface missing (wireguard-go not running?)");
  EXPECT_EQ(p.ops[1].drift, "");  // the whole interface is new: its peers are not separate drift
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
}

TEST(PlanWireGuard, LostKeyIsLoudAndRefusedWithoutRotate) {
  World w(load(kPeers));
  ASSERT_TRUE(w.apply().ok());
  w.host.keyFiles.clear();
  w.host.state.namespaces["ep-a"].storedPublicKey.reset();
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update wireguard a"}));
  EXPECT_NE(p.ops[0].drift.find("the private key file is missing"), std::string::npos);
  EXPECT_NE(p.ops[0].drift.find("--rotate-key a"), std::string::npos);
  core::ApplyResult r = core::apply(p, w.host);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.ops[0].error, "private key file for a is missing");
  // With --rotate-key a, a new key is made and the plan says so.
  auto target = core::buildTarget(resolveFor(w.desired, "default"), "default", w.store, {"a"});
  ASSERT_TRUE(target.ok());
  p = core::plan(*target, w.host.state, w.store);
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update wireguard a"}));
  EXPECT_EQ(p.ops[0].changes.back().after, "(new key, generated on apply)");
  EXPECT_TRUE(core::apply(p, w.host).ok());
}

TEST(PlanWireGuard, RoamingPeerWithoutConfiguredEndpointIsNotDrift) {
  std::string roaming = kPeers;
  roaming.replace(roaming.find("endpoint = \"192.0.2.2:51822\"\n"), 30, "");
  World w(load(roaming));
  ASSERT_TRUE(w.apply().ok());
  w.host.state.namespaces["ep-a"].wireguard->peers[1].endpoint =
      *Endpoint::parse("198.51.100.77:40000");
  EXPECT_TRUE(w.plan().empty()) << core::renderText(w.plan());
}

WgKey pskOf(uint8_t fill) {
  WgKey k;
  k.bytes.fill(fill);
  return k;
}

std::string withPsk(std::string config) {
  const std::string after = "endpoint = \"192.0.2.1:51821\"\n";
  config.insert(config.find(after) + after.size(),
                "preshared_key_file = \"/etc/edgeplane/psk/p1.key\"\n");
  return config;
}

TEST(PlanWireGuard, PresharedKeySetChangedAndRemovedWithoutShowingIt) {
  World w(load(kPeers));
  ASSERT_TRUE(w.apply().ok());
  w.desired = load(withPsk(kPeers));
  w.psks["p1"] = pskOf(0x11);
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p1"}));
  EXPECT_EQ(p.ops[0].changes, (std::vector<core::FieldChange>{{"preshared_key", "", "set"}}));
  ASSERT_TRUE(w.apply().ok());
  auto& peers = w.host.state.namespaces["ep-a"].wireguard->peers;
  EXPECT_EQ(peers[0].presharedKey, pskOf(0x11));
  EXPECT_FALSE(peers[1].presharedKey.has_value());
  EXPECT_TRUE(w.plan().empty()) << core::renderText(w.plan());

  // A new key in the same file: changed, and the operator's doing, not drift.
  w.psks["p1"] = pskOf(0x22);
  p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p1"}));
  EXPECT_EQ(p.ops[0].changes,
            (std::vector<core::FieldChange>{{"preshared_key", "set", "changed"}}));
  EXPECT_EQ(p.ops[0].drift, "");
  for (const std::string& out : {core::renderText(p), core::renderJson(p)}) {
    EXPECT_EQ(out.find(pskOf(0x22).base64()), std::string::npos) << out;
    EXPECT_EQ(out.find(pskOf(0x11).base64()), std::string::npos) << out;
  }
  EXPECT_NE(core::renderText(p).find("preshared_key: set → changed"), std::string::npos);
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(peers[0].presharedKey, pskOf(0x22));
  EXPECT_TRUE(w.plan().empty());
  // What the store records of the peer names the file, never the key.
  for (const auto& [key, spec] : w.store.applied) {
    EXPECT_EQ(spec.find(pskOf(0x22).base64()), std::string::npos) << key << ": " << spec;
  }

  // Removed by hand: drift, repaired.
  peers[0].presharedKey.reset();
  peers[0].hasPsk = false;
  p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p1"}));
  EXPECT_EQ(p.ops[0].drift, "peer changed outside edgeplane");
  ASSERT_TRUE(w.apply().ok());
  EXPECT_EQ(peers[0].presharedKey, pskOf(0x22));

  // Taken out of the config: removed from the device.
  w.desired = load(kPeers);
  p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p1"}));
  EXPECT_EQ(p.ops[0].changes, (std::vector<core::FieldChange>{{"preshared_key", "set", ""}}));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_FALSE(peers[0].presharedKey.has_value());
  EXPECT_TRUE(w.plan().empty());
}

// An offline plan has the file name but not the key, and an observation read from JSON says
// only whether a key is set: presence is compared, and a match is no change.
TEST(PlanWireGuard, OfflinePlanComparesWhetherAPresharedKeyIsSet) {
  World w(load(withPsk(kPeers)));
  w.psks["p1"] = pskOf(0x11);
  ASSERT_TRUE(w.apply().ok());
  w.psks.clear();
  auto& peers = w.host.state.namespaces["ep-a"].wireguard->peers;
  peers[0].presharedKey.reset();  // as observedFromJson gives it: set, value unknown
  EXPECT_TRUE(w.plan().empty()) << core::renderText(w.plan());
  peers[0].hasPsk = false;
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update peer a/p1"}));
  EXPECT_EQ(p.ops[0].changes, (std::vector<core::FieldChange>{{"preshared_key", "", "set"}}));
}

// --- failure isolation: a namespace that cannot be observed, a key file that cannot be read --

// The ops of `r` that failed, as "<op>: <error>".
std::vector<std::string> failures(const core::Plan& p, const core::ApplyResult& r) {
  std::vector<std::string> out;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    if (!r.ops[i].ok) {
      out.push_back(opLines(p)[i] + ": " + r.ops[i].error);
    }
  }
  return out;
}

bool calledFor(const testing::FakeHost& h, const std::string& ns) {
  return std::any_of(h.calls.begin(), h.calls.end(), [&](const std::string& c) {
    return c.size() > ns.size() &&
           c.compare(c.size() - ns.size() - 1, std::string::npos, " " + ns) == 0;
  });
}

constexpr const char* kCannotEnter = "enter namespace ep-b: Invalid argument";

// `: > /run/netns/ep-b` on a converged host: b's one op fails with the reason, its forwards
// stay mapped as they are, and a still converges (a new forward there is applied).
TEST(PlanIsolation, AnUnobservableNamespaceFailsAloneAndTheOthersConverge) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  const core::NetnsView b = w.host.state.namespaces["ep-b"];
  const std::vector<core::PortMapping> hostBefore = w.host.state.host.table->mappings;
  w.host.state.namespaces["ep-b"] = core::NetnsView{};
  w.host.state.namespaces["ep-b"].unobservable = kCannotEnter;

  // a gets a new forward; b gets one too and loses b-dns from the config.
  std::string toml = kTwoTenants;
  toml.replace(toml.find("[[forward]]\nname = \"b-dns\""), std::string::npos, R"([[forward]]
name = "a-web"
namespace = "a"
protocol = "tcp"
public_port = 8001
target = "10.50.0.12:80"

[[forward]]
name = "b-web"
namespace = "b"
protocol = "tcp"
public_port = 8002
target = "10.50.0.12:80"
)");
  w.desired = load(toml);
  core::Plan p = w.plan();
  EXPECT_EQ(opLines(p), (std::vector<std::string>{"update namespace b", "create forward a-web",
                                                  "create forward b-web"}));
  EXPECT_EQ(p.ops[0].error, std::string("cannot observe: ") + kCannotEnter);
  EXPECT_NE(core::renderText(p).find("  ! namespace b: cannot observe: enter namespace ep-b: "
                                     "Invalid argument\n"),
            std::string::npos)
      << core::renderText(p);
  EXPECT_NE(core::renderText(p).find("1 will fail"), std::string::npos) << core::renderText(p);

  w.host.calls.clear();
  core::ApplyResult r = core::apply(p, w.host);
  w.store = core::recordApplied(p, r, w.store);
  EXPECT_EQ(failures(p, r), (std::vector<std::string>{
                                "update namespace b: cannot observe: enter namespace ep-b: "
                                "Invalid argument",
                                "create forward b-web: skipped: depends on namespace b, which "
                                "failed",
                            }));
  EXPECT_FALSE(calledFor(w.host, "b")) << "the driver was sent into b";
  // The host table: a-web added, b's mappings (b-dns, no longer in the config) left as they
  // were, b-web not installed.
  std::vector<core::PortMapping> want = hostBefore;
  want.push_back(core::PortMapping{
      Protocol::Tcp, {8001, 8001}, *IpAddress::parse("100.64.0.1"), std::nullopt});
  std::sort(want.begin(), want.end());
  ASSERT_TRUE(w.host.state.host.table.has_value());
  EXPECT_EQ(w.host.state.host.table->mappings, want);
  // b is still owned with all it had: its WireGuard key is never taken for a new one.
  for (const char* key : {"namespace b", "uplink b", "wireguard b", "peer b/p", "forward b-dns"}) {
    EXPECT_EQ(w.store.applied.count(key), 1u) << key;
  }
  EXPECT_EQ(w.store.uplinkIndex.count("b"), 1u);
  EXPECT_EQ(opLines(w.plan()),
            (std::vector<std::string>{"update namespace b", "create forward b-web"}));

  // Repaired: b converges (b-web in, b-dns out), then nothing is left to do.
  w.host.state.namespaces["ep-b"] = b;
  EXPECT_EQ(opLines(w.plan()),
            (std::vector<std::string>{"delete forward b-dns", "create forward b-web"}));
  ASSERT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty()) << core::renderText(w.plan());
}

TEST(PlanIsolation, AnUnobservableNamespaceLeftInTheConfigIsNotPrunedBlindly) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  std::string toml = kTwoTenants;
  toml.erase(toml.find("[[namespace]]\nname = \"b\""),
             toml.find("[[forward]]") - toml.find("[[namespace]]\nname = \"b\""));
  toml.erase(toml.find("[[forward]]\nname = \"b-dns\""));
  w.desired = load(toml);
  w.host.state.namespaces["ep-b"] = core::NetnsView{};
  w.host.state.namespaces["ep-b"].unobservable = kCannotEnter;
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"delete forward b-dns", "delete namespace b"}));
  EXPECT_EQ(p.ops[1].error, std::string("cannot observe: ") + kCannotEnter);
  w.host.calls.clear();
  core::ApplyResult r = core::apply(p, w.host);
  w.store = core::recordApplied(p, r, w.store);
  EXPECT_EQ(failures(p, r), (std::vector<std::string>{"delete namespace b: cannot observe: enter "
                                                      "namespace ep-b: Invalid argument"}));
  EXPECT_EQ(std::count(w.host.calls.begin(), w.host.calls.end(), "deleteNamespace b"), 0);
  EXPECT_EQ(std::count(w.host.calls.begin(), w.host.calls.end(), "deleteUplink b"), 0);
  EXPECT_TRUE(w.store.owns("namespace", "b"));
}

// A port a held namespace's forward had, taken by a forward of another namespace: the planner
// holds the taker back (its mapping depends on the held namespace), so the port keeps its name.
// Were the taker applied all the same, the name recorded would be the later forward's by name,
// as for any two forwards with one port.
TEST(PlanIsolation, APortOfAHeldForwardKeepsItsNameWhenAnotherForwardTakesIt) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  const core::StoreView before = w.store;
  w.host.state.namespaces["ep-b"] = core::NetnsView{};
  w.host.state.namespaces["ep-b"].unobservable = kCannotEnter;
  // b-dns leaves udp/5300-5301 for other ports; a-dns, in a, takes them.
  std::string toml = kTwoTenants;
  toml.replace(toml.find("public_port = \"5300-5301\""), 25, "public_port = \"5400-5401\"");
  toml +=
      "[[forward]]\nname = \"a-dns\"\nnamespace = \"a\"\nprotocol = \"udp\"\n"
      "public_port = \"5300-5301\"\ntarget = \"10.50.0.12:53\"\n";
  w.desired = load(toml);
  const core::Plan p = w.plan();
  core::ApplyResult r = core::apply(p, w.host);
  EXPECT_EQ(failures(p, r),
            (std::vector<std::string>{
                std::string("update namespace b: cannot observe: ") + kCannotEnter,
                "update forward a-dns: skipped: depends on namespace b, which failed",
                "create forward b-dns: skipped: depends on namespace b, which failed"}));
  core::StoreView after = core::recordApplied(p, r, before);
  EXPECT_FALSE(after.owns("forward", "a-dns"));
  EXPECT_EQ(after.forwardNames.at("udp/5300-5301"), "b-dns");

  for (size_t i = 0; i < p.ops.size(); ++i) {
    r.ops[i].ok = p.ops[i].kind != core::Kind::Namespace;
  }
  after = core::recordApplied(p, r, before);
  EXPECT_TRUE(after.owns("forward", "a-dns"));
  EXPECT_EQ(after.forwardNames.at("udp/5300-5301"), "b-dns");
}

TEST(PlanIsolation, AForeignUnobservableNamespaceIsListedWithItsReasonAndBlocksNothing) {
  World w(load(kTwoTenants));
  w.host.state.namespaces["ep-zzz"].unobservable = "enter namespace ep-zzz: Invalid argument";
  core::Plan p = w.plan();
  EXPECT_EQ(p.foreign, (std::vector<std::string>{"namespace ep-zzz (cannot observe: enter "
                                                 "namespace ep-zzz: Invalid argument)"}));
  EXPECT_TRUE(
      std::all_of(p.ops.begin(), p.ops.end(), [](const core::Op& op) { return op.error.empty(); }));
  EXPECT_TRUE(w.apply().ok());
  EXPECT_TRUE(w.plan().empty());
}

// An empty keys/a.key: a's WireGuard ops are refused with the file's error (no new key is
// made over it), a's other work and all of b still apply.
TEST(PlanIsolation, AnUnusableKeyFileRefusesOnlyThatNamespacesWireGuard) {
  World w(load(kTwoTenants));
  ASSERT_TRUE(w.apply().ok());
  const std::string keyError =
      "key file /var/lib/edgeplane/keys/a.key does not hold a WireGuard key (base64 of 32 bytes "
      "and a newline)";
  w.host.state.namespaces["ep-a"].storedPublicKey.reset();
  w.host.state.namespaces["ep-a"].keyError = keyError;
  std::string toml = kTwoTenants;
  toml.replace(toml.find("allowed_ips = [\"10.50.0.12/32\"]\n"), 31,
               "allowed_ips = [\"10.50.0.12/32\"]\npersistent_keepalive = 25\n");  // b's peer
  toml.replace(toml.find("target = \"10.50.0.12:22\""), 24, "target = \"10.60.0.14:22\"");
  w.desired = load(toml);
  core::Plan p = w.plan();
  ASSERT_EQ(opLines(p), (std::vector<std::string>{"update wireguard a", "update peer b/p",
                                                  "update forward a-ssh"}));
  EXPECT_EQ(p.ops[0].error.rfind(keyError + "; ", 0), 0u) << p.ops[0].error;
  EXPECT_NE(p.ops[0].error.find("--rotate-key a"), std::string::npos) << p.ops[0].error;
  EXPECT_EQ(p.ops[0].drift.find("missing"), std::string::npos) << p.ops[0].drift;
  w.host.calls.clear();
  core::ApplyResult r = core::apply(p, w.host);
  w.store = core::recordApplied(p, r, w.store);
  ASSERT_EQ(failures(p, r).size(), 1u);
  EXPECT_EQ(failures(p, r)[0].rfind("update wireguard a: " + keyError, 0), 0u);
  EXPECT_EQ(std::count(w.host.calls.begin(), w.host.calls.end(), "ensureWireGuard a"), 0);
  EXPECT_TRUE(w.store.owns("wireguard", "a"));
  // The refusal stays until the file is repaired.
  EXPECT_EQ(opLines(w.plan()), (std::vector<std::string>{"update wireguard a"}));
}

TEST(Plan, JsonEscapesControlCharacters) {
  EXPECT_EQ(core::jsonEscape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

}  // namespace
}  // namespace edgeplane
