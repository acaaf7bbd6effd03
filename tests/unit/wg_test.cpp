// WireGuard driver without a kernel: keys, per-peer diff, UAPI and generic netlink codecs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "reconciler/system/rtnl_codec.h"
#include "reconciler/system/wg_genl_codec.h"
#include "reconciler/system/wg_keys.h"
#include "reconciler/system/wg_uapi.h"
#include "reconciler/system/wg_uapi_codec.h"
#include "reconciler/system/wireguard.h"
#include "schema/encoding.h"

namespace edgeplane::sys {
namespace {

constexpr int kFamily = 0x1b;  // any id: the codec does not care which one the kernel gave

WgKey hexKey(std::string_view hex) {
  auto bytes = parseHex32(hex);
  EXPECT_TRUE(bytes.has_value()) << hex;
  return WgKey{bytes.value_or(std::array<uint8_t, 32>{})};
}

// Distinct, recognisable keys for peers.
WgKey key(uint8_t n) {
  WgKey k;
  for (size_t i = 0; i < k.bytes.size(); ++i) {
    k.bytes[i] = static_cast<uint8_t>(n + i * 7);
  }
  return k;
}

IpPrefix prefix(std::string_view text) {
  auto p = IpPrefix::parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

Endpoint endpoint(std::string_view text) {
  auto e = Endpoint::parse(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e.value_or(Endpoint{});
}

template <typename T>
T take(Result<T> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) {
    return T{};
  }
  return std::move(r).value();
}

WgPeer peer(std::string name, uint8_t k, std::vector<std::string_view> ips,
            std::optional<std::string_view> ep = std::nullopt) {
  WgPeer p;
  p.name = std::move(name);
  p.publicKey = key(k);
  for (auto ip : ips) {
    p.allowedIps.push_back(prefix(ip));
  }
  if (ep) {
    p.endpoint = endpoint(*ep);
  }
  return p;
}

// --- comparison of what survives a trip over the wire ---

std::vector<IpPrefix> networks(const std::vector<IpPrefix>& in) {
  std::vector<IpPrefix> out;
  for (const auto& p : in) {
    out.push_back(p.network());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool isZeroKey(const WgKey& k) {
  return std::all_of(k.bytes.begin(), k.bytes.end(), [](uint8_t b) { return b == 0; });
}

// What the wire can carry of a request: kinds as add/remove, names and descriptions gone,
// allowed IPs as sorted networks, zero keys and keepalives as unset.
WgSetRequest wireView(WgSetRequest r) {
  r.netns.clear();
  r.deviceChanges.clear();
  for (WgPeerOp& op : r.peers) {
    op.description.clear();
    op.peer.name.clear();
    op.peer.lastHandshake.reset();
    op.peer.rxBytes = op.peer.txBytes = 0;
    if (op.kind == WgPeerOp::Kind::Remove) {
      WgPeer bare;
      bare.publicKey = op.peer.publicKey;
      op.peer = bare;
      continue;
    }
    op.kind = WgPeerOp::Kind::Add;
    op.peer.allowedIps = networks(op.peer.allowedIps);
    if (op.peer.presharedKey && isZeroKey(*op.peer.presharedKey)) {
      op.peer.presharedKey.reset();
    }
    if (op.peer.persistentKeepalive == 0) {
      op.peer.persistentKeepalive.reset();
    }
  }
  return r;
}

void expectSamePeer(const WgPeer& a, const WgPeer& b, bool stats) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.publicKey, b.publicKey);
  EXPECT_EQ(a.presharedKey, b.presharedKey);
  EXPECT_EQ(a.endpoint, b.endpoint);
  EXPECT_EQ(a.allowedIps, b.allowedIps);
  EXPECT_EQ(a.persistentKeepalive, b.persistentKeepalive);
  if (stats) {
    EXPECT_EQ(a.lastHandshake, b.lastHandshake);
    EXPECT_EQ(a.rxBytes, b.rxBytes);
    EXPECT_EQ(a.txBytes, b.txBytes);
  }
}

void expectSameRequest(const WgSetRequest& a, const WgSetRequest& b) {
  EXPECT_EQ(a.ifname, b.ifname);
  EXPECT_EQ(a.privateKey, b.privateKey);
  EXPECT_EQ(a.listenPort, b.listenPort);
  EXPECT_EQ(a.fwmark, b.fwmark);
  EXPECT_EQ(a.replacePeers, b.replacePeers);
  ASSERT_EQ(a.peers.size(), b.peers.size());
  for (size_t i = 0; i < a.peers.size(); ++i) {
    SCOPED_TRACE("peer op " + std::to_string(i));
    EXPECT_EQ(a.peers[i].kind, b.peers[i].kind);
    expectSamePeer(a.peers[i].peer, b.peers[i].peer, false);
  }
}

void expectSameDevice(const WgDevice& a, const WgDevice& b) {
  EXPECT_EQ(a.ifname, b.ifname);
  EXPECT_EQ(a.privateKey, b.privateKey);
  EXPECT_EQ(a.listenPort, b.listenPort);
  EXPECT_EQ(a.fwmark, b.fwmark);
  ASSERT_EQ(a.peers.size(), b.peers.size());
  for (size_t i = 0; i < a.peers.size(); ++i) {
    SCOPED_TRACE("peer " + std::to_string(i));
    expectSamePeer(a.peers[i], b.peers[i], true);
  }
}

// A request exercising every field: device fields, v4 and v6 endpoints, preshared keys,
// keepalives, removals, and an update that states "no psk, no keepalive".
WgSetRequest fullRequest() {
  WgSetRequest r;
  r.ifname = "wg-tenant-a";
  r.privateKey = key(200);
  r.listenPort = 51820;
  r.fwmark = 0x42;
  WgPeerOp remove;
  remove.kind = WgPeerOp::Kind::Remove;
  remove.peer.publicKey = key(1);
  r.peers.push_back(remove);
  WgPeerOp add;
  add.kind = WgPeerOp::Kind::Add;
  add.peer = peer("vm-12", 2, {"10.50.0.12/32", "10.60.0.0/16"}, "198.51.100.7:51820");
  add.peer.presharedKey = key(77);
  add.peer.persistentKeepalive = 25;
  r.peers.push_back(add);
  WgPeerOp update;
  update.kind = WgPeerOp::Kind::Update;
  update.peer = peer("vm-13", 3, {"fd00:50::13/128", "10.50.0.13/32"}, "[2001:db8::7]:4500");
  r.peers.push_back(update);
  WgPeerOp bare;
  bare.kind = WgPeerOp::Kind::Add;
  bare.peer = peer("vm-14", 4, {});
  r.peers.push_back(bare);
  return r;
}

// =============================== keys ===============================

// RFC 7748, section 6.1.
constexpr std::string_view kAlicePriv =
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
constexpr std::string_view kAlicePub =
    "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
constexpr std::string_view kBobPriv =
    "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
constexpr std::string_view kBobPub =
    "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
constexpr std::string_view kShared =
    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

TEST(WgKeys, PublicKeyMatchesRfc7748Vector) {
  EXPECT_EQ(take(publicKeyFor(hexKey(kAlicePriv))), hexKey(kAlicePub));
  EXPECT_EQ(take(publicKeyFor(hexKey(kBobPriv))), hexKey(kBobPub));
}

TEST(WgKeys, DerivedKeysAgreeOnTheRfc7748SharedSecret) {
  // The pair of keys derived above really is an X25519 pair: both sides get the vector's K.
  auto shared = [](std::string_view priv, std::string_view pub) {
    WgKey a = hexKey(priv);
    WgKey b = hexKey(pub);
    EVP_PKEY* mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, a.bytes.data(), 32);
    EVP_PKEY* theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, b.bytes.data(), 32);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(mine, nullptr);
    WgKey out;
    size_t len = out.bytes.size();
    EXPECT_EQ(EVP_PKEY_derive_init(ctx), 1);
    EXPECT_EQ(EVP_PKEY_derive_set_peer(ctx, theirs), 1);
    EXPECT_EQ(EVP_PKEY_derive(ctx, out.bytes.data(), &len), 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(theirs);
    EVP_PKEY_free(mine);
    return out;
  };
  EXPECT_EQ(shared(kAlicePriv, kBobPub), hexKey(kShared));
  EXPECT_EQ(shared(kBobPriv, kAlicePub), hexKey(kShared));
}

TEST(WgKeys, ClampingFollowsRfc7748AndDoesNotChangeThePublicKey) {
  WgKey k = hexKey(kAlicePriv);  // 0x77 ... 0x2a: low bits set, bit 254 clear
  clampPrivateKey(k);
  EXPECT_EQ(k.bytes[0], 0x70);
  EXPECT_EQ(k.bytes[31], 0x6a);  // 0x2a & 0x7f | 0x40
  EXPECT_EQ(take(publicKeyFor(k)), hexKey(kAlicePub));
  WgKey ones;
  ones.bytes.fill(0xff);
  clampPrivateKey(ones);
  EXPECT_EQ(ones.bytes[0], 0xf8);
  EXPECT_EQ(ones.bytes[31], 0x7f);
}

TEST(WgKeys, GeneratedKeysAreClampedAndDistinct) {
  WgKey a = take(generatePrivateKey());
  WgKey b = take(generatePrivateKey());
  EXPECT_NE(a, b);
  for (const WgKey& k : {a, b}) {
    EXPECT_EQ(k.bytes[0] & 7, 0);
    EXPECT_EQ(k.bytes[31] & 0x80, 0);
    EXPECT_EQ(k.bytes[31] & 0x40, 0x40);
    EXPECT_NE(take(publicKeyFor(k)), k);
  }
}

class WgKeyFile : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/wg_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static mode_t modeOf(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }
  static std::string contents(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string dir_;
};

TEST_F(WgKeyFile, MissingWithoutCreateSaysSoAndCreatesNothing) {
  const std::string path = dir_ + "/keys/tenant-a.key";
  auto r = loadOrCreateKey(path, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(path), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("missing"), std::string::npos) << r.error().message;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/keys"));
}

TEST_F(WgKeyFile, CreatesBase64FileMode0600InA0700DirectoryEvenWithUmask0) {
  const std::string path = dir_ + "/keys/tenant-a.key";
  const mode_t old = ::umask(0);
  LoadedKey k = take(loadOrCreateKey(path, true));
  ::umask(old);
  EXPECT_TRUE(k.created);
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(modeOf(dir_ + "/keys"), 0700u);
  EXPECT_EQ(contents(path), k.privateKey.base64() + "\n");
  EXPECT_EQ(k.publicKey, take(publicKeyFor(k.privateKey)));

  LoadedKey again = take(loadOrCreateKey(path, true));
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.privateKey, k.privateKey);
  EXPECT_EQ(again.publicKey, k.publicKey);
}

TEST_F(WgKeyFile, ReadsWhatWgGenkeyWrites) {
  const std::string path = dir_ + "/k";
  {
    std::ofstream out(path);
    out << hexKey(kAlicePriv).base64() << "\n";
  }
  ::chmod(path.c_str(), 0600);
  LoadedKey k = take(loadOrCreateKey(path, false));
  EXPECT_EQ(k.privateKey, hexKey(kAlicePriv));
  EXPECT_EQ(k.publicKey, hexKey(kAlicePub));
}

TEST_F(WgKeyFile, RefusesGroupOrWorldReadableFileNamingPathAndModeNotKey) {
  const std::string path = dir_ + "/k";
  LoadedKey k = take(loadOrCreateKey(path, true));
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    auto r = loadOrCreateKey(path, true);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    const std::string& msg = r.error().message;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    char want[8];
    std::snprintf(want, sizeof(want), "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
    EXPECT_EQ(msg.find(k.privateKey.base64()), std::string::npos);
  }
  // And it was not silently replaced.
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  EXPECT_EQ(take(loadOrCreateKey(path, true)).privateKey, k.privateKey);
}

TEST_F(WgKeyFile, RefusesSymlinksGarbageAndGroupWritableDirectories) {
  const std::string real = dir_ + "/real";
  take(loadOrCreateKey(real, true));
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  EXPECT_FALSE(loadOrCreateKey(link, true).ok());

  const std::string garbage = dir_ + "/garbage";
  {
    std::ofstream out(garbage);
    out << "not a key at all, and it is secret-ish\n";
  }
  ::chmod(garbage.c_str(), 0600);
  auto r = loadOrCreateKey(garbage, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.find("secret-ish"), std::string::npos) << r.error().message;

  const std::string open = dir_ + "/open";
  ASSERT_EQ(::mkdir(open.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
  auto inOpen = loadOrCreateKey(open + "/k", true);
  ASSERT_FALSE(inOpen.ok());
  EXPECT_NE(inOpen.error().message.find("0777"), std::string::npos) << inOpen.error().message;

  // A key file that exists is refused too once its directory is open to others: it could have
  // been swapped meanwhile.
  const std::string keys = dir_ + "/keys";
  take(loadOrCreateKey(keys + "/t.key", true));
  take(loadOrCreateSecret(keys + "/cache.mac"));
  ASSERT_EQ(::chmod(keys.c_str(), 0770), 0);
  for (bool ok : {loadKey(keys + "/t.key").ok(), loadOrCreateKey(keys + "/t.key", false).ok(),
                  loadOrCreateSecret(keys + "/cache.mac").ok()}) {
    EXPECT_FALSE(ok);
  }
  auto named = loadOrCreateSecret(keys + "/cache.mac");
  ASSERT_FALSE(named.ok());
  EXPECT_NE(named.error().message.find("0770"), std::string::npos) << named.error().message;
}

TEST_F(WgKeyFile, RotateReplacesTheKeyAtomicallyWith0600) {
  const std::string path = dir_ + "/keys/t.key";
  LoadedKey first = take(loadOrCreateKey(path, true));
  LoadedKey rotated = take(rotateKey(path));
  EXPECT_NE(rotated.privateKey, first.privateKey);
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(take(loadOrCreateKey(path, false)).privateKey, rotated.privateKey);
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/keys")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);  // no temporary left behind
}

// A run killed while writing a new key (here by SIGXFSZ past a 10-byte file size limit) leaves
// no key file at all: not a truncated one that every later run would refuse as corrupt.
TEST_F(WgKeyFile, ARunKilledWhileCreatingTheKeyLeavesNoPartialKeyFile) {
  const std::string path = dir_ + "/keys/tenant-a.key";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const rlimit none{0, 0};
    const rlimit small{10, 10};
    ::setrlimit(RLIMIT_CORE, &none);
    ::setrlimit(RLIMIT_FSIZE, &small);
    (void)loadOrCreateKey(path, true);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ) << "status " << status;
  EXPECT_FALSE(std::filesystem::exists(path))
      << "a partial key file: " << contents(path).size() << " bytes";
  LoadedKey k = take(loadOrCreateKey(path, true));  // the next run makes a whole one
  EXPECT_TRUE(k.created);
  EXPECT_EQ(contents(path), k.privateKey.base64() + "\n");
  // And the killed run's temporary is gone too (lab.crash_e2e found them piling up).
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/keys")) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"tenant-a.key"});
}

// The cache key (a secret of the host, not a WireGuard key): made once, 0600 in a 0700
// directory; runs that make it at the same moment (threads here, and a forked process) all get
// the one that was linked first, and no temporary file stays.
TEST_F(WgKeyFile, ASecretMadeByManyAtOnceIsOneSecret) {
  const std::string path = dir_ + "/keys/cache.mac";
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto k = loadOrCreateSecret(path);
    const std::string text = k ? k->base64() : "error";
    ::_exit(::write(fds[1], text.data(), text.size()) == static_cast<ssize_t>(text.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (std::string& g : got) {
    threads.emplace_back([&g, &path] {
      auto k = loadOrCreateSecret(path);
      g = k ? k->base64() : k.error().message;
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  char buf[128] = {};
  const ssize_t n = ::read(fds[0], buf, sizeof(buf));
  ::close(fds[0]);
  ASSERT_GT(n, 0);
  got.emplace_back(buf, static_cast<size_t>(n));
  const std::string stored = contents(path);
  for (const std::string& g : got) {
    EXPECT_EQ(g + "\n", stored);
  }
  EXPECT_EQ(modeOf(path), 0600u);
  EXPECT_EQ(modeOf(dir_ + "/keys"), 0700u);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/keys")) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_EQ(left, std::vector<std::string>{"cache.mac"});
  // Not a WireGuard key: not clamped (one random secret in 32 looks clamped, so 16 tries).
  bool unclamped = false;
  for (int i = 0; i < 16 && !unclamped; ++i) {
    std::filesystem::remove(path);
    auto k = take(loadOrCreateSecret(path));
    unclamped = (k.bytes[0] & 7) != 0 || (k.bytes[31] & 0xC0) != 0x40;
  }
  EXPECT_TRUE(unclamped);
  // A damaged one is an error that says so (not a WireGuard key's words), and is kept.
  std::filesystem::remove(path);
  std::ofstream(path) << "not a key\n";
  ::chmod(path.c_str(), 0600);
  auto damaged = loadOrCreateSecret(path);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message.find("secret file " + path + " does not hold a key"),
            std::string::npos)
      << damaged.error().message;
  EXPECT_EQ(contents(path), "not a key\n");
}

// An existing key file that cannot be used is an error and is never replaced, even when a
// new key would be allowed: peers know the public key of the key that was there.
TEST_F(WgKeyFile, AnEmptyKeyFileIsRefusedNotReplaced) {
  const std::string path = dir_ + "/k";
  ASSERT_EQ(::close(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600)), 0);
  auto r = loadOrCreateKey(path, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(path + " does not hold a WireGuard key"), std::string::npos)
      << r.error().message;
  auto l = loadKey(path);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().message, r.error().message);
  EXPECT_EQ(contents(path), "");
  auto missing = loadKey(dir_ + "/absent");
  ASSERT_TRUE(missing.ok()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());
}

// What `wg genpsk > FILE; chmod MODE FILE` leaves, with `text` as its contents.
std::string writePskFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

TEST_F(WgKeyFile, PresharedKeyFileIsReadIn0600Or0400) {
  const std::string b64 = key(77).base64();
  for (mode_t mode : {0600, 0400}) {
    auto r =
        readPresharedKeyFile(writePskFile(dir_ + "/psk" + std::to_string(mode), b64 + "\n", mode));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(*r, key(77));
  }
}

TEST_F(WgKeyFile, UnusablePresharedKeyFilesAreClearErrorsWithoutTheirContents) {
  const std::string b64 = key(77).base64();
  struct Case {
    std::string path;
    std::string expect;
  };
  const std::string wide = writePskFile(dir_ + "/wide", b64 + "\n", 0640);
  const std::string junk = writePskFile(dir_ + "/junk", b64.substr(0, 40) + "!!!!\n", 0600);
  const std::string twice = writePskFile(dir_ + "/twice", b64 + "\n" + b64 + "\n", 0600);
  const std::string other = writePskFile(dir_ + "/other", b64 + "\n", 0600);
  ASSERT_EQ(::chown(other.c_str(), 65534, 65534), 0);
  const std::string link = dir_ + "/link";
  ASSERT_EQ(::symlink(wide.c_str(), link.c_str()), 0);
  for (const Case& c : std::vector<Case>{
           {wide, "preshared key file " + wide +
                      " has mode 0640: it must not be accessible by "
                      "group or others (chmod 600 " +
                      wide + ")"},
           {junk, "preshared key file " + junk +
                      " does not hold a WireGuard key (base64 of 32 bytes and a newline)"},
           {twice, "preshared key file " + twice +
                       " does not hold a WireGuard key (base64 of 32 bytes and a newline)"},
           {other, "preshared key file " + other + " is owned by uid 65534, not by uid " +
                       std::to_string(::geteuid()) + " running edgeplane"},
           {link, "preshared key file " + link + " is a symbolic link; refusing to read it"},
           {dir_ + "/absent",
            "open preshared key file " + dir_ + "/absent: No such file or directory"},
       }) {
    auto r = readPresharedKeyFile(c.path);
    ASSERT_FALSE(r.ok()) << c.path;
    EXPECT_EQ(r.error().message, c.expect);
    EXPECT_EQ(r.error().message.find(b64.substr(0, 20)), std::string::npos);
  }
}

// =============================== diff ===============================

WgDevice observedDevice() {
  WgDevice d;
  d.ifname = "wg-t1";
  d.privateKey = key(100);
  d.publicKey = key(101);
  d.listenPort = 51820;
  d.fwmark = 0;
  WgPeer a = peer("", 1, {"10.50.0.2/32"}, "192.0.2.2:51821");
  a.lastHandshake = 1700000000;
  a.rxBytes = 1000;
  a.txBytes = 2000;
  WgPeer b = peer("", 2, {"10.50.0.3/32"}, "198.51.100.2:51822");
  d.peers = {a, b};
  return d;
}

WgDevice desiredDevice() {
  WgDevice d;
  d.ifname = "wg-t1";
  d.privateKey = key(100);
  d.listenPort = 51820;
  d.peers = {peer("vm-a", 1, {"10.50.0.2/32"}, "192.0.2.2:51821"),
             peer("vm-b", 2, {"10.50.0.3/32"}, "198.51.100.2:51822")};
  return d;
}

TEST(WgDiff, SameConfigIsAnEmptyRequest) {
  WgSetRequest r = diffPeers(observedDevice(), desiredDevice());
  EXPECT_TRUE(r.empty());
  EXPECT_TRUE(describe(r).empty());
  EXPECT_EQ(r.ifname, "wg-t1");
}

TEST(WgDiff, ChangedEndpointTouchesOnlyThatPeer) {
  WgDevice want = desiredDevice();
  want.peers[1].endpoint = endpoint("198.51.100.3:51822");
  WgSetRequest r = diffPeers(observedDevice(), want);
  ASSERT_EQ(r.peers.size(), 1u);
  EXPECT_EQ(r.peers[0].kind, WgPeerOp::Kind::Update);
  EXPECT_EQ(r.peers[0].peer.publicKey, key(2));
  EXPECT_EQ(r.peers[0].description,
            "~ peer vm-b endpoint: 198.51.100.2:51822 -> 198.51.100.3:51822");
  EXPECT_FALSE(r.privateKey || r.listenPort || r.fwmark || r.replacePeers);
}

TEST(WgDiff, AddsRemovesAndUpdatesInStableOrder) {
  WgDevice have = observedDevice();
  have.peers.push_back(peer("", 9, {"10.50.0.9/32"}));
  WgDevice want = desiredDevice();
  want.peers[0].allowedIps.push_back(prefix("10.70.0.0/16"));
  want.peers[0].persistentKeepalive = 25;
  want.peers.push_back(peer("vm-c", 3, {"10.50.0.4/32"}));
  WgSetRequest r = diffPeers(have, want);
  ASSERT_EQ(r.peers.size(), 3u);
  EXPECT_EQ(r.peers[0].kind, WgPeerOp::Kind::Remove);
  EXPECT_EQ(r.peers[0].peer.publicKey, key(9));
  EXPECT_EQ(r.peers[0].description, "- peer " + key(9).base64().substr(0, 8) + "...");
  EXPECT_EQ(r.peers[1].kind, WgPeerOp::Kind::Update);
  EXPECT_EQ(r.peers[1].description,
            "~ peer vm-a allowed_ips: [10.50.0.2/32] -> [10.50.0.2/32, 10.70.0.0/16], "
            "persistent_keepalive: off -> 25");
  EXPECT_EQ(r.peers[2].kind, WgPeerOp::Kind::Add);
  EXPECT_EQ(r.peers[2].description, "+ peer vm-c");
  EXPECT_EQ(describe(r), (std::vector<std::string>{r.peers[0].description, r.peers[1].description,
                                                   r.peers[2].description}));
}

TEST(WgDiff, EmptyObservedDeviceAddsEveryPeerAndSetsTheDevice) {
  WgDevice fresh;
  fresh.ifname = "wg-t1";
  fresh.listenPort = 0;
  fresh.fwmark = 0;
  WgDevice want = desiredDevice();
  want.publicKey = key(101);
  WgSetRequest r = diffPeers(fresh, want);
  EXPECT_EQ(r.privateKey, key(100));
  EXPECT_EQ(r.listenPort, 51820);
  ASSERT_EQ(r.peers.size(), 2u);
  EXPECT_EQ(r.peers[0].kind, WgPeerOp::Kind::Add);
  EXPECT_EQ(r.peers[1].kind, WgPeerOp::Kind::Add);
  EXPECT_EQ(r.deviceChanges,
            (std::vector<std::string>{
                "~ private_key: replaced (public key none -> " + key(101).base64() + ")",
                "~ listen_port: 0 -> 51820"}));
}

TEST(WgDiff, AllowedIpsCompareAsSetsOfNetworks) {
  WgDevice want = desiredDevice();
  want.peers[0].allowedIps = {prefix("10.50.0.2/32"), prefix("10.50.0.2/32")};
  EXPECT_TRUE(diffPeers(observedDevice(), want).empty());
  WgDevice have = observedDevice();
  have.peers[0].allowedIps = {prefix("10.60.0.0/16"), prefix("10.50.0.2/32")};
  want.peers[0].allowedIps = {prefix("10.50.0.2/32"), prefix("10.60.1.2/16")};  // host bits
  EXPECT_TRUE(diffPeers(have, want).empty());
}

TEST(WgDiff, ZeroAndUnsetMeanTheSameForKeepaliveAndPresharedKey) {
  WgDevice want = desiredDevice();
  want.peers[0].persistentKeepalive = 0;
  want.peers[1].presharedKey = WgKey{};
  EXPECT_TRUE(diffPeers(observedDevice(), want).empty());
}

TEST(WgDiff, RoamedEndpointIsNotDriftWhenTheConfigHasNone) {
  WgDevice want = desiredDevice();
  want.peers[0].endpoint.reset();
  EXPECT_TRUE(diffPeers(observedDevice(), want).empty());
}

TEST(WgDiff, PresharedKeyChangesNeverShowTheKey) {
  WgDevice have = observedDevice();
  WgDevice want = desiredDevice();
  want.peers[0].presharedKey = key(55);
  have.peers[1].presharedKey = key(66);
  want.peers[1].presharedKey = key(67);
  WgSetRequest r = diffPeers(have, want);
  ASSERT_EQ(r.peers.size(), 2u);
  EXPECT_EQ(r.peers[0].description, "~ peer vm-a preshared_key: none -> set");
  EXPECT_EQ(r.peers[1].description, "~ peer vm-b preshared_key: changed");
  for (const std::string& line : describe(r)) {
    for (const WgKey& k : {key(55), key(66), key(67)}) {
      EXPECT_EQ(line.find(k.base64()), std::string::npos);
      EXPECT_EQ(line.find(toHex(k.bytes.data(), 32)), std::string::npos);
    }
  }
  have.peers[0].presharedKey = key(55);
  want.peers[0].presharedKey.reset();
  EXPECT_EQ(diffPeers(have, want).peers[0].description, "~ peer vm-a preshared_key: set -> none");
}

TEST(WgDiff, UnsetDesiredDeviceFieldsAreLeftAlone) {
  WgDevice have = observedDevice();
  have.fwmark = 7;
  WgDevice want = desiredDevice();
  want.privateKey.reset();
  want.listenPort.reset();
  EXPECT_TRUE(diffPeers(have, want).empty());
  want.fwmark = 0;
  WgSetRequest r = diffPeers(have, want);
  EXPECT_EQ(r.fwmark, 0u);
  EXPECT_EQ(r.deviceChanges, std::vector<std::string>{"~ fwmark: 7 -> 0"});
  want.fwmark.reset();
  want.listenPort = 51821;
  r = diffPeers(have, want);
  EXPECT_EQ(r.listenPort, 51821);
  EXPECT_FALSE(r.fwmark.has_value());
  EXPECT_EQ(r.deviceChanges, std::vector<std::string>{"~ listen_port: 51820 -> 51821"});
}

TEST(WgDiff, PrivateKeyChangeIsNamedByPublicKeysOnly) {
  WgDevice want = desiredDevice();
  want.privateKey = key(150);
  want.publicKey = key(151);
  WgSetRequest r = diffPeers(observedDevice(), want);
  EXPECT_EQ(r.privateKey, key(150));
  ASSERT_EQ(r.deviceChanges.size(), 1u);
  EXPECT_EQ(r.deviceChanges[0], "~ private_key: replaced (public key " + key(101).base64() +
                                    " -> " + key(151).base64() + ")");
  EXPECT_EQ(r.deviceChanges[0].find(key(150).base64()), std::string::npos);
}

TEST(WgDiff, WireFormStatesEverythingForUpdatesOnly) {
  WgPeerOp op;
  op.peer = peer("x", 5, {"10.1.2.3/24", "10.1.2.0/24", "10.0.0.1/32"});
  op.kind = WgPeerOp::Kind::Add;
  WgWirePeer add = wireForm(op);
  EXPECT_FALSE(add.presharedKey.has_value());
  EXPECT_FALSE(add.persistentKeepalive.has_value());
  EXPECT_TRUE(add.replaceAllowedIps);
  EXPECT_EQ(add.allowedIps, (std::vector<IpPrefix>{prefix("10.0.0.1/32"), prefix("10.1.2.0/24")}));
  op.kind = WgPeerOp::Kind::Update;
  WgWirePeer update = wireForm(op);
  EXPECT_EQ(update.presharedKey, WgKey{});
  EXPECT_EQ(update.persistentKeepalive, 0);
  op.kind = WgPeerOp::Kind::Remove;
  WgWirePeer remove = wireForm(op);
  EXPECT_TRUE(remove.remove);
  EXPECT_TRUE(remove.allowedIps.empty());
  EXPECT_FALSE(remove.replaceAllowedIps);
}

TEST(WgDiff, NamesAndChoices) {
  EXPECT_TRUE(isValidIfname("wg-tenant-abc"));    // "wg-" + 11 characters is 14
  EXPECT_TRUE(isValidIfname("wg-abcdefghijkl"));  // 15
  EXPECT_FALSE(isValidIfname("wg-abcdefghijklm"));
  EXPECT_FALSE(isValidIfname(""));
  EXPECT_FALSE(isValidIfname("wg/0"));
  EXPECT_FALSE(isValidIfname("wg 0"));
  EXPECT_FALSE(isValidIfname(".."));
  EXPECT_EQ(parseBackendChoice("kernel"), WgBackendChoice::Kernel);
  EXPECT_EQ(parseBackendChoice("userspace"), WgBackendChoice::Userspace);
  EXPECT_EQ(parseBackendChoice("auto"), WgBackendChoice::Auto);
  EXPECT_EQ(parseBackendChoice("Kernel"), std::nullopt);
  EXPECT_EQ(toString(WgBackendChoice::Userspace), "userspace");
  EXPECT_EQ(toString(WgBackendKind::Kernel), "kernel");
}

TEST(WgDiff, ResolveEndpointTakesLiteralsWithoutDns) {
  EXPECT_EQ(take(resolveEndpoint(HostPort{"192.0.2.7", 51820})), endpoint("192.0.2.7:51820"));
  EXPECT_EQ(take(resolveEndpoint(HostPort{"2001:db8::7", 4500})), endpoint("[2001:db8::7]:4500"));
}

TEST(WgBackendSelection, UserspaceNeedsWireguardGoAndAStateDirectory) {
  WgEnv env;
  env.stateDir = "/tmp/x";
  env.wireguardGo = "/nonexistent/wireguard-go";
  auto r = selectBackend(WgBackendChoice::Userspace, env);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/nonexistent/wireguard-go"), std::string::npos);
  env.stateDir.clear();
  env.wireguardGo = "/bin/true";
  EXPECT_FALSE(selectBackend(WgBackendChoice::Userspace, env).ok());
  env.stateDir = "/tmp/x";
  auto ok = selectBackend(WgBackendChoice::Userspace, env);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ((*ok)->kind(), WgBackendKind::Userspace);
  auto kernel = selectBackend(WgBackendChoice::Kernel, env);
  ASSERT_TRUE(kernel.ok());
  EXPECT_EQ((*kernel)->kind(), WgBackendKind::Kernel);
}

// =============================== UAPI ===============================

TEST(WgUapi, SetRequestTextIsExactlyTheProtocol) {
  const std::string text = encodeUapiSet(fullRequest());
  const std::string k1 = toHex(key(1).bytes.data(), 32);
  const std::string k2 = toHex(key(2).bytes.data(), 32);
  const std::string k3 = toHex(key(3).bytes.data(), 32);
  const std::string k4 = toHex(key(4).bytes.data(), 32);
  const std::string psk = toHex(key(77).bytes.data(), 32);
  const std::string zero(64, '0');
  EXPECT_EQ(text,
            "set=1\n"
            "private_key=" +
                toHex(key(200).bytes.data(), 32) +
                "\n"
                "listen_port=51820\n"
                "fwmark=66\n"
                "public_key=" +
                k1 +
                "\n"
                "remove=true\n"
                "public_key=" +
                k2 +
                "\n"
                "preshared_key=" +
                psk +
                "\n"
                "endpoint=198.51.100.7:51820\n"
                "persistent_keepalive_interval=25\n"
                "replace_allowed_ips=true\n"
                "allowed_ip=10.50.0.12/32\n"
                "allowed_ip=10.60.0.0/16\n"
                "public_key=" +
                k3 +
                "\n"
                "preshared_key=" +
                zero +
                "\n"
                "endpoint=[2001:db8::7]:4500\n"
                "persistent_keepalive_interval=0\n"
                "replace_allowed_ips=true\n"
                "allowed_ip=10.50.0.13/32\n"
                "allowed_ip=fd00:50::13/128\n"
                "public_key=" +
                k4 +
                "\n"
                "replace_allowed_ips=true\n"
                "\n");
}

TEST(WgUapi, SetRequestRoundTrips) {
  WgSetRequest r = fullRequest();
  r.replacePeers = true;
  WgSetRequest back = take(parseUapiSet(encodeUapiSet(r)));
  back.ifname = r.ifname;  // UAPI names the device by its socket, not in the text
  expectSameRequest(back, wireView(r));
  WgSetRequest empty;
  empty.ifname = "wg0";
  EXPECT_EQ(encodeUapiSet(empty), "set=1\n\n");
  EXPECT_TRUE(take(parseUapiSet("set=1\n\n")).empty());
}

// What wireguard-go 0.0.20220316 answers, shape for shape.
std::string realisticGetReply() {
  return "private_key=" + std::string(kAlicePriv) +
         "\n"
         "listen_port=51820\n"
         "public_key=" +
         std::string(kBobPub) +
         "\n"
         "preshared_key=0000000000000000000000000000000000000000000000000000000000000000\n"
         "protocol_version=1\n"
         "endpoint=192.0.2.2:51821\n"
         "last_handshake_time_sec=1700000123\n"
         "last_handshake_time_nsec=456789\n"
         "tx_bytes=2960\n"
         "rx_bytes=2644\n"
         "persistent_keepalive_interval=0\n"
         "allowed_ip=10.50.0.2/32\n"
         "public_key=" +
         std::string(kAlicePub) +
         "\n"
         "preshared_key=" +
         std::string(kShared) +
         "\n"
         "protocol_version=1\n"
         "endpoint=[2001:db8::2]:51822\n"
         "last_handshake_time_sec=0\n"
         "last_handshake_time_nsec=0\n"
         "tx_bytes=0\n"
         "rx_bytes=0\n"
         "persistent_keepalive_interval=25\n"
         "allowed_ip=10.50.0.3/32\n"
         "allowed_ip=fd00::/64\n"
         "errno=0\n"
         "\n";
}

TEST(WgUapi, ParsesAWireguardGoGetReply) {
  WgDevice d = take(parseUapiGetReply(realisticGetReply()));
  EXPECT_EQ(d.privateKey, hexKey(kAlicePriv));
  EXPECT_EQ(d.listenPort, 51820);
  EXPECT_EQ(d.fwmark, 0u);
  ASSERT_EQ(d.peers.size(), 2u);
  const WgPeer& a = d.peers[0];
  EXPECT_EQ(a.publicKey, hexKey(kBobPub));
  EXPECT_FALSE(a.presharedKey.has_value());
  EXPECT_EQ(a.endpoint, endpoint("192.0.2.2:51821"));
  EXPECT_EQ(a.lastHandshake, 1700000123);
  EXPECT_EQ(a.txBytes, 2960u);
  EXPECT_EQ(a.rxBytes, 2644u);
  EXPECT_FALSE(a.persistentKeepalive.has_value());
  EXPECT_EQ(a.allowedIps, std::vector<IpPrefix>{prefix("10.50.0.2/32")});
  const WgPeer& b = d.peers[1];
  EXPECT_EQ(b.presharedKey, hexKey(kShared));
  EXPECT_EQ(b.endpoint, endpoint("[2001:db8::2]:51822"));
  EXPECT_FALSE(b.lastHandshake.has_value());
  EXPECT_EQ(b.persistentKeepalive, 25);
  EXPECT_EQ(b.allowedIps, (std::vector<IpPrefix>{prefix("10.50.0.3/32"), prefix("fd00::/64")}));
}

TEST(WgUapi, EmptyDeviceAndUnknownKeys) {
  WgDevice d = take(parseUapiGetReply("errno=0\n\n"));
  EXPECT_FALSE(d.privateKey.has_value());
  EXPECT_EQ(d.listenPort, 0);
  EXPECT_TRUE(d.peers.empty());
  // Extended implementations (e.g. AmneziaWG's jc=, h1=) add keys; they are skipped.
  WgDevice e = take(parseUapiGetReply("listen_port=1\njc=4\npublic_key=" + std::string(kBobPub) +
                                      "\nfuture_thing=x\nallowed_ip=10.0.0.0/8\nerrno=0\n\n"));
  EXPECT_EQ(e.listenPort, 1);
  ASSERT_EQ(e.peers.size(), 1u);
  EXPECT_EQ(e.peers[0].allowedIps, std::vector<IpPrefix>{prefix("10.0.0.0/8")});
}

TEST(WgUapi, GetReplyRoundTrips) {
  WgDevice d;
  d.privateKey = key(9);
  d.listenPort = 51820;
  d.fwmark = 0x1234;
  WgPeer a = peer("", 1, {"10.50.0.2/32", "10.60.0.0/16"}, "192.0.2.2:51821");
  a.presharedKey = key(8);
  a.lastHandshake = 1700000000;
  a.rxBytes = UINT64_MAX;
  a.txBytes = 3;
  a.persistentKeepalive = 65535;
  d.peers = {a, peer("", 2, {}, "[fd00::1]:1"), peer("", 3, {"::/0", "0.0.0.0/0"})};
  expectSameDevice(take(parseUapiGetReply(encodeUapiGetReply(d))), d);
}

TEST(WgUapi, MalformedGetRepliesAreErrors) {
  const std::string pk = "public_key=" + std::string(kBobPub) + "\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"no final blank line", "errno=0\n"},
      {"no newline at all", "errno=0"},
      {"no errno", "listen_port=1\n\n"},
      {"blank line inside", "listen_port=1\n\nerrno=0\n\n"},
      {"bytes after the end", "errno=0\n\nx"},
      {"second reply", "errno=0\n\nerrno=0\n\n"},
      {"errno not last", "errno=0\nlisten_port=1\n\n"},
      {"bad errno", "errno=zero\n\n"},
      {"empty errno", "errno=\n\n"},
      {"no equals sign", "listen_port\nerrno=0\n\n"},
      {"empty key", "=1\nerrno=0\n\n"},
      {"upper-case key", "LISTEN_PORT=1\nerrno=0\n\n"},
      {"carriage return", "listen_port=1\r\nerrno=0\n\n"},
      {"port too big", "listen_port=65536\nerrno=0\n\n"},
      {"negative port", "listen_port=-1\nerrno=0\n\n"},
      {"port with space", "listen_port= 1\nerrno=0\n\n"},
      {"empty port", "listen_port=\nerrno=0\n\n"},
      {"fwmark overflow", "fwmark=4294967296\nerrno=0\n\n"},
      {"duplicate device key", "listen_port=1\nlisten_port=2\nerrno=0\n\n"},
      {"short private key", "private_key=abcd\nerrno=0\n\n"},
      {"non-hex private key", "private_key=" + std::string(63, '0') + "g\nerrno=0\n\n"},
      {"base64 key", "public_key=" + hexKey(kBobPub).base64() + "\nerrno=0\n\n"},
      {"peer key before public_key", "allowed_ip=10.0.0.0/8\nerrno=0\n\n"},
      {"device key after a peer", pk + "listen_port=1\nerrno=0\n\n"},
      {"duplicate peer", pk + pk + "errno=0\n\n"},
      {"duplicate peer field", pk + "tx_bytes=1\ntx_bytes=1\nerrno=0\n\n"},
      {"bad endpoint", pk + "endpoint=192.0.2.1\nerrno=0\n\n"},
      {"v6 endpoint without brackets", pk + "endpoint=fd00::1:51820\nerrno=0\n\n"},
      {"dns endpoint", pk + "endpoint=example.com:51820\nerrno=0\n\n"},
      {"prefix without length", pk + "allowed_ip=10.0.0.1\nerrno=0\n\n"},
      {"prefix too long", pk + "allowed_ip=10.0.0.0/33\nerrno=0\n\n"},
      {"nsec too big", pk + "last_handshake_time_nsec=1000000000\nerrno=0\n\n"},
      {"counter overflow", pk + "rx_bytes=18446744073709551616\nerrno=0\n\n"},
      {"keepalive too big", pk + "persistent_keepalive_interval=65536\nerrno=0\n\n"},
      {"protocol 2", pk + "protocol_version=2\nerrno=0\n\n"},
      {"nul byte", std::string("listen_port=1\0\nerrno=0\n\n", 24)},
  };
  for (const auto& [name, text] : cases) {
    auto r = parseUapiGetReply(text);
    EXPECT_FALSE(r.ok()) << name;
  }
}

TEST(WgUapi, ADuplicatePeerIsFoundAnywhereAndNamedByItsSecondLine) {
  const std::string bob = "public_key=" + std::string(kBobPub) + "\n";
  const std::string alice = "public_key=" + std::string(kAlicePub) + "\n";
  auto r = parseUapiGetReply(bob + "tx_bytes=1\n" + alice + bob + "errno=0\n\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "malformed UAPI get reply: line 4: duplicate peer");
  auto fine = parseUapiGetReply(bob + alice + "errno=0\n\n");
  ASSERT_TRUE(fine.ok()) << fine.error().message;
  EXPECT_EQ(fine->peers.size(), 2u);
}

TEST(WgUapi, GetReplyErrnoIsReported) {
  auto r = parseUapiGetReply("errno=-5\n\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("errno -5"), std::string::npos) << r.error().message;
}

// A wireguard-go that reads the request and never answers: the exchange gives up at its timeout,
// and says it as durations are written.
TEST(WgUapi, AReplyThatNeverComesTimesOut) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  auto r = uapiExchange(sv[0], "get=1\n\n", 4096, std::chrono::milliseconds(50));
  ::close(sv[0]);
  ::close(sv[1]);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_EQ(r.error().message, "UAPI reply timed out after 50ms");
}

// A wireguard-go that answers a byte at a time, each sooner than the timeout but never the
// whole reply: the timeout bounds the exchange, not each wait for a byte. (Were it per wait, the
// exchange would read on until the peer gives up after 40 bytes and closes.)
TEST(WgUapi, AReplyThatTricklesTimesOutAsAWhole) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::thread peer([fd = sv[1]] {
    for (int i = 0; i < 40; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
        break;  // the exchange gave up and closed its end
      }
    }
    ::close(fd);
  });
  auto r = uapiExchange(sv[0], "get=1\n\n", 4096, std::chrono::milliseconds(100));
  ::close(sv[0]);
  peer.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "UAPI reply timed out after 100ms");
}

// Past the deadline nothing more is read, even what is already there: a peer that keeps bytes
// queued cannot stretch the exchange. (Here the whole reply waits before the exchange starts,
// and the timeout is zero.)
TEST(WgUapi, NothingIsReadPastTheDeadline) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const std::string reply = "errno=0\n\n";
  ASSERT_EQ(::send(sv[1], reply.data(), reply.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(reply.size()));
  auto r = uapiExchange(sv[0], "get=1\n\n", 4096, std::chrono::milliseconds(0));
  ::close(sv[0]);
  ::close(sv[1]);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "UAPI request timed out after 0s (writing)");
}

