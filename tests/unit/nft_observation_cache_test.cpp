// The nftables observation cache: an entry reads back as written for its own key only, anything
// malformed is a miss, and the files are 0600 in a 0700 directory inside the state directory.
#include "reconciler/system/nft_observation_cache.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/dead_pid.h"
#include "tests/support/nft_views.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::sys {
namespace {

namespace fs = std::filesystem;
using testing::mapping;
using testing::tableOf;

NftObservationKey key() {
  return {"0.1.0 build abc", "5b7d6a0e-3c1f-4a55-9d7e-0123456789ab", 4097, 12};
}

// Every kind of line: TCP and UDP, single ports and ranges, with and without a target port.
core::NftTableView table() {
  return tableOf({mapping(Protocol::Tcp, "22", "100.64.0.1", std::nullopt),
                  mapping(Protocol::Tcp, "443", "10.50.0.10", 8443),
                  mapping(Protocol::Tcp, "30000-30010", "10.50.0.11", 30000),
                  mapping(Protocol::Udp, "53", "100.64.0.3", std::nullopt),
                  mapping(Protocol::Udp, "51820-51830", "10.50.0.12", 51820)});
}

TEST(NftObservationCodec, EveryObservationReadsBackAsWritten) {
  core::NftTableView altered = table();
  altered.intact = false;
  for (const NftObservation& seen : {NftObservation(), NftObservation(core::NftTableView{}),
                                     NftObservation(table()), NftObservation(altered)}) {
    auto back = decodeNftObservation(encodeNftObservation(key(), seen), key());
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, seen);
  }
}

TEST(NftObservationCodec, AnotherKeyIsAMiss) {
  const std::string text = encodeNftObservation(key(), table());
  NftObservationKey k = key();
  k.program += "x";
  EXPECT_FALSE(decodeNftObservation(text, k).has_value()) << "another build";
  k = key();
  k.bootId[0] = '6';
  EXPECT_FALSE(decodeNftObservation(text, k).has_value()) << "another boot";
  k = key();
  k.netnsCookie += 1;
  EXPECT_FALSE(decodeNftObservation(text, k).has_value()) << "another namespace";
  k = key();
  k.generation += 1;
  EXPECT_FALSE(decodeNftObservation(text, k).has_value()) << "another generation";
  k.generation -= 1;
  EXPECT_TRUE(decodeNftObservation(text, k).has_value());
}

TEST(NftObservationCodec, EveryTruncationAndTrailingBytesAreAMiss) {
  const std::string text = encodeNftObservation(key(), table());
  for (size_t n = 0; n < text.size(); ++n) {
    EXPECT_FALSE(decodeNftObservation(text.substr(0, n), key()).has_value()) << n << " bytes";
  }
  EXPECT_FALSE(decodeNftObservation(text + "tcp 1 10.0.0.1 -\n", key()).has_value());
  EXPECT_FALSE(decodeNftObservation(text + "\n", key()).has_value());
}

TEST(NftObservationCodec, ABadLineIsAMiss) {
  const std::string good = encodeNftObservation(key(), table());
  const std::string line = "tcp 443 10.50.0.10 8443\n";
  ASSERT_NE(good.find(line), std::string::npos);
  for (const char* bad :
       {"sctp 443 10.50.0.10 8443\n", "tcp 0x1bb 10.50.0.10 8443\n", "tcp 443 10.50.0 8443\n",
        "tcp 443 10.50.0.10 70000\n", "tcp 443 10.50.0.10\n", "tcp 443  10.50.0.10 8443\n",
        "tcp 443 10.50.0.10 8443 x\n", "tcp 443 10.50.0.10 +8443\n",
        // out of order: observations are written sorted
        "tcp 40000 10.50.0.10 8443\n"}) {
    std::string text = good;
    text.replace(text.find(line), line.size(), bad);
    EXPECT_FALSE(decodeNftObservation(text, key()).has_value()) << bad;
  }
  std::string counted = good;
  counted.replace(counted.find("intact 5"), 8, "intact 4");
  EXPECT_FALSE(decodeNftObservation(counted, key()).has_value()) << "a count that does not match";
  counted.replace(counted.find("intact 4"), 8, "intact 9999999999999");
  EXPECT_FALSE(decodeNftObservation(counted, key()).has_value()) << "a count past the text";
}

class NftObservationCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::create_directory(state_));
    ASSERT_EQ(::chmod(state_.c_str(), 0700), 0);
  }
  testing::TempDir tmp_;
  fs::path state_ = tmp_.path() / "state";
  fs::path dir_ = state_ / "nft-observed";
};

TEST_F(NftObservationCacheTest, AnEntryIsFoundForItsScopeAndKeyOnly) {
  NftObservationCache cache(dir_.string());
  EXPECT_FALSE(cache.find("", key()).has_value());
  cache.store("", key(), table());
  cache.store("blue", key(), NftObservation());
  auto host = cache.find("", key());
  ASSERT_TRUE(host.has_value());
  EXPECT_EQ(*host, NftObservation(table()));
  auto blue = cache.find("blue", key());
  ASSERT_TRUE(blue.has_value());
  EXPECT_EQ(*blue, NftObservation());
  NftObservationKey later = key();
  later.generation += 1;
  EXPECT_FALSE(cache.find("", later).has_value());
  EXPECT_FALSE(cache.find("red", key()).has_value());
  cache.forget("blue");
  EXPECT_FALSE(cache.find("blue", key()).has_value());
  EXPECT_FALSE(fs::exists(dir_ / "ns-blue"));
}

// A run takes an entry for what the kernel holds and skips the dump, so an entry planted by
// whoever can write the state directory but not read keys/ (the proxy) would hide a forward
// the kernel still has (it would never be removed) or one it lacks. Entries are sealed under the
// host's cache key: one written with the public codec alone is a miss, and so is one read under
// another key.
TEST_F(NftObservationCacheTest, AnEntryPlantedWithoutTheKeyIsAMiss) {
  NftObservationCache writer(dir_.string());
  writer.store("blue", key(), table());
  ASSERT_TRUE(fs::exists(dir_ / "ns-blue"));
  std::ofstream(dir_ / "ns-blue", std::ios::binary | std::ios::trunc)
      << encodeNftObservation(key(), NftObservation(core::NftTableView{}));
  NftObservationCache reader(dir_.string());
  EXPECT_FALSE(reader.find("blue", key()).has_value());
  // Stored again by this host: found, by a reader of this state directory only.
  reader.store("blue", key(), table());
  NftObservationCache again(dir_.string());
  ASSERT_TRUE(again.find("blue", key()).has_value());
  const fs::path other = tmp_.path() / "other";
  ASSERT_TRUE(fs::create_directory(other));
  ASSERT_EQ(::chmod(other.c_str(), 0700), 0);
  fs::copy(dir_, other / "nft-observed");
  NftObservationCache stranger((other / "nft-observed").string());
  EXPECT_FALSE(stranger.find("blue", key()).has_value());
}

TEST_F(NftObservationCacheTest, FilesAreOwnerOnly) {
  NftObservationCache cache(dir_.string());
  cache.store("blue", key(), table());
  struct stat st {};
  ASSERT_EQ(::stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((dir_ / "ns-blue").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(NftObservationCacheTest, NoStateDirectoryNothingWritten) {
  NftObservationCache cache((tmp_.path() / "absent" / "nft-observed").string());
  cache.store("", key(), table());
  EXPECT_FALSE(fs::exists(tmp_.path() / "absent"));
  EXPECT_FALSE(cache.find("", key()).has_value());
  NftObservationCache none("");
  none.store("", key(), table());
  EXPECT_FALSE(none.find("", key()).has_value());
}

// A run killed while writing an entry leaves <file>.tmp.<its pid>: the next run's first look
// removes those of processes that no longer exist and keeps a live one's.
TEST_F(NftObservationCacheTest, TheTemporaryFilesOfDeadRunsAreRemoved) {
  NftObservationCache writer(dir_.string());
  writer.store("", key(), table());
  const pid_t dead = testing::deadPid();
  const fs::path deadTmp = dir_ / ("ns-blue.tmp." + std::to_string(dead));
  const fs::path liveTmp = dir_ / ("host.tmp." + std::to_string(::getppid()));
  std::ofstream(deadTmp) << "half an entry";
  std::ofstream(liveTmp) << "a concurrent run's entry";
  NftObservationCache reader(dir_.string());
  EXPECT_TRUE(reader.find("", key()).has_value());
  EXPECT_FALSE(fs::exists(deadTmp));
  EXPECT_TRUE(fs::exists(liveTmp));
}

}  // namespace
}  // namespace edgeplane::sys
