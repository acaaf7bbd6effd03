// The certificate driver against a temp state dir: real OpenSSL files, modes, renewal, errors.
#include "reconciler/system/certs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

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

TEST(CertStore, RefusesNamesThatAreNotDirectoryNames) {
  testing::TempDir dir;
  sys::CertStore store(dir.path().string(), kNow);
  EXPECT_FALSE(store.issue(generated("../etc", {"a.example.com"})).ok());
  EXPECT_FALSE(store.remove("..").ok());
}

}  // namespace
}  // namespace edgeplane
