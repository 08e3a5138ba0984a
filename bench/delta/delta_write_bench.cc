// delta_write_bench: the bytes a delta version writes and ships, beside a whole-file version and a
// chunked version written on its base, and compaction's throughput beside the plain writer's, in
// one run, reported as ratios.
//
//   build/bench/delta/delta_write_bench [--mib N] [--value-bytes B] [--percents 1,5]
//   (scratch in $MODELSWAP_BENCH_DIR, default /tmp; needs about 5x N MiB free)
//
// v1 is a full version of about N MiB (default 2048) of synthetic entries (sidecar/writer/
// synthetic_data.h: decimal keys, 1 KiB values of PRNG filler), written by the writer in both
// layouts. For each percentage p, p % of its keys drawn uniformly at random get new values of
// the same length, and the same change is written four ways:
//   rows     key + value + 8 bytes of entry header per changed key: the floor (target: the delta
//            is at most 1.2x of it)
//   delta    msf::Builder with BuildOptions::delta on v1: the changed rows as one small .msf,
//            which is what the writer writes and an agent fetches for `write --delta-on`
//   whole    the full new version as one .msf: what a write ships today
//   chunked  the writer's chunked layout with --base v1 (WriteRequest::base_version, zstd 1):
//            bytes of the chunks the store lacked (bytes_new) and their stored (zstd) size
// Then compaction: WriteVersion with `compact` folding v1 + the last delta into a full version,
// beside the plain writer writing the same entries from that result (MsfSource: same entries and
// bytes, the source verified in full first as compaction verifies its layers) and from generated
// data (`write --generate-bytes`: v1's entries and bytes); each runs twice, in turn, and the
// faster run counts (target: compaction >= 0.8x the plain writer's MB/s).
// Both fsync, as `write` does. The page cache holds every input (the machine has the memory).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/checksum.h"
#include "common/env.h"
#include "sidecar/msf/builder.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/synthetic_data.h"
#include "sidecar/writer/writer.h"
#include "tests/testing/bench_support.h"

