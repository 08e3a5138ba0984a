// The C++ client and the C ABI reading a delta version through its chain, against a control
// block written in-process by the agent's ControlBlockWriter: lookups newest layer first with
// tombstones, layer_count and entry_count, a record that names a delta alone or a layer with
// another checksum refused, and a lower layer truncated under a handle reported as damage.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include "common/checksum.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/modelswap.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/chain_spec.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::client {
namespace {

using modelswap::testing::ChainSpecEntry;
using modelswap::testing::TempDir;

constexpr uint64_t kKeys = 600;
constexpr const char* kSpec = "c0,d1,d2,d3";

class ChainClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    shm_ = dir_ / "shm";
    auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    writer_ = std::move(*w);
    spec_ = modelswap::testing::ParseChainSpec(kSpec);
    for (size_t i = 0; i < spec_.size(); ++i)
      ASSERT_NO_FATAL_FAILURE(Write(i));
  }
  void Write(size_t i) {
    std::string tsv = dir_ / (spec_[i].version + ".tsv");
    std::ofstream(tsv) << modelswap::testing::SpecTsv(spec_, i, "m", kKeys);
    WriteRequest req{dir_ / "root", "m", spec_[i].version, TsvSource{tsv}, false};
    if (i > 0) req.delta_on = spec_[i - 1].version;
    auto r = WriteVersion(DefaultEnv(), req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    uint64_t checksum = 0;
    ASSERT_TRUE(ParseChecksum(r->checksum, &checksum));
    written_.push_back({*r, checksum});
  }
  // The record of version i: its own file, then the layers below it, newest first.
  ctl::Record RecordOf(size_t i, uint64_t generation) {
    const auto& [w, checksum] = written_[i];
    ctl::Record r{0, generation,       w.bytes, checksum, MS_CTL_STATE_ACTIVE,
                  0, spec_[i].version, w.path,  {}};
    for (size_t j = i; j-- > 0;)
      r.lower.push_back(ctl::LowerLayer{written_[j].first.path, written_[j].second});
    return r;
  }
  std::unique_ptr<ModelClient> Attach() {
    Options o;
    o.shm_dir = shm_;
    o.heartbeat_thread = false;
    auto c = ModelClient::Attach("m", o);
    EXPECT_TRUE(c.has_value()) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }
  // Every key of version i reads as the spec says: its newest value, or absent when deleted.
  void ExpectVersion(const Handle& h, size_t i) {
    int deleted = 0, from_delta = 0;
    for (uint64_t k = 0; k < kKeys; ++k) {
      auto got = h.Lookup(std::to_string(k));
      ASSERT_TRUE(got.has_value()) << got.error().ToString();
      auto want = modelswap::testing::SpecExpected(spec_, i, "m", k);
      if (!want) {
        EXPECT_FALSE(got->has_value()) << "key " << k << " was deleted in " << spec_[i].version;
        ++deleted;
        continue;
      }
      ASSERT_TRUE(got->has_value()) << "key " << k << " of " << spec_[i].version;
      EXPECT_TRUE((*got)->starts_with(*want)) << k << ": " << **got << " wanted " << *want;
      from_delta += want->starts_with("m/d") ? 1 : 0;
    }
    if (i > 0) {
      EXPECT_GT(deleted, 0);
      EXPECT_GT(from_delta, 0);
    }
  }

  TempDir dir_;
  std::string shm_;
  std::unique_ptr<agent::ControlBlockWriter> writer_;
  std::vector<ChainSpecEntry> spec_;
  std::vector<std::pair<WriteResult, uint64_t>> written_;
};

TEST_F(ChainClientTest, LookupsReadTheChainNewestFirstAndHandlesStayPinned) {
  writer_->Publish(RecordOf(1, 1));
  auto c = Attach();
  auto h1 = c->Acquire();
  ASSERT_TRUE(h1.has_value()) << h1.error().ToString();
  EXPECT_EQ(h1->layer_count(), 2u);
  writer_->Publish(RecordOf(3, 2));
  auto h3 = c->Acquire();
  ASSERT_TRUE(h3.has_value()) << h3.error().ToString();
  EXPECT_EQ(h3->version(), "d3");
  EXPECT_EQ(h3->layer_count(), 4u);
  // entry_count is the newest layer's: d3's upserts and deletions, far fewer than the keys.
  EXPECT_GT(h3->entry_count(), 0u);
  EXPECT_LT(h3->entry_count(), kKeys / 2);
  ExpectVersion(*h3, 3);
  ExpectVersion(*h1, 1);  // the older handle still reads its own chain
  // A key deleted in d1 and upserted again in d3 (k % 7 == 1, k % 4 == 3): 15.
  EXPECT_FALSE(h1->Get("15").has_value());
  EXPECT_TRUE(h3->Get("15")->starts_with("m/d3/15/"));
}

