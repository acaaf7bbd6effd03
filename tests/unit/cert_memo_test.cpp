// The certificate inspection memo: found only for the same names and bytes, kept across runs in
// a checked file of this program, without key material; and the certificate driver through it.
#include "reconciler/system/cert_memo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "reconciler/system/certs.h"
#include "tests/support/dead_pid.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1800000000;  // 2027-01-15
const sys::CacheKey kKey{{1, 2, 3}};
const sys::CacheKey kOtherKey{{3, 2, 1}};

core::CertView viewNamed(const std::string& fingerprint) {
  core::CertView v;
  v.certFile = "/c.pem";
  v.keyFile = "/k.pem";
  v.fingerprint = fingerprint;
  v.domains = {"a.example.com", "b.example.com"};
  v.notBefore = 10;
  v.notAfter = 20;
  v.selfIssued = true;
  v.error = "a \"quoted\"\nerror";
  return v;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(CertMemo, InspectsOncePerNamesAndBytes) {
  sys::CertMemo memo("", "p", kKey);
  int calls = 0;
  auto inspect = [&] {
    ++calls;
    return viewNamed("f" + std::to_string(calls));
  };
  const core::CertView first = memo.inspect("CERT", "KEY", "/c.pem", "/k.pem", inspect);
  EXPECT_EQ(memo.inspect("CERT", "KEY", "/c.pem", "/k.pem", inspect), first);
  EXPECT_EQ(calls, 1);
  // Any difference in the bytes or the names is another pair.
  memo.inspect("CERT", "KEY2", "/c.pem", "/k.pem", inspect);
  memo.inspect("CERT2", "KEY", "/c.pem", "/k.pem", inspect);
  memo.inspect("CERT", "KEY", "/d.pem", "/k.pem", inspect);
  memo.inspect("CERT", "KEY", "/c.pem", "/l.pem", inspect);
  // Where one field ends is part of the key: "CE"+"RTKEY" is not "CERT"+"KEY".
  memo.inspect("CE", "RTKEY", "/c.pem", "/k.pem", inspect);
  EXPECT_EQ(calls, 6);
  EXPECT_EQ(memo.inspections(), 6u);
}

// A state directory for the memo's file, and certificate files in it.
class MemoFile : public ::testing::Test {
 protected:
  MemoFile() { ::chmod(dir_.path().c_str(), 0700); }
  fs::path file() const { return dir_.path() / "inspected-certs"; }
  fs::path certFile(const std::string& name) const {
    const fs::path p = dir_.path() / name;
    std::ofstream(p) << "x";
    return p;
  }
  testing::TempDir dir_;
};

TEST_F(MemoFile, TheNextRunFindsWhatThisOneSavedAndNothingElse) {
  const fs::path file = this->file();
  const fs::path cert = certFile("c.pem");
  core::CertView view = viewNamed("f1");
  view.certFile = cert.string();
  {
    sys::CertMemo memo(file, "build-1", kKey);
    memo.inspect("CERT", "SECRET-KEY-BYTES", cert.string(), "/k.pem", [&] { return view; });
    memo.save();
  }
  ASSERT_TRUE(fs::exists(file));
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(readAll(file).find("SECRET-KEY-BYTES"), std::string::npos);

  auto never = [] {
    ADD_FAILURE() << "inspected again";
    return core::CertView{};
  };
  sys::CertMemo next(file, "build-1", kKey);
  EXPECT_EQ(next.inspect("CERT", "SECRET-KEY-BYTES", cert.string(), "/k.pem", never), view);
  EXPECT_EQ(next.inspections(), 0u);

  int calls = 0;
  auto counted = [&] {
    ++calls;
    return view;
  };
  // Another build's file counts for nothing.
  sys::CertMemo other(file, "build-2", kKey);
  other.inspect("CERT", "SECRET-KEY-BYTES", cert.string(), "/k.pem", counted);
  EXPECT_EQ(calls, 1);
  // Nor does one read under another key (it was made without this one).
  sys::CertMemo unkeyed(file, "build-1", kOtherKey);
  unkeyed.inspect("CERT", "SECRET-KEY-BYTES", cert.string(), "/k.pem", counted);
  EXPECT_EQ(calls, 2);
  // Nor does a damaged one.
  std::string bytes = readAll(file);
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
  sys::CertMemo damaged(file, "build-1", kKey);
  damaged.inspect("CERT", "SECRET-KEY-BYTES", cert.string(), "/k.pem", counted);
  EXPECT_EQ(calls, 3);
}

TEST_F(MemoFile, SavingDropsThePairsWhoseCertificateIsGone) {
  const fs::path file = this->file();
  const fs::path kept = certFile("kept.pem");
  const fs::path gone = certFile("gone.pem");
  auto at = [](const fs::path& p) {
    return [p] {
      core::CertView v = viewNamed("f");
      v.certFile = p.string();
      return v;
    };
  };
  {
    sys::CertMemo memo(file, "b", kKey);
    memo.inspect("A", "K", kept.string(), "", at(kept));
    memo.inspect("B", "K", gone.string(), "", at(gone));
    memo.save();
  }
  fs::remove(gone);
  {
    sys::CertMemo memo(file, "b", kKey);
    memo.inspect("C", "K", kept.string(), "", at(kept));  // something new: the file is rewritten
    memo.save();
  }
  int calls = 0;
  sys::CertMemo after(file, "b", kKey);
  after.inspect("A", "K", kept.string(), "", [&] { return ++calls, at(kept)(); });
  EXPECT_EQ(calls, 0);
  after.inspect("B", "K", gone.string(), "", [&] { return ++calls, at(gone)(); });
  EXPECT_EQ(calls, 1);
}

TEST_F(MemoFile, OnePairOfFileNamesKeepsOnlyItsLatestBytes) {
  const fs::path file = this->file();
  const fs::path cert = certFile("site.pem");
  auto at = [&] {
    core::CertView v = viewNamed("f");
    v.certFile = cert.string();
    v.keyFile = "/k.pem";
    return v;
  };
  {
    sys::CertMemo memo(file, "b", kKey);
    // The operator's files, renewed in place twice.
    memo.inspect("OLD", "K1", cert.string(), "/k.pem", at);
    memo.inspect("MID", "K2", cert.string(), "/k.pem", at);
    memo.inspect("NEW", "K3", cert.string(), "/k.pem", at);
    memo.inspect("OTHER", "K", cert.string(), "/other-key.pem", at);
    memo.save();
  }
  int calls = 0;
  sys::CertMemo next(file, "b", kKey);
  auto counted = [&] {
    ++calls;
    return at();
  };
  next.inspect("NEW", "K3", cert.string(), "/k.pem", counted);
  next.inspect("OTHER", "K", cert.string(), "/other-key.pem", counted);
  EXPECT_EQ(calls, 0);
  next.inspect("OLD", "K1", cert.string(), "/k.pem", counted);
  EXPECT_EQ(calls, 1);
}

// A run killed while writing the file leaves inspected-certs.tmp.<its pid>: the next memo to
// look at the file removes it; a live process's is its own.
TEST_F(MemoFile, TheTemporaryFileOfAKilledRunIsRemoved) {
  const fs::path deadTmp = file().string() + ".tmp." + std::to_string(testing::deadPid());
  const fs::path liveTmp = file().string() + ".tmp." + std::to_string(::getppid());
  std::ofstream(deadTmp) << "half a memo";
  std::ofstream(liveTmp) << "being written";
  sys::CertMemo memo(file(), "b", kKey);
  memo.inspect("A", "K", "/c.pem", "", [] { return viewNamed("f"); });
  EXPECT_FALSE(fs::exists(deadTmp));
  EXPECT_TRUE(fs::exists(liveTmp));
}

TEST(CertMemo, WritesNothingWhereTheStateDirectoryIsMissingOrOpenToOthers) {
  testing::TempDir dir;
  const fs::path missing = dir.path() / "no-such-dir" / "inspected-certs";
  sys::CertMemo a(missing, "b", kKey);
  a.inspect("A", "K", "/c.pem", "", [] { return viewNamed("f"); });
  a.save();
  EXPECT_FALSE(fs::exists(missing.parent_path()));

  const fs::path open = dir.path() / "open";
  fs::create_directory(open);
  ::chmod(open.c_str(), 0777);
  sys::CertMemo b(open / "inspected-certs", "b", kKey);
  b.inspect("A", "K", "/c.pem", "", [] { return viewNamed("f"); });
  b.save();
  EXPECT_FALSE(fs::exists(open / "inspected-certs"));
}

// The driver through the memo: a key replaced after its pair was inspected (and kept) is
// judged again, as are the certificates of another run.
TEST(CertMemo, TheCertStoreJudgesAReplacedKeyAgain) {
  testing::TempDir dir;
  ::chmod(dir.path().c_str(), 0700);
  core::CertTarget t;
  t.name = "shop";
  t.source = core::CertSource::SelfSigned;
  t.domains = {"a.example.com"};
  sys::CertStore store(dir.path().string(), kNow);
  auto issued = store.issue(t);
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  core::HostState seen;
  ASSERT_TRUE(store.observe({}, seen).ok());
  EXPECT_EQ(seen.generatedCerts["shop"].error, "");
  EXPECT_TRUE(fs::exists(dir.path() / "inspected-certs"));

  // Another certificate's key in place of this one's.
  testing::TempDir otherDir;
  sys::CertStore elsewhere(otherDir.path().string(), kNow);
  auto other = elsewhere.issue(t);
  ASSERT_TRUE(other.ok()) << other.error().message;
  fs::copy_file(other->keyFile, issued->keyFile, fs::copy_options::overwrite_existing);
  core::HostState again;
  ASSERT_TRUE(store.observe({}, again).ok());
  EXPECT_NE(again.generatedCerts["shop"].error.find("does not match"), std::string::npos)
      << again.generatedCerts["shop"].error;
}

}  // namespace
}  // namespace edgeplane
