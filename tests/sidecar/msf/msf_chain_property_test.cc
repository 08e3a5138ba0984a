// Property test of delta chains (msf/chain.h) against a std::map model: random upserts and
// deletes build chains of up to kMaxChainDeltas deltas over a random full base, with random
// compactions (ForEachLive folded into a new full file). After every step the chain validates,
// ChainFind of every key ever seen equals the model's answer, and ForEachLive yields exactly the
// model's contents, each key once; ChainFind with a LayerFilter on every layer (msf/layer_filter.h)
// gives the same answers. Seeded and bounded (a few seconds).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "sidecar/msf/chain.h"
#include "tests/sidecar/msf/msf_delta_files.h"
#include "tests/sidecar/msf/msf_layers.h"

namespace modelswap::msf {
namespace {

using msf_testing::DeltaOptions;
using msf_testing::LayerOptions;
using msf_testing::Layers;
using msf_testing::MustBuild;
using msf_testing::Ops;
using msf_testing::Str;

class ChainModel {
 public:
  explicit ChainModel(uint32_t seed) : rng_(seed) {}

  void Run(int steps) {
    NewFullBase();
    for (int step = 0; step < steps && !::testing::Test::HasFailure(); ++step) {
      const uint32_t deltas = static_cast<uint32_t>(chain_.size()) - 1;
      const int dice = Uniform(0, 9);
      if (deltas == kMaxChainDeltas || dice == 0) {
        Compact();
      } else if (dice == 1) {
        NewFullBase();
      } else {
        AddDelta(deltas + 1);
      }
      Check();
    }
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // Keys from a small universe so deltas hit, shadow and re-add each other's keys; some binary.
  std::string RandomKey() {
    int n = Uniform(0, 299);
    std::string k = "k" + std::to_string(n);
    if (n % 7 == 0) k.push_back('\0');
    if (n == 5) k.clear();  // the empty key
    seen_.insert(k);
    return k;
  }
  std::string RandomValue() {
    std::string v(static_cast<size_t>(Uniform(0, 24)), '\0');
    for (char& c : v)
      c = static_cast<char>(Uniform(0, 255));
    return v;
  }
  uint64_t RandomSeed() { return std::uniform_int_distribution<uint64_t>()(rng_); }

  std::string NextVersion() { return "v" + std::to_string(++version_); }

  void Push(std::vector<std::byte> bytes) {
    const Reader* r = layers_.Add(std::move(bytes));
    ASSERT_NE(r, nullptr);
    chain_.insert(chain_.begin(), r);
  }

  void NewFullBase() {
    model_.clear();
    Ops ops;
    for (int i = Uniform(0, 200); i > 0; --i) {
      std::string k = RandomKey();
      if (model_.contains(k)) continue;
      std::string v = RandomValue();
      model_[k] = v;
      ops.push_back({k, v});
    }
    auto options = LayerOptions(NextVersion());
    options.hash_seed = RandomSeed();
    chain_.clear();
    Push(MustBuild(ops, options));
  }

  void AddDelta(uint32_t depth) {
    Ops ops;
    std::set<std::string> touched;
    for (int i = Uniform(0, 40); i > 0; --i) {
      std::string k = RandomKey();
      if (!touched.insert(k).second) continue;  // a delta names a key at most once
      if (Uniform(0, 2) == 0) {
        model_.erase(k);  // deleting an absent key is allowed: the tombstone is just redundant
        ops.push_back({k, std::nullopt});
      } else {
        std::string v = RandomValue();
        model_[k] = v;
        ops.push_back({k, v});
      }
    }
    const Reader& base = *chain_.front();
    auto options =
        DeltaOptions(NextVersion(), base.header().version, base.header().header_checksum, depth);
    options.hash_seed = RandomSeed();
    Push(MustBuild(ops, options));
  }

  void Compact() {
    Ops ops;
    ASSERT_TRUE(ForEachLive(chain_, [&](auto k, auto v) {
                  ops.push_back({Str(k), Str(v)});
                  return true;
                }).has_value());
    auto options = LayerOptions(NextVersion());
    options.hash_seed = RandomSeed();
    chain_.clear();
    Push(MustBuild(ops, options));
  }

  void Check() {
    Status valid = ValidateChain(chain_);
    ASSERT_TRUE(valid.has_value()) << valid.error().ToString();
    // A filter on every layer, the base too (readers put none there, but a filter must never
    // change an answer wherever it sits); the random seeds make each layer's hash its own.
    std::vector<LayerFilter> filters;
    for (const Reader* r : chain_)
      filters.push_back(LayerFilter::Build(*r));
    std::vector<const LayerFilter*> filter_ptrs;
    for (const LayerFilter& f : filters) {
      ASSERT_TRUE(f.active());
      filter_ptrs.push_back(&f);
    }
    for (const std::string& k : seen_) {
      auto got = ChainFind(chain_, std::string_view(k));
      auto filtered = ChainFind(chain_, filter_ptrs, std::string_view(k));
      ASSERT_EQ(got, filtered) << "key " << k << ": the filters change the answer";
      auto want = model_.find(k);
      if (want == model_.end()) {
        ASSERT_FALSE(got.has_value()) << "key " << k << " should be absent";
      } else {
        ASSERT_TRUE(got.has_value()) << "key " << k << " missing";
        ASSERT_EQ(*got, want->second) << "key " << k;
      }
    }
    std::map<std::string, std::string> live;
    ASSERT_TRUE(ForEachLive(chain_, [&](auto k, auto v) {
                  EXPECT_TRUE(live.emplace(Str(k), Str(v)).second) << "key visited twice";
                  return true;
                }).has_value());
    ASSERT_EQ(live, model_);
    ASSERT_EQ(LiveEntryCount(chain_).value_or(UINT64_MAX), model_.size());
  }

  std::mt19937_64 rng_;
  std::map<std::string, std::string> model_;
  std::set<std::string> seen_;
  Layers layers_;                     // never shrinks: a test's worth of small files
  std::vector<const Reader*> chain_;  // newest first
  int version_ = 0;
};

TEST(MsfChainProperty, MatchesAMapModel) {
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    ChainModel(seed).Run(60);
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace modelswap::msf
