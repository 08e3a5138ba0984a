// Chains of in-memory .msf layers for the chain tests (msf_chain_test.cc, layer_filter_test.cc):
// the files and the Readers over them kept alive together, and a delta built on the layer below
// it (its version and header checksum), as the writer chains them (msf/chain.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "sidecar/msf/reader.h"
#include "tests/sidecar/msf/msf_delta_files.h"

namespace modelswap::msf_testing {

inline std::string Str(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Keeps files and their Readers alive at stable addresses: a Reader points into its file's bytes,
// so neither may move while a chain names it (std::deque never moves what it holds on push_back).
class Layers {
 public:
  // Opens `bytes` fully verified. Fails the test and returns nullptr if they do not open (a
  // chain holding that null is refused by ValidateChain: "chain layer N is missing").
  const Reader* Add(std::vector<std::byte> bytes) {
    files_.push_back(std::move(bytes));
    auto r = Reader::Open(files_.back(), VerifyLevel::kFull);
    if (!r.has_value()) {
      ADD_FAILURE() << "layer does not open: " << r.error().ToString();
      return nullptr;
    }
    readers_.push_back(std::move(*r));
    return &readers_.back();
  }

  // A delta `version` of `ops` on `below`, at chain depth `depth` (1 on a full version), of
  // below's model.
  const Reader* AddDelta(const Ops& ops, const std::string& version, const Reader* below,
                         uint32_t depth) {
    if (below == nullptr) {
      ADD_FAILURE() << "delta " << version << " on a layer that did not open";
      return nullptr;
    }
    return Add(MustBuild(
        ops, DeltaOptions(version, below->header().version, below->header().header_checksum, depth,
                          below->header().model)));
  }

 private:
  std::deque<std::vector<std::byte>> files_;
  std::deque<Reader> readers_;
};

}  // namespace modelswap::msf_testing
