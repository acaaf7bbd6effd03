// The certificate driver against a temp state dir: real OpenSSL files, modes, renewal, errors.
#include "reconciler/system/certs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1800000000;  // 2027-01-15

core::CertTarget generated(std::string name, std::vector<std::string> domains) {
  core::CertTarget t;
  t.name = std::move(name);
  t.source = core::CertSource::SelfSigned;
  t.domains = std::move(domains);
  return t;
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(CertStore, IssuesAP256CertificateWithTheDomainsAndAPrivateKey) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto v = store.issue(generated("shop", {"a.example.com", "b.example.com"}));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->error, "");
  EXPECT_EQ(v->domains, (std::vector<std::string>{"a.example.com", "b.example.com"}));
  EXPECT_EQ(v->notBefore, kNow);
  EXPECT_EQ(v->notAfter, kNow + sys::kGeneratedCertDays * 86400);
  EXPECT_EQ(v->fingerprint.size(), 64u);
  EXPECT_EQ(modeOf(v->keyFile), 0600u);
  EXPECT_EQ(fs::path(v->certFile).parent_path().parent_path(), dir.path() / "certs" / "shop");
  // The key matches (readCertPair checks it) and is PEM EC.
  const core::CertView again = sys::readCertPair(v->certFile, v->keyFile);
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(again.fingerprint, v->fingerprint);
  std::ifstream key(v->keyFile);
  std::string first;
  std::getline(key, first);
  EXPECT_EQ(first, "-----BEGIN PRIVATE KEY-----");
}

TEST(CertStore, ObserveFindsTheCurrentGenerationAndRenewalSwapsIt) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto first = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(first.ok()) << first.error().message;
  core::HostState seen;
  ASSERT_TRUE(store.observe({}, seen).ok());
  ASSERT_EQ(seen.generatedCerts.count("shop"), 1u);
  EXPECT_EQ(seen.generatedCerts["shop"], *first);
  EXPECT_EQ(seen.now, kNow);

  auto second = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_NE(second->fingerprint, first->fingerprint);
  EXPECT_NE(second->certFile, first->certFile);
  // The previous generation stays readable (a proxy on the last snapshot), whole.
  EXPECT_EQ(sys::readCertPair(first->certFile, first->keyFile).error, "");
  core::HostState after;
  ASSERT_TRUE(store.observe({}, after).ok());
  EXPECT_EQ(after.generatedCerts["shop"].fingerprint, second->fingerprint);

  // A third issue drops the first generation.
  auto third = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(fs::exists(first->certFile));
  EXPECT_TRUE(fs::exists(second->certFile));

  ASSERT_TRUE(store.remove("shop").ok());
  EXPECT_FALSE(fs::exists(dir.path() / "certs" / "shop"));
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The generations under certs/<name>: what an install left behind.
size_t generationsOf(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    n += e.is_directory() && !e.is_symlink() ? 1 : 0;
  }
  return n;
}

// A pair that does not read back whole (the key is another certificate's) is refused before
// `current` moves: the certificate in place stays current, and the refused generation is gone.
TEST(CertStore, InstallOfAPairThatDoesNotReadBackKeepsTheCurrentGeneration) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto first = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(first.ok()) << first.error().message;
  auto other = store.issue(generated("other", {"a.example.com"}));
  ASSERT_TRUE(other.ok()) << other.error().message;

  auto mismatched = store.install("shop", slurp(first->certFile), slurp(other->keyFile));
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.error().message.find("shop"), std::string::npos)
      << mismatched.error().message;
  core::HostState seen;
  ASSERT_TRUE(store.observeGenerated(seen).ok());
  EXPECT_EQ(seen.generatedCerts["shop"].fingerprint, first->fingerprint);
  EXPECT_EQ(seen.generatedCerts["shop"].error, "");
  EXPECT_EQ(generationsOf(dir.path() / "certs" / "shop"), 1u);
}

