// Finding a delta entry's base bytes (delta_base.h).
#include "sidecar/cache/delta_base.h"

#include <spdlog/spdlog.h>

namespace modelswap::cache {
namespace {

// Step 2: true if the previous version has the base at the offset its recipe gives, intact.
bool ReadFromPrevious(Env* env, const BaseVersion& previous, const chunk::ChunkHash& hash,
                      std::span<std::byte> out) {
  auto it = previous.offset_of.find(hash);
  if (it == previous.offset_of.end()) return false;
  size_t done = 0;
  while (done < out.size()) {
    auto n = env->PRead(previous.hold.fd(), out.subspan(done), it->second + done);
    if (!n || *n == 0) break;
    done += *n;
  }
  if (done == out.size() && chunk::Sha256(out) == hash) return true;
  // The file passed its full check when it was built; a mismatch means it changed since (or the
  // recipe beside it lies). The volume still has the base.
  spdlog::warn("cache: base {} in previous version {} at offset {} fails its check; fetching it",
               chunk::ToHex(hash), previous.path, it->second);
  return false;
}

}  // namespace

Result<BaseRead> ReadDeltaBase(Env* env, ChunkCache* cache, const BaseVersion* previous,
                               const chunk::RecipeChunk& c, std::span<std::byte> out,
                               const ChunkSourceFn& source) {
  if (cache->Lookup(c.base_hash, out)) return BaseRead{BaseOrigin::kCache, 0};
  if (previous != nullptr && ReadFromPrevious(env, *previous, c.base_hash, out)) {
    return BaseRead{BaseOrigin::kPrevious, 0};
  }
  auto got = cache->Get(WholeEntry(c.base_hash, c.base_length), {}, out, source);
  if (!got) return Fail(got.error().Context("base of " + DescribeEntry(c)));
  // Another filler may have cached it between Lookup and Get: then nothing was fetched.
  if (got->origin == ChunkOrigin::kCache) return BaseRead{BaseOrigin::kCache, 0};
  return BaseRead{BaseOrigin::kFetched, got->fetches};
}

}  // namespace modelswap::cache
