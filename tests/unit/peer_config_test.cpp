// `edgeplane peer-config`: the wg-quick .conf (golden, for the bundled demo), its errors, a
// strict wg-quick-style parse of it, and the QR code mapped back to modules.
#include <gtest/gtest.h>
#include <qrencode.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "reconciler/cli/peer_config.h"
#include "reconciler/cli/qr_text.h"
#include "reconciler/system/wg_keys.h"
#include "schema/loader.h"
#include "schema/validate.h"
#include "tests/support/command.h"
#include "tests/support/config_check.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = EDGEPLANE_SOURCE_DIR;

Desired loadDir(const fs::path& dir) {
  Diagnostics diags;
  Desired d = loadAndValidate(dir, diags);
  EXPECT_TRUE(diags.empty()) << diags.format();
  return d;
}

WgKey hostKey() {
  auto k = WgKey::parseBase64("KCUpf4R2eYMy/dJaKSrIxnEWKcfxdTBbTe3ExV4xHlI=");
  EXPECT_TRUE(k.has_value());
  return k.value_or(WgKey{});
}

// A strict reading of a wg-quick file, as wg(8)'s config.c and wg-quick(8) take it: sections
// [Interface] then [Peer]s, `Key = Value` lines with known keys only (each once per section),
// keys in base64 of 32 bytes, CIDR lists, an endpoint with a port. Returns "" or the problem.
std::string strictWgQuickParse(const std::string& conf) {
  static const std::set<std::string> interfaceKeys = {"PrivateKey", "Address", "ListenPort",
                                                      "DNS",        "MTU",     "Table"};
  static const std::set<std::string> peerKeys = {"PublicKey", "PresharedKey", "Endpoint",
                                                 "AllowedIPs", "PersistentKeepalive"};
  std::istringstream in(conf);
  std::string section;
  std::set<std::string> seen;
  int interfaces = 0;
  int peers = 0;
  int lineNo = 0;
  for (std::string line; std::getline(in, line);) {
    ++lineNo;
    const std::string where = "line " + std::to_string(lineNo) + ": ";
    if (auto hash = line.find('#'); hash != std::string::npos) {
      line.erase(hash);
    }
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    if (line.empty()) {
      continue;
    }
    if (line == "[Interface]" || line == "[Peer]") {
      section = line;
      seen.clear();
      (line == "[Interface]" ? interfaces : peers) += 1;
      if (line == "[Interface]" && (interfaces > 1 || peers > 0)) {
        return where + "[Interface] must come once, first";
      }
      continue;
    }
    const auto eq = line.find(" = ");
    if (section.empty() || eq == std::string::npos) {
      return where + "not a `Key = Value` line in a section: " + line;
    }
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 3);
    const auto& known = section == "[Interface]" ? interfaceKeys : peerKeys;
    if (known.count(key) == 0 || !seen.insert(key).second) {
      return where + "unknown or repeated key " + key;
    }
    if (key.ends_with("Key") && !WgKey::parseBase64(value)) {
      return where + key + " is not a base64 key";
    }
    if (key == "Address" || key == "AllowedIPs") {
      std::istringstream list(value);
      for (std::string item; std::getline(list, item, ',');) {
        item.erase(0, item.find_first_not_of(' '));
        if (!IpPrefix::parse(item)) {
          return where + key + " has a bad CIDR " + item;
        }
      }
    }
    if (key == "Endpoint") {
      auto hp = HostPort::parse(value);
      if (!hp || hp->port == 0) {
        return where + "bad endpoint " + value;
      }
    }
    if ((key == "PersistentKeepalive" || key == "ListenPort") &&
        value.find_first_not_of("0123456789") != std::string::npos) {
      return where + key + " is not a number";
    }
  }
  if (interfaces != 1 || peers == 0) {
    return "needs one [Interface] and at least one [Peer]";
  }
  return "";
}

std::string filledIn(std::string conf) {
  const std::string placeholder(cli::kFillIn);
  for (auto at = conf.find(placeholder); at != std::string::npos; at = conf.find(placeholder)) {
    conf.replace(at, placeholder.size(), hostKey().base64());
  }
  return conf;
}

