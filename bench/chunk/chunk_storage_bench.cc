// chunk_storage_bench: bytes a chunked version stores on the volume beside the bytes that really
// changed, in one run, reported as ratios, with delta chunks and without. A documented CLI; never
// run by ctest.
//
//   build/bench/chunk/chunk_storage_bench [--mib N] [--value-bytes B]
//   (scratch in $MODELSWAP_BENCH_DIR, default /tmp; needs about 5x N MiB free)
//
// v1 is about N MiB (default 2048) of synthetic entries (decimal keys, values from
// sidecar/writer/synthetic_data.h), written by the real writer (WriteVersion, Layout::kChunked,
// zstd 1) from an .msf source. A second volume then shares v1's chunk files (hard links: chunk
// files are never edited), so each case is stored twice from the same state: with delta chunks
// (the volume "deltas") and with --no-chunk-deltas (the volume "whole"). Each case builds the new
// content as an .msf source, lays it out on v1 as `write --base v1` does (BaseVersion +
// RelayOnBase, sidecar/writer/base_layout.h), and stores that file with UploadChunked on base v1
// (sidecar/writer/chunked_upload.h, what WriteVersion's chunked path runs on the file it built),
// once per volume. It prints the chunk bytes the store lacked (ChunkedUploadResult::bytes_new),
// what the store really gained (stored_bytes_new: the bytes of the chunk files written, whole and
// delta) with and without deltas, the delta chunks used, against "changed": key + value + 8 bytes
// of entry header per changed or added key.
//   clustered  5 % of the keys changed, in 20 contiguous runs at random places (target <= 1.5x)
//   appended   5 % new keys after the last one (target <= 1.5x)
//   inserted   0.1 % new keys ("n<k>", spread over the key space; target <= 1.5x)
//   uniform    5 % of the keys changed uniformly at random (reported)
//   republish  v1 written again with reuse_existing (the retried writer Job): 0 new bytes; and
//              "inserted" stored again after its recipe is removed (a Job killed between its
//              chunks and its recipe, retried): 0 new bytes
//   same-data  v1's content written as a new version name on base v1
// A rollback publishes an existing version and writes nothing, so it stores 0 bytes by design.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/env.h"
#include "sidecar/msf/builder.h"
#include "sidecar/msf/reader.h"
#include "sidecar/writer/base_layout.h"
#include "sidecar/writer/chunked_upload.h"
#include "sidecar/writer/synthetic_data.h"
#include "sidecar/writer/writer.h"
#include "tests/testing/bench_support.h"

