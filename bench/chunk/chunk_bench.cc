// Cost of a chunked write beside a plain write of the same bytes, in one run.
//
//   build/bench/chunk/chunk_bench [--benchmark_filter=...]   (MODELSWAP_BENCH_DIR: scratch dir,
//                                                             default /tmp; needs ~1 GiB free)
//
// The data is a real .msf file of 256 MiB built by the writer from synthetic entries
// (sidecar/writer/synthetic_data.h: 1 KiB values, PRNG filler, so the DATA section barely
// compresses; the INDEX section's empty slots do), read into memory once.
//   PlainWrite          the baseline: write the bytes to a file in 4 MiB pieces, fsync
//   ChunkOnly, ChunkSha the cut points alone, then with SHA-256 of each chunk (where time goes)
//   ChunkShaZstd/L      FastCDC + SHA-256 + zstd level L of every chunk, into memory (CPU only)
//   ChunkStorePut/L/D   the whole chunked write: ChunkBytes into a fresh ChunkStore on disk
//                       (temp file and no-replace rename per chunk, as on the volume), with
//                       an fsync of file and directory per chunk (D=0) or deferred to one
//                       Sync() at the end (D=1, ChunkStore::Options::defer_sync)
//   Writer/0, Writer/L
//                       the writer end to end (WriteVersion from the same generated entries,
//                       256 MiB): 0 is `write --whole-file` (the plain writer: build + fsync), L
//                       the default chunked write at zstd level L (build the .msf in scratch, cut,
//                       hash, compress on WriteRequest::threads workers, store, one Sync, recipe)
// Each reports bytes/s of the input; the ratios (to PlainWrite, and Writer/L to Writer/0) are
// what bench/README.md records.
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <cstdlib>
#include <filesystem>

#include "common/env.h"
#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
#include "sidecar/writer/writer.h"

namespace modelswap::chunk {
namespace {

std::string ScratchDir() {
  const char* d = std::getenv("MODELSWAP_BENCH_DIR");
  return std::string(d ? d : "/tmp") + "/modelswap-chunk-bench-" + std::to_string(::getpid());
}

// The 256 MiB .msf, built once.
const std::string& Data() {
  static const std::string data = [] {
    const std::string root = ScratchDir() + "/src";
    WriteRequest req;
    req.root = root;
    req.model = "bench";
    req.version = "v1";
    req.source = GenerateSource{256ull << 20, 1, 1024};
    auto w = WriteVersion(DefaultEnv(), req);
    if (!w) std::abort();
    auto text = ReadFileToString(DefaultEnv(), w->path, 1ull << 30);
    if (!text) std::abort();
    std::filesystem::remove_all(root);
    return *text;
  }();
  return data;
}

std::span<const std::byte> Bytes() {
  return std::as_bytes(std::span(Data()));
}

void PlainWrite(benchmark::State& state) {
  auto bytes = Bytes();
  const std::string dir = ScratchDir();
  std::filesystem::create_directories(dir);
  for (auto _ : state) {
    const std::string path = dir + "/plain";
    std::filesystem::remove(path);
    int fd = DefaultEnv()->Open(path, OpenMode::kCreateNew).value();
    for (size_t off = 0; off < bytes.size(); off += 4 << 20) {
      auto piece = bytes.subspan(off, std::min<size_t>(4 << 20, bytes.size() - off));
      if (!DefaultEnv()->PWrite(fd, piece, off)) std::abort();
    }
    if (!DefaultEnv()->Fsync(fd)) std::abort();
    DefaultEnv()->Close(fd);
  }
  std::filesystem::remove_all(dir);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

// Where the time goes: the cut points alone, then with SHA-256 of every chunk.
void ChunkOnly(benchmark::State& state) {
  auto bytes = Bytes();
  const ChunkerParams params;
  for (auto _ : state) {
    size_t pos = 0, chunks = 0;
    while (pos < bytes.size()) {
      pos += NextChunk(bytes.subspan(pos), params).length;
      ++chunks;
    }
    benchmark::DoNotOptimize(chunks);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

void ChunkSha(benchmark::State& state) {
  auto bytes = Bytes();
  for (auto _ : state) {
    auto sink = [](const RecipeChunk& c, std::span<const std::byte>) -> Result<uint32_t> {
      return c.length;
    };
    auto r = ChunkBytes(bytes, "bench", "v1", 0, {}, sink);
    if (!r) std::abort();
    benchmark::DoNotOptimize(r->chunks.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

void ChunkShaZstd(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  auto bytes = Bytes();
  uint64_t stored = 0, chunks = 0;
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  std::vector<char> frame(ZSTD_compressBound(kMaxChunkBytes));
  for (auto _ : state) {
    stored = chunks = 0;
    auto sink = [&](const RecipeChunk& c, std::span<const std::byte> b) -> Result<uint32_t> {
      size_t n = ZSTD_compressCCtx(cctx, frame.data(), frame.size(), b.data(), b.size(), level);
      if (ZSTD_isError(n)) std::abort();
      stored += n;
      ++chunks;
      return static_cast<uint32_t>(n);
    };
    auto r = ChunkBytes(bytes, "bench", "v1", 0, {}, sink);
    if (!r) std::abort();
    benchmark::DoNotOptimize(r->chunks.data());
  }
  ZSTD_freeCCtx(cctx);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
  state.counters["chunks"] = static_cast<double>(chunks);
  state.counters["stored_ratio"] = static_cast<double>(stored) / static_cast<double>(bytes.size());
}

void ChunkStorePut(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  auto bytes = Bytes();
  const std::string dir = ScratchDir() + "/store";
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    state.ResumeTiming();
    ChunkStore store(DefaultEnv(), dir, ChunkStore::Options{.defer_sync = state.range(1) != 0});
    auto sink = [&](const RecipeChunk& c, std::span<const std::byte> b) -> Result<uint32_t> {
      MS_ASSIGN_OR_RETURN(PutResult p, store.Put(c.hash, b, level));
      return p.stored_length;
    };
    auto r = ChunkBytes(bytes, "bench", "v1", 0, {}, sink);
    if (!r || !store.Sync()) std::abort();
  }
  std::filesystem::remove_all(ScratchDir());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

// The writer end to end, whole file (arg 0) or chunked at zstd level arg (1 or 3): each
// iteration writes a new version name into a fresh volume, so nothing is reused.
void Writer(benchmark::State& state) {
  const int level = static_cast<int>(state.range(0));
  const std::string dir = ScratchDir() + "/writer";
  uint64_t bytes = 0;
  int n = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir + "/scratch");
    state.ResumeTiming();
    WriteRequest req;
    req.root = dir;
    req.model = "bench";
    req.version = "v" + std::to_string(++n);
    req.source = GenerateSource{256ull << 20, 1, 1024};
    req.layout = level == 0 ? WriteRequest::Layout::kWholeFile : WriteRequest::Layout::kChunked;
    req.scratch_dir = dir + "/scratch";
    req.zstd_level = level == 0 ? 3 : level;
    auto w = WriteVersion(DefaultEnv(), req);
    if (!w) std::abort();
    bytes = w->bytes;
  }
  std::filesystem::remove_all(dir);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

BENCHMARK(PlainWrite)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(ChunkOnly)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(ChunkSha)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(ChunkShaZstd)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(ChunkStorePut)
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({3, 1})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2)
    ->UseRealTime();
BENCHMARK(Writer)
    ->Arg(0)
    ->Arg(1)
    ->Arg(3)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

}  // namespace
}  // namespace modelswap::chunk

BENCHMARK_MAIN();