// An ACME order's answer must be a certificate for the names asked for, valid now: a leaf for
// other names, an expired one or one not yet valid is refused and the one in place stays.
TEST(CertStore, InstallWithACheckRefusesOtherNamesAndALeafOutsideItsValidity) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto first = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(first.ok()) << first.error().message;
  const sys::CertInstallCheck check{{"a.example.com"}, true};
  struct Case {
    int64_t issuedAt;
    std::vector<std::string> domains;
    std::string why;
  };
  const int64_t day = 86400;
  for (const Case& c :
       {Case{kNow, {"b.example.com"}, "does not name a.example.com"},
        Case{kNow - (sys::kGeneratedCertDays + 1) * day, {"a.example.com"}, "expired"},
        Case{kNow + day, {"a.example.com"}, "not valid before"}}) {
    testing::TempDir elsewhere;
    sys::CertStore issuer(elsewhere.path().string(), c.issuedAt);
    auto made = issuer.issue(generated("x", c.domains));
    ASSERT_TRUE(made.ok()) << made.error().message;
    auto refused = store.install("shop", slurp(made->certFile), slurp(made->keyFile), "", check);
    ASSERT_FALSE(refused.ok()) << c.why;
    EXPECT_NE(refused.error().message.find(c.why), std::string::npos) << refused.error().message;
    core::HostState seen;
    ASSERT_TRUE(store.observeGenerated(seen).ok());
    EXPECT_EQ(seen.generatedCerts["shop"].fingerprint, first->fingerprint) << c.why;
    EXPECT_EQ(generationsOf(dir.path() / "certs" / "shop"), 1u) << c.why;
  }
  // A leaf with a name beyond those ordered is refused too: it would be ordered again at once.
  {
    testing::TempDir elsewhere;
    sys::CertStore issuer(elsewhere.path().string(), kNow);
    auto more = issuer.issue(generated("x", {"a.example.com", "b.example.com"}));
    ASSERT_TRUE(more.ok()) << more.error().message;
    auto refused = store.install("shop", slurp(more->certFile), slurp(more->keyFile), "", check);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find("names more than was ordered"), std::string::npos)
        << refused.error().message;
  }
  // The same check passes a leaf for exactly the names, valid now.
  testing::TempDir elsewhere;
  sys::CertStore issuer(elsewhere.path().string(), kNow - day);
  auto good = issuer.issue(generated("x", {"a.example.com"}));
  ASSERT_TRUE(good.ok()) << good.error().message;
  auto installed = store.install("shop", slurp(good->certFile), slurp(good->keyFile), "", check);
  ASSERT_TRUE(installed.ok()) << installed.error().message;
  EXPECT_EQ(installed->fingerprint, good->fingerprint);
}

// A FIFO where a certificate or key file should be is refused at once, not opened and waited
// on (a run would hang in observe, every run; found by an attacker's read).
TEST(CertStore, AFifoInPlaceOfAFileIsRefusedWithoutWaiting) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto pair = store.issue(generated("shop", {"a.example.com"}));
  ASSERT_TRUE(pair.ok()) << pair.error().message;
  const std::string fifo = (dir.path() / "fifo.pem").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const core::CertView cert = sys::readCertPair(fifo, pair->keyFile);
  EXPECT_EQ(cert.error, "cannot read " + fifo + ": not a regular file");
  const core::CertView key = sys::readCertPair(pair->certFile, fifo);
  EXPECT_EQ(key.error, "cannot read " + fifo + ": not a regular file");
}

TEST(CertStore, FilesErrorsAreFactsNotFailures) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  auto a = store.issue(generated("a", {"a.example.com"}));
  auto b = store.issue(generated("b", {"b.example.com"}));
  ASSERT_TRUE(a.ok() && b.ok());
  // The key of another certificate.
  EXPECT_NE(sys::readCertPair(a->certFile, b->keyFile).error.find("does not match"),
            std::string::npos);
  // Not PEM.
  const std::string junk = (dir.path() / "junk.pem").string();
  std::ofstream(junk) << "hello\n";
  EXPECT_NE(sys::readCertPair(junk, a->keyFile).error.find("is not a PEM certificate"),
            std::string::npos);
  EXPECT_NE(sys::readCertPair(a->certFile, junk).error.find("is not an unencrypted PEM private"),
            std::string::npos);
  EXPECT_NE(sys::readCertPair((dir.path() / "missing.pem").string(), a->keyFile)
                .error.find("cannot read"),
            std::string::npos);
  // Observe reads files targets through the same reader; the key's bytes never appear.
  core::CertTarget files;
  files.name = "ext";
  files.source = core::CertSource::Files;
  files.domains = {"a.example.com"};
  files.certFile = a->certFile;
  files.keyFile = b->keyFile;
  core::HostState seen;
  ASSERT_TRUE(store.observe({files}, seen).ok());
  const std::string& error = seen.fileCerts.at("ext").error;
  EXPECT_NE(error.find("does not match"), std::string::npos);
  EXPECT_EQ(error.find("PRIVATE KEY"), std::string::npos);
}

