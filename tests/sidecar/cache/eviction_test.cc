// Eviction in one process: LRU-K order over real files and a fake clock, the watermarks, the
// newest version and held versions spared, dead temps removed, and running out of space (a small
// tmpfs, and an Env that reports ENOSPC).
#include <sys/mount.h>
#include <sys/stat.h>

#include "common/posix_error.h"
#include "sidecar/cache/access_history.h"
#include "sidecar/cache/cache_scan.h"
#include "sidecar/cache/eviction.h"
#include "sidecar/cache/file_ops.h"
#include "sidecar/cache/hold.h"
#include "tests/sidecar/cache/cache_fixture.h"
#include "tests/testing/fault_env.h"

namespace modelswap::cache::testing {
namespace {

TEST(AccessHistoryTest, LruKOrderAndCorrelatedReferences) {
  const int64_t period = 10;
  AccessHistory h = NextHistory({}, 100, period);
  EXPECT_EQ(h.last_ns, 100);
  EXPECT_FALSE(h.referenced_twice());
  h = NextHistory(h, 105, period);  // correlated: still one reference
  EXPECT_EQ(h.last_ns, 105);
  EXPECT_FALSE(h.referenced_twice());
  h = NextHistory(h, 200, period);
  EXPECT_EQ(h.previous_ns, 105);
  EXPECT_EQ(h.last_ns, 200);

  AccessHistory once_old{50, 0}, once_new{300, 0}, twice_old{400, 20}, twice_new{90, 80};
  // Referenced once goes first (oldest first), then by the oldest second-to-last reference.
  EXPECT_TRUE(EvictBefore(once_old, once_new));
  EXPECT_TRUE(EvictBefore(once_new, twice_old));
  EXPECT_TRUE(EvictBefore(twice_old, twice_new));
  EXPECT_FALSE(EvictBefore(twice_new, once_old));
}

// Chunk files with chosen histories; Evict removes them in LRU-K order.
TEST_F(CacheTest, EvictsChunksInLruKOrder) {
  ASSERT_TRUE(EnsureLayout(DefaultEnv(), cache_dir()).has_value());
  std::vector<std::byte> content(4096, std::byte{1});
  std::vector<chunk::ChunkHash> hashes;
  // (last, previous): A once at t=100, B twice (10, 50), C once at t=200, D twice (30, 90).
  std::vector<std::pair<int64_t, int64_t>> times = {{100, 0}, {50, 10}, {200, 0}, {90, 30}};
  for (size_t i = 0; i < times.size(); ++i) {
    content[0] = std::byte(i);
    chunk::ChunkHash h = chunk::Sha256(content);
    hashes.push_back(h);
    ASSERT_TRUE(DefaultEnv()->CreateDirs(ChunkShardDir(cache_dir(), h)).has_value());
    WriteWhole(ChunkPath(cache_dir(), h), content);
    int64_t s = 1'000'000'000;
    ASSERT_TRUE(SetFileTimes(ChunkPath(cache_dir(), h), times[i].first * s, times[i].second * s)
                    .has_value());
  }
  auto used = CacheAllocatedBytes(DefaultEnv(), cache_dir());
  ASSERT_TRUE(used.has_value());
  uint64_t each = *used / 4;
  CacheOptions o = Options();
  o.max_bytes = each * 4;  // 100% full: above 90%
  o.high_watermark = 0.9;
  o.low_watermark = 0.5;  // keep two
  auto st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_TRUE(st->ran);
  EXPECT_EQ(st->chunks_evicted, 2u);
  EXPECT_LE(st->bytes_after, o.max_bytes / 2);
  // A and C (referenced once) go; B and D (twice) stay.
  EXPECT_FALSE(Exists(ChunkPath(cache_dir(), hashes[0])));
  EXPECT_TRUE(Exists(ChunkPath(cache_dir(), hashes[1])));
  EXPECT_FALSE(Exists(ChunkPath(cache_dir(), hashes[2])));
  EXPECT_TRUE(Exists(ChunkPath(cache_dir(), hashes[3])));

  o.low_watermark = 0.25;  // keep one: B's second-to-last reference (10) is older than D's (30)
  o.high_watermark = 0.3;
  st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(Exists(ChunkPath(cache_dir(), hashes[1])));
  EXPECT_TRUE(Exists(ChunkPath(cache_dir(), hashes[3])));
}

TEST_F(CacheTest, WatermarksNewestAndHeldVersions) {
  Version v1 = Make({.version = "v1", .seed = 1});
  Version v2 = Make({.version = "v2", .seed = 2});
  Version v3 = Make({.version = "v3", .seed = 3});
  CacheOptions o = Options();
  std::string held_path;
  Hold held;
  for (Version* v : {&v1, &v2, &v3}) {
    auto got = Assemble(DefaultEnv(), o, v->recipe, CountingFetch());
    ASSERT_TRUE(got.has_value()) << got.error().ToString();
    if (v == &v1) held = std::move(got->hold);  // v1 stays held; the others are released
  }
  uint64_t used = *CacheAllocatedBytes(DefaultEnv(), cache_dir());

  // Below the high watermark nothing is evicted.
  o.max_bytes = used * 2;
  auto st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(st->ran);
  EXPECT_EQ(st->chunks_evicted + st->versions_evicted, 0u);

  // Far above it: everything that may go goes; v1 (held) and v3 (newest) stay.
  o.max_bytes = used / 10;
  st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->ran);
  EXPECT_TRUE(Exists(FinalPath(v1)));
  EXPECT_FALSE(Exists(FinalPath(v2)));
  EXPECT_TRUE(Exists(FinalPath(v3)));
  EXPECT_EQ(st->versions_evicted, 1u);
  EXPECT_GE(st->skipped_held, 1u);
  EXPECT_GE(st->skipped_newest, 1u);
  EXPECT_GT(st->chunks_evicted, 0u);
  EXPECT_EQ(ReadWhole(FinalPath(v1)), v1.bytes);

