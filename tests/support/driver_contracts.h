// The contract every subsystem driver keeps, as typed tests run on the fakes and on the kernel.
//
// A world type W (the type parameter) owns one set of drivers and plays "someone else" on the
// same host:
//   core::HostDrivers drivers();
//   void addForeignNamespace(const std::string& netns);
//   void addForeignLink(const std::string& scope, const std::string& name);   // a veth, say
//   bool hasLink(const std::string& scope, const std::string& name);
//   void addForeignRoute(const std::string& scope, const IpPrefix& to, const IpAddress& via);
//   void addForeignTable(const std::string& scope);                           // `ip foreign`
//   bool hasForeignTable(const std::string& scope);
// Each test gets a fresh world. Scopes are as for the drivers: "ct" is the tenant namespace
// ep-ct, "" the host. Each suite is instantiated with INSTANTIATE_TYPED_TEST_SUITE_P: the unit
// tests with the fakes (tests/unit/driver_contract_test.cpp), the lab with the kernel drivers
// (tests/lab/driver_contract_lab_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/core/drivers.h"
#include "tests/support/nft_views.h"

namespace edgeplane::contract {

inline const std::string kTenant = "ct";
inline const std::string kNetns = "ep-ct";

inline IpPrefix prefix(const char* text) {
  return *IpPrefix::parse(text);
}
inline IpAddress address(const char* text) {
  return *IpAddress::parse(text);
}

inline core::UplinkTarget uplink(const char* hostAddress, const char* nsAddress) {
  return core::UplinkTarget{kTenant, 0, prefix(hostAddress), prefix(nsAddress)};
}

inline const core::LinkView* findLink(const std::vector<core::LinkView>& links,
                                      const std::string& name) {
  auto it = std::find_if(links.begin(), links.end(),
                         [&](const core::LinkView& l) { return l.name == name; });
  return it == links.end() ? nullptr : &*it;
}
// A pointer into a temporary list dangles at the end of the statement (ASan caught one).
const core::LinkView* findLink(std::vector<core::LinkView>&& links,
                               const std::string& name) = delete;

inline bool hasLink(const std::vector<core::LinkView>& links, const std::string& name) {
  return findLink(links, name) != nullptr;
}

inline std::vector<core::RouteView> routesTo(const std::vector<core::RouteView>& routes,
                                             const IpPrefix& destination) {
  std::vector<core::RouteView> out;
  std::copy_if(routes.begin(), routes.end(), std::back_inserter(out),
               [&](const core::RouteView& r) { return r.destination == destination; });
  return out;
}

inline bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::count(names.begin(), names.end(), name) == 1;
}

template <class W>
class DriverContract : public ::testing::Test {
 protected:
  DriverContract() : world_(std::make_unique<W>()), d_(world_->drivers()) {}
  std::vector<std::string> names() {
    auto n = d_.namespaces.list();
    EXPECT_TRUE(n.ok()) << n.error().message;
    return n.ok() ? *n : std::vector<std::string>{};
  }
  std::vector<core::LinkView> links(const std::string& scope) {
    auto l = d_.uplinks.observe(scope);
    EXPECT_TRUE(l.ok()) << l.error().message;
    return l.ok() ? *l : std::vector<core::LinkView>{};
  }
  std::vector<core::RouteView> routes(const std::string& scope) {
    auto r = d_.routes.observe(scope);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : std::vector<core::RouteView>{};
  }
  std::optional<core::NftTableView> table(const std::string& scope) {
    auto t = d_.nft.observe(scope);
    EXPECT_TRUE(t.ok()) << t.error().message;
    return t.ok() ? *t : std::nullopt;
  }
  // The tenant namespace with its uplink (host 100.64.0.0/31, inside .1).
  void makeTenant(bool withUplink) {
    ASSERT_TRUE(d_.namespaces.create(kTenant).ok());
    if (withUplink) {
      auto r = d_.uplinks.ensure(uplink("100.64.0.0/31", "100.64.0.1/31"));
      ASSERT_TRUE(r.ok()) << r.error().message;
    }
  }

  std::unique_ptr<W> world_;
  core::HostDrivers d_;
};

// --- namespaces -----------------------------------------------------------------------------

template <class W>
class NamespaceContract : public DriverContract<W> {};
TYPED_TEST_SUITE_P(NamespaceContract);