TEST(WgUapi, LimitsAreEnforced) {
  UapiLimits small;
  small.maxPeers = 1;
  std::string two = "public_key=" + std::string(kBobPub) +
                    "\npublic_key=" + std::string(kAlicePub) + "\nerrno=0\n\n";
  EXPECT_FALSE(parseUapiGetReply(two, small).ok());
  small = UapiLimits{};
  small.maxAllowedIps = 1;
  EXPECT_FALSE(parseUapiGetReply("public_key=" + std::string(kBobPub) +
                                     "\nallowed_ip=10.0.0.0/8\nallowed_ip=10.1.0.0/16\n"
                                     "errno=0\n\n",
                                 small)
                   .ok());
  small = UapiLimits{};
  small.maxReplyBytes = 10;
  EXPECT_FALSE(parseUapiGetReply("listen_port=1\nerrno=0\n\n", small).ok());
}

// The framing errors name the message they are about, in both directions.
TEST(WgUapi, FramingErrorsNameTheMessage) {
  UapiLimits small;
  small.maxReplyBytes = 10;
  EXPECT_EQ(parseUapiGetReply("listen_port=1\nerrno=0\n\n", small).error().message,
            "UAPI get reply exceeds 10 bytes");
  EXPECT_EQ(parseUapiSet("set=1\nlisten_port=1\n\n", small).error().message,
            "UAPI set request exceeds 10 bytes");
  EXPECT_EQ(parseUapiGetReply("errno=0\n").error().message,
            "malformed UAPI get reply: it does not end with a blank line");
  EXPECT_EQ(parseUapiSet("set=1\n\nlisten_port=1\n\n").error().message,
            "malformed UAPI set request: bytes follow its terminating blank line");
}

