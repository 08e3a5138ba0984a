// The POSIX Env's kernel-copy and hole-reporting calls, which restores rely on: CopyRange between
// a disk file and tmpfs (and its fallback), a source that ends early, and NextData over a sparse
// file (data, hole, data, trailing hole).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/env.h"
#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

constexpr uint64_t kMiB = 1 << 20;

class EnvPosixTest : public ::testing::Test {
 protected:
  // Read-write (Env's kTruncate opens write-only), so each file can be both ends of a copy.
  int OpenRw(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << path;
    fds_.push_back(fd);
    return fd;
  }
  void TearDown() override {
    for (const int fd : fds_)
      ::close(fd);
  }
  std::vector<std::byte> Pattern(size_t n, int seed) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i)
      v[i] = static_cast<std::byte>((i * 131 + static_cast<size_t>(seed)) & 0xff);
    return v;
  }

  Env* env_ = DefaultEnv();
  testing::TempDir dir_;
  std::vector<int> fds_;
};

TEST_F(EnvPosixTest, CopyRangeCopiesBetweenOffsets) {
  const int in = OpenRw(dir_ / "in");
  const std::vector<std::byte> data = Pattern(3 * kMiB + 123, 1);
  ASSERT_TRUE(env_->PWrite(in, data, 0));
  // The shm dir is tmpfs in a pod; /dev/shm is tmpfs here (else the same dir: still a copy).
  const std::string out_path = std::filesystem::is_directory("/dev/shm")
                                   ? "/dev/shm/ms-env-copy-" + std::to_string(getpid())
                                   : dir_ / "out";
  const int out = OpenRw(out_path);
  ASSERT_TRUE(env_->CopyRange(in, 5, out, 4096, data.size() - 5));
  std::vector<std::byte> back(data.size() - 5);
  Result<size_t> n = env_->PRead(out, back, 4096);
  ::unlink(out_path.c_str());
  ASSERT_TRUE(n);
  ASSERT_EQ(*n, back.size());
  EXPECT_TRUE(std::equal(back.begin(), back.end(), data.begin() + 5));
}

TEST_F(EnvPosixTest, CopyRangeFromAShortFileIsCorruption) {
  const int in = OpenRw(dir_ / "in");
  ASSERT_TRUE(env_->PWrite(in, Pattern(1000, 2), 0));
  const int out = OpenRw(dir_ / "out");
  Status s = env_->CopyRange(in, 0, out, 0, 2000);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  EXPECT_NE(s.error().message().find("truncated"), std::string::npos) << s.error().message();
}

TEST_F(EnvPosixTest, NextDataWalksASparseFile) {
  const int fd = OpenRw(dir_ / "sparse");
  ASSERT_TRUE(env_->Truncate(fd, 8 * kMiB));
  ASSERT_TRUE(env_->PWrite(fd, Pattern(kMiB, 3), 0));
  ASSERT_TRUE(env_->PWrite(fd, Pattern(kMiB, 4), 4 * kMiB));
  Result<std::pair<uint64_t, uint64_t>> r = env_->NextData(fd, 0);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->first, 0u);
  if (r->second == 8 * kMiB) GTEST_SKIP() << "this filesystem reports no holes";
  EXPECT_EQ(r->second, kMiB);
  r = env_->NextData(fd, kMiB);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::pair<uint64_t, uint64_t>{4 * kMiB, 5 * kMiB}));
  r = env_->NextData(fd, 5 * kMiB);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::pair<uint64_t, uint64_t>{8 * kMiB, 8 * kMiB})) << "only a hole follows";
  r = env_->NextData(fd, 9 * kMiB);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 8 * kMiB);
}

}  // namespace
}  // namespace modelswap
