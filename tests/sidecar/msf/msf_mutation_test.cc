// Seeded mutation fuzzing of the .msf reader, in the normal test run: >= 10,000 mutated files,
// half of them re-signed so mutations reach the checks behind the checksums. The reader must
// never crash or read out of bounds (the sanitizer CI job runs this same test under ASan/UBSan),
// and a file it accepts must answer lookups and iteration without faults.
// The coverage-guided twin of this test is tests/fuzz/msf_fuzz.cc (libFuzzer, clang only);
// DamagedDeltaChains runs its chain mode (msf_chain_exercise.h) on seeded random inputs.
#include <gtest/gtest.h>

#include <random>

#include "sidecar/msf/reader.h"
#include "tests/sidecar/msf/msf_chain_exercise.h"
#include "tests/sidecar/msf/msf_delta_files.h"
#include "tests/testing/msf_files.h"

namespace modelswap::msf {
namespace {

void Exercise(const std::vector<std::byte>& f, uint64_t* accepted) {
  for (VerifyLevel level : {VerifyLevel::kHeader, VerifyLevel::kFull}) {
    auto r = Reader::Open(f, level);
    if (!r) {
      ASSERT_EQ(r.error().code(), Code::kCorruption);
      continue;
    }
    ++*accepted;
    for (const char* k : {"k0", "k1", "k17", "absent", ""})
      (void)r->Find(std::string_view(k));
    if (level == VerifyLevel::kFull) {
      // A fully verified file is an index of its data: every entry is found by its key, and the
      // lookup answers that very entry.
      ASSERT_TRUE(r->ForEach([&](auto key, auto value) {
                     auto found = r->Find(key);
                     EXPECT_TRUE(found && found->data() == value.data()) << "lost a key";
                     return found && found->data() == value.data();
                   }).has_value());
    }
    uint64_t n = 0;
    (void)r->ForEach([&](auto key, auto value) {
      // Touch first and last bytes: ASan flags any span that points out of the buffer.
      if (!key.empty()) n += static_cast<uint8_t>(key.back());
      if (!value.empty()) n += static_cast<uint8_t>(value.back());
      return true;
    });
  }
}

std::vector<std::byte> Mutate(std::vector<std::byte> f, std::mt19937_64& rng) {
  const int kinds = 6;
  int mutations = 1 + static_cast<int>(rng() % 4);
  for (int m = 0; m < mutations && !f.empty(); ++m) {
    switch (rng() % kinds) {
      case 0:
        f[rng() % f.size()] ^= std::byte(1u << (rng() % 8));
        break;  // bit flip
      case 1:
        f[rng() % f.size()] = std::byte(rng() & 0xff);
        break;  // random byte
      case 2:
        f.resize(rng() % f.size());
        break;   // truncate
      case 3: {  // overwrite a header integer field with an extreme value
        size_t off = (rng() % (kOffReservedTail / 8)) * 8;
        uint64_t vals[] = {0, 1, ~uint64_t{0}, uint64_t{1} << 63, f.size(), f.size() + 4096, 4096};
        if (off + 8 <= f.size()) StoreU64(f.data() + off, vals[rng() % std::size(vals)]);
        break;
      }
      case 4: {  // corrupt a DATA entry's length fields
        size_t off = kHeaderSize + (rng() % 64) * 4;
        if (off + 4 <= f.size()) StoreU32(f.data() + off, static_cast<uint32_t>(rng()));
        break;
      }
      case 5:
        f.insert(f.begin() + static_cast<long>(rng() % f.size()), std::byte(rng() & 0xff));
        break;
    }
  }
  if (rng() % 2 == 0) testing::Reseal(f, rng() % 4 != 0);
  return f;
}

TEST(MsfMutation, TenThousandMutatedFilesNeverCrash) {
  std::vector<std::vector<std::byte>> seeds;
  seeds.push_back(testing::BuildMsfBytes({}));
  seeds.push_back(testing::BuildMsfBytes({{"k0", "v"}, {"k1", std::string(5000, 'x')}}));
  testing::Entries many;
  for (int i = 0; i < 300; ++i)
    many.emplace_back("k" + std::to_string(i), std::string(i % 40, 'a'));
  seeds.push_back(testing::BuildMsfBytes(many));
  msf_testing::Ops delta = {{"k0", std::nullopt}, {"k1", "v1"}, {"k17", std::nullopt}};
  seeds.push_back(msf_testing::MustBuild(delta, msf_testing::DeltaOptions("v2", "v1", 7, 1)));

  std::mt19937_64 rng(20261121);
  uint64_t accepted = 0;
  constexpr int kCases = 12'000;
  for (int i = 0; i < kCases; ++i) {
    auto f = Mutate(seeds[i % seeds.size()], rng);
    Exercise(f, &accepted);
    if (HasFatalFailure()) FAIL() << "case " << i;
  }
  // Some mutations (in padding, or re-signed harmless changes) must still be accepted, or the
  // loop would only be testing the first check.
  RecordProperty("accepted", std::to_string(accepted));
  EXPECT_GT(accepted, 0u);
}

// One layer of a delta chain damaged (and half the time re-signed), the chain loaded the way a
// client would: every answer of a chain that verifies must match its layers' contents.
TEST(MsfMutation, DamagedDeltaChains) {
  testing::TempDir dir;
  const msf_testing::ChainFixture fixture = msf_testing::BuildChainFixture(dir.path());
  std::mt19937_64 rng(20261202);
  uint64_t looked_up = 0, damaged_looked_up = 0;
  constexpr int kCases = 3'000;
  for (int i = 0; i < kCases; ++i) {
    std::vector<uint8_t> input(2 + 3 * (1 + rng() % 4));
    for (uint8_t& b : input)
      b = static_cast<uint8_t>(rng());
    // Offsets mostly in the header and the first entries, where the checks are.
    for (size_t j = 2; j + 2 < input.size(); j += 3) {
      if (rng() % 2 == 0) input[j + 1] = rng() % 2 == 0 ? 0 : 0x10;
    }
    if (rng() % 4 != 0) input[1] &= 0x7f;  // mostly not truncated
    const uint64_t before = looked_up;
    std::string e = msf_testing::ExerciseChain(fixture, input.data(), input.size(), &looked_up);
    ASSERT_EQ(e, "") << "case " << i;
    damaged_looked_up += looked_up != before && (input[0] & 3) != 3;
  }
  // The undamaged chain of each shape, checked in full.
  for (uint8_t shape = 0; shape < 4; ++shape) {
    uint8_t control = static_cast<uint8_t>(3 | shape << 3);
    EXPECT_EQ(msf_testing::ExerciseChain(fixture, &control, 1), "") << "shape " << int{shape};
  }
  // Damage the checks let through (re-signed value bytes, padding flips undone by a second flip)
  // must occur, or the oracle above never ran on a damaged layer.
  RecordProperty("looked_up", std::to_string(looked_up));
  EXPECT_GT(damaged_looked_up, 0u);
  std::printf("chains looked up: %llu (%llu with a damaged layer) of %d\n",
              static_cast<unsigned long long>(looked_up),
              static_cast<unsigned long long>(damaged_looked_up), kCases);
}

}  // namespace
}  // namespace modelswap::msf