TEST(WgUapi, ErrorsNeverEchoKeys) {
  const std::string secret = std::string(kAlicePriv);
  for (const std::string& text :
       {"private_key=" + secret + "\nprivate_key=" + secret + "\nerrno=0\n\n",
        "private_key=" + secret + "x\nerrno=0\n\n",
        "public_key=" + std::string(kBobPub) + "\npreshared_key=" + secret +
            "\npreshared_key=" + secret + "\nerrno=0\n\n"}) {
    auto r = parseUapiGetReply(text);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message.find(secret), std::string::npos) << r.error().message;
  }
}

TEST(WgUapi, SetReplies) {
  EXPECT_TRUE(parseUapiSetReply("errno=0\n\n").ok());
  auto inUse = parseUapiSetReply("errno=-98\n\n");
  ASSERT_FALSE(inUse.ok());
  EXPECT_NE(inUse.error().message.find("-98"), std::string::npos);
  EXPECT_NE(inUse.error().message.find(std::strerror(98)), std::string::npos);
  EXPECT_TRUE(inUse.error().retryable);
  auto invalid = parseUapiSetReply("errno=-22\n\n");
  ASSERT_FALSE(invalid.ok());
  EXPECT_FALSE(invalid.error().retryable);
  for (std::string_view bad : {"", "errno=0\n", "errno=0", "errno=\n\n", "errno=x\n\n",
                               "errno=0\n\nx", "listen_port=1\nerrno=0\n\n", "errno=0 \n\n"}) {
    EXPECT_FALSE(parseUapiSetReply(bad).ok()) << bad;
  }
}

