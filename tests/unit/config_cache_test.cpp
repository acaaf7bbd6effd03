// The validated-config cache: a hit for unchanged files, a miss for changed files, another
// program or a corrupt or foreign entry, and an entry that holds no key material.
#include "reconciler/cli/config_cache.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>

#include "reconciler/system/program_identity.h"
#include "schema/desired_codec.h"
#include "schema/loader.h"
#include "tests/support/dead_pid.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void writeFile(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

class ConfigCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // examples/full (every kind of the contract) and a peer with a preshared key file.
    fs::copy(fs::path(EDGEPLANE_SOURCE_DIR) / "examples/full", config_,
             fs::copy_options::recursive);
    psk_ = dir_.path() / "vm-9.psk";
    writeFile(psk_, kPskText);
    writeFile(config_ / "psk.toml",
              "[[namespace]]\nname = \"psk\"\n[namespace.wireguard]\naddress = "
              "[\"10.70.0.1/24\"]\nlisten_port = 51999\n[[namespace.peer]]\nname = \"vm-9\"\n"
              "public_key = \"hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y=\"\nallowed_ips = "
              "[\"10.70.0.9/32\"]\npreshared_key_file = \"" +
                  psk_.string() + "\"\n");
    ASSERT_TRUE(fs::create_directory(state_));
    ASSERT_EQ(::chmod(state_.c_str(), 0700), 0);
    auto cache = cli::configCacheIn(state_);
    ASSERT_TRUE(cache.has_value());
    cache_ = *cache;
  }

  Desired load(const fs::path& root, const std::optional<cli::ConfigCache>& cache,
               cli::CacheUse& use) {
    Diagnostics diags;
    cli::CachedLoad loaded = cli::loadAndValidateCached(root, cache, diags, &use);
    EXPECT_EQ(diags.format(), "");
    return *loaded.desired;  // the writes are complete once `loaded` is gone
  }
  Desired load(cli::CacheUse& use) { return load(config_, cache_, use); }

  // What a run without the cache loads.
  std::string parsed(const fs::path& root) {
    Diagnostics diags;
    Desired d = loadAndValidate(root, diags);
    EXPECT_EQ(diags.format(), "");
    return encodeDesired(d, "");
  }

  static constexpr const char* kPskText = "c2VjcmV0LXByZXNoYXJlZC1rZXktbWF0ZXJpYWwtMzI=\n";
  testing::TempDir dir_;
  fs::path config_ = dir_.path() / "config";
  fs::path state_ = dir_.path() / "state";
  fs::path psk_;
  cli::ConfigCache cache_;
};