  held.Release();
  st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(Exists(FinalPath(v1)));
  EXPECT_TRUE(Exists(FinalPath(v3)));
}

TEST_F(CacheTest, EvictionStopsAtTheLowWatermark) {
  Version v1 = Make({.version = "v1", .entries = 300});
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v1.recipe, CountingFetch()).has_value());
  uint64_t used = *CacheAllocatedBytes(DefaultEnv(), cache_dir());
  CacheOptions o = Options();
  o.max_bytes = used;  // 100% > 90%: evict to 80%
  auto st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->ran);
  EXPECT_LE(st->bytes_after, static_cast<uint64_t>(0.8 * static_cast<double>(used)));
  // ...and not much further: at most one chunk's worth below the low watermark.
  EXPECT_GT(st->bytes_after + 64 * 1024, static_cast<uint64_t>(0.8 * static_cast<double>(used)));
  EXPECT_EQ(*CacheAllocatedBytes(DefaultEnv(), cache_dir()), st->bytes_after);
  EXPECT_TRUE(Exists(FinalPath(v1)));  // newest of its model
}

TEST_F(CacheTest, EvictionRemovesDeadTempsOnly) {
  Version v = Make({});
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v.recipe, CountingFetch()).has_value());
  std::string dir = ModelCacheDir(cache_dir(), "ranker");
  std::string dead = JoinPath(dir, TempNameFor(AssembledFileName("v9", 9), 1));
  std::string live = JoinPath(dir, TempNameFor(AssembledFileName("v8", 8), 1));
  WriteWhole(dead, v.bytes);
  WriteWhole(live, v.bytes);
  auto live_lock = OfdLock::Acquire(LockFilePath(cache_dir(), LockKind::kVersionBuild),
                                    VersionLockOffset("ranker", AssembledFileName("v8", 8)),
                                    OfdLock::Mode::kExclusive);
  ASSERT_TRUE(live_lock.has_value());
  auto st = Evict(DefaultEnv(), Options());
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->temps_removed, 1u);
  EXPECT_FALSE(Exists(dead));
  EXPECT_TRUE(Exists(live));
}

// An Env whose PWrites into assembled temps fail with ENOSPC while `failures` > 0.
class NoSpaceEnv : public EnvWrapper {
 public:
  NoSpaceEnv() : EnvWrapper(DefaultEnv()) {}
  std::atomic<int> failures{0};
  Status PWrite(int fd, std::span<const std::byte> d, uint64_t off) override {
    if (failures.load() > 0) {
      failures.fetch_sub(1);
      return Fail(PosixError("pwrite", "(injected)", ENOSPC));
    }
    return EnvWrapper::PWrite(fd, d, off);
  }
};

TEST_F(CacheTest, OutOfSpaceEvictsOnceThenRetries) {
  Version v = Make({});
  NoSpaceEnv env;
  env.failures = 1;
  auto got = Assemble(&env, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->stats.evictions_for_space, 1);
  EXPECT_EQ(ReadWhole(got->path), v.bytes);

  Version w = Make({.version = "w", .seed = 9});
  env.failures = 1'000'000;
  got = Assemble(&env, Options(), w.recipe, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_TRUE(IsNoSpace(got.error())) << got.error().ToString();
  EXPECT_NE(got.error().message().find("even after evicting"), std::string::npos);
  EXPECT_FALSE(Exists(FinalPath(w)));
  EXPECT_FALSE(HasTemp("ranker"));
}

// A real full file system: a 4 MiB tmpfs (needs CAP_SYS_ADMIN; skipped otherwise).
TEST_F(CacheTest, OutOfSpaceOnASmallTmpfs) {
  std::string mnt = work() + "/small";
  ASSERT_EQ(::mkdir(mnt.c_str(), 0755), 0);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << strerror(errno) << ")";
  }
  struct Unmount {
    std::string p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  CacheOptions o = Options();
  o.dir = mnt + "/cache";
  // a/v1 (~0.9 MiB): file + chunks ~1.8 MiB. b/v1 (~1.1 MiB) needs ~2.3 MiB more: only after a's
  // chunks are evicted (a/v1 itself is its model's newest and stays).
  Version a = Make({.model = "a", .entries = 850});
  Version b = Make({.model = "b", .entries = 1100, .seed = 5});
  auto got = Assemble(DefaultEnv(), o, a.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  got->hold.Release();
  got = Assemble(DefaultEnv(), o, b.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_EQ(got->stats.evictions_for_space, 1);
  EXPECT_EQ(ReadWhole(got->path), b.bytes);
  EXPECT_TRUE(
      Exists(JoinPath(ModelCacheDir(o.dir, "a"), AssembledFileName("v1", a.recipe.msf_checksum))));
  got->hold.Release();

  // Something that cannot fit at all fails cleanly.
  Version c = Make({.model = "c", .entries = 3000, .seed = 7});
  got = Assemble(DefaultEnv(), o, c.recipe, CountingFetch());
  ASSERT_FALSE(got.has_value());
  EXPECT_TRUE(IsNoSpace(got.error())) << got.error().ToString();
  auto names = DefaultEnv()->ListDir(ModelCacheDir(o.dir, "c"));
  ASSERT_TRUE(names.has_value());
  EXPECT_TRUE(names->empty()) << (*names)[0];
}

}  // namespace
}  // namespace modelswap::cache::testing