TEST(WgUapi, MalformedSetRequestsAreErrors) {
  const std::string pk = "public_key=" + std::string(kBobPub) + "\n";
  const std::vector<std::string> cases = {"get=1\n\n",
                                          "set=1\n",
                                          "set=1\nbogus=1\n\n",
                                          "set=1\n" + pk + "allowed_ip=10.0.0.0/8\n\n",
                                          "set=1\n" + pk + "update_only=true\n\n",
                                          "set=1\nreplace_peers=false\n\n"};
  for (const std::string& text : cases) {
    EXPECT_FALSE(parseUapiSet(text).ok()) << text;
  }
}

// A fake wireguard-go on the other end of a socketpair: reads one request, answers with the
// given chunks, then optionally closes.
class FakeUapiPeer {
 public:
  FakeUapiPeer(std::vector<std::string> chunks, bool close) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    client_ = fds[0];
    server_ = fds[1];
    thread_ = std::thread([this, chunks = std::move(chunks), close] {
      char buf[4096];
      while (request_.find("\n\n") == std::string::npos) {
        const ssize_t n = ::read(server_, buf, sizeof(buf));
        if (n <= 0) {
          break;
        }
        request_.append(buf, static_cast<size_t>(n));
      }
      for (const std::string& c : chunks) {
        (void)::write(server_, c.data(), c.size());
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (close) {
        ::shutdown(server_, SHUT_RDWR);
      }
    });
  }
  ~FakeUapiPeer() {
    thread_.join();
    ::close(client_);
    ::close(server_);
  }
  int fd() const { return client_; }
  std::string request() {
    thread_.join();
    thread_ = std::thread([] {});
    return request_;
  }