// A "files" pair is served from a copy under <state-dir>/certs/<name>: the proxy's unit cannot
// read /home, /root or /tmp (ProtectHome=, PrivateTmp=), and a copy keeps the pair the
// snapshot's fingerprint names whole while the operator's files are replaced (certbot).
TEST(CertStore, AFilesPairIsServedFromACopyInTheStateDirectory) {
  testing::TempDir dir;
  testing::TempDir home;  // the operator's files, outside the state directory
  sys::CertStore issuer(home.path().string(), kNow);
  auto a = issuer.issue(generated("a", {"ext.example.com"}));
  ASSERT_TRUE(a.ok()) << a.error().message;
  const std::string certFile = (home.path() / "ext.crt").string();
  const std::string keyFile = (home.path() / "ext.key").string();
  fs::copy_file(a->certFile, certFile);
  fs::copy_file(a->keyFile, keyFile);
  core::CertTarget files;
  files.name = "ext";
  files.source = core::CertSource::Files;
  files.domains = {"ext.example.com"};
  files.certFile = certFile;
  files.keyFile = keyFile;

  sys::CertStore store(dir.path().string(), kNow);
  // Before apply: observed straight from the operator's files.
  core::HostState before;
  ASSERT_TRUE(store.observe({files}, before).ok());
  EXPECT_EQ(before.fileCerts.at("ext").certFile, certFile);
  EXPECT_EQ(before.fileCerts.at("ext").fingerprint, a->fingerprint);

  auto copy = store.read(files);
  ASSERT_TRUE(copy.ok()) << copy.error().message;
  EXPECT_EQ(copy->error, "");
  EXPECT_EQ(copy->fingerprint, a->fingerprint);
  EXPECT_EQ(fs::path(copy->certFile).parent_path().parent_path(), dir.path() / "certs" / "ext");
  EXPECT_EQ(modeOf(copy->keyFile), 0600u);
  EXPECT_EQ(sys::readCertPair(copy->certFile, copy->keyFile).error, "");
  // Unchanged files: the same copy, no new generation.
  auto again = store.read(files);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->certFile, copy->certFile);
  // Observed: the files certificate is the copy; the copy is no generated certificate.
  core::HostState seen;
  ASSERT_TRUE(store.observe({files}, seen).ok());
  EXPECT_EQ(seen.fileCerts.at("ext"), *copy);
  ASSERT_EQ(seen.generatedCerts.count("ext"), 1u);  // removed with the target
  EXPECT_NE(seen.generatedCerts.at("ext").error.find("a copy of " + certFile), std::string::npos)
      << seen.generatedCerts.at("ext").error;

  // The operator's files replaced: observed from them again, until read copies them anew.
  auto b = issuer.issue(generated("b", {"ext.example.com"}));
  ASSERT_TRUE(b.ok());
  fs::copy_file(b->certFile, certFile, fs::copy_options::overwrite_existing);
  fs::copy_file(b->keyFile, keyFile, fs::copy_options::overwrite_existing);
  core::HostState changed;
  ASSERT_TRUE(store.observe({files}, changed).ok());
  EXPECT_EQ(changed.fileCerts.at("ext").certFile, certFile);
  EXPECT_EQ(changed.fileCerts.at("ext").fingerprint, b->fingerprint);
  auto renewed = store.read(files);
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ(renewed->fingerprint, b->fingerprint);
  EXPECT_NE(renewed->certFile, copy->certFile);
  EXPECT_TRUE(fs::exists(copy->certFile));  // the previous generation, for the last snapshot

  // The same files under other paths are another source: observed from there.
  core::CertTarget moved = files;
  moved.certFile = (home.path() / "moved.crt").string();
  moved.keyFile = (home.path() / "moved.key").string();
  fs::copy_file(certFile, moved.certFile);
  fs::copy_file(keyFile, moved.keyFile);
  core::HostState elsewhere;
  ASSERT_TRUE(store.observe({moved}, elsewhere).ok());
  EXPECT_EQ(elsewhere.fileCerts.at("ext").certFile, moved.certFile);

  // A name that cannot name a directory is refused, not served from the operator's files.
  core::CertTarget unsafe = moved;
  unsafe.name = "../ext";
  EXPECT_FALSE(store.read(unsafe).ok());

  // A pair that does not match is not copied: the error names the operator's files.
  files.keyFile = a->keyFile;
  auto broken = store.read(files);
  ASSERT_TRUE(broken.ok());
  EXPECT_NE(broken->error.find("does not match"), std::string::npos);
  EXPECT_EQ(broken->keyFile, a->keyFile);
}

