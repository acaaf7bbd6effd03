// Lab tests of the nftables observation cache against the real kernel: what a sync writes is
// what the kernel then holds, a cached entry is used while the namespace's ruleset generation
// holds and never after a commit by anyone, and a namespace made again is not the old one.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "reconciler/system/cache_file.h"
#include "reconciler/system/kernel_drivers.h"
#include "reconciler/system/netns.h"
#include "reconciler/system/nft_observation_cache.h"
#include "reconciler/system/program_identity.h"
#include "tests/support/command.h"
#include "tests/support/nft_views.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::sys {
namespace {

namespace fs = std::filesystem;
using testing::mapping;
using testing::runCommand;
using testing::tableOf;

const std::string kScope = "cachelab";

core::NftTableView hostTable() {
  return tableOf({mapping(Protocol::Tcp, "22001", "100.64.0.1", std::nullopt),
                  mapping(Protocol::Tcp, "30000-30010", "100.64.0.3", std::nullopt),
                  mapping(Protocol::Udp, "5300-5301", "100.64.0.1", std::nullopt)});
}

core::NftTableView tenantTable() {
  return tableOf({mapping(Protocol::Tcp, "22001", "10.50.0.12", 22),
                  mapping(Protocol::Tcp, "22002", "10.50.0.13", 2222),
                  mapping(Protocol::Udp, "5300", "10.50.0.12", 53)});
}

std::string nftIn(const std::string& scope) {
  return scope.empty() ? "nft " : "ip netns exec " + scopeNetns(scope) + " nft ";
}

class NftCacheLab : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (runCommand("nft --version").status != 0) {
      GTEST_SKIP() << "needs nft";
    }
    ASSERT_TRUE(fs::create_directory(state_));
    if (!scope().empty()) {
      ASSERT_TRUE(createNamedNetns(scopeNetns(scope())).ok());
    }
  }
  void TearDown() override {
    runCommand(nftIn(scope()) + "delete table ip edgeplane");
    runCommand(nftIn(scope()) + "delete table ip foreign");
    if (!scope().empty()) {
      (void)deleteNamedNetns(scopeNetns(scope()));
    }
  }
  const std::string& scope() const { return GetParam(); }
  core::NftTableView want() const { return scope().empty() ? hostTable() : tenantTable(); }

  // What the kernel holds, read without a cache.
  NftObservation truth() {
    KernelNft fresh;
    auto seen = fresh.observe(scope());
    EXPECT_TRUE(seen.ok()) << seen.error().message;
    return seen.ok() ? *seen : NftObservation();
  }
  NftObservation cachedObserve() {
    auto seen = nft_.observe(scope());
    EXPECT_TRUE(seen.ok()) << seen.error().message;
    return seen.ok() ? *seen : NftObservation();
  }
  // The key an entry written now would have.
  NftObservationKey keyNow() {
    auto sock = NftSocket::open(scopeNetns(scope()));
    EXPECT_TRUE(sock.ok());
    auto cookie = sock->netnsCookie();
    auto generation = sock->generation();
    EXPECT_TRUE(cookie.ok() && generation.ok());
    return {programIdentity(), bootId(), cookie.ok() ? *cookie : 0,
            generation.ok() ? *generation : 0};
  }
  fs::path entry() const {
    return state_ / "nft-observed" / (scope().empty() ? "host" : "ns-" + scope());
  }
  // An entry of this host (sealed under its cache key) that says `seen`.
  void plant(const core::NftTableView& seen) {
    auto key = cacheKeyIn(state_);
    ASSERT_TRUE(key.ok()) << key.error().message;
    writeChecked(entry(), encodeNftObservation(keyNow(), seen), *key);
  }

  testing::TempDir tmp_;
  fs::path state_ = tmp_.path() / "state";
  KernelNft nft_{(state_ / "nft-observed").string()};
};

