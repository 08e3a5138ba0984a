// Opening a chain's layers and folding them into one full version in the base's layout.
#include "sidecar/writer/compaction.h"

#include <spdlog/spdlog.h>

#include "common/checksum.h"
#include "sidecar/msf/chain.h"
#include "sidecar/msf/format.h"

namespace modelswap {
namespace {

// Walks along with the fold's pass over the base's DATA (base.ForEach, front to back): maps
// the pages ahead of it in windows of kAhead (MADV_POPULATE_READ: one call maps a window that
// page faults would map a few pages at a time, a third of the fold's time when measured), and,
// for a base opened with kHeader only, checks its section checksums: DATA hashed behind the
// walk in steps of kStep (the bytes are still in cache), the other sections at the end.
class BaseWalk {
 public:
  BaseWalk(Env* env, const BaseFile& base, const msf::Header& header)
      : env_(env),
        file_(base.verified ? std::span<const std::byte>() : base.bytes),
        header_(header) {
    for (const msf::SectionInfo& s : header.sections) {
      if (s.kind == msf::kSectionData && s.offset + s.length <= base.bytes.size()) {
        data_ = base.bytes.subspan(s.offset, s.length);
      }
    }
  }

  // The fold has read up to p, a pointer into DATA.
  Status ReadUpTo(const std::byte* p) {
    const size_t at = static_cast<size_t>(p - data_.data());
    if (data_.empty() || p < data_.data() || at > data_.size()) return Ok();
    if (at + kAhead / 2 >= populated_ && populated_ < data_.size()) {
      // Whole pages only: the mapping starts page-aligned and DATA at a multiple of 4096.
      const size_t end = std::min(data_.size(), populated_ + kAhead);
      const size_t from = populated_ & ~(msf::kAlignment - 1);
      auto region = data_.subspan(from, end - from);
      if (auto st = env_->PopulateRead(region); !st) {
        if (st.error().code() != Code::kNotSupported) return st;
        (void)env_->AdviseWillNeed(region);
      }
      populated_ = end;
    }
    if (!file_.empty() && at >= hashed_ + kStep) {
      stream_.Update(data_.subspan(hashed_, at - hashed_));
      hashed_ = at;
    }
    return Ok();
  }
  Status Finish() {
    if (file_.empty() || data_.empty()) return Ok();
    stream_.Update(data_.subspan(hashed_));
    for (size_t i = 0; i < header_.sections.size(); ++i) {
      const msf::SectionInfo& s = header_.sections[i];
      const uint64_t sum =
          s.kind == msf::kSectionData ? stream_.Digest() : Xxh3(file_.subspan(s.offset, s.length));
      if (sum != s.checksum) {
        return Fail(Code::kCorruption,
                    "msf: " + header_.version + ": section " + std::to_string(i) + " (" +
                        std::string(msf::SectionKindName(s.kind)) + ") checksum mismatch");
      }
    }
    return Ok();
  }

 private:
  static constexpr size_t kStep = 1 << 20;
  static constexpr size_t kAhead = 32 << 20;
  Env* env_;
  std::span<const std::byte> data_;
  std::span<const std::byte> file_;
  const msf::Header& header_;
  size_t populated_ = 0;
  size_t hashed_ = 0;
  Xxh3Stream stream_;
};

}  // namespace

Result<OpenedChain> OpenedChain::Open(Env* env, const std::string& root, const std::string& model,
                                      const std::vector<ChainLayer>& chain,
                                      const std::string& scratch_dir) {
  OpenedChain opened;
  for (const ChainLayer& layer : chain) {
    // The full base is checked while it is folded (see the top of compaction.h).
    const auto level =
        &layer == &chain.back() ? msf::VerifyLevel::kHeader : msf::VerifyLevel::kFull;
    MS_ASSIGN_OR_RETURN(auto version,
                        BaseVersion::Open(env, root, model, layer.version, scratch_dir, level));
    opened.readers_.push_back(&version->reader());
    opened.opened_.push_back(std::move(version));
  }
  MS_RETURN_IF_ERROR(msf::ValidateChain(opened.readers_));
  return opened;
}

Result<msf::BuildResult> FoldChain(Env* env, std::span<const msf::Reader* const> layers, int fd,
                                   msf::BuildOptions options, FoldStats* stats,
                                   const BaseFile& base_file,
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
  BaseWalk walk(env, base_file, base.header());
  Status added = Ok();
  uint64_t visited = 0;
  MS_RETURN_IF_ERROR(base.ForEach([&](auto key, auto value) {
    progress(++visited);
    added = walk.ReadUpTo(key.data());
    if (!added) return false;
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
  MS_RETURN_IF_ERROR(walk.Finish());
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