TEST(PeerConfig, DemoPeerMatchesGoldenAndParsesStrictly) {
  const Desired d = loadDir(kSource / "examples/demo");
  const Desired here = resolveFor(d, "default");
  auto conf = cli::renderPeerConfig(here, "tenant-a", "vm-13", hostKey(), "203.0.113.5:51820");
  ASSERT_TRUE(conf.ok()) << conf.error().message;
  const fs::path golden = kSource / "tests/golden/peer-config/demo-tenant-a-vm-13.conf";
  if (const char* update = std::getenv("EDGEPLANE_UPDATE_GOLDEN");
      update != nullptr && std::string(update) == "1") {
    std::ofstream(golden, std::ios::binary) << *conf;
  }
  EXPECT_EQ(*conf, testing::readFile(golden));
  // The routed network behind vm-13 is not its address; the namespace's network is reached.
  EXPECT_NE(conf->find("Address = 10.50.0.13/32\n"), std::string::npos);
  EXPECT_NE(conf->find("AllowedIPs = 10.50.0.0/24\n"), std::string::npos);
  EXPECT_NE(strictWgQuickParse(*conf), "");  // the placeholders are not keys
  EXPECT_EQ(strictWgQuickParse(filledIn(*conf)), "");
}

constexpr const char* kPskPeer = R"(
[[namespace]]
name = "a"
[namespace.wireguard]
address = ["10.50.0.1/24", "fd50::1/64"]
listen_port = 51830
[[namespace.peer]]
name = "phone"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.20/32", "fd50::20/128"]
preshared_key_file = "/etc/edgeplane/psk/phone.key"
persistent_keepalive = 25
)";

TEST(PeerConfig, APeerWithAPresharedKeyGetsAPlaceholderNeverTheKey) {
  const Desired d = testing::loadClean(kPskPeer);
  auto conf = cli::renderPeerConfig(d, "a", "phone", hostKey(), "[2001:db8::1]:51830");
  ASSERT_TRUE(conf.ok()) << conf.error().message;
  EXPECT_NE(conf->find("\nPresharedKey = <fill in>\n"), std::string::npos) << *conf;
  EXPECT_NE(conf->find("\nAddress = 10.50.0.20/32, fd50::20/128\n"), std::string::npos);
  EXPECT_NE(conf->find("\nAllowedIPs = 10.50.0.0/24, fd50::/64\n"), std::string::npos);
  EXPECT_NE(conf->find("\nPersistentKeepalive = 25\n"), std::string::npos);
  EXPECT_EQ(conf->find("/etc/edgeplane/psk"), std::string::npos);
  EXPECT_EQ(strictWgQuickParse(filledIn(*conf)), "");
}

TEST(PeerConfig, UnknownNamespaceOrPeerIsAnErrorNamingWhatExists) {
  const Desired here = resolveFor(loadDir(kSource / "examples/demo"), "default");
  auto ns = cli::renderPeerConfig(here, "tenant-x", "vm-12", hostKey(), "a:1");
  ASSERT_FALSE(ns.ok());
  EXPECT_EQ(ns.error().message,
            "no namespace \"tenant-x\" on this host (namespaces: tenant-a, tenant-b)");
  auto peer = cli::renderPeerConfig(here, "tenant-a", "vm-99", hostKey(), "a:1");
  ASSERT_FALSE(peer.ok());
  EXPECT_EQ(peer.error().message, "no peer \"vm-99\" in namespace tenant-a (peers: vm-12, vm-13)");
}

TEST(PeerConfig, EndpointTakesAHostOrHostPortAndDefaultsToTheListenPort) {
  EXPECT_EQ(cli::peerEndpoint("gw.example.com", 51820, "h").value(), "gw.example.com:51820");
  EXPECT_EQ(cli::peerEndpoint("203.0.113.5", 51820, "h").value(), "203.0.113.5:51820");
  EXPECT_EQ(cli::peerEndpoint("2001:db8::1", 51820, "h").value(), "[2001:db8::1]:51820");
  EXPECT_EQ(cli::peerEndpoint("gw.example.com:4500", 51820, "h").value(), "gw.example.com:4500");
  EXPECT_EQ(cli::peerEndpoint("[2001:db8::1]:4500", 51820, "h").value(), "[2001:db8::1]:4500");
  EXPECT_FALSE(cli::peerEndpoint("gw example", 51820, "h").ok());
  EXPECT_FALSE(cli::peerEndpoint("gw.example.com:0", 51820, "h").ok());
  auto none = cli::peerEndpoint(std::nullopt, 51820, "edge-1");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("pass --endpoint HOST[:PORT]"), std::string::npos);
}

// The printed half blocks mapped back to modules (true = dark), quiet zone included.
std::vector<std::vector<bool>> modulesOf(const std::string& drawn) {
  std::vector<std::vector<bool>> rows;
  std::istringstream in(drawn);
  for (std::string line; std::getline(in, line);) {
    std::vector<bool> top;
    std::vector<bool> bottom;
    for (size_t i = 0; i < line.size();) {
      if (line[i] == ' ') {
        top.push_back(true);
        bottom.push_back(true);
        ++i;
        continue;
      }
      const std::string glyph = line.substr(i, 3);
      i += 3;
      top.push_back(glyph == "\u2584");  // only the lower half is light
      bottom.push_back(glyph == "\u2580");
      EXPECT_TRUE(glyph == "\u2588" || glyph == "\u2580" || glyph == "\u2584") << glyph;
    }
    rows.push_back(top);
    rows.push_back(bottom);
  }
  return rows;
}