 private:
  int client_ = -1;
  int server_ = -1;
  std::string request_;
  std::thread thread_;
};

TEST(WgUapiExchange, ReassemblesAReplySplitAnywhere) {
  const std::string reply = realisticGetReply();
  std::vector<std::string> chunks;
  for (size_t i = 0; i < reply.size(); i += 7) {
    chunks.push_back(reply.substr(i, 7));
  }
  FakeUapiPeer peerEnd(chunks, false);
  std::string got = take(uapiExchange(peerEnd.fd(), kUapiGet, 1 << 20, std::chrono::seconds(5)));
  EXPECT_EQ(got, reply);
  EXPECT_EQ(peerEnd.request(), "get=1\n\n");
  EXPECT_TRUE(parseUapiGetReply(got).ok());
}

TEST(WgUapiExchange, SplitTerminatorIsFound) {
  FakeUapiPeer peerEnd({"errno=0\n", "\n"}, false);
  EXPECT_EQ(take(uapiExchange(peerEnd.fd(), "set=1\n\n", 1024, std::chrono::seconds(5))),
            "errno=0\n\n");
}

TEST(WgUapiExchange, EarlyCloseOversizeTrailingBytesAndSilenceAreErrors) {
  {
    FakeUapiPeer peerEnd({"listen_port=1\n"}, true);
    auto r = uapiExchange(peerEnd.fd(), kUapiGet, 1024, std::chrono::seconds(5));
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.error().retryable);
  }
  {
    FakeUapiPeer peerEnd({std::string(4096, 'a')}, true);
    EXPECT_FALSE(uapiExchange(peerEnd.fd(), kUapiGet, 1024, std::chrono::seconds(5)).ok());
  }
  {
    FakeUapiPeer peerEnd({"errno=0\n\nerrno=0\n\n"}, true);
    EXPECT_FALSE(uapiExchange(peerEnd.fd(), kUapiGet, 1024, std::chrono::seconds(5)).ok());
  }
  {
    FakeUapiPeer peerEnd({}, false);
    auto r = uapiExchange(peerEnd.fd(), kUapiGet, 1024, std::chrono::milliseconds(50));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("timed out"), std::string::npos);
  }
}

