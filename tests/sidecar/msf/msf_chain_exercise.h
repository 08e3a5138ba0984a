// A damaged layer in a delta chain, checked against an oracle: shared by the coverage-guided
// fuzzer (tests/fuzz/msf_fuzz.cc) and the seeded mutation test (msf_mutation_test.cc), so the
// ctest run covers what clang-only libFuzzer builds explore longer. No gtest here: a violation
// comes back as a message (the fuzzer aborts on it, the test fails on it).
//
// A fixed chain (a full base, delta d1 on it, delta d2 on d1) is built once with the real
// Builder. Input bytes:
//   byte 0   bits 0-1: the layer to damage (0 d2, 1 d1, 2 base, 3 none)
//            bit 2: re-sign after the damage (section checksums and header checksum recomputed,
//                   so the damage reaches the checks behind them)
//            bits 3-4: the chain's shape: 0 [d2 d1 base], 1 [d1 base], 2 [d2 base] (a skipped
//                   link), 3 [d2 d1] (no full base)
//   byte 1   truncation: 0..127 keeps the layer whole, 128..255 cuts it to (b-128)/128
//   triples  (offset lo, offset hi, value): layer[offset % size] ^= value
// Checks: ParseHeader, Reader::Open (both levels), ValidateChain, ChainFind and ForEachLive never
// crash or read out of bounds (ASan); the chain is used only if every layer passes kFull and
// ValidateChain; then every answer must equal a reference computed from the layers' DATA walks
// (ForEachEntry), also when looked up through each layer's LayerFilter, each verified layer's
// Lookup must agree with its own DATA, and ValidateChain's
// acceptance must match the links checked independently here. Layers that fail kFull are still
// looked up through kHeader readers (answers unchecked: an unverified file may answer anything
// within its bytes, only never outside them).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/env.h"
#include "sidecar/msf/builder.h"
#include "sidecar/msf/chain.h"
#include "sidecar/msf/cursor.h"
#include "sidecar/msf/layer_filter.h"
#include "sidecar/msf/reader.h"