TEST(PeerConfigQr, PrintedModulesAreTheEncodedMatrixWithAQuietZone) {
  const Desired d = testing::loadClean(kPskPeer);
  auto conf = cli::renderPeerConfig(d, "a", "phone", hostKey(), "gw.example.com:51830");
  ASSERT_TRUE(conf.ok());
  auto drawn = cli::qrTerminalText(*conf);
  ASSERT_TRUE(drawn.ok()) << drawn.error().message;

  QRcode* code = QRcode_encodeString(conf->c_str(), 0, QR_ECLEVEL_L, QR_MODE_8, 1);
  ASSERT_NE(code, nullptr);
  const int width = code->width;
  const int q = cli::kQrQuietZone;
  const int side = width + 2 * q;
  std::vector<std::vector<bool>> modules = modulesOf(*drawn);
  ASSERT_EQ(modules.size(), static_cast<size_t>(side + (side % 2)));
  if (side % 2 != 0) {
    // The half row under the last one is drawn blank: dark, outside the code.
    for (bool dark : modules.back()) {
      EXPECT_TRUE(dark);
    }
    modules.pop_back();
  }
  int darkCount = 0;
  for (int r = 0; r < side; ++r) {
    ASSERT_EQ(modules[r].size(), static_cast<size_t>(side)) << "row " << r;
    for (int c = 0; c < side; ++c) {
      const bool inCode = r >= q && c >= q && r < q + width && c < q + width;
      const bool want = inCode && (code->data[(r - q) * width + (c - q)] & 1) != 0;
      ASSERT_EQ(modules[r][c], want) << "module " << r << "," << c;
      darkCount += want ? 1 : 0;
    }
  }
  QRcode_free(code);
  EXPECT_GT(darkCount, width);  // a real code, not an empty square
}

TEST(PeerConfigQr, TextTooLongForAQrCodeIsAnError) {
  auto drawn = cli::qrTerminalText(std::string(8000, 'x'));
  ASSERT_FALSE(drawn.ok());
  EXPECT_NE(drawn.error().message.find("cannot encode 8000 bytes as a QR code"), std::string::npos);
}

// The real binary: the namespace's public key from the state directory's key store.
TEST(PeerConfigCommand, PrintsTheHostsPublicKeyFromTheKeyStore) {
  testing::TempDir state;
  auto key = sys::loadOrCreateKey((state.path() / "keys/tenant-a.key").string(), true);
  ASSERT_TRUE(key.ok()) << key.error().message;
  const std::string base = std::string(EDGEPLANE_BINARY) + " peer-config --config " +
                           (kSource / "examples/demo").string() + " --state-dir " +
                           state.path().string();
  auto ok = testing::runCommand(base + " tenant-a vm-12 --endpoint gw.example.com");
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("PublicKey = " + key->publicKey.base64() + "\n"), std::string::npos)
      << ok.output;
  EXPECT_NE(ok.output.find("Endpoint = gw.example.com:51820\n"), std::string::npos);
  EXPECT_EQ(ok.output.find(key->privateKey.base64()), std::string::npos);

  auto noEndpoint = testing::runCommand(base + " tenant-a vm-12");
  EXPECT_EQ(noEndpoint.status, 1);
  EXPECT_NE(noEndpoint.output.find("pass --endpoint"), std::string::npos) << noEndpoint.output;
  auto noKey = testing::runCommand(base + " tenant-b worker-1 --endpoint gw.example.com");
  EXPECT_EQ(noKey.status, 1);
  auto usage = testing::runCommand(base + " tenant-a");
  EXPECT_EQ(usage.status, 2);
  EXPECT_NE(usage.output.find("NAMESPACE and PEER are required"), std::string::npos);
  auto qr = testing::runCommand(base + " tenant-a vm-12 --endpoint gw.example.com --qr");
  ASSERT_EQ(qr.status, 0) << qr.output;
  EXPECT_EQ(qr.output.find("PublicKey"), std::string::npos);
  // The code of the .conf without its comment lines (smaller: the text is for humans).
  std::string bare;
  std::istringstream lines(ok.output);
  for (std::string line; std::getline(lines, line);) {
    bare += line.starts_with("#") ? "" : line + "\n";
  }
  auto want = cli::qrTerminalText(bare);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(qr.output, *want);
}