TEST_F(ChainClientTest, AFullVersionIsAChainOfOne) {
  writer_->Publish(RecordOf(0, 1));
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  EXPECT_EQ(h->layer_count(), 1u);
  EXPECT_EQ(h->entry_count(), kKeys);
  ExpectVersion(*h, 0);
}

TEST_F(ChainClientTest, ADeltaNamedAloneIsRefused) {
  ctl::Record r = RecordOf(2, 1);
  r.lower.clear();  // only the delta's own file: it must never read as a whole version
  writer_->Publish(r);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kFailedPrecondition) << h.error().ToString();
  EXPECT_NE(h.error().message().find("d2"), std::string::npos) << h.error().ToString();
}

TEST_F(ChainClientTest, ALayerWithAnotherChecksumIsRefused) {
  ctl::Record r = RecordOf(2, 1);
  r.lower[1].checksum ^= 1;  // c0 as the agent verified it was another file
  writer_->Publish(r);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kCorruption) << h.error().ToString();
  EXPECT_NE(h.error().message().find("c0"), std::string::npos) << h.error().ToString();
}

TEST_F(ChainClientTest, LayersOutOfOrderAreRefused) {
  ctl::Record r = RecordOf(2, 1);
  std::swap(r.lower[0], r.lower[1]);
  writer_->Publish(r);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kFailedPrecondition) << h.error().ToString();
}

TEST_F(ChainClientTest, ABaseTruncatedUnderAHandleIsDamageNotData) {
  writer_->Publish(RecordOf(2, 1));
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  ASSERT_TRUE(h->Get("0").has_value());
  std::filesystem::resize_file(written_[0].first.path, 4096);  // c0: its header page only
  // Key 0 lives in c0 alone (0 % 4 != 1, 2 and 0 % 7 not 1, 2): reading it faults in the base.
  auto v = h->Lookup("0");
  ASSERT_FALSE(v.has_value()) << "read a value from a truncated layer";
  EXPECT_EQ(v.error().code(), Code::kAborted);
  EXPECT_NE(v.error().message().find("layer"), std::string::npos) << v.error().ToString();
  EXPECT_TRUE(h->damaged());
}

TEST_F(ChainClientTest, CAbiLooksUpThroughTheChain) {
  writer_->Publish(RecordOf(3, 1));
  ms_model* m = nullptr;
  ASSERT_EQ(ms_model_attach(shm_.c_str(), "m", &m), MS_OK) << ms_last_error();
  ms_handle* h = nullptr;
  ASSERT_EQ(ms_acquire(m, &h), MS_OK) << ms_last_error();
  EXPECT_EQ(ms_handle_layer_count(h), 4u);
  EXPECT_EQ(ms_handle_layer_count(nullptr), 0u);
  EXPECT_STREQ(ms_handle_version(h), "d3");
  for (uint64_t k = 0; k < kKeys; ++k) {
    std::string key = std::to_string(k);
    const void* v = nullptr;
    size_t n = 0;
    ms_status st = ms_get(h, key.data(), key.size(), &v, &n);
    auto want = modelswap::testing::SpecExpected(spec_, 3, "m", k);
    if (!want) {
      EXPECT_EQ(st, MS_KEY_NOT_FOUND) << "deleted key " << k;
      continue;
    }
    ASSERT_EQ(st, MS_OK) << k << ": " << ms_last_error();
    EXPECT_TRUE(std::string_view(static_cast<const char*>(v), n).starts_with(*want)) << k;
  }
  ms_handle_release(h);
  ms_model_detach(m);
}

}  // namespace
}  // namespace modelswap::client