TYPED_TEST_P(NamespaceContract, CreateShowsItASecondCreateIsRefusedRemoveTakesIt) {
  auto& ns = this->d_.namespaces;
  ASSERT_TRUE(ns.create(kTenant).ok());
  EXPECT_TRUE(contains(this->names(), kNetns));
  auto again = ns.create(kTenant);
  ASSERT_FALSE(again.ok());
  EXPECT_FALSE(again.error().message.empty());
  EXPECT_TRUE(contains(this->names(), kNetns));
  auto removed = ns.remove(kTenant);
  ASSERT_TRUE(removed.ok()) << removed.error().message;
  EXPECT_FALSE(contains(this->names(), kNetns));
  EXPECT_FALSE(ns.remove(kTenant).ok());
}

TYPED_TEST_P(NamespaceContract, HostForwardingFollowsTheSwitchIdempotently) {
  auto& ns = this->d_.namespaces;
  for (bool on : {true, true, false, false, true}) {
    ASSERT_TRUE(ns.setHostForwarding(on).ok());
    auto seen = ns.forwarding("");
    ASSERT_TRUE(seen.ok()) << seen.error().message;
    EXPECT_EQ(*seen, on);
  }
  ASSERT_TRUE(ns.setHostForwarding(false).ok());
}

TYPED_TEST_P(NamespaceContract, ForeignNamespacesAreListedAndLeftAlone) {
  this->world_->addForeignNamespace("blue");
  EXPECT_TRUE(contains(this->names(), "blue"));
  ASSERT_TRUE(this->d_.namespaces.create(kTenant).ok());
  ASSERT_TRUE(this->d_.namespaces.remove(kTenant).ok());
  EXPECT_TRUE(contains(this->names(), "blue"));
}

TYPED_TEST_P(NamespaceContract, AMissingNamespaceIsAnError) {
  auto fwd = this->d_.namespaces.forwarding("nope");
  ASSERT_FALSE(fwd.ok());
  EXPECT_FALSE(fwd.error().message.empty());
}

REGISTER_TYPED_TEST_SUITE_P(NamespaceContract, CreateShowsItASecondCreateIsRefusedRemoveTakesIt,
                            HostForwardingFollowsTheSwitchIdempotently,
                            ForeignNamespacesAreListedAndLeftAlone, AMissingNamespaceIsAnError);

// --- uplinks --------------------------------------------------------------------------------

template <class W>
class UplinkContract : public DriverContract<W> {};
TYPED_TEST_SUITE_P(UplinkContract);

TYPED_TEST_P(UplinkContract, EnsureBuildsThePairRouteAndForwardingIdempotently) {
  this->makeTenant(true);
  const auto host = this->links("");
  const auto inside = this->links(kTenant);
  const core::LinkView* h = findLink(host, "eph-ct");
  const core::LinkView* n = findLink(inside, "epn-ct");
  ASSERT_NE(h, nullptr);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(*h, (core::LinkView{"eph-ct", true, {prefix("100.64.0.0/31")}}));
  EXPECT_EQ(*n, (core::LinkView{"epn-ct", true, {prefix("100.64.0.1/31")}}));
  auto def = routesTo(this->routes(kTenant), prefix("0.0.0.0/0"));
  ASSERT_EQ(def.size(), 1u);
  EXPECT_EQ(def[0].via, address("100.64.0.0"));
  EXPECT_TRUE(def[0].owned);
  auto fwd = this->d_.namespaces.forwarding(kTenant);
  ASSERT_TRUE(fwd.ok());
  EXPECT_TRUE(*fwd);

  auto again = this->d_.uplinks.ensure(uplink("100.64.0.0/31", "100.64.0.1/31"));
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(this->links(""), host);
  EXPECT_EQ(this->links(kTenant), inside);
  EXPECT_EQ(routesTo(this->routes(kTenant), prefix("0.0.0.0/0")), def);
}