// --source: the head commit of a repository, before anything was applied from it (no kept
// config in the state directory), fetched into a throw-away cache: the state directory gains
// nothing. An unsigned commit is refused when the source names allowed signers.
TEST(PeerConfigCommand, SourceReadsTheRepositorysHeadCommitBeforeAnyApply) {
  testing::TempDir dir;
  const fs::path state = dir.path() / "state";
  const fs::path work = dir.path() / "work";
  const fs::path repo = dir.path() / "origin.git";
  auto key = sys::loadOrCreateKey((state / "keys/tenant-a.key").string(), true);
  ASSERT_TRUE(key.ok()) << key.error().message;
  fs::create_directories(work / "edge");
  fs::copy(kSource / "examples/demo", work / "edge", fs::copy_options::recursive);
  const std::string git = "git -c user.name=T -c user.email=t@example.com -C " + work.string();
  ASSERT_EQ(
      testing::runCommand("git init -q --bare -b main " + repo.string() + " && git init -q " +
                          "-b main " + work.string() + " && " + git + " add -A && " + git +
                          " commit -q -m demo && " + git + " push -q " + repo.string() + " main")
          .status,
      0);
  const std::string base = std::string(EDGEPLANE_BINARY) + " peer-config --state-dir " +
                           state.string() + " tenant-a vm-12 --endpoint gw.example.com";
  const auto fromConfig = testing::runCommandSplit(
      base + " --config " + (kSource / "examples/demo").string(), dir.path());
  ASSERT_EQ(fromConfig.status, 0) << fromConfig.err;

  // Nothing applied from Git yet: without a source there is no config to read.
  const auto kept = testing::runCommand(base);
  EXPECT_EQ(kept.status, 1) << kept.output;
  EXPECT_NE(kept.output.find("pass --config DIR or --source URL"), std::string::npos)
      << kept.output;

  const auto fromGit =
      testing::runCommandSplit(base + " --source " + repo.string() + " --path edge", dir.path());
  ASSERT_EQ(fromGit.status, 0) << fromGit.err;
  EXPECT_EQ(fromGit.out, fromConfig.out);
  EXPECT_NE(fromGit.err.find("source: " + repo.string()), std::string::npos) << fromGit.err;
  EXPECT_NE(fromGit.err.find("\"demo\" by T"), std::string::npos) << fromGit.err;
  // The throw-away cache: the state directory holds the key it had, nothing more.
  std::set<std::string> entries;
  for (const auto& e : fs::directory_iterator(state)) {
    entries.insert(e.path().filename().string());
  }
  EXPECT_EQ(entries, std::set<std::string>{"keys"});

  // A later commit is read as soon as it is pushed: a peer added to tenant-a.
  std::ofstream(work / "edge/tenant-a.toml", std::ios::app)
      << "\n[[namespace.peer]]\nname = \"vm-14\"\npublic_key = \"" << hostKey().base64()
      << "\"\nallowed_ips = [\"10.50.0.14/32\"]\n";
  ASSERT_EQ(testing::runCommand(git + " commit -q -am vm-14 && " + git + " push -q " +
                                repo.string() + " main")
                .status,
            0);
  const auto added = testing::runCommand(
      std::string(EDGEPLANE_BINARY) + " peer-config --state-dir " + state.string() +
      " tenant-a vm-14 --endpoint gw.example.com --source " + repo.string() + " --path edge");
  ASSERT_EQ(added.status, 0) << added.output;
  EXPECT_NE(added.output.find("Address = 10.50.0.14/32\n"), std::string::npos) << added.output;

  // A source that names allowed signers refuses the unsigned commit: no config is printed.
  ASSERT_EQ(
      testing::runCommand("ssh-keygen -q -t ed25519 -N '' -f " + (dir.path() / "signer").string())
          .status,
      0);
  std::ofstream(dir.path() / "allowed_signers")
      << "t@example.com " << testing::readFile(dir.path() / "signer.pub");
  const auto unsigned_ = testing::runCommandSplit(base + " --source " + repo.string() +
                                                      " --path edge --allowed-signers " +
                                                      (dir.path() / "allowed_signers").string(),
                                                  dir.path());
  EXPECT_EQ(unsigned_.status, 1) << unsigned_.err;
  EXPECT_EQ(unsigned_.out, "");
  EXPECT_NE(unsigned_.err.find("is refused"), std::string::npos) << unsigned_.err;
  // --config and a Git source do not go together.
  const auto both = testing::runCommand(base + " --config " + (kSource / "examples/demo").string() +
                                        " --source " + repo.string());
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.output.find("does not go with"), std::string::npos) << both.output;
}

}  // namespace
}  // namespace edgeplane
