// Env::OpenBeneath, the one way the model volume is opened: no symlink, no "..", no absolute
// path leads out of the root, and a read never blocks on (or accepts) a file that is not regular.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/env.h"
#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

class OpenBeneathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root_ / "m/versions");
    std::ofstream(root_ / "m/versions/a.msf") << "inside";
    std::ofstream(outside_ / "secret") << "outside";
    std::filesystem::create_directories(outside_ / "dir");
    std::ofstream(outside_ / "dir/a.msf") << "outside";
  }
  Code OpenCode(const std::string& rel, OpenMode mode = OpenMode::kRead) {
    auto fd = env_->OpenBeneath(root_.path(), rel, mode);
    if (fd) {
      env_->Close(*fd);
      return Code::kOk;
    }
    return fd.error().code();
  }

  Env* env_ = DefaultEnv();
  testing::TempDir root_, outside_;
};

TEST_F(OpenBeneathTest, RegularFileBeneathRootOpens) {
  auto text = ReadFileBeneath(env_, root_.path(), "m/versions/a.msf");
  ASSERT_TRUE(text.has_value()) << text.error().ToString();
  EXPECT_EQ(*text, "inside");
}

TEST_F(OpenBeneathTest, SymlinkedFileIsRefused) {
  ASSERT_EQ(::symlink((outside_ / "secret").c_str(), (root_ / "m/versions/b.msf").c_str()), 0);
  EXPECT_EQ(OpenCode("m/versions/b.msf"), Code::kPermissionDenied);
  EXPECT_FALSE(MapReadOnlyBeneath(env_, root_.path(), "m/versions/b.msf").has_value());
}

TEST_F(OpenBeneathTest, SymlinkInsideTheRootIsRefusedToo) {
  ASSERT_EQ(::symlink("a.msf", (root_ / "m/versions/c.msf").c_str()), 0);
  EXPECT_EQ(OpenCode("m/versions/c.msf"), Code::kPermissionDenied);
}

TEST_F(OpenBeneathTest, SymlinkedDirectoryIsRefused) {
  ASSERT_EQ(::symlink((outside_ / "dir").c_str(), (root_ / "n").c_str()), 0);
  EXPECT_EQ(OpenCode("n/a.msf"), Code::kPermissionDenied);
  EXPECT_EQ(OpenCode("n/new.tmp", OpenMode::kCreateNew), Code::kPermissionDenied);
  EXPECT_FALSE(std::filesystem::exists(outside_ / "dir/new.tmp"));
}

TEST_F(OpenBeneathTest, DotDotAndAbsolutePathsAreRefused) {
  std::string up = "../" + std::filesystem::path(outside_.path()).filename().string() + "/secret";
  EXPECT_EQ(OpenCode("m/../" + up), Code::kPermissionDenied);
  EXPECT_EQ(OpenCode(outside_ / "secret"), Code::kPermissionDenied);
}

TEST_F(OpenBeneathTest, FifoIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo((root_ / "m/manifest.json").c_str(), 0644), 0);
  auto fd = env_->OpenBeneath(root_.path(), "m/manifest.json", OpenMode::kRead);
  ASSERT_FALSE(fd.has_value());
  EXPECT_EQ(fd.error().code(), Code::kInvalidArgument);
  EXPECT_NE(fd.error().message().find("not a regular file"), std::string::npos);
  auto mapped = env_->MapReadOnly(root_ / "m/manifest.json");
  ASSERT_FALSE(mapped.has_value());
  EXPECT_EQ(mapped.error().code(), Code::kInvalidArgument);
}

TEST_F(OpenBeneathTest, MappingReportsTheMappedInodeSize) {
  std::string path = root_ / "m/versions/big.msf";
  std::ofstream(path) << std::string(8192, 'x');
  auto mapped = MapReadOnlyBeneath(env_, root_.path(), "m/versions/big.msf");
  ASSERT_TRUE(mapped.has_value());
  EXPECT_EQ((*mapped)->CurrentFileSize().value(), 8192u);
  // Replaced by rename: the path now names another file, the mapping still the old inode.
  std::ofstream(root_ / "m/versions/other") << "y";
  std::filesystem::rename(root_ / "m/versions/other", path);
  EXPECT_EQ((*mapped)->CurrentFileSize().value(), 8192u);
  // Truncated in place: the mapped inode shrinks.
  std::string path2 = root_ / "m/versions/trunc.msf";
  std::ofstream(path2) << std::string(8192, 'x');
  auto m2 = MapReadOnlyBeneath(env_, root_.path(), "m/versions/trunc.msf");
  ASSERT_TRUE(m2.has_value());
  std::filesystem::resize_file(path2, 100);
  EXPECT_EQ((*m2)->CurrentFileSize().value(), 100u);
}

}  // namespace
}  // namespace modelswap