namespace fs = std::filesystem;

// A wireguard-go stand-in: a UAPI socket in `dir` that answers each get with `reply` and counts
// the connections it accepted.
class FakeWireguardGo {
 public:
  FakeWireguardGo(const std::string& socketPath, std::string reply)
      : path_(socketPath), reply_(std::move(reply)) {
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_, 8), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeWireguardGo() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
    ::unlink(path_.c_str());
  }
  int accepted() const { return accepted_; }

 private:
  void serve() {
    // Bounded: 2 s of polls at most, whatever the test does.
    for (int i = 0; i < 200 && !stop_; ++i) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) {
        continue;
      }
      const int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      ++accepted_;
      std::string request;
      char buf[256];
      pollfd in{c, POLLIN, 0};
      while (request.find("\n\n") == std::string::npos && ::poll(&in, 1, 100) == 1) {
        const ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) {
          break;
        }
        request.append(buf, static_cast<size_t>(n));
      }
      if (request == "get=1\n\n") {
        (void)!::write(c, reply_.data(), reply_.size());
      }
      ::close(c);
    }
  }

  std::string path_;
  std::string reply_;
  int listen_ = -1;
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// This process as wireguard-go's pid file records one: "<pid> <start time>".
std::string ownPidRecord() {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string_view rest = std::string_view(stat).substr(stat.rfind(')') + 2);
  for (int field = 3; field < 22; ++field) {
    rest.remove_prefix(rest.find(' ') + 1);
  }
  return std::to_string(::getpid()) + " " + std::string(rest.substr(0, rest.find(' '))) + "\n";
}