TEST_F(ConfigCacheTest, AnUnchangedConfigIsAHitWithWhatParsingGives) {
  cli::CacheUse use = cli::CacheUse::None;
  Desired first = load(use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  struct stat st {};
  ASSERT_EQ(::stat(cache_.file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Desired again = load(use);
  EXPECT_EQ(use, cli::CacheUse::Hit);
  // Every field, source locations included, as parsing the files gives them.
  EXPECT_EQ(encodeDesired(again, ""), parsed(config_));
  EXPECT_EQ(encodeDesired(again, ""), encodeDesired(first, ""));
  ASSERT_FALSE(again.forwards.empty());
  EXPECT_EQ(again.forwards[0].origin.table.file.str().rfind(config_.string() + "/", 0), 0u);
  // The decoded locations of one file share its name, as the loader's do.
  const Origin& o = again.forwards[0].origin;
  ASSERT_TRUE(o.isLoaded("name"));
  EXPECT_EQ(&o.at("name").file.str(), &o.table.file.str());
}

// Encoding only reads the Desired: the cache entry is encoded on another thread while the run
// reads the same Desired, so a write back, even of the value already there, would be a data
// race. A Desired on a read-only page encodes (a write would end the child with SIGSEGV).
TEST(DesiredCodecWrites, EncodingOnlyReadsTheDesired) {
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t len = (sizeof(Desired) + page - 1) / page * page;
  EXPECT_EXIT(
      {
        void* mem =
            ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
          std::exit(2);
        }
        auto* d = new (mem) Desired();
        d->fleet.emplace();
        d->fleet->wildcard = true;
        d->fleet->acme_timeout = Duration(90000);
        if (::mprotect(mem, len, PROT_READ) != 0) {
          std::exit(3);
        }
        std::exit(encodeDesired(*d, "").empty() ? 4 : 0);
      },
      ::testing::ExitedWithCode(0), "");
}

// A miss hands back the validated config while its entry is encoded and written on another
// thread: the entry is complete once the writes are waited for (or, moved elsewhere, once that
// holder is gone), and the next load hits it with what the first one gave.
TEST_F(ConfigCacheTest, TheEntryIsWrittenWhileTheCallerGoesOn) {
  cli::CacheUse use = cli::CacheUse::None;
  Diagnostics diags;
  cli::CachedLoad first = cli::loadAndValidateCached(config_, cache_, diags, &use);
  ASSERT_EQ(diags.format(), "");
  EXPECT_EQ(use, cli::CacheUse::Miss);
  const std::string given = encodeDesired(*first.desired, "");  // usable while it is written
  {
    cli::CacheWrites moved = std::move(first.writes);
    first.writes.wait();  // moved from: nothing left to wait for
  }
  ASSERT_TRUE(fs::exists(cache_.file));
  EXPECT_EQ(encodeDesired(load(use), ""), given);
  EXPECT_EQ(use, cli::CacheUse::Hit);

  // A config with diagnostics is given back with them, and nothing is written for it.
  fs::remove(cache_.file);
  writeFile(config_ / "bad.toml", "[[forward]]\nname = 3\n");
  Diagnostics bad;
  cli::CachedLoad refused = cli::loadAndValidateCached(config_, cache_, bad, &use);
  refused.writes.wait();
  EXPECT_FALSE(bad.empty());
  EXPECT_FALSE(fs::exists(cache_.file));
}

TEST_F(ConfigCacheTest, TheSameFilesElsewhereHitWithTheirOwnPaths) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  const fs::path copy = dir_.path() / "exported";
  fs::copy(config_, copy, fs::copy_options::recursive);
  Desired d = load(copy, cache_, use);
  EXPECT_EQ(use, cli::CacheUse::Hit);
  EXPECT_EQ(encodeDesired(d, ""), parsed(copy));
}

TEST_F(ConfigCacheTest, AChangedFileOrAnAddedOneIsAMiss) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  std::string psk = readFile(config_ / "psk.toml");
  psk.replace(psk.find("51999"), 5, "51998");
  writeFile(config_ / "psk.toml", psk);
  Desired d = load(use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_EQ(encodeDesired(d, ""), parsed(config_));
  load(use);
  EXPECT_EQ(use, cli::CacheUse::Hit);

  writeFile(config_ / "more.toml", "[[host]]\nname = \"edge-9\"\n");
  d = load(use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_EQ(encodeDesired(d, ""), parsed(config_));
}

TEST_F(ConfigCacheTest, ACorruptEntryIsIgnoredAndReplaced) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  const std::string good = readFile(cache_.file);
  const std::string expected = parsed(config_);
  // A flipped byte in the body, a truncated entry, an empty one, garbage.
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;
  for (const std::string& bad :
       {flipped, good.substr(0, good.size() - 1), good.substr(0, good.size() / 2), std::string(),
        std::string("edgeplane validated config\n")}) {
    writeFile(cache_.file, bad);
    Desired d = load(use);
    EXPECT_EQ(use, cli::CacheUse::Miss);
    EXPECT_EQ(encodeDesired(d, ""), expected);
    EXPECT_EQ(readFile(cache_.file), good);  // rewritten
  }
}

// A run killed while writing its entry leaves <file>.tmp.<its pid>: the next run removes the
// temporary files of processes that no longer exist, on a hit as on a miss, and keeps those of
// a live one (a concurrent plan writing its own).
TEST_F(ConfigCacheTest, TheTemporaryFilesOfDeadRunsAreRemoved) {
  const pid_t dead = testing::deadPid();
  const fs::path deadTmp = cache_.file.string() + ".tmp." + std::to_string(dead);
  const fs::path liveTmp = cache_.file.string() + ".tmp." + std::to_string(::getppid());
  const fs::path other = state_ / "validated-config.tmp.x1";
  for (cli::CacheUse want : {cli::CacheUse::Miss, cli::CacheUse::Hit}) {
    writeFile(deadTmp, "half an entry");
    writeFile(liveTmp, "a concurrent run's entry");
    writeFile(other, "not a pid");
    cli::CacheUse use = cli::CacheUse::None;
    load(use);
    EXPECT_EQ(use, want);
    EXPECT_FALSE(fs::exists(deadTmp))
        << "after a " << (want == cli::CacheUse::Hit ? "hit" : "miss");
    EXPECT_TRUE(fs::exists(liveTmp));
    EXPECT_TRUE(fs::exists(other));
  }
}

TEST_F(ConfigCacheTest, AForeignEntryIsIgnored) {
  cli::CacheUse use = cli::CacheUse::None;
  // An intact entry, but for other files.
  const fs::path other = dir_.path() / "other";
  fs::create_directory(other);
  writeFile(other / "a.toml", "[[host]]\nname = \"edge-9\"\n");
  load(other, cache_, use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  Desired d = load(use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_EQ(encodeDesired(d, ""), parsed(config_));
}

TEST_F(ConfigCacheTest, AnotherProgramVersionIsAMiss) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  cli::ConfigCache newer = cache_;
  newer.program += " (rebuilt)";
  Desired d = load(config_, newer, use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_EQ(encodeDesired(d, ""), parsed(config_));
  load(config_, newer, use);
  EXPECT_EQ(use, cli::CacheUse::Hit);
  load(use);  // and back: the entry is the newer program's now
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_NE(sys::programIdentity().find(" build "), std::string::npos);
}

// The checksum entries ended with before they were authenticated: a public function of the
// bytes (murmur-style mixing), which anyone who reads the source can compute.
std::string unkeyedChecksum(std::string_view bytes) {
  constexpr uint64_t kMul1 = 0x87c37b91114253d5ULL;
  constexpr uint64_t kMul2 = 0x4cf5ad432745937fULL;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ bytes.size();
  auto mix = [&](uint64_t w) {
    w *= kMul1;
    w = (w << 31) | (w >> 33);
    w *= kMul2;
    h ^= w;
    h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
  };
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, 8);
    mix(w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  mix(tail);
  for (uint64_t m : {0xff51afd7ed558ccdULL, 0xc4ceb9fe1a85ec53ULL}) {
    h ^= h >> 33;
    h *= m;
  }
  h ^= h >> 33;
  std::string out(8, '\0');
  for (size_t b = 0; b < 8; ++b) {
    out[b] = static_cast<char>(h >> (8 * b));
  }
  return out;
}

// Whoever can write the state directory but cannot read keys/ (the proxy: its unit hides keys/,
// and it parses the Internet's TLS and HTTP) must not be able to make the reconciler apply a
// desired state of its choosing by planting an entry for the current files. Here the planted
// entry is the genuine one with a site's hostname changed, sealed as the
// format is public: it is a miss, and the files are parsed.
TEST_F(ConfigCacheTest, AnEntryPlantedWithoutTheKeyIsNotUsed) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  const std::string good = readFile(cache_.file);
  const std::string expected = parsed(config_);
  const size_t at = good.find("www.example.com");
  ASSERT_NE(at, std::string::npos);
  // The seal stripped whatever its length (8 bytes unkeyed; 32 authenticated), then resealed.
  for (size_t sealBytes : {size_t{8}, size_t{32}}) {
    std::string forged = good.substr(0, good.size() - sealBytes);
    forged.replace(at, 15, "www.attackr.com");
    forged += unkeyedChecksum(forged);
    writeFile(cache_.file, forged);
    Desired d = load(use);
    EXPECT_EQ(use, cli::CacheUse::Miss) << sealBytes;
    EXPECT_TRUE(encodeDesired(d, "") == expected);
    EXPECT_EQ(encodeDesired(d, "").find("attackr"), std::string::npos);
  }
}

// The key is the host's own (keys/cache.mac, 0600 in the 0700 keys/): another state
// directory's key, or another host's, seals entries this one does not take.
TEST_F(ConfigCacheTest, AnEntrySealedUnderAnotherKeyIsAMiss) {
  struct stat st {};
  ASSERT_EQ(::stat((state_ / "keys/cache.mac").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((state_ / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  cli::ConfigCache stranger = cache_;
  stranger.key.bytes[0] ^= 1;
  cli::CacheUse use = cli::CacheUse::None;
  load(config_, stranger, use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  load(config_, stranger, use);
  EXPECT_EQ(use, cli::CacheUse::Hit);
  Desired d = load(use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_TRUE(encodeDesired(d, "") == parsed(config_));
  // The same key again, the next time: a hit.
  auto again = cli::configCacheIn(state_);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->key.bytes, cache_.key.bytes);
  load(config_, again, use);
  EXPECT_EQ(use, cli::CacheUse::Hit);
}

// Without a usable key the caches are off, which makes every run slower: said once per process
// and reason, not silently (a review's finding).
TEST_F(ConfigCacheTest, CachesOffForWantOfAKeyIsSaidOnce) {
  ASSERT_EQ(::chmod((state_ / "keys").c_str(), 0770), 0);
  ::testing::internal::CaptureStderr();
  EXPECT_FALSE(cli::configCacheIn(state_).has_value());
  EXPECT_FALSE(cli::configCacheIn(state_).has_value());
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(::chmod((state_ / "keys").c_str(), 0700), 0);
  const std::string want = "warning: the caches are off";
  ASSERT_NE(err.find(want), std::string::npos) << err;
  EXPECT_EQ(err.find(want, err.find(want) + 1), std::string::npos) << err;
  EXPECT_NE(err.find((state_ / "keys").string()), std::string::npos) << err;
  EXPECT_TRUE(cli::configCacheIn(state_).has_value());
}

TEST_F(ConfigCacheTest, TheEntryHoldsKeyFilePathsNeverKeys) {
  cli::CacheUse use = cli::CacheUse::None;
  load(use);
  const std::string entry = readFile(cache_.file);
  EXPECT_NE(entry.find(psk_.string()), std::string::npos);
  EXPECT_NE(entry.find("/etc/edgeplane/certs/apps-wildcard.key"), std::string::npos);
  EXPECT_EQ(entry.find("c2VjcmV0"), std::string::npos);
}

TEST_F(ConfigCacheTest, AConfigWithErrorsIsNotCached) {
  writeFile(config_ / "bad.toml", "[[forward]]\nname = 3\n");
  Diagnostics diags;
  cli::CacheUse use = cli::CacheUse::None;
  cli::loadAndValidateCached(config_, cache_, diags, &use);
  EXPECT_EQ(use, cli::CacheUse::Miss);
  EXPECT_FALSE(diags.empty());
  EXPECT_FALSE(fs::exists(cache_.file));
}

TEST_F(ConfigCacheTest, NoStateDirectoryNoCache) {
  EXPECT_FALSE(cli::configCacheIn(dir_.path() / "absent").has_value());
  EXPECT_FALSE(fs::exists(dir_.path() / "absent"));
  ASSERT_EQ(::chmod((state_ / "keys").c_str(), 0777), 0);  // the key could be swapped
  EXPECT_FALSE(cli::configCacheIn(state_).has_value());
  ASSERT_EQ(::chmod((state_ / "keys").c_str(), 0700), 0);
  ASSERT_EQ(::chmod(state_.c_str(), 0777), 0);  // writable by others: not trusted
  EXPECT_FALSE(cli::configCacheIn(state_).has_value());
  cli::CacheUse use = cli::CacheUse::Hit;
  load(config_, std::nullopt, use);
  EXPECT_EQ(use, cli::CacheUse::None);
}

// A config of `count` forwards in one file (2000: 220 KB), large enough to be loaded in chunks
// (toml_chunks.h), with forward `changed` sent to another port.
std::string forwardsFile(int changed, int count = 2000) {
  std::string text;
  for (int i = 0; i < count; ++i) {
    text += "[[forward]]\nname = \"f" + std::to_string(i) +
            "\"\nnamespace = \"tenant-a\"\nprotocol = \"tcp\"\npublic_port = " +
            std::to_string(40000 + i) +
            "\ntarget = \"10.60.0.20:" + std::to_string(i == changed ? 9999 : 1000 + i) + "\"\n\n";
  }
  return text;
}

// forwardsFile(changed) in the config, loaded through `cache`: what it gives, and how many
// chunks were decoded from what an earlier miss kept.
std::pair<std::string, size_t> loadForwards(const fs::path& config, int changed,
                                            const cli::ConfigCache& cache, int count = 2000) {
  writeFile(config / "forwards.toml", forwardsFile(changed, count));
  cli::CacheUse use = cli::CacheUse::None;
  size_t recalled = 99;
  Diagnostics diags;
  cli::CachedLoad loaded = cli::loadAndValidateCached(config, cache, diags, &use, &recalled);
  EXPECT_EQ(diags.format(), "");
  EXPECT_EQ(use, cli::CacheUse::Miss);
  return {encodeDesired(*loaded.desired, ""), recalled};
}

TEST_F(ConfigCacheTest, ALargeFileWithOneChangeIsParsedOnlyWhereItChanged) {
  EXPECT_EQ(loadForwards(config_, -1, cache_).second, 0U);
  struct stat st {};
  ASSERT_EQ(::stat(cache_.chunks.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600);
  for (int changed : {1000, 5, 1999}) {
    const auto [got, recalled] = loadForwards(config_, changed, cache_);
    EXPECT_GT(recalled, 6U) << "forward " << changed;  // the chunks around the change are parsed
    EXPECT_TRUE(got == parsed(config_)) << "forward " << changed;
  }
}

// A change to a forward in a file of 1.3 MB leaves the chunks file as it was (it is not written
// again for the one chunk it lacks; each later miss parses that chunk again); a change to every
// forward replaces it.
TEST_F(ConfigCacheTest, AFewChangedChunksLeaveTheKeptOnesAsTheyWere) {
  constexpr int kCount = 12000;
  loadForwards(config_, -1, cache_, kCount);
  const std::string kept = readFile(cache_.chunks);
  ASSERT_GT(kept.size(), 100'000U);
  std::vector<size_t> recalledBy;
  for (int changed : {6000, 10, -1}) {  // each edit the same length: no cut moves
    const auto [got, recalled] = loadForwards(config_, changed, cache_, kCount);
    EXPECT_TRUE(got == parsed(config_)) << "forward " << changed;
    EXPECT_TRUE(readFile(cache_.chunks) == kept) << "forward " << changed;  // 1.3 MB: no diff
    recalledBy.push_back(recalled);
  }
  const size_t all = recalledBy.back();
  EXPECT_GT(all, 32U);  // so that one chunk parsed and one unused stay under a sixteenth
  EXPECT_EQ(recalledBy[0] + 1, all);
  EXPECT_EQ(recalledBy[1] + 1, all);

  std::string moved = forwardsFile(-1, kCount);
  for (size_t at = moved.find("10.60.0.20:"); at != std::string::npos;
       at = moved.find("10.60.0.20:", at)) {
    moved.replace(at, 11, "10.60.0.21:");
  }
  writeFile(config_ / "forwards.toml", moved);
  Diagnostics diags;
  size_t recalled = 99;
  cli::loadAndValidateCached(config_, cache_, diags, nullptr, &recalled).writes.wait();
  EXPECT_EQ(diags.format(), "");
  EXPECT_EQ(recalled, 0U);
  EXPECT_FALSE(readFile(cache_.chunks) == kept);
}

TEST_F(ConfigCacheTest, ADamagedOrForeignChunksFileIsIgnored) {
  loadForwards(config_, -1, cache_);
  const std::string intact = readFile(cache_.chunks);
  ASSERT_GT(intact.size(), 1000U);
  std::string damaged = intact;
  damaged[damaged.size() / 2] ^= 0x01;
  cli::ConfigCache other = cache_;
  other.program = "another build";
  for (int changed : {1, 2}) {
    const std::string& planted = changed == 1 ? damaged : intact;
    writeFile(cache_.chunks, planted);
    const auto [got, recalled] = loadForwards(config_, changed, changed == 1 ? cache_ : other);
    EXPECT_EQ(recalled, 0U);
    EXPECT_TRUE(got == parsed(config_));
    EXPECT_NE(readFile(cache_.chunks), planted);  // replaced by this load's
  }
}

TEST(DesiredCodec, EveryTruncationAndTrailingBytesAreRefused) {
  Diagnostics diags;
  Desired d = loadAndValidate(fs::path(EDGEPLANE_SOURCE_DIR) / "examples/full", diags);
  ASSERT_EQ(diags.format(), "");
  const std::string bytes = encodeDesired(d, "/r");
  ASSERT_TRUE(decodeDesired(bytes, "/r").has_value());
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_FALSE(decodeDesired(std::string_view(bytes).substr(0, n), "/r").has_value()) << n;
  }
  EXPECT_FALSE(decodeDesired(bytes + '\0', "/r").has_value());
}

TEST(DesiredCodec, LinesAreStoredAfterTheLinesBeforeAndPutBackAfterOthers) {
  Desired d;
  Diagnostics diags;
  loadDocument("\n\n[[host]]\nname = \"edge-1\"\n", "/r/a.toml", d, diags);
  ASSERT_EQ(diags.format(), "");
  ASSERT_EQ(d.hosts.at(0).origin.table.line, 3U);
  d.hosts.at(0).origin.fields.insert_or_assign("unknown", SourceLoc{"/r/a.toml", 0, 0});
  // Stored relative to line 2, put back after line 10: 3 -> 11; an unknown line stays 0.
  auto moved = decodeDesired(encodeDesired(d, "/r", 2), "/elsewhere", 10);
  ASSERT_TRUE(moved.has_value());
  const Origin& o = moved->hosts.at(0).origin;
  EXPECT_EQ(o.table.line, 11U);
  EXPECT_EQ(o.table.file.str(), "/elsewhere/a.toml");
  EXPECT_EQ(o.at("name").line, 12U);
  EXPECT_EQ(o.at("unknown").line, 0U);
  EXPECT_EQ(encodeDesired(*moved, "/elsewhere", 10), encodeDesired(d, "/r", 2));
  // A line past what 32 bits hold is refused.
  EXPECT_FALSE(decodeDesired(encodeDesired(d, "/r"), "/r", 0xFFFFFFFFU).has_value());
}

}  // namespace
}  // namespace edgeplane