namespace modelswap {
namespace {

using bench::Must;
using bench::ScratchDir;
using bench::Seconds;

// One entry of a source: key and the (version, seed) its value is generated from.
struct Row {
  std::string key;
  std::string value_version;
  uint64_t k = 0;
  uint64_t seed = 1;
};

// Builds the source .msf at path from rows (a new file).
void BuildSource(const std::string& path, const std::string& version, uint32_t value_bytes,
                 const std::function<bool(Row*)>& next) {
  std::filesystem::remove(path);
  int fd = Must(DefaultEnv()->Open(path, OpenMode::kReadWriteNew), "open source");
  msf::BuildOptions o;
  o.model = "m";
  o.version = version;
  o.created_unix_ns = 1'700'000'000'000'000'000;
  msf::Builder b(DefaultEnv(), fd, o);
  Row r;
  std::string value;
  while (next(&r)) {
    SyntheticValue("m", r.value_version, r.k, r.seed, value_bytes, &value);
    Must(b.Add(r.key, value), "add");
  }
  Must(b.Finish(), "finish source");
  DefaultEnv()->Close(fd);
}

uint64_t RowBytes(const std::string& key, uint32_t value_bytes) {
  std::string v;
  SyntheticValue("m", "x", 0, 1, value_bytes, &v);  // length only: the prefix is short
  return key.size() + std::max<uint64_t>(value_bytes, v.size()) + 8;
}

WriteResult WriteChunked(const std::string& root, const std::string& dir,
                         const std::string& version, const std::string& source, bool reuse) {
  WriteRequest req;
  req.root = root;
  req.model = "m";
  req.version = version;
  req.source = MsfSource{source};
  req.layout = WriteRequest::Layout::kChunked;
  req.scratch_dir = dir;
  req.zstd_level = 1;
  req.reuse_existing = reuse;
  return Must(WriteVersion(DefaultEnv(), req), version.c_str());
}

// Hard-links every file beneath `from` into `to` (created): a second volume holding the same
// chunks and recipes at no cost, which the two diverge from by writing new files only.
void LinkTree(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  fs::create_directories(to);
  for (const auto& e : fs::recursive_directory_iterator(from)) {
    const fs::path dest = fs::path(to) / fs::relative(e.path(), from);
    if (e.is_directory())
      fs::create_directories(dest);
    else
      fs::create_hard_link(e.path(), dest);
  }
}

// The source laid out on the base as `write --base v1` does (base_layout.h) into `out`; the new
// file's header checksum.
uint64_t Relay(const BaseVersion& base, const std::string& source, const std::string& version,
               const std::string& out) {
  auto mapping = Must(DefaultEnv()->MapReadOnly(source), "map source");
  auto fresh = Must(msf::Reader::Open(mapping->bytes(), msf::VerifyLevel::kHeader), "source");
  std::filesystem::remove(out);
  int fd = Must(DefaultEnv()->Open(out, OpenMode::kReadWriteNew), "open relaid");
  msf::BuildOptions o;
  o.model = "m";
  o.version = version;
  o.created_unix_ns = 1'700'000'000'000'000'000;
  auto built = Must(RelayOnBase(DefaultEnv(), base.reader(), fresh, fd, std::move(o)), "relay");
  DefaultEnv()->Close(fd);
  return built.header_checksum;
}

// The relaid file stored as `version` on base v1 (zstd 1, 2 threads), with or without deltas.
ChunkedUploadResult Upload(const std::string& root, const std::string& version,
                           const std::string& file, uint64_t checksum, bool deltas) {
  ChunkedUploadOptions options;
  options.zstd_level = 1;
  options.threads = 2;
  options.base_version = "v1";
  options.chunk_deltas = deltas;
  return Must(UploadChunked(DefaultEnv(), root, "m", version, file, checksum, options),
              version.c_str());
}

std::string MB(uint64_t b) {
  char out[32];
  std::snprintf(out, sizeof out, "%.2f MB", static_cast<double>(b) / 1e6);
  return out;
}

void Report(const char* what, const ChunkedUploadResult& on, const ChunkedUploadResult& off,
            uint64_t file_bytes, uint64_t changed, double seconds_on, double seconds_off,
            const char* target) {
  auto ratio = [&](uint64_t b) {
    return changed ? static_cast<double>(b) / static_cast<double>(changed) : 0.0;
  };
  std::printf(
      "%-10s changed %s | new chunks %s (%llu/%llu chunks, %.4fx of file) %.3fx | "
      "stored with deltas %s (%llu deltas: %s of chunks in %s) %.3fx, %.1f s | "
      "stored whole %s %.3fx, %.1f s | deltas/whole %.4f | target %s\n",
      what, MB(changed).c_str(), MB(on.bytes_new).c_str(),
      static_cast<unsigned long long>(on.chunks_new),
      static_cast<unsigned long long>(on.chunks_total),
      file_bytes ? static_cast<double>(on.bytes_new) / static_cast<double>(file_bytes) : 0.0,
      ratio(on.bytes_new), MB(on.stored_bytes_new).c_str(),
      static_cast<unsigned long long>(on.chunks_delta), MB(on.bytes_delta).c_str(),
      MB(on.stored_bytes_delta).c_str(), ratio(on.stored_bytes_new), seconds_on,
      MB(off.stored_bytes_new).c_str(), ratio(off.stored_bytes_new), seconds_off,
      off.stored_bytes_new
          ? static_cast<double>(on.stored_bytes_new) / static_cast<double>(off.stored_bytes_new)
          : 0.0,
      target);
}

int Main(uint64_t mib, uint32_t value_bytes) {
  const std::string dir = ScratchDir("chunk-storage-bench");
  Must(DefaultEnv()->CreateDirs(dir), "scratch dir");
  setvbuf(stdout, nullptr, _IOLBF, 0);
  spdlog::set_level(spdlog::level::warn);
  const uint64_t n = (mib << 20) / (value_bytes + 16);
  const std::string src = dir + "/source.msf", relaid = dir + "/relaid.msf";
  const std::string deltas = dir + "/volume", whole = dir + "/volume-whole";

  // v1, then the second volume sharing its files.
  uint64_t i = 0;
  auto v1_rows = [&](Row* r) {
    if (i == n) return false;
    *r = Row{std::to_string(i), "v1", i, 1};
    ++i;
    return true;
  };
  BuildSource(src, "v1", value_bytes, v1_rows);
  double t0 = Seconds();
  WriteResult v1 = WriteChunked(deltas, dir, "v1", src, false);
  std::printf("v1: %llu entries, %llu bytes, %llu chunks (%llu B stored), chunked write %.1f s\n",
              static_cast<unsigned long long>(n), static_cast<unsigned long long>(v1.bytes),
              static_cast<unsigned long long>(v1.chunks.chunks_total),
              static_cast<unsigned long long>(v1.chunks.stored_bytes_new), Seconds() - t0);
  LinkTree(deltas, whole);
  // v1 assembled once, as every `write --base v1` would.
  auto base = Must(BaseVersion::Open(DefaultEnv(), deltas, "m", "v1", dir), "base v1");

  // Lays the source out on v1 and stores it in both volumes; reports.
  auto store_both = [&](const char* what, const std::string& version, uint64_t changed,
                        const char* target) {
    const uint64_t checksum = Relay(*base, src, version, relaid);
    double s = Seconds();
    ChunkedUploadResult on = Upload(deltas, version, relaid, checksum, true);
    double s_on = Seconds() - s;
    s = Seconds();
    ChunkedUploadResult off = Upload(whole, version, relaid, checksum, false);
    Report(what, on, off, v1.bytes, changed, s_on, Seconds() - s, target);
    return checksum;
  };

  std::mt19937_64 rng(42);
  // Changes v1's keys marked in `changed` (new values), builds, stores on base v1, reports.
  auto run_changed = [&](const char* what, const std::string& version,
                         const std::vector<char>& changed, const char* target) {
    uint64_t j = 0, bytes = 0;
    BuildSource(src, version, value_bytes, [&](Row* r) {
      if (j == n) return false;
      *r = changed[j] ? Row{std::to_string(j), version, j, 2} : Row{std::to_string(j), "v1", j, 1};
      if (changed[j]) bytes += RowBytes(r->key, value_bytes);
      ++j;
      return true;
    });
    store_both(what, version, bytes, target);
  };

  // Clustered: 20 runs of n/400 keys each, in 20 equal slices at a random place in each.
  {
    std::vector<char> changed(n, 0);
    const uint64_t run = n / 400, slice = n / 20;
    for (uint64_t s = 0; s < 20; ++s) {
      uint64_t start = s * slice + rng() % (slice - run);
      std::fill(changed.begin() + start, changed.begin() + start + run, 1);
    }
    run_changed("clustered", "clustered", changed, "<= 1.5x");
  }
  // Uniform: 5 % of the keys at random.
  {
    std::vector<char> changed(n, 0);
    uint64_t want = n / 20, got = 0;
    while (got < want) {
      uint64_t k = rng() % n;
      if (!changed[k]) changed[k] = 1, ++got;
    }
    run_changed("uniform", "uniform", changed, "report");
  }
  // Appended: v1's keys, then 5 % new ones.
  {
    uint64_t j = 0, bytes = 0;
    const uint64_t total = n + n / 20;
    BuildSource(src, "appended", value_bytes, [&](Row* r) {
      if (j == total) return false;
      *r = j < n ? Row{std::to_string(j), "v1", j, 1} : Row{std::to_string(j), "appended", j, 2};
      if (j >= n) bytes += RowBytes(r->key, value_bytes);
      ++j;
      return true;
    });
    store_both("appended", "appended", bytes, "<= 1.5x");
  }
  // Inserted: 0.1 % new keys "n<k>", one after every 1000th key in the source's order (the base
  // layout appends keys the base lacks after its entries; the source order does not matter).
  uint64_t inserted_checksum = 0;
  {
    uint64_t j = 0, bytes = 0;
    bool extra = false;
    BuildSource(src, "inserted", value_bytes, [&](Row* r) {
      if (j == n) return false;
      if (extra) {
        *r = Row{"n" + std::to_string(j), "inserted", j, 2};
        bytes += RowBytes(r->key, value_bytes);
        extra = false;
        ++j;
        return true;
      }
      *r = Row{std::to_string(j), "v1", j, 1};
      if (j % 1000 == 500) {
        extra = true;  // the new key follows this one; j advances after it
        return true;
      }
      ++j;
      return true;
    });
    inserted_checksum = store_both("inserted", "inserted", bytes, "<= 1.5x");
  }
  // Republish: v1 again (a retried Job that finished), "inserted" again after its recipe is
  // removed (a retried Job killed before its recipe: relaid.msf still holds inserted's file),
  // and v1's content under a new name.
  {
    i = 0;
    BuildSource(src, "v1", value_bytes, v1_rows);
    double s = Seconds();
    WriteResult again = WriteChunked(deltas, dir, "v1", src, true);
    std::printf(
        "republish  v1 again (reuse_existing): reused %s, %llu B new, %llu chunks new, "
        "%.1f s | target 0 B\n",
        again.reused ? "yes" : "no", static_cast<unsigned long long>(again.chunks.bytes_new),
        static_cast<unsigned long long>(again.chunks.chunks_new), Seconds() - s);
    std::filesystem::remove(deltas + "/m/versions/inserted.recipe");
    s = Seconds();
    ChunkedUploadResult retry = Upload(deltas, "inserted", relaid, inserted_checksum, true);
    std::printf(
        "retry      inserted, recipe removed: %llu B stored, %llu chunks new, %llu B reused, "
        "%.1f s | target 0 B\n",
        static_cast<unsigned long long>(retry.stored_bytes_new),
        static_cast<unsigned long long>(retry.chunks_new),
        static_cast<unsigned long long>(retry.bytes_reused), Seconds() - s);
    store_both("same-data", "v1-again", 0, "0 B (new name: header chunk)");
  }
  base.reset();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace modelswap

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2)
    a[argv[i]] = argv[i + 1];
  uint64_t mib = a.contains("--mib") ? std::stoull(a["--mib"]) : 2048;
  uint32_t vb =
      a.contains("--value-bytes") ? static_cast<uint32_t>(std::stoul(a["--value-bytes"])) : 1024;
  return modelswap::Main(mib, vb);
}