// liveDevice is linkAlive then getDevice in one answer: the userspace backend connects to
// wireguard-go once for both, and means what the two mean in every state of the interface.
TEST(WgUapiLiveDevice, OneConnectionAndTheSameAnswersAsLinkAliveThenGetDevice) {
  std::string pattern = (fs::temp_directory_path() / "edgeplane-wg-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const fs::path dir = pattern;
  struct Cleanup {
    fs::path path;
    ~Cleanup() { fs::remove_all(path); }
  } cleanup{dir};
  fs::create_directories(dir / "wireguard");
  WgEnv env;
  env.stateDir = dir.string();
  env.socketDir = dir.string();
  env.ioTimeout = std::chrono::milliseconds(1000);
  UapiBackend backend(env);
  const std::string ifname = "wg-t1";
  ASSERT_LT(backend.socketPath(ifname).size(), sizeof(sockaddr_un{}.sun_path));
  std::ofstream(backend.pidFilePath(ifname)) << ownPidRecord();
  LinkInfo tunLink;
  tunLink.name = ifname;
  tunLink.kind = "tun";
  const Result<std::optional<LinkInfo>> tun = std::optional<LinkInfo>(tunLink);

  {
    FakeWireguardGo go(backend.socketPath(ifname), "listen_port=51820\nerrno=0\n\n");
    auto dev = take(backend.liveDevice(ifname, "ep-t1", tun));
    ASSERT_TRUE(dev.has_value());
    EXPECT_EQ(dev->listenPort, 51820);
    EXPECT_EQ(go.accepted(), 1);
    // The same as the two calls, which connect twice.
    EXPECT_TRUE(take(backend.linkAlive(ifname, tun)));
    EXPECT_EQ(take(backend.getDevice(ifname, "ep-t1")).listenPort, 51820);
    EXPECT_EQ(go.accepted(), 3);

    // Not a TUN device, or none: not alive, as linkAlive says.
    LinkInfo other = tunLink;
    other.kind = "wireguard";
    EXPECT_FALSE(take(backend.liveDevice(ifname, "ep-t1", std::optional<LinkInfo>(other))));
    EXPECT_FALSE(take(backend.linkAlive(ifname, std::optional<LinkInfo>(other))));
    EXPECT_FALSE(take(backend.liveDevice(ifname, "ep-t1", std::optional<LinkInfo>())));
    // The link could not be read: its error.
    const Result<std::optional<LinkInfo>> failed = terminal("no such namespace");
    auto err = backend.liveDevice(ifname, "ep-t1", failed);
    ASSERT_FALSE(err.ok());
    EXPECT_EQ(err.error().message, "no such namespace");
    EXPECT_FALSE(backend.linkAlive(ifname, failed).ok());
  }
  {
    // Connected, but the get fails: an error, as getDevice's.
    FakeWireguardGo go(backend.socketPath(ifname), "errno=5\n\n");
    EXPECT_FALSE(backend.liveDevice(ifname, "ep-t1", tun).ok());
    EXPECT_FALSE(backend.getDevice(ifname, "ep-t1").ok());
  }
  // Nobody serves the socket any more: not alive, not an error; also when the link could not
  // be read (the socket is asked first).
  EXPECT_FALSE(take(backend.liveDevice(ifname, "ep-t1", tun)).has_value());
  EXPECT_FALSE(take(backend.linkAlive(ifname, tun)));
  const Result<std::optional<LinkInfo>> unread = terminal("no such namespace");
  EXPECT_FALSE(take(backend.liveDevice(ifname, "ep-t1", unread)).has_value());
  EXPECT_FALSE(take(backend.linkAlive(ifname, unread)));
  // No wireguard-go recorded, and the one serving the socket is not wireguard-go for wg-t1:
  // not alive either.
  fs::remove(backend.pidFilePath(ifname));
  FakeWireguardGo impostor(backend.socketPath(ifname), "listen_port=51820\nerrno=0\n\n");
  EXPECT_FALSE(take(backend.liveDevice(ifname, "ep-t1", tun)).has_value());
  EXPECT_FALSE(take(backend.linkAlive(ifname, tun)));
}

// =========================== generic netlink ===========================

struct RawPeer {
  WgKey key;
  uint32_t flags = 0;
  bool hasPsk = false;
  bool hasEndpoint = false;
  size_t allowedIps = 0;
};

// The peers of one message as the kernel would see them, attribute by attribute.
std::vector<RawPeer> rawPeers(nl_msg* msg, bool* hasDeviceFields = nullptr) {
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  EXPECT_EQ(genlmsg_parse(nlmsg_hdr(msg), 0, tb, WGDEVICE_A_MAX, nullptr), 0);
  if (hasDeviceFields != nullptr) {
    *hasDeviceFields = tb[WGDEVICE_A_PRIVATE_KEY] || tb[WGDEVICE_A_LISTEN_PORT] ||
                       tb[WGDEVICE_A_FWMARK] || tb[WGDEVICE_A_FLAGS];
  }
  EXPECT_NE(tb[WGDEVICE_A_IFNAME], nullptr);
  std::vector<RawPeer> out;
  if (!tb[WGDEVICE_A_PEERS]) {
    return out;
  }
  nlattr* pos = nullptr;
  int rem = 0;
  nla_for_each_nested(pos, tb[WGDEVICE_A_PEERS], rem) {
    nlattr* pt[WGPEER_A_MAX + 1] = {};
    EXPECT_EQ(nla_parse_nested(pt, WGPEER_A_MAX, pos, nullptr), 0);
    RawPeer p;
    EXPECT_NE(pt[WGPEER_A_PUBLIC_KEY], nullptr);
    std::memcpy(p.key.bytes.data(), nla_data(pt[WGPEER_A_PUBLIC_KEY]), 32);
    p.flags = pt[WGPEER_A_FLAGS] ? nla_get_u32(pt[WGPEER_A_FLAGS]) : 0;
    p.hasPsk = pt[WGPEER_A_PRESHARED_KEY] != nullptr;
    p.hasEndpoint = pt[WGPEER_A_ENDPOINT] != nullptr;
    if (pt[WGPEER_A_ALLOWEDIPS]) {
      nlattr* ip = nullptr;
      int r2 = 0;
      nla_for_each_nested(ip, pt[WGPEER_A_ALLOWEDIPS], r2) {
        ++p.allowedIps;
      }
    }
    out.push_back(p);
  }
  return out;
}

WgSetRequest parseSet(const std::vector<NlMsgPtr>& msgs) {
  WgSetDeviceParser parser;
  for (const auto& m : msgs) {
    auto r = parser.add(m.get());
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  }
  return parser.take();
}

TEST(WgGenl, SetDeviceRoundTripsEveryField) {
  WgSetRequest r = fullRequest();
  r.replacePeers = true;
  auto msgs = take(buildSetDeviceMessages(r, kFamily, defaultGenlBudget()));
  ASSERT_EQ(msgs.size(), 1u);
  nlmsghdr* nlh = nlmsg_hdr(msgs[0].get());
  EXPECT_EQ(nlh->nlmsg_type, kFamily);
  EXPECT_EQ(nlh->nlmsg_flags & (NLM_F_REQUEST | NLM_F_ACK), NLM_F_REQUEST | NLM_F_ACK);
  EXPECT_EQ(genlmsg_hdr(nlh)->cmd, WG_CMD_SET_DEVICE);
  EXPECT_EQ(genlmsg_hdr(nlh)->version, WG_GENL_VERSION);
  expectSameRequest(parseSet(msgs), wireView(r));

  auto raw = rawPeers(msgs[0].get());
  ASSERT_EQ(raw.size(), 4u);
  EXPECT_EQ(raw[0].flags, WGPEER_F_REMOVE_ME);
  EXPECT_EQ(raw[1].flags, WGPEER_F_REPLACE_ALLOWEDIPS);
  EXPECT_TRUE(raw[1].hasPsk);
  EXPECT_TRUE(raw[2].hasPsk);  // the update states "no preshared key" as zeros
  EXPECT_FALSE(raw[3].hasPsk);
  EXPECT_FALSE(raw[3].hasEndpoint);
}

TEST(WgGenl, DeviceOnlyAndEmptyRequests) {
  WgSetRequest r;
  r.ifname = "wg0";
  r.listenPort = 0;
  auto msgs = take(buildSetDeviceMessages(r, kFamily, defaultGenlBudget()));
  ASSERT_EQ(msgs.size(), 1u);
  expectSameRequest(parseSet(msgs), r);
  r.ifname = "this-name-is-too-long";
  EXPECT_FALSE(buildSetDeviceMessages(r, kFamily, defaultGenlBudget()).ok());
}

TEST(WgGenl, LargePeerSetsAreSplitWithinTheBudget) {
  WgSetRequest r;
  r.ifname = "wg-t1";
  r.privateKey = key(1);
  r.listenPort = 51820;
  r.replacePeers = true;
  for (int i = 0; i < 1000; ++i) {
    WgPeerOp op;
    op.kind = i % 3 == 0 ? WgPeerOp::Kind::Update : WgPeerOp::Kind::Add;
    op.peer.publicKey = key(static_cast<uint8_t>(i));
    op.peer.publicKey.bytes[31] = static_cast<uint8_t>(i >> 8);
    op.peer.allowedIps = {IpPrefix{IpAddress::v4(0x0a320000u + static_cast<uint32_t>(i)), 32}};
    op.peer.endpoint = Endpoint{IpAddress::v4(0xc6336400u + static_cast<uint32_t>(i % 250)), 51820};
    r.peers.push_back(op);
  }
  const size_t budget = 4096;
  auto msgs = take(buildSetDeviceMessages(r, kFamily, budget));
  ASSERT_GT(msgs.size(), 10u);
  size_t peers = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    nlmsghdr* nlh = nlmsg_hdr(msgs[i].get());
    EXPECT_LE(nlh->nlmsg_len, budget);
    bool deviceFields = false;
    auto raw = rawPeers(msgs[i].get(), &deviceFields);
    EXPECT_EQ(deviceFields, i == 0) << "message " << i;  // WGDEVICE_F_REPLACE_PEERS too
    EXPECT_FALSE(raw.empty());
    peers += raw.size();
  }
  EXPECT_EQ(peers, 1000u);  // no peer split or repeated: each has a single allowed IP
  expectSameRequest(parseSet(msgs), wireView(r));
}

