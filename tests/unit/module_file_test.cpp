// openTrustedFile: what edgeplane agrees to load as code (the net module), judged on the
// descriptor it then loads through.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "reconciler/net/module_file.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::net {
namespace {

std::string make(const testing::TempDir& dir, const std::string& name, mode_t mode) {
  const std::string path = (dir.path() / name).string();
  std::ofstream(path) << "code";
  EXPECT_EQ(::chmod(path.c_str(), mode), 0);
  return path;
}

TEST(ModuleFile, OpensAFileOnlyItsOwnerCanWrite) {
  testing::TempDir dir;
  for (mode_t mode : {0755, 0644, 0500}) {
    auto fd = openTrustedFile(make(dir, "m.so", mode));
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
    const std::string path = make(dir, "m" + std::to_string(mode) + ".so", mode);
    auto fd = openTrustedFile(path);
    ASSERT_FALSE(fd) << mode;
    EXPECT_NE(fd.error().message.find(path), std::string::npos) << fd.error().message;
    EXPECT_NE(fd.error().message.find("writable by its group or others"), std::string::npos)
        << fd.error().message;
  }
}

TEST(ModuleFile, RefusesAFileOfAnotherUser) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "giving a file to another user takes root";
  }
  testing::TempDir dir;
  const std::string path = make(dir, "m.so", 0755);
  ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  auto fd = openTrustedFile(path);
  ASSERT_FALSE(fd);
  EXPECT_NE(fd.error().message.find("owned by uid 65534"), std::string::npos) << fd.error().message;
}

TEST(ModuleFile, RefusesWhatIsNotARegularFileOrIsMissing) {
  testing::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  auto directory = openTrustedFile(dir.path().string());
  ASSERT_FALSE(directory);
  EXPECT_NE(directory.error().message.find("not a regular file"), std::string::npos);
  auto missing = openTrustedFile((dir.path() / "none.so").string());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("none.so"), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos)
      << missing.error().message;
}

}  // namespace
}  // namespace edgeplane::net
