// The cli's host target: peers' preshared keys read from their files before planning, and a
// file that cannot be used refuses the whole target (plan and apply change nothing).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "reconciler/cli/command_support.h"
#include "reconciler/core/state_json.h"
#include "tests/support/config_check.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

WgKey pskOf(uint8_t fill) {
  WgKey k;
  k.bytes.fill(fill);
  return k;
}

class PskTarget : public ::testing::Test {
 protected:
  // Namespace tenant-a of the shared base document, its peer vm-1 with a preshared key file.
  cli::Loaded loaded(const std::string& file) {
    return cli::Loaded{std::make_shared<const Desired>(testing::loadClean(
                           testing::withBase("preshared_key_file = \"" + file + "\"\n"))),
                       "default",
                       {}};
  }
  std::string writePsk(const std::string& name, const std::string& text, mode_t mode) {
    const std::string path = (dir_.path() / name).string();
    std::ofstream(path) << text;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  static const core::PeerTarget& peer(const core::Target& t) {
    return t.wireguard.at("tenant-a").peers.at(0);
  }

  testing::TempDir dir_;
};

TEST_F(PskTarget, TheKeyIsReadIntoTheTargetAndAnOfflinePlanLeavesItUnread) {
  const std::string file = writePsk("vm-1.key", pskOf(7).base64() + "\n", 0600);
  auto t = cli::buildHostTarget(loaded(file), {}, {}, true);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(peer(*t).pskFile, file);
  EXPECT_EQ(peer(*t).presharedKey, pskOf(7));
  EXPECT_EQ(peer(*t).describe().find(pskOf(7).base64()), std::string::npos);

  auto offline = cli::buildHostTarget(loaded("/nonexistent/vm-1.key"), {}, {}, false);
  ASSERT_TRUE(offline.ok()) << offline.error().message;
  EXPECT_EQ(peer(*offline).pskFile, "/nonexistent/vm-1.key");
  EXPECT_FALSE(peer(*offline).presharedKey.has_value());
}

TEST_F(PskTarget, AnUnusableFileRefusesTheTargetNamingThePeerAndTheFile) {
  const std::string wide = writePsk("wide.key", pskOf(7).base64() + "\n", 0644);
  auto t = cli::buildHostTarget(loaded(wide), {}, {}, true);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().message, "peer tenant-a/vm-1: preshared key file " + wide +
                                   " has mode 0644: it must not be accessible by group or "
                                   "others (chmod 600 " +
                                   wide + ")");
  const std::string junk = writePsk("junk.key", "not a key\n", 0600);
  t = cli::buildHostTarget(loaded(junk), {}, {}, true);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find(junk + " does not hold a WireGuard key"), std::string::npos)
      << t.error().message;
}

// The observation as JSON (status --json, plan --offline --observed) says whether a peer has a
// preshared key, never which; read back, the key is unknown but present.
TEST(PskObservedJson, SaysWhetherAKeyIsSetButNeverTheKey) {
  core::HostState h;
  core::WireGuardView wg;
  core::PeerView withKey;
  withKey.publicKey = pskOf(1);
  withKey.hasPsk = true;
  withKey.presharedKey = pskOf(9);
  core::PeerView without;
  without.publicKey = pskOf(2);
  wg.peers = {withKey, without};
  h.namespaces["ep-a"].wireguard = wg;
  const std::string json = core::toJson(h, {});
  EXPECT_EQ(json.find(pskOf(9).base64()), std::string::npos) << json;
  EXPECT_NE(json.find("\"preshared_key\": true"), std::string::npos) << json;
  auto back = core::observedFromJson(json);
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& peers = back->host.namespaces.at("ep-a").wireguard->peers;
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_TRUE(peers[0].hasPsk);
  EXPECT_FALSE(peers[0].presharedKey.has_value());
  EXPECT_FALSE(peers[1].hasPsk);
}

}  // namespace
}  // namespace edgeplane