TYPED_TEST_P(UplinkContract, EnsureMovesBothEndsToANewSlash31) {
  this->makeTenant(true);
  auto r = this->d_.uplinks.ensure(uplink("100.64.0.2/31", "100.64.0.3/31"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto host = this->links("");
  const auto inside = this->links(kTenant);
  ASSERT_NE(findLink(host, "eph-ct"), nullptr);
  ASSERT_NE(findLink(inside, "epn-ct"), nullptr);
  EXPECT_EQ(findLink(host, "eph-ct")->addresses, std::vector<IpPrefix>{prefix("100.64.0.2/31")});
  EXPECT_EQ(findLink(inside, "epn-ct")->addresses, std::vector<IpPrefix>{prefix("100.64.0.3/31")});
  auto def = routesTo(this->routes(kTenant), prefix("0.0.0.0/0"));
  ASSERT_EQ(def.size(), 1u);
  EXPECT_EQ(def[0].via, address("100.64.0.2"));
}

TYPED_TEST_P(UplinkContract, RemoveTakesBothEndsAndIsIdempotent) {
  this->makeTenant(true);
  ASSERT_TRUE(this->d_.uplinks.remove(kTenant).ok());
  EXPECT_FALSE(hasLink(this->links(""), "eph-ct"));
  EXPECT_FALSE(hasLink(this->links(kTenant), "epn-ct"));
  EXPECT_TRUE(this->d_.uplinks.remove(kTenant).ok());
}

TYPED_TEST_P(UplinkContract, ForeignLinksAreNotListedAndLeftAlone) {
  this->makeTenant(false);
  this->world_->addForeignLink("", "other-ct");
  this->world_->addForeignLink(kTenant, "other-ct");
  ASSERT_TRUE(this->d_.uplinks.ensure(uplink("100.64.0.0/31", "100.64.0.1/31")).ok());
  EXPECT_FALSE(hasLink(this->links(""), "other-ct"));
  EXPECT_FALSE(hasLink(this->links(kTenant), "other-ct"));
  ASSERT_TRUE(this->d_.uplinks.remove(kTenant).ok());
  EXPECT_TRUE(this->world_->hasLink("", "other-ct"));
  EXPECT_TRUE(this->world_->hasLink(kTenant, "other-ct"));
}

TYPED_TEST_P(UplinkContract, AMissingNamespaceIsAnError) {
  core::UplinkTarget t = uplink("100.64.0.0/31", "100.64.0.1/31");
  t.ns = "nope";
  auto r = this->d_.uplinks.ensure(t);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_FALSE(this->d_.uplinks.observe("nope").ok());
}

REGISTER_TYPED_TEST_SUITE_P(UplinkContract, EnsureBuildsThePairRouteAndForwardingIdempotently,
                            EnsureMovesBothEndsToANewSlash31, RemoveTakesBothEndsAndIsIdempotent,
                            ForeignLinksAreNotListedAndLeftAlone, AMissingNamespaceIsAnError);

// --- routes ---------------------------------------------------------------------------------

template <class W>
class RouteContract : public DriverContract<W> {};
TYPED_TEST_SUITE_P(RouteContract);

TYPED_TEST_P(RouteContract, ReplaceShowsOneOwnedRouteIdempotentlyAndRemoveTakesIt) {
  this->makeTenant(true);
  const core::RouteTarget want{kTenant, prefix("10.60.0.0/16"), address("100.64.0.0")};
  for (int i = 0; i < 2; ++i) {
    auto r = this->d_.routes.replace(want);
    ASSERT_TRUE(r.ok()) << r.error().message;
    auto seen = routesTo(this->routes(kTenant), want.destination);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].via, want.via);
    EXPECT_TRUE(seen[0].owned);
    EXPECT_EQ(seen[0].protocol, "edgeplane");
  }
  ASSERT_TRUE(this->d_.routes.remove(kTenant, want.destination).ok());
  EXPECT_TRUE(routesTo(this->routes(kTenant), want.destination).empty());
  EXPECT_TRUE(this->d_.routes.remove(kTenant, want.destination).ok());
}

TYPED_TEST_P(RouteContract, ForeignRoutesAreSeenAsForeignAndLeftAlone) {
  this->makeTenant(true);
  const IpPrefix foreign = prefix("10.70.0.0/16");
  this->world_->addForeignRoute(kTenant, foreign, address("100.64.0.0"));
  const core::RouteTarget ours{kTenant, prefix("10.60.0.0/16"), address("100.64.0.0")};
  ASSERT_TRUE(this->d_.routes.replace(ours).ok());
  ASSERT_TRUE(this->d_.routes.remove(kTenant, ours.destination).ok());
  ASSERT_TRUE(this->d_.routes.remove(kTenant, foreign).ok());  // not ours: kept
  auto seen = routesTo(this->routes(kTenant), foreign);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].owned);
  EXPECT_NE(seen[0].protocol, "edgeplane");
}

TYPED_TEST_P(RouteContract, AMissingNamespaceIsAnError) {
  auto r = this->d_.routes.replace({"nope", prefix("10.60.0.0/16"), address("100.64.0.0")});
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_FALSE(this->d_.routes.observe("nope").ok());
}

