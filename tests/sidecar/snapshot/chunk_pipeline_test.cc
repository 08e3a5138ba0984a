// ChunkPipeline on its own: every byte handed over once, in order, with the right hash; a range
// that is not a multiple of the chunk; a caller that stops early (the threads must not hang); a
// read error and a file that ends early.
#include "sidecar/snapshot/chunk_pipeline.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/checksum.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap::snapshot {
namespace {

class ChunkPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_.resize(10 * 1000 + 7);
    for (size_t i = 0; i < data_.size(); ++i)
      data_[i] = static_cast<std::byte>(i * 7 + i / 251);
    path_ = dir_ / "file";
    const int w = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(::write(w, data_.data(), data_.size()), static_cast<ssize_t>(data_.size()));
    ::close(w);
    fd_ = ::open(path_.c_str(), O_RDONLY);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }

  testing::ScratchDir dir_{false};
  std::vector<std::byte> data_;
  std::string path_;
  int fd_ = -1;
};

TEST_F(ChunkPipelineTest, HandsOverEveryByteInOrderAndHashesThem) {
  ChunkPipeline p(DefaultEnv(), fd_, path_, 100, data_.size() - 100, 1024, 3);
  std::vector<std::byte> got;
  for (;;) {
    Result<std::span<const std::byte>> c = p.Next();
    ASSERT_TRUE(c) << c.error().ToString();
    if (c->empty()) break;
    EXPECT_LE(c->size(), 1024u);
    got.insert(got.end(), c->begin(), c->end());
    p.Release();
  }
  ASSERT_EQ(got.size(), data_.size() - 100);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data_.begin() + 100));
  Result<uint64_t> h = p.Finish();
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, Xxh3(std::span(data_).subspan(100)));
  Result<std::span<const std::byte>> end = p.Next();
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->empty());
}

TEST_F(ChunkPipelineTest, CallerStoppingEarlyDoesNotHang) {
  for (int taken = 0; taken < 4; ++taken) {
    ChunkPipeline p(DefaultEnv(), fd_, path_, 0, data_.size(), 512, 2);
    for (int i = 0; i < taken; ++i) {
      ASSERT_TRUE(p.Next());
      if (i % 2 == 0) p.Release();  // and sometimes without releasing the last one
    }
  }  // each destructor must return
}

TEST_F(ChunkPipelineTest, FileEndingEarlyIsCorruption) {
  ChunkPipeline p(DefaultEnv(), fd_, path_, 0, data_.size() + 5000, 4096, 2);
  Status last = Ok();
  for (int i = 0; i < 10 && last; ++i) {
    Result<std::span<const std::byte>> c = p.Next();
    if (!c)
      last = Fail(c.error());
    else if (c->empty())
      break;
    else
      p.Release();
  }
  ASSERT_FALSE(last);
  EXPECT_EQ(last.error().code(), Code::kCorruption);
  EXPECT_NE(last.error().message().find("truncated"), std::string::npos);
  EXPECT_FALSE(p.Finish());
}

TEST_F(ChunkPipelineTest, ReadErrorReachesTheCaller) {
  const int bad = ::open(path_.c_str(), O_WRONLY);  // pread on a write-only fd: EBADF
  ASSERT_GE(bad, 0);
  {
    ChunkPipeline p(DefaultEnv(), bad, path_, 0, data_.size(), 4096, 2);
    Result<std::span<const std::byte>> c = p.Next();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code(), Code::kIOError);
    EXPECT_NE(c.error().message().find(path_), std::string::npos) << c.error().message();
  }
  ::close(bad);
}

}  // namespace
}  // namespace modelswap::snapshot
