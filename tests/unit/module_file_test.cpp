// What edgeplane agrees to load as code (the net module): openTrustedFile judges the file and
// every directory on its path on what it opened, and gnuBuildId reads the build the file is
// from, both before any of it runs.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "reconciler/net/module_file.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::net {
namespace {

namespace fs = std::filesystem;

std::string make(const fs::path& dir, const std::string& name, mode_t mode) {
  const std::string path = (dir / name).string();
  std::ofstream(path) << "code";
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

// The message of `path`'s refusal, or "opened".
std::string refusal(const std::string& path) {
  auto fd = openTrustedFile(path);
  if (fd) {
    ::close(*fd);
    return "opened";
  }
  return fd.error().message;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ModuleFile, OpensAFileOnlyItsOwnerCanWrite) {
  testing::TempDir dir;
  for (mode_t mode : {0755, 0644, 0500}) {
    auto fd = openTrustedFile(make(dir.path(), "m.so", mode));
    ASSERT_TRUE(fd) << fd.error().message;
    char c = 0;
    EXPECT_EQ(::read(*fd, &c, 1), 1);  // the descriptor is the file's, open for reading
    EXPECT_EQ(c, 'c');
    ::close(*fd);
  }
}

TEST(ModuleFile, RefusesAFileOthersCanWrite) {
  testing::TempDir dir;
  for (mode_t mode : {0775, 0757, 0666}) {
    const std::string path = make(dir.path(), "m" + std::to_string(mode) + ".so", mode);
    const std::string why = refusal(path);
    EXPECT_TRUE(has(why, path) && has(why, "writable by its group or others")) << mode << why;
  }
}

TEST(ModuleFile, RefusesAFileOfAnotherUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "giving a file to another user takes root";
  }
  testing::TempDir dir;
  const std::string path = make(dir.path(), "m.so", 0755);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  EXPECT_TRUE(has(refusal(path), "owned by uid 65534")) << refusal(path);
}

// A directory on the way that others can write lets them replace what is in it; one with the
// sticky bit (such as /tmp, on the way to every TempDir here) does not.
TEST(ModuleFile, JudgesEveryDirectoryOnTheWay) {
  testing::TempDir dir;
  const fs::path lib = dir.path() / "lib";
  fs::create_directories(lib / "edgeplane");
  const std::string path = make(lib / "edgeplane", "m.so", 0644);
  EXPECT_EQ(refusal(path), "opened");
  ASSERT_EQ(::chmod(lib.c_str(), 0777), 0);
  EXPECT_TRUE(has(refusal(path), lib.string() + ": writable by its group or others"))
      << refusal(path);
  ASSERT_EQ(::chmod(lib.c_str(), 01777), 0);
  EXPECT_EQ(refusal(path), "opened");
  ASSERT_EQ(::chmod(lib.c_str(), 0755), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown((lib / "edgeplane").c_str(), 65534, 65534), 0);
    EXPECT_TRUE(has(refusal(path), "owned by uid 65534")) << refusal(path);
  }
}

TEST(ModuleFile, RefusesSymbolicLinksAndPathsNotNormalised) {
  testing::TempDir dir;
  fs::create_directories(dir.path() / "real");
  const std::string file = make(dir.path() / "real", "m.so", 0644);
  fs::create_symlink(file, dir.path() / "link.so");
  fs::create_directory_symlink(dir.path() / "real", dir.path() / "dirlink");
  EXPECT_TRUE(has(refusal((dir.path() / "link.so").string()), "a symbolic link"));
  EXPECT_TRUE(has(refusal((dir.path() / "dirlink" / "m.so").string()), "a symbolic link"));
  EXPECT_TRUE(has(refusal((dir.path() / "real" / ".." / "real" / "m.so").string()),
                  "not a normalised path"));
  EXPECT_TRUE(has(refusal("real/m.so"), "not an absolute path"));
}

TEST(ModuleFile, RefusesWhatIsNotARegularFileOrIsMissing) {
  testing::TempDir dir;
  EXPECT_TRUE(has(refusal(dir.path().string()), "not a regular file")) << refusal(dir.path());
  const std::string missing = refusal((dir.path() / "none.so").string());
  EXPECT_TRUE(has(missing, "none.so") && has(missing, "No such file")) << missing;
}

// The build ID readelf sees in this very test program.
std::string readelfBuildId(const std::string& path) {
  std::string out;
  FILE* p = ::popen(("readelf -n '" + path + "' 2>/dev/null").c_str(), "r");
  if (p == nullptr) {
    return "";
  }
  char buf[512];
  while (::fgets(buf, sizeof buf, p) != nullptr) {
    out += buf;
  }
  ::pclose(p);
  const size_t at = out.find("Build ID: ");
  return at == std::string::npos ? "" : out.substr(at + 10, out.find('\n', at) - at - 10);
}

TEST(ModuleFile, ReadsTheBuildIdReadelfReads) {
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string expected = readelfBuildId(self);
  ASSERT_FALSE(expected.empty()) << "readelf found no build ID in " << self;
  auto fd = openTrustedFile(self);
  ASSERT_TRUE(fd) << fd.error().message;
  auto id = gnuBuildId(*fd);
  ::close(*fd);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, expected);
}

// Not ELF, cut short, or with its headers garbled (random bytes in the first 4 KiB, where the
// ELF and program headers are): an error or some answer, never a read out of bounds (ASan).
TEST(ModuleFile, BuildIdOfWhatIsNotAWholeElfFile) {
  testing::TempDir dir;
  const std::string text = make(dir.path(), "text.so", 0644);
  std::ifstream in(fs::read_symlink("/proc/self/exe"), std::ios::binary);
  std::string head(65536, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  auto idOf = [&](const std::string& bytes) {
    const std::string path = (dir.path() / "elf.so").string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    auto fd = openTrustedFile(path);
    EXPECT_TRUE(fd);
    auto id = gnuBuildId(*fd);
    ::close(*fd);
    return id;
  };
  auto fd = openTrustedFile(text);
  ASSERT_TRUE(fd);
  auto notElf = gnuBuildId(*fd);
  ::close(*fd);
  ASSERT_FALSE(notElf);
  EXPECT_EQ(notElf.error().message, "not an ELF file");
  EXPECT_FALSE(idOf(head.substr(0, 40)));
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string garbled = head;
    for (int k = 0; k < 8; ++k) {
      garbled[4 + rng() % 4092] = static_cast<char>(rng());
    }
    (void)idOf(garbled);
  }
}

}  // namespace
}  // namespace edgeplane::net