TEST(WgGenl, PeerWithManyAllowedIpsContinuesWithoutReplacing) {
  WgSetRequest r;
  r.ifname = "wg-t1";
  WgPeerOp big;
  big.kind = WgPeerOp::Kind::Add;
  big.peer.publicKey = key(1);
  big.peer.presharedKey = key(2);
  big.peer.endpoint = endpoint("192.0.2.1:1");
  for (uint32_t i = 0; i < 500; ++i) {
    big.peer.allowedIps.push_back(IpPrefix{IpAddress::v4(0x0a000000u + (i << 8)), 24});
  }
  r.peers.push_back(big);
  WgPeerOp small;
  small.kind = WgPeerOp::Kind::Add;
  small.peer = peer("", 3, {"10.99.0.1/32"});
  r.peers.push_back(small);
  auto msgs = take(buildSetDeviceMessages(r, kFamily, 1024));
  ASSERT_GT(msgs.size(), 5u);
  size_t ips = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    EXPECT_LE(nlmsg_hdr(msgs[i].get())->nlmsg_len, 1024u);
    auto raw = rawPeers(msgs[i].get());
    ASSERT_FALSE(raw.empty());
    if (raw[0].key == key(1)) {
      // Only the first entry of the peer replaces its allowed IPs and carries its fields.
      EXPECT_EQ(raw[0].flags, i == 0 ? uint32_t{WGPEER_F_REPLACE_ALLOWEDIPS} : 0u) << i;
      EXPECT_EQ(raw[0].hasPsk, i == 0) << i;
      EXPECT_EQ(raw[0].hasEndpoint, i == 0) << i;
      ips += raw[0].allowedIps;
    }
  }
  EXPECT_EQ(ips, 500u);
  EXPECT_EQ(rawPeers(msgs.back().get()).back().key, key(3));
  expectSameRequest(parseSet(msgs), wireView(r));
}

TEST(WgGenl, ABudgetTooSmallForOnePeerIsAnErrorNotALoop) {
  WgSetRequest r;
  r.ifname = "wg-t1";
  WgPeerOp op;
  op.peer = peer("", 1, {"10.0.0.0/8"});
  op.peer.presharedKey = key(2);
  r.peers.push_back(op);
  EXPECT_FALSE(buildSetDeviceMessages(r, kFamily, 64).ok());
  EXPECT_FALSE(buildSetDeviceMessages(r, kFamily, 100).ok());
}

TEST(WgGenl, GetDeviceRequestIsADumpByName) {
  NlMsgPtr msg = take(buildGetDeviceRequest("wg-t1", kFamily));
  nlmsghdr* nlh = nlmsg_hdr(msg.get());
  EXPECT_EQ(nlh->nlmsg_flags & NLM_F_DUMP, NLM_F_DUMP);
  EXPECT_EQ(genlmsg_hdr(nlh)->cmd, WG_CMD_GET_DEVICE);
  nlattr* tb[WGDEVICE_A_MAX + 1] = {};
  ASSERT_EQ(genlmsg_parse(nlh, 0, tb, WGDEVICE_A_MAX, nullptr), 0);
  ASSERT_NE(tb[WGDEVICE_A_IFNAME], nullptr);
  EXPECT_STREQ(static_cast<const char*>(nla_data(tb[WGDEVICE_A_IFNAME])), "wg-t1");
}

WgDevice bigDevice() {
  WgDevice d;
  d.ifname = "wg-t1";
  d.privateKey = key(1);
  d.publicKey = key(2);
  d.listenPort = 51820;
  d.fwmark = 0x99;
  for (int i = 0; i < 300; ++i) {
    WgPeer p;
    p.publicKey = key(static_cast<uint8_t>(i));
    p.publicKey.bytes[30] = static_cast<uint8_t>(i >> 8);
    p.allowedIps = {IpPrefix{IpAddress::v4(0x0a320000u + static_cast<uint32_t>(i)), 32}};
    if (i % 2 == 0) {
      p.endpoint = Endpoint{IpAddress::v4(0xc0000200u + static_cast<uint32_t>(i % 250)), 51820};
      p.lastHandshake = 1700000000 + i;
      p.rxBytes = static_cast<uint64_t>(i) * 1000;
      p.txBytes = static_cast<uint64_t>(i) * 3000;
      p.persistentKeepalive = 25;
    } else {
      p.presharedKey = key(static_cast<uint8_t>(i + 1));
      p.endpoint = endpoint("[2001:db8::5]:443");
    }
    d.peers.push_back(p);
  }
  // One peer with more allowed IPs than fit in one message.
  for (uint32_t i = 0; i < 400; ++i) {
    d.peers[7].allowedIps.push_back(IpPrefix{IpAddress::v4(0x0b000000u + (i << 8)), 24});
  }
  return d;
}

TEST(WgGenl, GetDeviceDumpRoundTripsAcrossMessages) {
  const WgDevice d = bigDevice();
  auto msgs = take(buildGetDeviceReplies(d, kFamily, 4096, 7));
  ASSERT_GT(msgs.size(), 5u);
  WgGetDeviceParser parser;
  for (const auto& m : msgs) {
    EXPECT_LE(nlmsg_hdr(m.get())->nlmsg_len, 4096u);
    auto r = parser.add(m.get());
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  WgDevice got = parser.take();
  expectSameDevice(got, d);
  EXPECT_EQ(got.publicKey, d.publicKey);
}

TEST(WgGenl, GetDeviceParserRejectsRepeatsAndWrongCommands) {
  WgDevice d;
  d.ifname = "wg0";
  d.peers = {peer("", 1, {"10.0.0.1/32"}), peer("", 2, {"10.0.0.2/32"})};
  auto msgs = take(buildGetDeviceReplies(d, kFamily, 4096));
  ASSERT_EQ(msgs.size(), 1u);
  WgGetDeviceParser parser;
  ASSERT_TRUE(parser.add(msgs[0].get()).ok());
  // The same peers again, not right after themselves: a broken dump.
  auto again = take(buildGetDeviceReplies(d, kFamily, 4096));
  EXPECT_FALSE(parser.add(again[0].get()).ok());

  WgSetRequest set;
  set.ifname = "wg0";
  auto setMsgs = take(buildSetDeviceMessages(set, kFamily, 4096));
  WgGetDeviceParser other;
  EXPECT_FALSE(other.add(setMsgs[0].get()).ok());
  WgSetDeviceParser setParser;
  EXPECT_FALSE(setParser.add(msgs[0].get()).ok());
}

TEST(WgGenl, GetDeviceParserRejectsBadAttributeSizes) {
  auto build = [](auto&& fill) {
    NlMsgPtr msg(nlmsg_alloc());
    genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, kFamily, 0, 0, WG_CMD_GET_DEVICE, 1);
    fill(msg.get());
    return msg;
  };
  const uint8_t shortKey[16] = {};
  const std::vector<std::function<void(nl_msg*)>> cases = {
      [&](nl_msg* m) { nla_put(m, WGDEVICE_A_PRIVATE_KEY, 16, shortKey); },
      [](nl_msg* m) { nla_put_u32(m, WGDEVICE_A_LISTEN_PORT, 1); },
      [](nl_msg* m) { nla_put(m, WGDEVICE_A_IFNAME, 3, "abc"); },  // no NUL
      [&](nl_msg* m) {
        nlattr* peers = nla_nest_start(m, WGDEVICE_A_PEERS);
        nlattr* p = nla_nest_start(m, 0);
        nla_put(m, WGPEER_A_PUBLIC_KEY, 16, shortKey);
        nla_nest_end(m, p);
        nla_nest_end(m, peers);
      },
      [&](nl_msg* m) {
        WgKey k = key(1);
        nlattr* peers = nla_nest_start(m, WGDEVICE_A_PEERS);
        nlattr* p = nla_nest_start(m, 0);
        nla_put(m, WGPEER_A_PUBLIC_KEY, 32, k.bytes.data());
        nla_put(m, WGPEER_A_ENDPOINT, 5, shortKey);
        nla_nest_end(m, p);
        nla_nest_end(m, peers);
      },
      [&](nl_msg* m) {
        WgKey k = key(1);
        nlattr* peers = nla_nest_start(m, WGDEVICE_A_PEERS);
        nlattr* p = nla_nest_start(m, 0);
        nla_put(m, WGPEER_A_PUBLIC_KEY, 32, k.bytes.data());
        nlattr* ips = nla_nest_start(m, WGPEER_A_ALLOWEDIPS);
        nlattr* ip = nla_nest_start(m, 0);
        nla_put_u16(m, WGALLOWEDIP_A_FAMILY, AF_INET);
        nla_put(m, WGALLOWEDIP_A_IPADDR, 4, shortKey);
        nla_put_u8(m, WGALLOWEDIP_A_CIDR_MASK, 33);
        nla_nest_end(m, ip);
        nla_nest_end(m, ips);
        nla_nest_end(m, p);
        nla_nest_end(m, peers);
      },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    NlMsgPtr msg = build(cases[i]);
    WgGetDeviceParser parser;
    EXPECT_FALSE(parser.add(msg.get()).ok()) << "case " << i;
  }
}

}  // namespace
}  // namespace edgeplane::sys