TEST_P(NftCacheLab, WhatASyncWritesIsWhatTheKernelHolds) {
  ASSERT_FALSE(bootId().empty());
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  NftObservationCache cache((state_ / "nft-observed").string());
  auto written = cache.find(scope(), keyNow());
  ASSERT_TRUE(written.has_value()) << "no entry at the generation after the sync";
  EXPECT_EQ(*written, truth());
  EXPECT_EQ(*written, NftObservation(want()));
  // An element change (not a replace): one added, one removed.
  core::NftTableView changed = want();
  changed.mappings.erase(changed.mappings.begin());
  changed.mappings.push_back(mapping(Protocol::Udp, "6000", "100.64.0.5",
                                     scope().empty() ? std::nullopt : std::optional<uint16_t>(60)));
  std::sort(changed.mappings.begin(), changed.mappings.end());
  ASSERT_TRUE(nft_.sync(scope(), changed).ok());
  written = cache.find(scope(), keyNow());
  ASSERT_TRUE(written.has_value());
  EXPECT_EQ(*written, truth());
  EXPECT_EQ(cachedObserve(), truth());
}

// The entry is what observe returns while the generation holds (here one planted with another
// element to tell it apart), and no longer once anyone commits anything in the namespace.
TEST_P(NftCacheLab, AnEntryIsUsedUntilAnyCommit) {
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  core::NftTableView planted = want();
  planted.mappings.push_back(mapping(Protocol::Udp, "9999", "100.64.0.9", std::nullopt));
  plant(planted);
  // This object kept what its sync wrote; another run reads the file.
  EXPECT_EQ(cachedObserve(), NftObservation(want()));
  KernelNft next{(state_ / "nft-observed").string()};
  auto seen = next.observe(scope());
  ASSERT_TRUE(seen.ok()) << seen.error().message;
  EXPECT_EQ(*seen, NftObservation(planted));
  // A commit that does not touch our table: the generation moves, the table is read again.
  ASSERT_EQ(runCommand(nftIn(scope()) + "add table ip foreign").status, 0);
  EXPECT_EQ(cachedObserve(), NftObservation(want()));
  // Another program's element in our map is seen, and the entry follows it.
  const std::string element =
      scope().empty() ? "{ 22999 : 100.64.0.9 }" : "{ 22999 : 10.50.0.9 . 80 }";
  ASSERT_EQ(runCommand(nftIn(scope()) + "add element ip edgeplane fwd_tcp " + element).status, 0);
  const NftObservation now = truth();
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->mappings.size(), want().mappings.size() + 1);
  EXPECT_EQ(cachedObserve(), now);
  EXPECT_EQ(cachedObserve(), now);  // the entry it wrote
  // The table deleted by hand: absent, cached as absent.
  ASSERT_EQ(runCommand(nftIn(scope()) + "delete table ip edgeplane").status, 0);
  EXPECT_EQ(cachedObserve(), NftObservation());
  EXPECT_EQ(cachedObserve(), NftObservation());
}

// A namespace deleted and made again under the same name is another namespace (another
// cookie): its old entry is not used, whatever the generations.
TEST_P(NftCacheLab, ANamespaceMadeAgainIsNotTheOldOne) {
  if (scope().empty()) {
    GTEST_SKIP() << "the host's namespace is not made again";
  }
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  EXPECT_EQ(cachedObserve(), NftObservation(want()));
  ASSERT_TRUE(fs::exists(entry()));
  ASSERT_TRUE(deleteNamedNetns(scopeNetns(scope())).ok());
  ASSERT_TRUE(createNamedNetns(scopeNetns(scope())).ok());
  EXPECT_EQ(cachedObserve(), NftObservation());
}

