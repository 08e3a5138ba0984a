// Opening a chain's layers and folding them into one full version in the base's layout.
#include "sidecar/writer/compaction.h"

#include <spdlog/spdlog.h>

#include "sidecar/msf/chain.h"

namespace modelswap {

Result<OpenedChain> OpenedChain::Open(Env* env, const std::string& root, const std::string& model,
                                      const std::vector<ChainLayer>& chain,
                                      const std::string& scratch_dir) {
  OpenedChain opened;
  for (const ChainLayer& layer : chain) {
    MS_ASSIGN_OR_RETURN(auto version,
                        BaseVersion::Open(env, root, model, layer.version, scratch_dir));
    opened.readers_.push_back(&version->reader());
    opened.opened_.push_back(std::move(version));
  }
  MS_RETURN_IF_ERROR(msf::ValidateChain(opened.readers_));
  return opened;
}

Result<msf::BuildResult> FoldChain(Env* env, std::span<const msf::Reader* const> layers, int fd,
                                   msf::BuildOptions options, FoldStats* stats,
                                   const std::function<void(uint64_t)>& on_progress) {
  if (layers.empty() || layers.back()->is_delta()) {
    return Fail(Code::kInvalidArgument, "compaction needs a chain ending in a full version");
  }
  const msf::Reader& base = *layers.back();
  const std::span<const msf::Reader* const> deltas = layers.first(layers.size() - 1);
  options.hash_seed = base.header().hash_seed;
  options.min_index_capacity = base.capacity();
  options.delta.reset();
  msf::Builder builder(env, fd, std::move(options));
  // The newest answer for key among deltas[0, end).
  auto newest = [&](std::span<const std::byte> key, size_t end) {
    for (size_t i = 0; i < end; ++i) {
      msf::Probe probe = deltas[i]->Lookup(key);
      if (probe.presence != msf::Presence::kAbsent) return probe;
    }
    return msf::Probe{};
  };
  auto progress = [&](uint64_t n) {
    if (on_progress && (n & 4095) == 0) on_progress(builder.data_bytes());
  };
  Status added = Ok();
  uint64_t visited = 0;
  MS_RETURN_IF_ERROR(base.ForEach([&](auto key, auto value) {
    progress(++visited);
    msf::Probe probe = newest(key, deltas.size());
    if (probe.presence == msf::Presence::kTombstone) {
      ++stats->deleted;
      return true;
    }
    ++stats->kept;
    added = builder.Add(key, probe.presence == msf::Presence::kValue ? probe.value : value);
    return static_cast<bool>(added);
  }));
  MS_RETURN_IF_ERROR(added);
  for (size_t i = 0; i < deltas.size(); ++i) {
    MS_RETURN_IF_ERROR(deltas[i]->ForEachEntry([&](auto key, auto value, bool tombstone) {
      progress(++visited);
      // A tombstone, a key a newer layer decides, or a key the base pass wrote: nothing to add.
      if (tombstone || newest(key, i).presence != msf::Presence::kAbsent || base.Find(key)) {
        return true;
      }
      ++stats->appended;
      added = builder.Add(key, value);
      return static_cast<bool>(added);
    }));
    MS_RETURN_IF_ERROR(added);
  }
  auto built = builder.Finish();
  if (on_progress) on_progress(builder.data_bytes());
  spdlog::info("compaction folded {} layers: {} base entries kept, {} deleted, {} appended",
               layers.size(), stats->kept, stats->deleted, stats->appended);
  return built;
}

}  // namespace modelswap