REGISTER_TYPED_TEST_SUITE_P(RouteContract, ReplaceShowsOneOwnedRouteIdempotentlyAndRemoveTakesIt,
                            ForeignRoutesAreSeenAsForeignAndLeftAlone, AMissingNamespaceIsAnError);

// --- nftables -------------------------------------------------------------------------------

using testing::mapping;
using testing::tableOf;

template <class W>
class NftContract : public DriverContract<W> {};
TYPED_TEST_SUITE_P(NftContract);

TYPED_TEST_P(NftContract, HostTableSyncsIdempotentlyChangesAndGoes) {
  const auto first = tableOf({mapping(Protocol::Tcp, "22001", "100.64.0.1", std::nullopt),
                              mapping(Protocol::Udp, "5300-5301", "100.64.0.1", std::nullopt)});
  const auto second = tableOf({mapping(Protocol::Tcp, "22001", "100.64.0.1", std::nullopt),
                               mapping(Protocol::Tcp, "22002", "100.64.0.3", std::nullopt)});
  EXPECT_FALSE(this->table("").has_value());
  for (const auto* want : {&first, &first, &second, &second}) {
    auto r = this->d_.nft.sync("", *want);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(this->table(""), *want);
  }
  ASSERT_TRUE(this->d_.nft.remove("").ok());
  EXPECT_FALSE(this->table("").has_value());
  EXPECT_TRUE(this->d_.nft.remove("").ok());
}

TYPED_TEST_P(NftContract, NamespaceTableMapsToTargetPorts) {
  this->makeTenant(false);
  const auto want = tableOf({mapping(Protocol::Tcp, "22001", "10.50.0.12", 22),
                             mapping(Protocol::Udp, "5300", "10.50.0.12", 53)});
  ASSERT_TRUE(this->d_.nft.sync(kTenant, want).ok());
  EXPECT_EQ(this->table(kTenant), want);
  EXPECT_FALSE(this->table("").has_value());  // scopes are apart
  ASSERT_TRUE(this->d_.nft.sync(kTenant, tableOf({})).ok());
  EXPECT_EQ(this->table(kTenant), tableOf({}));
}

TYPED_TEST_P(NftContract, ForeignTablesAreLeftAlone) {
  this->world_->addForeignTable("");
  const auto want = tableOf({mapping(Protocol::Tcp, "22001", "100.64.0.1", std::nullopt)});
  ASSERT_TRUE(this->d_.nft.sync("", want).ok());
  ASSERT_TRUE(this->d_.nft.remove("").ok());
  EXPECT_TRUE(this->world_->hasForeignTable(""));
}

TYPED_TEST_P(NftContract, AMissingNamespaceIsAnError) {
  auto r = this->d_.nft.sync("nope", tableOf({}));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().message.empty());
  EXPECT_FALSE(this->d_.nft.observe("nope").ok());
}

REGISTER_TYPED_TEST_SUITE_P(NftContract, HostTableSyncsIdempotentlyChangesAndGoes,
                            NamespaceTableMapsToTargetPorts, ForeignTablesAreLeftAlone,
                            AMissingNamespaceIsAnError);

// --- WireGuard ------------------------------------------------------------------------------

inline WgKey key(const char* base64) {
  return *WgKey::parseBase64(base64);
}

inline core::WireGuardTarget wireguard(std::vector<core::PeerTarget> peers = {}) {
  core::WireGuardTarget t;
  t.ns = kTenant;
  t.ifname = "wg-ct";
  t.listenPort = 51900;
  t.addresses = {prefix("10.50.0.1/24")};
  t.peers = std::move(peers);
  return t;
}

inline core::PeerTarget peer(const char* name, const char* publicKey, const char* allowed,
                             std::optional<uint16_t> keepalive) {
  core::PeerTarget p;
  p.name = name;
  p.publicKey = key(publicKey);
  p.allowedIps = {prefix(allowed)};
  p.keepalive = keepalive;
  return p;
}

inline const char* const kPeerA = "SHHsVqUgFYpHHsIinKzbT7S/OKgFVHI+7uCHG/YtqWY=";
inline const char* const kPeerB = "SwRvWl6Lc2fBo+GiJ8dYdtcr1owQjv3KiDS8E/88fAw=";