// A sync diffs against the entry while the generation holds, instead of dumping the table
// again: here a planted entry claims an element the kernel does not hold, so the first batch
// the sync builds deletes it. The kernel, which has no such element, refuses that batch; the
// sync then drops the entry, reads the table and finds nothing to do.
TEST_P(NftCacheLab, ASyncDiffsAgainstTheEntryWhileTheGenerationHolds) {
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  core::NftTableView planted = want();
  const core::PortMapping extra =
      mapping(Protocol::Udp, "9999", scope().empty() ? "100.64.0.9" : "10.50.0.9",
              scope().empty() ? std::nullopt : std::optional<uint16_t>(99));
  planted.mappings.push_back(extra);
  std::sort(planted.mappings.begin(), planted.mappings.end());
  plant(planted);
  KernelNft next{(state_ / "nft-observed").string()};  // another run
  const Result<void> synced = next.sync(scope(), want());
  EXPECT_TRUE(synced.ok()) << synced.error().message;
  ASSERT_EQ(next.syncs().size(), 2u);
  ASSERT_EQ(next.syncs()[0].ops.size(), 1u);
  EXPECT_EQ(next.syncs()[0].ops[0].kind, NftBatchOp::Kind::DeleteElement);
  EXPECT_EQ(next.syncs()[1].change, NftChange::Kind::None);
  EXPECT_EQ(truth(), NftObservation(want()));
  NftObservationCache cache((state_ / "nft-observed").string());
  EXPECT_NE(cache.find(scope(), keyNow()), std::optional<NftObservation>(planted));
}

// After anyone else's commit the entry is stale: the sync reads the table again and converges
// it, the other program's element removed.
TEST_P(NftCacheLab, ASyncAfterAnotherProgramsCommitReadsTheTableAgain) {
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  EXPECT_EQ(cachedObserve(), NftObservation(want()));
  const std::string element =
      scope().empty() ? "{ 22999 : 100.64.0.9 }" : "{ 22999 : 10.50.0.9 . 80 }";
  ASSERT_EQ(runCommand(nftIn(scope()) + "add element ip edgeplane fwd_tcp " + element).status, 0);
  ASSERT_NE(truth(), NftObservation(want()));
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  EXPECT_EQ(truth(), NftObservation(want()));
  EXPECT_EQ(cachedObserve(), NftObservation(want()));
}

// A table of the other role's shape (a namespace's in the host, a host's in a namespace) is
// not this scope's table, however intact: observed as altered, so the planner replaces it.
TEST_P(NftCacheLab, ATableOfTheOtherRoleIsNotIntact) {
  // The other role's whole table, made by a sync where that role belongs (a namespace for the
  // host's scope, the host for a namespace's), then listed and loaded here with nft.
  const std::string from = scope().empty() ? kScope + "-src" : std::string();
  if (!from.empty()) {
    ASSERT_TRUE(createNamedNetns(scopeNetns(from)).ok());
  }
  KernelNft otherRole;
  ASSERT_TRUE(otherRole.sync(from, tableOf({})).ok());
  const std::string dump = runCommand(nftIn(from) + "list table ip edgeplane").output;
  runCommand(nftIn(from) + "delete table ip edgeplane");
  if (!from.empty()) {
    (void)deleteNamedNetns(scopeNetns(from));
  }
  ASSERT_NE(dump.find("fwd_tcp"), std::string::npos) << dump;
  const fs::path file = tmp_.path() / "other.nft";
  std::ofstream(file) << dump;
  ASSERT_EQ(runCommand(nftIn(scope()) + "-f " + file.string()).status, 0) << dump;
  const NftObservation seen = truth();
  ASSERT_TRUE(seen.has_value());
  EXPECT_FALSE(seen->intact);
  // And a sync replaces it with this scope's own.
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  EXPECT_EQ(truth(), NftObservation(want()));
}

// Removing the table drops its entry.
TEST_P(NftCacheLab, RemovingTheTableDropsItsEntry) {
  ASSERT_TRUE(nft_.sync(scope(), want()).ok());
  ASSERT_TRUE(fs::exists(entry()));
  ASSERT_TRUE(nft_.remove(scope()).ok());
  EXPECT_FALSE(fs::exists(entry()));
  EXPECT_EQ(cachedObserve(), NftObservation());
}

INSTANTIATE_TEST_SUITE_P(Scopes, NftCacheLab, ::testing::Values(std::string(), kScope),
                         [](const auto& p) { return p.param.empty() ? "Host" : "Tenant"; });

}  // namespace
}  // namespace edgeplane::sys
