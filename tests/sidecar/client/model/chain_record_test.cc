// The chain fields of the control block record (control_block.h: layer_count, chain_len,
// layer_checksums, chain_words): written by the agent's writer and read back by the clients'
// seqlock read, including what a reader must refuse.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <string>

#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/control_block_access.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::ctl {
namespace {

using modelswap::testing::TempDir;

class ChainRecordTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {dir_ / "shm", "m"});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    writer_ = std::move(*w);
    auto f = ControlBlockFile::Open(std::string(dir_ / "shm") + "/m.ctl");
    ASSERT_TRUE(f.has_value()) << f.error().ToString();
    file_ = std::move(*f);
  }
  static Record Chain(size_t lower) {
    Record r{0, 9, 4096, 0x99, MS_CTL_STATE_ACTIVE, 1, "v9", "/vol/m/versions/v9.msf", {}};
    for (size_t i = 0; i < lower; ++i) {
      r.lower.push_back(
          LowerLayer{"/vol/m/versions/v" + std::to_string(8 - i) + ".msf", 0x1000 + i});
    }
    return r;
  }
  ms_ctl_record& raw() { return file_->header().record; }

  TempDir dir_;
  std::unique_ptr<agent::ControlBlockWriter> writer_;
  std::unique_ptr<ControlBlockFile> file_;
};

TEST_F(ChainRecordTest, AChainRoundTrips) {
  for (size_t lower : {0u, 1u, 3u, 7u}) {
    Record w = Chain(lower);
    ASSERT_TRUE(CheckRecordFits(w));
    writer_->Publish(w);
    auto r = ReadRecord(file_->header());
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_EQ(r->path, w.path);
    EXPECT_EQ(r->lower, w.lower) << lower << " lower layers";
    EXPECT_EQ(r->layer_count(), lower + 1);
    EXPECT_EQ(raw().layer_count, lower + 1);
  }
}

TEST_F(ChainRecordTest, TheSharedBytesAreTheDocumentedOnes) {
  writer_->Publish(Chain(2));
  const auto* base = reinterpret_cast<const unsigned char*>(&file_->header());
  auto u64 = [&](size_t off) {
    uint64_t v;
    std::memcpy(&v, base + off, 8);
    return v;
  };
  EXPECT_EQ(u64(1392), 3u);       // layer_count
  EXPECT_EQ(u64(1408), 0x1000u);  // layer_checksums[0]: v8
  EXPECT_EQ(u64(1416), 0x1001u);  // layer_checksums[1]: v7
  EXPECT_EQ(u64(1424), 0u);       // unused checksums are zero
  std::string chain = "/vol/m/versions/v8.msf\n/vol/m/versions/v7.msf\n";
  EXPECT_EQ(u64(1400), chain.size());  // chain_len
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(base + 1472), chain.size()), chain);
  EXPECT_EQ(base[1472 + chain.size()], 0);
}

TEST_F(ChainRecordTest, AShorterChainLeavesNothingOfTheLongerOneBehind) {
  writer_->Publish(Chain(7));
  writer_->Publish(Chain(0));
  auto r = ReadRecord(file_->header());
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->lower.empty());
  EXPECT_EQ(raw().chain_len, 0u);
  for (uint64_t w : raw().chain_words)
    EXPECT_EQ(w, 0u);
  for (uint64_t c : raw().layer_checksums)
    EXPECT_EQ(c, 0u);
}

TEST_F(ChainRecordTest, ALayerCountOfZeroIsOneFullVersion) {
  writer_->Publish(Chain(0));
  raw().layer_count = 0;  // what an agent from before chains leaves there
  auto r = ReadRecord(file_->header());
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_TRUE(r->lower.empty());
}

TEST_F(ChainRecordTest, TooManyLayersIsCorruption) {
  writer_->Publish(Chain(2));
  raw().layer_count = MS_CTL_MAX_LAYERS + 1;
  auto r = ReadRecord(file_->header());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("layer_count"), std::string::npos);
}

TEST_F(ChainRecordTest, AChainLenPastItsFieldIsCorruption) {
  writer_->Publish(Chain(2));
  raw().chain_len = MS_CTL_CHAIN_BYTES + 8;
  auto r = ReadRecord(file_->header());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("chain_len"), std::string::npos);
}

TEST_F(ChainRecordTest, PathsThatDoNotMatchTheLayerCountAreCorruption) {
  writer_->Publish(Chain(2));
  raw().layer_count = 4;  // three lower layers claimed, two written
  auto r = ReadRecord(file_->header());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  raw().layer_count = 2;  // one claimed, two written
  r = ReadRecord(file_->header());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  raw().layer_count = 3;
  raw().chain_len -= 1;  // the last path lost its newline
  r = ReadRecord(file_->header());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
}

TEST_F(ChainRecordTest, WhatDoesNotFitIsRefusedBeforeWriting) {
  EXPECT_FALSE(CheckRecordFits(Chain(8)));  // nine layers
  Record r = Chain(3);
  r.lower[1].path = std::string(1000, 'a');
  r.lower[2].path = std::string(1000, 'b');
  EXPECT_TRUE(CheckRecordFits(r));
  r.lower[0].path = std::string(100, 'c');  // 2103 bytes with the newlines
  auto st = CheckRecordFits(r);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
  r = Chain(1);
  r.lower[0].path = "a\nb";
  EXPECT_FALSE(CheckRecordFits(r));
  r.lower[0].path = "";
  EXPECT_FALSE(CheckRecordFits(r));
}

TEST_F(ChainRecordTest, AChainFillingItsFieldExactlyRoundTrips) {
  Record w = Chain(2);
  w.lower[0].path = std::string(1023, 'x');
  w.lower[1].path = std::string(MS_CTL_CHAIN_BYTES - 1024 - 1, 'y');
  ASSERT_TRUE(CheckRecordFits(w));
  writer_->Publish(w);
  EXPECT_EQ(raw().chain_len, MS_CTL_CHAIN_BYTES);
  auto r = ReadRecord(file_->header());
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->lower, w.lower);
}

}  // namespace
}  // namespace modelswap::ctl