// A directory with a subdirectory holding a file: what a symbolic link in the state directory
// points at (/etc, holding ssh/sshd_config), that no step of the store may touch.
struct Victim {
  testing::TempDir dir;
  Victim() {
    fs::create_directory(dir.path() / "ssh");
    std::ofstream(dir.path() / "ssh" / "sshd_config") << "PermitRootLogin no\n";
  }
  // What the victim holds, by relative path.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
      out.push_back(fs::relative(e.path(), dir.path()).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

const std::vector<std::string> kVictimEntries = {"ssh", "ssh/sshd_config"};

// Why `r` was refused, or a marker that it was not.
template <typename T>
std::string refusal(const Result<T>& r) {
  return r.ok() ? std::string("(accepted)") : r.error().message;
}

// What a run does with the generated certificates it observes when no target names them
// (planCertificateDeletes, then apply's delete step): the first error, or "".
std::string removeUnnamed(sys::CertStore& store) {
  core::HostState seen;
  auto observed = store.observeGenerated(seen);
  if (!observed.ok()) {
    return observed.error().message;
  }
  for (const auto& [name, view] : seen.generatedCerts) {
    if (auto removed = store.remove(name); !removed.ok()) {
      return removed.error().message;
    }
  }
  return "";
}

// Whoever writes the state directory (all but keys/ and acme/: a taken-over proxy) replaces
// certs/ by a symbolic link to /etc: a run listed /etc's directories as certificates no target
// names and removed them (found by an attacker's review, helper). It is refused, not followed.
TEST(CertStore, ACertsDirectoryThatIsASymbolicLinkIsRefusedNotFollowed) {
  testing::TempDir dir;
  Victim victim;
  const fs::path certs = dir.path() / "certs";
  fs::create_directory_symlink(victim.dir.path(), certs);
  sys::CertStore store(dir.path().string(), kNow);

  // A run: observe, then remove what no target names.
  const std::string refused = removeUnnamed(store);
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_NE(refused.find(certs.string() + " is a symbolic link"), std::string::npos) << refused;
  core::HostState seen;
  EXPECT_FALSE(store.observeGenerated(seen).ok());
  EXPECT_TRUE(seen.generatedCerts.empty());
  // Each step refuses on its own, whatever observe said.
  auto removed = store.remove("ssh");
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_NE(refusal(removed).find(certs.string() + " is a symbolic link"), std::string::npos)
      << refusal(removed);
  auto issued = store.issue(generated("ssh", {"a.example.com"}));
  EXPECT_NE(refusal(issued).find(certs.string() + " is a symbolic link"), std::string::npos)
      << refusal(issued);
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_TRUE(fs::is_symlink(certs));
}

// certs/<name> a symbolic link to /etc: issuing it wrote a generation and `current` into /etc,
// then pruned /etc's other directories as old generations (found by an attacker's review,
// helper). The link is refused for writing and reading, and removing the certificate removes
// the link alone.
TEST(CertStore, ACertificateDirectoryThatIsASymbolicLinkIsNotWrittenPrunedOrRemovedThrough) {
  testing::TempDir dir;
  Victim victim;
  sys::CertStore store(dir.path().string(), kNow);
  ASSERT_TRUE(store.issue(generated("other", {"b.example.com"})).ok());  // certs/ is real
  const fs::path link = dir.path() / "certs" / "shop";
  fs::create_directory_symlink(victim.dir.path(), link);

  auto issued = store.issue(generated("shop", {"a.example.com"}));
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_NE(refusal(issued).find(link.string() + " is a symbolic link"), std::string::npos)
      << refusal(issued);

  core::HostState seen;
  ASSERT_TRUE(store.observeGenerated(seen).ok());
  ASSERT_EQ(seen.generatedCerts.count("shop"), 1u);  // listed, so that a run removes it
  EXPECT_NE(seen.generatedCerts.at("shop").error.find("symbolic link"), std::string::npos)
      << seen.generatedCerts.at("shop").error;
  EXPECT_EQ(seen.generatedCerts.at("other").error, "");

  EXPECT_EQ(removeUnnamed(store), "");
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_FALSE(fs::exists(fs::symlink_status(link)));
  EXPECT_FALSE(fs::exists(dir.path() / "certs" / "other"));
}

// A generation that is a symbolic link (planted beside real ones) is never pruned through.
TEST(CertStore, AGenerationThatIsASymbolicLinkIsNotPrunedThrough) {
  testing::TempDir dir;
  Victim victim;
  sys::CertStore store(dir.path().string(), kNow);
  ASSERT_TRUE(store.issue(generated("shop", {"a.example.com"})).ok());
  fs::create_directory_symlink(victim.dir.path(), dir.path() / "certs" / "shop" / "0123");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store.issue(generated("shop", {"a.example.com"})).ok());
  }
  EXPECT_EQ(generationsOf(dir.path() / "certs" / "shop"), 2u);
  EXPECT_EQ(victim.entries(), kVictimEntries);
  ASSERT_TRUE(store.remove("shop").ok());
  EXPECT_EQ(victim.entries(), kVictimEntries);
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir.path() / "certs" / "shop")));
}

TEST(CertStore, RefusesNamesThatAreNotDirectoryNames) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  EXPECT_FALSE(store.issue(generated("../etc", {"a.example.com"})).ok());
  EXPECT_FALSE(store.remove("..").ok());
}

}  // namespace
}  // namespace edgeplane
