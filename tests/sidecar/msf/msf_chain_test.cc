// Chains of .msf layers (msf/chain.h): ValidateChain's checks one by one, and ChainFind and
// ForEachLive on a small chain (the property test against a std::map model is
// msf_chain_property_test.cc).
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "sidecar/msf/chain.h"
#include "tests/sidecar/msf/msf_delta_files.h"
#include "tests/sidecar/msf/msf_layers.h"

// Defined in count_allocations.cc (which replaces the global operator new in msf_test).
uint64_t AllocationCount();

namespace modelswap::msf {
namespace {

using msf_testing::DeltaOptions;
using msf_testing::HeaderChecksumOf;
using msf_testing::LayerOptions;
using msf_testing::Layers;
using msf_testing::MustBuild;
using msf_testing::Str;

class MsfChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_bytes_ = MustBuild({{"a", "a1"}, {"b", "b1"}, {"c", "c1"}}, LayerOptions("v1"));
    base_ = layers_.Add(base_bytes_);
    d2_ = layers_.AddDelta({{"b", "b2"}, {"c", std::nullopt}, {"d", "d2"}}, "v2", base_, 1);
    d3_ = layers_.AddDelta({{"a", std::nullopt}, {"c", "c3"}}, "v3", d2_, 2);
  }
  void ExpectMismatch(std::vector<const Reader*> chain, const std::string& what) {
    Status s = ValidateChain(chain);
    ASSERT_FALSE(s.has_value()) << "accepted a bad chain: " << what;
    EXPECT_EQ(s.error().code(), Code::kFailedPrecondition);
    EXPECT_NE(s.error().message().find(what), std::string::npos)
        << "got \"" << s.error().message() << "\", want it to name \"" << what << "\"";
    EXPECT_TRUE(s.error().message().starts_with("msf: "));
  }

  Layers layers_;
  std::vector<std::byte> base_bytes_;
  const Reader* base_ = nullptr;
  const Reader* d2_ = nullptr;
  const Reader* d3_ = nullptr;
};

TEST_F(MsfChainTest, LookupsNewestFirst) {
  std::vector<const Reader*> chain = {d3_, d2_, base_};
  ASSERT_TRUE(ValidateChain(chain).has_value());
  EXPECT_EQ(ChainFind(chain, std::string_view("a")), std::nullopt);  // deleted in v3
  EXPECT_EQ(ChainFind(chain, std::string_view("b")), "b2");
  EXPECT_EQ(ChainFind(chain, std::string_view("c")), "c3");  // deleted in v2, back in v3
  EXPECT_EQ(ChainFind(chain, std::string_view("d")), "d2");
  EXPECT_EQ(ChainFind(chain, std::string_view("e")), std::nullopt);
  std::vector<const Reader*> v2 = {d2_, base_};
  ASSERT_TRUE(ValidateChain(v2).has_value());
  EXPECT_EQ(ChainFind(v2, std::string_view("a")), "a1");
  EXPECT_EQ(ChainFind(v2, std::string_view("c")), std::nullopt);

  std::vector<std::pair<std::string, std::string>> live;
  ASSERT_TRUE(ForEachLive(chain, [&](auto k, auto v) {
                live.emplace_back(Str(k), Str(v));
                return true;
              }).has_value());
  // Layer by layer from the newest, each in DATA order.
  std::vector<std::pair<std::string, std::string>> want = {{"c", "c3"}, {"b", "b2"}, {"d", "d2"}};
  EXPECT_EQ(live, want);
  EXPECT_EQ(LiveEntryCount(chain).value_or(0), 3u);
  // fn returning false stops the walk across layers.
  int calls = 0;
  ASSERT_TRUE(ForEachLive(chain, [&](auto, auto) { return ++calls < 2; }).has_value());
  EXPECT_EQ(calls, 2);
}

TEST_F(MsfChainTest, ChainFindDoesNotAllocate) {
  std::vector<const Reader*> chain = {d3_, d2_, base_};
  const std::string keys[] = {"a", "b", "c", "d", "e", std::string(300, 'x')};
  // With filters too (built before counting: readers build them when they open a layer).
  const LayerFilter f3 = LayerFilter::Build(*d3_), f2 = LayerFilter::Build(*d2_);
  std::vector<const LayerFilter*> filters = {&f3, &f2, nullptr};
  size_t found = 0, found_filtered = 0;
  const uint64_t before = AllocationCount();
  for (int rep = 0; rep < 100; ++rep) {
    for (const std::string& k : keys) {
      found += ChainFind(chain, std::string_view(k)).has_value();
      found_filtered += ChainFind(chain, filters, std::string_view(k)).has_value();
    }
  }
  EXPECT_EQ(AllocationCount(), before);
  EXPECT_EQ(found, 300u);
  EXPECT_EQ(found_filtered, 300u);
  // The counter does count: a std::string of 300 bytes allocates.
  std::string probe(300, 'y');
  EXPECT_GT(AllocationCount(), before);
}

TEST_F(MsfChainTest, SingleFullVersionIsAChain) {
  std::vector<const Reader*> chain = {base_};
  ASSERT_TRUE(ValidateChain(chain).has_value());
  EXPECT_EQ(ChainFind(chain, std::string_view("c")), "c1");
}

TEST_F(MsfChainTest, WrongBaseChecksum) {
  auto bad = layers_.Add(
      MustBuild({{"x", "1"}}, DeltaOptions("v2", "v1", HeaderChecksumOf(base_bytes_) + 1, 1)));
  ExpectMismatch({bad, base_}, "delta v2 names base v1 checksum " +
                                   FormatChecksum(HeaderChecksumOf(base_bytes_) + 1) +
                                   ", but the layer below is v1 " + base_->checksum());
}
TEST_F(MsfChainTest, WrongBaseVersion) {
  auto bad = layers_.Add(
      MustBuild({{"x", "1"}}, DeltaOptions("v2", "v0", HeaderChecksumOf(base_bytes_), 1)));
  ExpectMismatch({bad, base_}, "delta v2 names base v0 checksum");
}
TEST_F(MsfChainTest, ModelMismatch) {
  auto other = layers_.Add(
      MustBuild({{"x", "1"}}, DeltaOptions("v2", "v1", HeaderChecksumOf(base_bytes_), 1, "other")));
  ExpectMismatch({other, base_},
                 "layer v1 is of model \"m\", but the chain's top layer is of "
                 "model \"other\"");
}
TEST_F(MsfChainTest, DepthWrong) {
  auto bad = layers_.Add(
      MustBuild({{"x", "1"}}, DeltaOptions("v2", "v1", HeaderChecksumOf(base_bytes_), 2)));
  ExpectMismatch({bad, base_},
                 "delta v2 has chain depth 2, but 1 deltas lie from the full base v1");
}
TEST_F(MsfChainTest, BaseIsADeltaAtTheBottom) {
  ExpectMismatch({d3_, d2_}, "the bottom layer of the chain, v2, is a delta (on v1)");
}
TEST_F(MsfChainTest, FullVersionAboveTheBottom) {
  ExpectMismatch({base_, base_}, "layer v1 is a full version but has 1 layers below it");
}
TEST_F(MsfChainTest, TooManyLayers) {
  std::vector<const Reader*> chain(kMaxChainLayers + 1, base_);
  ExpectMismatch(chain, "chain of 9 layers exceeds the limit of 8");
}
TEST_F(MsfChainTest, EmptyOrNull) {
  ExpectMismatch({}, "a chain needs at least one layer");
  ExpectMismatch({d2_, nullptr}, "chain layer 1 is missing");
}

}  // namespace
}  // namespace modelswap::msf