namespace modelswap::msf_testing {
// Only test helpers live here, so the format's names may be used unqualified.
using namespace modelswap::msf;  // NOLINT(google-build-using-namespace)

struct ChainFixture {
  std::vector<std::vector<std::byte>> layers;  // d2, d1, base
  std::vector<std::string> keys;               // every key any layer names, plus absent ones
};

inline std::string BuildLayerInto(
    const std::string& path, const BuildOptions& options,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& ops,
    std::vector<std::byte>* out) {
  Env* env = DefaultEnv();
  (void)env->Remove(path);
  auto fd = env->Open(path, OpenMode::kReadWriteNew);
  if (!fd) return fd.error().ToString();
  std::string error;
  {
    Builder b(env, *fd, options);
    for (const auto& [k, v] : ops) {
      Status s = v ? b.Add(k, *v) : b.AddTombstone(k);
      if (!s) error = s.error().ToString();
    }
    if (error.empty()) {
      auto r = b.Finish();
      if (!r) error = r.error().ToString();
    }
  }
  env->Close(*fd);
  if (!error.empty()) return error;
  auto text = ReadFileToString(env, path, uint64_t{1} << 20);
  if (!text) return text.error().ToString();
  auto bytes = std::as_bytes(std::span(*text));
  out->assign(bytes.begin(), bytes.end());
  (void)env->Remove(path);
  return "";
}

// Builds the chain in `dir` (a scratch directory); aborts on failure (a broken builder).
inline ChainFixture BuildChainFixture(const std::string& dir) {
  using Ops = std::vector<std::pair<std::string, std::optional<std::string>>>;
  Ops base, d1, d2;
  for (int i = 0; i < 24; ++i)
    base.push_back({"k" + std::to_string(i), std::string(i % 9, 'b')});
  for (int i = 0; i < 10; ++i) {
    std::string k = "k" + std::to_string(i * 3);
    d1.push_back({k, i % 3 == 0 ? std::nullopt : std::optional<std::string>("d1-" + k)});
  }
  d1.push_back({"new1", "n1"});
  for (int i = 0; i < 8; ++i) {
    std::string k = "k" + std::to_string(i * 2);
    d2.push_back({k, i % 2 == 0 ? std::nullopt : std::optional<std::string>("d2-" + k)});
  }
  d2.push_back({"new1", std::nullopt});
  d2.push_back({"new2", ""});
  ChainFixture f;
  f.layers.resize(3);
  BuildOptions o;
  o.model = "m";
  o.version = "v1";
  o.hash_seed = 11;
  std::string e = BuildLayerInto(dir + "/base.msf", o, base, &f.layers[2]);
  o.version = "v2";
  o.hash_seed = 22;
  o.delta = DeltaBase{"v1", LoadU64(f.layers[2].data() + kOffHeaderChecksum), 1};
  if (e.empty()) e = BuildLayerInto(dir + "/d1.msf", o, d1, &f.layers[1]);
  o.version = "v3";
  o.hash_seed = 33;
  o.delta = DeltaBase{"v2", LoadU64(f.layers[1].data() + kOffHeaderChecksum), 2};
  if (e.empty()) e = BuildLayerInto(dir + "/d2.msf", o, d2, &f.layers[0]);
  if (!e.empty()) {
    std::fprintf(stderr, "msf chain fixture: %s\n", e.c_str());
    std::abort();
  }
  for (const Ops* ops : {&base, &d1, &d2})
    for (const auto& [k, v] : *ops)
      f.keys.push_back(k);
  for (const char* k : {"", "absent", "k99", "new3"})
    f.keys.push_back(k);
  return f;
}

// Recomputes the checksums of the sections that lie inside the file, then the header's.
inline void ResealLayer(std::vector<std::byte>& f) {
  if (f.size() < kHeaderSize) return;
  const uint32_t count = std::min(LoadU32(f.data() + kOffSectionCount), kMaxSections);
  for (uint32_t i = 0; i < count; ++i) {
    std::byte* s = f.data() + kOffSections + i * kSectionEntrySize;
    const uint64_t off = LoadU64(s + 8), len = LoadU64(s + 16);
    if (off <= f.size() && len <= f.size() - off) {
      StoreU64(s + 24, Xxh3(std::span<const std::byte>(f).subspan(off, len)));
    }
  }
  StoreU64(f.data() + kOffHeaderChecksum,
           Xxh3(std::span<const std::byte>(f).first(kOffHeaderChecksum)));
}

namespace chain_exercise_internal {

inline std::string Str(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// What a layer's DATA says: key -> value, or nullopt for a tombstone.
using Contents = std::map<std::string, std::optional<std::string>>;

// The DATA walk of a verified layer, and its Lookup of every key agreeing with it.
inline std::string LayerContents(const Reader& r, const std::vector<std::string>& keys,
                                 Contents* out) {
  std::string error;
  Status s = r.ForEachEntry([&](auto k, auto v, bool tombstone) {
    auto [it, fresh] =
        out->emplace(Str(k), tombstone ? std::nullopt : std::optional<std::string>(Str(v)));
    if (!fresh) error = "a verified layer holds a key twice";
    return error.empty();
  });
  if (!s) return "ForEachEntry failed on a verified layer: " + s.error().ToString();
  if (!error.empty()) return error;
  if (r.header().tombstone_count != 0 && !r.is_delta()) return "tombstones in a full file";
  for (const auto& [k, want] : *out) {
    Probe p = r.Lookup(k);
    if (want ? p.presence != Presence::kValue || Str(p.value) != *want
             : p.presence != Presence::kTombstone) {
      return "Lookup disagrees with DATA on a verified layer";
    }
  }
  for (const std::string& k : keys) {
    if (!out->contains(k) && r.Lookup(k).presence != Presence::kAbsent) {
      return "Lookup finds a key DATA does not hold";
    }
  }
  return "";
}

// The links ValidateChain must check, checked again here.
inline bool LinksHold(const std::vector<const Reader*>& chain) {
  if (chain.back()->is_delta()) return false;
  for (size_t i = 0; i < chain.size(); ++i) {
    const Header& h = chain[i]->header();
    if (h.model != chain[0]->header().model) return false;
    if (i + 1 == chain.size()) break;
    const Header& below = chain[i + 1]->header();
    if (!h.delta || h.base_version != below.version || h.base_checksum != below.header_checksum ||
        h.chain_depth != chain.size() - 1 - i) {
      return false;
    }
  }
  return true;
}

}  // namespace chain_exercise_internal

// *looked_up (if set) counts the inputs whose chain verified and validated and was looked up.
inline std::string ExerciseChain(const ChainFixture& fixture, const uint8_t* data, size_t size,
                                 uint64_t* looked_up = nullptr) {
  using namespace chain_exercise_internal;
  const uint8_t control = size > 0 ? data[0] : 3;
  const size_t damaged = control & 3;
  std::vector<std::vector<std::byte>> files = fixture.layers;
  if (damaged < files.size() && size > 1) {
    std::vector<std::byte>& f = files[damaged];
    if (data[1] >= 128) f.resize(f.size() * (data[1] - 128) / 128);
    for (size_t i = 2; i + 2 < size && !f.empty(); i += 3) {
      const size_t offset = static_cast<size_t>(data[i]) | static_cast<size_t>(data[i + 1]) << 8;
      f[offset % f.size()] ^= std::byte{data[i + 2]};
    }
    if (control & 4) ResealLayer(f);
  }
  static constexpr size_t kShapes[4][3] = {{0, 1, 2}, {1, 2, 9}, {0, 2, 9}, {0, 1, 9}};
  const auto& shape = kShapes[(control >> 3) & 3];

  std::vector<Reader> verified, unverified;
  verified.reserve(3);
  unverified.reserve(3);
  std::vector<const Reader*> chain, loose;
  for (size_t layer : shape) {
    if (layer == 9) break;
    std::span<const std::byte> bytes = files[layer];
    auto header = ParseHeader(bytes);
    if (auto r = Reader::Open(bytes, VerifyLevel::kFull)) {
      if (!header) return "ParseHeader refuses what Open(kFull) accepts";
      verified.push_back(std::move(*r));
      chain.push_back(&verified.back());
    } else if (auto h = Reader::Open(bytes, VerifyLevel::kHeader)) {
      unverified.push_back(std::move(*h));
      loose.push_back(&unverified.back());
    }
  }
  // Unverified layers: lookups and walks must stay inside the bytes (ASan checks); no oracle.
  if (!loose.empty()) {
    std::vector<LayerFilter> loose_filters;
    std::vector<const LayerFilter*> loose_ptrs;
    for (const Reader* r : loose)
      loose_filters.push_back(LayerFilter::Build(*r));
    for (const LayerFilter& f : loose_filters)
      loose_ptrs.push_back(&f);
    for (const std::string& k : fixture.keys) {
      (void)ChainFind(loose, std::string_view(k));
      (void)ChainFind(loose, loose_ptrs, std::string_view(k));
    }
    (void)ForEachLive(loose, [](auto, auto) { return true; });
    (void)ValidateChain(loose);
  }
  if (chain.size() != static_cast<size_t>(std::count_if(std::begin(shape), std::end(shape),
                                                        [](size_t l) { return l != 9; }))) {
    return "";  // some layer failed verification: the chain is refused, never looked up
  }
  std::vector<Contents> contents(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) {
    std::string e = LayerContents(*chain[i], fixture.keys, &contents[i]);
    if (!e.empty()) return e;
  }
  const bool valid = ValidateChain(chain).has_value();
  if (valid != LinksHold(chain)) return "ValidateChain disagrees with the links";
  if (!valid) return "";
  // The reference: newest layer first, first value or tombstone wins.
  std::map<std::string, std::string> live;
  std::map<std::string, bool> decided;
  for (const Contents& c : contents) {
    for (const auto& [k, v] : c) {
      if (decided.contains(k)) continue;
      decided[k] = true;
      if (v) live[k] = *v;
    }
  }
  std::vector<LayerFilter> filters;
  std::vector<const LayerFilter*> filter_ptrs;
  for (const Reader* r : chain)
    filters.push_back(LayerFilter::Build(*r));
  for (const LayerFilter& f : filters)
    filter_ptrs.push_back(&f);
  for (const auto& [k, _] : decided) {
    auto got = ChainFind(chain, std::string_view(k));
    auto want = live.find(k);
    if (want == live.end() ? got.has_value() : (!got || *got != want->second)) {
      return "ChainFind disagrees with the layers' contents";
    }
    if (ChainFind(chain, filter_ptrs, std::string_view(k)) != got) {
      return "ChainFind with filters disagrees with ChainFind without";
    }
  }
  for (const std::string& k : fixture.keys) {
    if (!decided.contains(k) && (ChainFind(chain, std::string_view(k)) ||
                                 ChainFind(chain, filter_ptrs, std::string_view(k)))) {
      return "ChainFind finds a key no layer holds";
    }
  }
  std::map<std::string, std::string> walked;
  Status s = ForEachLive(chain, [&](auto k, auto v) {
    return walked.emplace(Str(k), Str(v)).second;  // a second visit stops the walk
  });
  if (!s) return "ForEachLive failed on verified layers: " + s.error().ToString();
  if (walked != live) return "ForEachLive disagrees with the layers' contents";
  if (looked_up != nullptr) ++*looked_up;
  return "";
}

}  // namespace modelswap::msf_testing