namespace modelswap {
namespace {

using bench::Must;
using bench::ScratchDir;
using bench::Seconds;

struct Args {
  uint64_t mib = 2048;
  uint32_t value_bytes = 1024;
  std::vector<double> percents{1, 5};
};

// Builds an .msf at path (a new file) with fill's entries, fsynced as the writer does.
msf::BuildResult BuildFile(const std::string& path, msf::BuildOptions options,
                           const std::function<Status(msf::Builder&)>& fill) {
  int fd = Must(DefaultEnv()->Open(path, OpenMode::kReadWriteNew), "open");
  msf::Builder builder(DefaultEnv(), fd, std::move(options));
  Must(fill(builder), "add");
  msf::BuildResult r = Must(builder.Finish(), "finish");
  Must(DefaultEnv()->Fsync(fd), "fsync");
  DefaultEnv()->Close(fd);
  return r;
}

// `count` distinct keys of 0..n-1, uniformly at random, in increasing order.
std::vector<uint64_t> PickKeys(uint64_t n, uint64_t count, uint64_t seed) {
  std::vector<uint64_t> all(n);
  for (uint64_t i = 0; i < n; ++i)
    all[i] = i;
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < count; ++i)
    std::swap(all[i], all[i + rng() % (n - i)]);
  all.resize(count);
  std::sort(all.begin(), all.end());
  return all;
}

struct Change {
  std::string version;         // the new version's name
  std::vector<uint64_t> keys;  // changed keys, increasing
  std::vector<char> changed;   // by key: 1 if changed
  uint64_t row_bytes = 0;      // key + value + 8 per changed key
};

std::string NewValue(const Args& a, const Change& c, uint64_t k) {
  std::string v;
  SyntheticValue("m", c.version, k, 2, a.value_bytes, &v);
  return v;
}

void Report(const char* what, uint64_t bytes, uint64_t rows, uint64_t model) {
  std::printf("  %-30s %14llu bytes  %7.3fx rows  %7.4fx model\n", what,
              static_cast<unsigned long long>(bytes), static_cast<double>(bytes) / rows,
              static_cast<double>(bytes) / model);
}

// Writes one change as a delta, a whole file and a chunked version on v1; prints the bytes.
void RunChange(const Args& a, const std::string& dir, const OpenedModelFile& v1,
               const WriteResult& v1_written, const Change& c) {
  const msf::Header& h = v1.reader.header();
  // delta: straight onto the whole-file volume, where compaction finds it.
  const std::string delta_path = dir + "/whole/m/versions/" + c.version + ".msf";
  double t0 = Seconds();
  msf::BuildResult delta = BuildFile(
      delta_path,
      msf::BuildOptions{
          .model = "m", .version = c.version, .delta = msf::DeltaBase{"v1", h.header_checksum, 1}},
      [&](msf::Builder& b) -> Status {
        for (uint64_t k : c.keys)
          MS_RETURN_IF_ERROR(b.Add(std::to_string(k), NewValue(a, c, k)));
        return Ok();
      });
  double delta_s = Seconds() - t0;
  // whole: v1 with the changed values, in v1's order.
  const std::string full_path = dir + "/full-" + c.version + ".msf";
  t0 = Seconds();
  msf::BuildResult full =
      BuildFile(full_path, msf::BuildOptions{.model = "m", .version = c.version + "f"},
                [&](msf::Builder& b) -> Status {
                  Status added = Ok();
                  MS_RETURN_IF_ERROR(v1.reader.ForEach([&](auto key, auto value) {
                    std::string_view ks(reinterpret_cast<const char*>(key.data()), key.size());
                    uint64_t k = std::stoull(std::string(ks));
                    added = c.changed[k] ? b.Add(ks, NewValue(a, c, k)) : b.Add(key, value);
                    return static_cast<bool>(added);
                  }));
                  return added;
                });
  double full_s = Seconds() - t0;
  // chunked on v1: the whole new content through the writer's chunked path with --base.
  WriteRequest req;
  req.root = dir + "/chunked";
  req.model = "m";
  req.version = c.version + "c";
  req.source = MsfSource{full_path};
  req.layout = WriteRequest::Layout::kChunked;
  req.scratch_dir = dir;
  req.zstd_level = 1;
  req.base_version = "v1";
  t0 = Seconds();
  WriteResult chunked = Must(WriteVersion(DefaultEnv(), req), "chunked write on v1");
  double chunked_s = Seconds() - t0;
  std::filesystem::remove(full_path);

  std::printf("\n%.1f %% of %llu keys changed (%zu keys), model %llu bytes\n",
              100.0 * c.keys.size() / v1_written.entry_count,
              static_cast<unsigned long long>(v1_written.entry_count), c.keys.size(),
              static_cast<unsigned long long>(v1_written.bytes));
  Report("rows (floor)", c.row_bytes, c.row_bytes, v1_written.bytes);
  Report("delta .msf", delta.file_size, c.row_bytes, v1_written.bytes);
  Report("whole .msf (today)", full.file_size, c.row_bytes, v1_written.bytes);
  Report("chunked --base: bytes_new", chunked.chunks.bytes_new, c.row_bytes, v1_written.bytes);
  Report("chunked --base: stored (zstd 1)", chunked.chunks.stored_bytes_new, c.row_bytes,
         v1_written.bytes);
  std::printf("  times: delta %.2f s, whole %.2f s, chunked %.2f s (%llu of %llu chunks new)\n",
              delta_s, full_s, chunked_s,
              static_cast<unsigned long long>(chunked.chunks.chunks_new),
              static_cast<unsigned long long>(chunked.chunks.chunks_total));
  std::printf(
      "  delta / rows = %.3fx (target <= 1.2x); delta / whole = %.4fx; "
      "delta / chunked bytes_new = %.4fx\n",
      static_cast<double>(delta.file_size) / c.row_bytes,
      static_cast<double>(delta.file_size) / full.file_size,
      chunked.chunks.bytes_new ? static_cast<double>(delta.file_size) / chunked.chunks.bytes_new
                               : 0.0);
}

// Compaction of v1 + delta `top` beside the plain writer on the same entries; prints MB/s.
void RunCompaction(const Args& a, const std::string& dir, const std::string& top) {
  const std::string root = dir + "/whole";
  double best_compact = 1e30, best_plain = 1e30, best_gen = 1e30;
  uint64_t bytes = 0, entries = 0;
  for (int rep = 0; rep < 2; ++rep) {
    WriteRequest c;
    c.root = root;
    c.model = "m";
    c.version = "k" + std::to_string(rep);
    c.source = NoChanges{};
    c.delta_on = top;
    c.compact = true;
    double t0 = Seconds();
    WriteResult compacted = Must(WriteVersion(DefaultEnv(), c), "compaction");
    best_compact = std::min(best_compact, Seconds() - t0);
    bytes = compacted.bytes;
    entries = compacted.entry_count;
    // The plain writer: the same entries and bytes, read from the compacted file.
    WriteRequest p;
    p.root = root;
    p.model = "m";
    p.version = "p" + std::to_string(rep);
    p.source = MsfSource{compacted.path};
    t0 = Seconds();
    WriteResult plain = Must(WriteVersion(DefaultEnv(), p), "plain write");
    best_plain = std::min(best_plain, Seconds() - t0);
    if (plain.bytes != bytes || plain.entry_count != entries) {
      std::fprintf(stderr, "plain write differs: %llu bytes vs %llu\n",
                   static_cast<unsigned long long>(plain.bytes),
                   static_cast<unsigned long long>(bytes));
    }
    // The plain writer from generated data: v1's entries and bytes (the compaction keeps
    // every key and the values' lengths), its values made on the way as `write
    // --generate-bytes` does.
    WriteRequest g;
    g.root = root;
    g.model = "m";
    g.version = "g" + std::to_string(rep);
    g.source = GenerateSource{a.mib << 20, 1, a.value_bytes};
    t0 = Seconds();
    WriteResult generated = Must(WriteVersion(DefaultEnv(), g), "generated write");
    best_gen = std::min(best_gen, Seconds() - t0);
    std::filesystem::remove(compacted.path);
    std::filesystem::remove(plain.path);
    std::filesystem::remove(generated.path);
  }
  double mb = static_cast<double>(bytes) / 1e6;
  std::printf("\ncompaction of v1 + %s (%llu entries, %llu bytes), best of 2 each\n", top.c_str(),
              static_cast<unsigned long long>(entries), static_cast<unsigned long long>(bytes));
  std::printf("  write --compact     %7.2f s  %7.1f MB/s\n", best_compact, mb / best_compact);
  std::printf("  plain write (.msf)  %7.2f s  %7.1f MB/s\n", best_plain, mb / best_plain);
  std::printf("  plain write (gen.)  %7.2f s  %7.1f MB/s\n", best_gen, mb / best_gen);
  std::printf(
      "  compaction / plain throughput = %.2fx from .msf, %.2fx from generated data"
      " (target >= 0.8x)\n",
      best_plain / best_compact, best_gen / best_compact);
}

int Main(const Args& a) {
  const std::string dir = ScratchDir("delta-write-bench");
  Must(DefaultEnv()->CreateDirs(dir), "scratch dir");
  setvbuf(stdout, nullptr, _IOLBF, 0);
  spdlog::set_level(spdlog::level::warn);
  // v1, whole, by the plain writer (its throughput printed as a second baseline).
  WriteRequest req;
  req.root = dir + "/whole";
  req.model = "m";
  req.version = "v1";
  req.source = GenerateSource{a.mib << 20, 1, a.value_bytes};
  double t0 = Seconds();
  WriteResult v1w = Must(WriteVersion(DefaultEnv(), req), "write v1");
  double gen_s = Seconds() - t0;
  std::printf("v1: %llu entries, %llu bytes; plain write from generated data %.2f s (%.1f MB/s)\n",
              static_cast<unsigned long long>(v1w.entry_count),
              static_cast<unsigned long long>(v1w.bytes), gen_s, v1w.bytes / 1e6 / gen_s);
  // v1, chunked: the base the chunked writes dedupe against.
  WriteRequest creq;
  creq.root = dir + "/chunked";
  creq.model = "m";
  creq.version = "v1";
  creq.source = MsfSource{v1w.path};
  creq.layout = WriteRequest::Layout::kChunked;
  creq.scratch_dir = dir;
  creq.zstd_level = 1;
  t0 = Seconds();
  WriteResult v1c = Must(WriteVersion(DefaultEnv(), creq), "chunked v1");
  std::printf("v1 chunked: %llu chunks in %.1f s\n",
              static_cast<unsigned long long>(v1c.chunks.chunks_total), Seconds() - t0);
  OpenedModelFile v1 = Must(OpenModelFile(DefaultEnv(), v1w.path, msf::VerifyLevel::kFull), "v1");

  std::string last;
  for (double p : a.percents) {
    Change c;
    c.version = "d" + std::to_string(static_cast<int>(p * 10));
    uint64_t count = static_cast<uint64_t>(p / 100.0 * v1w.entry_count + 0.5);
    c.keys = PickKeys(v1w.entry_count, count, 100 + static_cast<uint64_t>(p * 10));
    c.changed.assign(v1w.entry_count, 0);
    for (uint64_t k : c.keys) {
      c.changed[k] = 1;
      c.row_bytes += std::to_string(k).size() + NewValue(a, c, k).size() + 8;
    }
    RunChange(a, dir, v1, v1w, c);
    last = c.version;
  }
  if (!last.empty()) RunCompaction(a, dir, last);
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace modelswap

int main(int argc, char** argv) {
  modelswap::Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--mib") {
      a.mib = std::stoull(value);
    } else if (flag == "--value-bytes") {
      a.value_bytes = static_cast<uint32_t>(std::stoul(value));
    } else if (flag == "--percents") {
      a.percents.clear();
      for (size_t pos = 0; pos <= value.size();) {
        size_t comma = std::min(value.find(',', pos), value.size());
        a.percents.push_back(std::stod(value.substr(pos, comma - pos)));
        pos = comma + 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: delta_write_bench [--mib N] [--value-bytes B] [--percents 1,5]\n");
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "usage: delta_write_bench [--mib N] [--value-bytes B] [--percents 1,5]\n");
    return 2;
  }
  return modelswap::Main(a);
}