template <class W>
class WireGuardContract : public DriverContract<W> {
 protected:
  core::WireGuardObservation seen() {
    auto o = this->d_.wireguard.observe(kTenant);
    EXPECT_TRUE(o.ok()) << o.error().message;
    return o.ok() ? *o : core::WireGuardObservation{};
  }
  // Public key, listen port and peers (handshakes and counters left out).
  static std::vector<std::pair<WgKey, std::vector<IpPrefix>>> peersOf(
      const core::WireGuardObservation& o) {
    std::vector<std::pair<WgKey, std::vector<IpPrefix>>> out;
    if (o.device) {
      for (const auto& p : o.device->peers) {
        out.emplace_back(p.publicKey, p.allowedIps);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};
TYPED_TEST_SUITE_P(WireGuardContract);

TYPED_TEST_P(WireGuardContract, EnsureMakesKeyAndInterfaceIdempotently) {
  this->makeTenant(false);
  std::optional<WgKey> first;
  for (int i = 0; i < 2; ++i) {
    auto r = this->d_.wireguard.ensure(wireguard());
    ASSERT_TRUE(r.ok()) << r.error().message;
    const auto o = this->seen();
    ASSERT_TRUE(o.storedPublicKey.has_value());
    ASSERT_TRUE(o.device.has_value());
    EXPECT_EQ(o.device->publicKey, o.storedPublicKey);
    EXPECT_EQ(o.device->listenPort, 51900);
    EXPECT_TRUE(o.device->peers.empty());
    EXPECT_TRUE(o.keyError.empty());
    const auto links = this->links(kTenant);
    const core::LinkView* link = findLink(links, "wg-ct");
    ASSERT_NE(link, nullptr);
    EXPECT_TRUE(link->up);
    EXPECT_EQ(link->addresses, std::vector<IpPrefix>{prefix("10.50.0.1/24")});
    if (i == 0) {
      first = o.storedPublicKey;
    } else {
      EXPECT_EQ(o.storedPublicKey, first);  // the kept key, not a new one
    }
  }
}

TYPED_TEST_P(WireGuardContract, NoKeyIsMadeWhereNoneMayBe) {
  this->makeTenant(false);
  core::WireGuardTarget t = wireguard();
  t.allowNewKey = false;
  auto r = this->d_.wireguard.ensure(t);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().message.empty());
  const auto o = this->seen();
  EXPECT_FALSE(o.storedPublicKey.has_value());
  EXPECT_FALSE(o.device.has_value());
}

TYPED_TEST_P(WireGuardContract, SyncPeersConvergesIdempotently) {
  this->makeTenant(false);
  ASSERT_TRUE(this->d_.wireguard.ensure(wireguard()).ok());
  using Peers = std::vector<std::pair<WgKey, std::vector<IpPrefix>>>;
  const std::vector<std::pair<std::vector<core::PeerTarget>, Peers>> steps = {
      {{peer("a", kPeerA, "10.50.0.2/32", 25)}, {{key(kPeerA), {prefix("10.50.0.2/32")}}}},
      {{peer("a", kPeerA, "10.50.0.2/32", 25)}, {{key(kPeerA), {prefix("10.50.0.2/32")}}}},
      {{peer("a", kPeerA, "10.50.1.0/24", std::nullopt), peer("b", kPeerB, "10.50.0.3/32", 25)},
       {{key(kPeerA), {prefix("10.50.1.0/24")}}, {key(kPeerB), {prefix("10.50.0.3/32")}}}},
      {{}, {}},
  };
  for (const auto& [peers, want] : steps) {
    Peers expected = want;
    std::sort(expected.begin(), expected.end());
    auto r = this->d_.wireguard.syncPeers(wireguard(peers));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(this->peersOf(this->seen()), expected);
  }
}

TYPED_TEST_P(WireGuardContract, RemoveTakesTheInterfaceAndKeepsTheKey) {
  this->makeTenant(false);
  ASSERT_TRUE(this->d_.wireguard.ensure(wireguard()).ok());
  auto r = this->d_.wireguard.remove(kTenant);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto o = this->seen();
  EXPECT_FALSE(o.device.has_value());
  EXPECT_TRUE(o.storedPublicKey.has_value());
  EXPECT_FALSE(hasLink(this->links(kTenant), "wg-ct"));
}

REGISTER_TYPED_TEST_SUITE_P(WireGuardContract, EnsureMakesKeyAndInterfaceIdempotently,
                            NoKeyIsMadeWhereNoneMayBe, SyncPeersConvergesIdempotently,
                            RemoveTakesTheInterfaceAndKeepsTheKey);

}  // namespace edgeplane::contract
