// SnapshotHost in one process: snapshot and restore round trip, sparse files, pruning, one test
// per restore fallback (data, header, truncation), no valid snapshot, live regions left alone,
// other histories moved aside, write failures, consistency while the app commits, stats/metrics.
#include "sidecar/snapshot/snapshot_host.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "sidecar/client/region/region.h"
#include "sidecar/snapshot/snapshot_format.h"
#include "sidecar/snapshot/snapshot_restore.h"
#include "tests/sidecar/snapshot/snapshot_testing.h"
#include "tests/sidecar/snapshot/state_check.h"
#include "tests/sidecar/snapshot/test_dirs.h"

namespace modelswap::snapshot {
namespace {

using modelswap::testing::ScratchDir;
namespace fs = std::filesystem;

constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBytes = 16 * kBlock;

using modelswap::testing::Read;
using modelswap::testing::Text;

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

void FlipLastByte(const std::string& path) {
  FlipByte(path, fs::file_size(path) - 1);
}

class SnapshotHostTest : public ::testing::Test {
 protected:
  SnapshotHostOptions Options(const std::string& shm, int keep = 3) {
    SnapshotHostOptions o;
    o.shm_dir = shm;
    o.snapshot_dir = snaps_.path();
    o.interval_ms = 3'600'000;  // the tests drive passes with RunOnce()
    o.keep = keep;
    return o;
  }
  Region OpenRegion(const std::string& shm) {
    Result<Region> r = Region::Open(shm, "state", {kBytes, kBlock});
    EXPECT_TRUE(r) << r.error().ToString();
    return std::move(*r);
  }
  std::string SnapFile(uint64_t gen) { return snaps_ / ("state/" + SnapshotFileName(gen)); }
  // Commits gen 1..n, each writing "gen<k>" at block 3 and a snapshot pass after each.
  void MakeSnapshots(SnapshotHost& host, Region& r, int n) {
    for (int k = 1; k <= n; ++k) {
      ASSERT_TRUE(r.Write(3 * kBlock, Text("gen" + std::to_string(k))));
      r.Commit();
      ASSERT_TRUE(host.RunOnce());
    }
  }
  // Restores into the fresh shm dir shm2_ and returns the restore status.
  Status RestoreFresh(SnapshotHost** out = nullptr) {
    restorer_ = std::make_unique<SnapshotHost>(DefaultEnv(), Options(shm2_.path()));
    restorer_->RegisterMetrics(registry_);
    if (out) *out = restorer_.get();
    return restorer_->RestoreAll();
  }
  double Metric(const std::string& family) {
    for (const auto& f : registry_.Collect()) {
      if (f.name != family) continue;
      for (const auto& m : f.metric)
        return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
    return -1;
  }

  ScratchDir shm_{true}, shm2_{true}, snaps_{false};
  prometheus::Registry registry_;
  std::unique_ptr<SnapshotHost> restorer_;
};

TEST_F(SnapshotHostTest, SnapshotThenRestoreGivesTheCommittedState) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  ASSERT_TRUE(r.Write(1 * kBlock, Text("alpha")));
  ASSERT_TRUE(r.Write(5 * kBlock + 7, Text("beta")));
  r.Commit();
  ASSERT_TRUE(host.RunOnce());
  EXPECT_EQ(r.durable_generation(), 1u);
  ASSERT_TRUE(r.Write(9 * kBlock, Text("not committed")));

  ASSERT_TRUE(fs::exists(SnapFile(1)));
  struct stat st {};
  ASSERT_EQ(::stat(SnapFile(1).c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSnapshotHeaderBytes + kBytes);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kBytes / 2) << "zero blocks are holes";
  ASSERT_EQ(host.Stats().size(), 1u);
  EXPECT_EQ(host.Stats()[0].last_snapshot_stored_bytes, 2u * kBlock);

  ASSERT_TRUE(RestoreFresh());
  Region restored = OpenRegion(shm2_.path());
  EXPECT_FALSE(restored.attach_info().created);
  EXPECT_EQ(restored.attach_info().restored_gen, 1u);
  EXPECT_EQ(restored.generation(), 1u);
  EXPECT_EQ(restored.durable_generation(), 1u);
  EXPECT_EQ(Read(restored, 1 * kBlock, 5), "alpha");
  EXPECT_EQ(Read(restored, 5 * kBlock + 7, 4), "beta");
  EXPECT_EQ(Read(restored, 9 * kBlock, 3), std::string(3, '\0'));
  EXPECT_EQ(restored.Commit(), 2u);  // the app continues the restored history
}

TEST_F(SnapshotHostTest, IdleRegionIsNotWrittenAgain) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  ASSERT_TRUE(r.Write(0, Text("x")));
  r.Commit();
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(host.RunOnce());
  EXPECT_EQ(host.Stats()[0].snapshots, 1u);
}

TEST_F(SnapshotHostTest, KeepsTheNewestNAndTheFilesTheirChainsNeed) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path(), /*keep=*/3));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 6);  // 1 is full, 2..6 are deltas down to it: all needed
  Result<std::vector<uint64_t>> gens = ListSnapshotGenerations(DefaultEnv(), snaps_ / "state");
  ASSERT_TRUE(gens);
  EXPECT_EQ(*gens, (std::vector<uint64_t>{6, 5, 4, 3, 2, 1}));
  // 17 holds 16 deltas after 1, so 18 starts a new chain with a full snapshot; 19 and 20 are
  // deltas of it, and nothing older is needed any more.
  for (int k = 7; k <= 20; ++k) {
    ASSERT_TRUE(r.Write(3 * kBlock, Text("gen" + std::to_string(k))));
    r.Commit();
    ASSERT_TRUE(host.RunOnce());
    EXPECT_EQ(host.Stats()[0].last_snapshot_delta, k != 18) << k;
  }
  gens = ListSnapshotGenerations(DefaultEnv(), snaps_ / "state");
  ASSERT_TRUE(gens);
  EXPECT_EQ(*gens, (std::vector<uint64_t>{20, 19, 18}));
}

TEST_F(SnapshotHostTest, DeltaStoresOnlyTheBlocksCommittedSinceItsParent) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  for (uint64_t b = 0; b < kBytes / kBlock; ++b)
    ASSERT_TRUE(r.Write(b * kBlock, Text("block" + std::to_string(b))));
  r.Commit();
  ASSERT_TRUE(host.RunOnce());
  EXPECT_FALSE(host.Stats()[0].last_snapshot_delta);
  ASSERT_TRUE(r.Write(7 * kBlock, Text("seven")));
  ASSERT_TRUE(r.MarkDirty(9 * kBlock, kBlock));  // block 9 becomes all zeros
  std::memset(r.bytes().data() + 9 * kBlock, 0, kBlock);
  r.Commit();
  ASSERT_TRUE(host.RunOnce());
  const RegionSnapshotStats st = host.Stats()[0];
  EXPECT_TRUE(st.last_snapshot_delta);
  EXPECT_EQ(st.last_snapshot_stored_bytes, kBlock);
  // header, one page of index (2 entries), one stored block
  EXPECT_EQ(fs::file_size(SnapFile(2)), kSnapshotHeaderBytes + 4096 + kBlock);
  EXPECT_EQ(host.StatsJson()["state"]["last_snapshot"]["kind"], "delta");

  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));
  Region restored = OpenRegion(shm2_.path());
  EXPECT_EQ(restored.generation(), 2u);
  EXPECT_EQ(Read(restored, 7 * kBlock, 5), "seven");
  EXPECT_EQ(Read(restored, 8 * kBlock, 6), "block8");
  EXPECT_EQ(Read(restored, 9 * kBlock, kBlock), std::string(kBlock, '\0'));
  EXPECT_EQ(Read(restored, 10 * kBlock, 7), "block10");
}

TEST_F(SnapshotHostTest, CorruptFullSnapshotInvalidatesItsWholeChain) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 3);  // 1 full, 2 and 3 deltas of it
  FlipLastByte(SnapFile(1));
  Status s = RestoreFresh();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("none of its 3 snapshots is valid"), std::string::npos)
      << s.error().message();
  EXPECT_NE(s.error().message().find("data checksum mismatch"), std::string::npos);
}

TEST_F(SnapshotHostTest, DeltaWhoseParentWasReplacedIsRefused) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  // Another history's generation 1 (a full snapshot with different content) in place of ours.
  ScratchDir other_shm(true), other_snaps(false);
  {
    SnapshotHostOptions o = Options(other_shm.path());
    o.snapshot_dir = other_snaps.path();
    SnapshotHost other(DefaultEnv(), o);
    Result<Region> o_r = Region::Open(other_shm.path(), "state", {kBytes, kBlock});
    ASSERT_TRUE(o_r);
    ASSERT_TRUE(o_r->Write(0, Text("another history")));
    o_r->Commit();
    ASSERT_TRUE(other.RunOnce());
  }
  fs::copy_file(other_snaps / ("state/" + SnapshotFileName(1)), SnapFile(1),
                fs::copy_options::overwrite_existing);
  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));  // falls back to the (foreign but valid) generation 1
  EXPECT_EQ(OpenRegion(shm2_.path()).generation(), 1u);
  EXPECT_NE(restorer->Stats()[0].last_error.find("is not the snapshot it was written against"),
            std::string::npos)
      << restorer->Stats()[0].last_error;
}

TEST_F(SnapshotHostTest, DeltaIndexNamingABlockOutsideTheRegionIsCorruption) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  FlipByte(SnapFile(2), kSnapshotHeaderBytes + 2);  // entry 0: block 3 becomes 3 + 0x5a << 16
  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));
  EXPECT_EQ(OpenRegion(shm2_.path()).generation(), 1u);
  EXPECT_NE(restorer->Stats()[0].last_error.find("delta index entry 0 names block"),
            std::string::npos)
      << restorer->Stats()[0].last_error;
}

TEST_F(SnapshotHostTest, CorruptDataInNewestFallsBackToPrevious) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 3);
  FlipLastByte(SnapFile(3));  // the delta's stored block
  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));
  Region restored = OpenRegion(shm2_.path());
  EXPECT_EQ(restored.generation(), 2u);
  EXPECT_EQ(Read(restored, 3 * kBlock, 4), "gen2");
  ASSERT_EQ(restorer->Stats().size(), 1u);
  EXPECT_EQ(restorer->Stats()[0].restores, 1u);
  EXPECT_EQ(restorer->Stats()[0].restore_fallbacks, 1u);
  EXPECT_NE(restorer->Stats()[0].last_error.find("data checksum mismatch"), std::string::npos);
  EXPECT_EQ(Metric("modelswap_region_restore_fallbacks_total"), 1.0);
  EXPECT_EQ(Metric("modelswap_region_restores_total"), 1.0);
}

TEST_F(SnapshotHostTest, CorruptHeaderInNewestFallsBackToPrevious) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  FlipByte(SnapFile(2), 40);  // created_unix_ns: only the header checksum can notice
  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));
  EXPECT_EQ(OpenRegion(shm2_.path()).generation(), 1u);
  EXPECT_NE(restorer->Stats()[0].last_error.find("header checksum mismatch"), std::string::npos);
}

TEST_F(SnapshotHostTest, TruncatedNewestFallsBackToPrevious) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  fs::resize_file(SnapFile(2), kSnapshotHeaderBytes + kBlock);
  SnapshotHost* restorer = nullptr;
  ASSERT_TRUE(RestoreFresh(&restorer));
  EXPECT_EQ(OpenRegion(shm2_.path()).generation(), 1u);
  EXPECT_NE(restorer->Stats()[0].last_error.find("truncated"), std::string::npos);
}

TEST_F(SnapshotHostTest, NoValidSnapshotFailsAndCreatesNoRegion) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  FlipLastByte(SnapFile(1));
  FlipLastByte(SnapFile(2));
  Status s = RestoreFresh();
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kCorruption);
  EXPECT_NE(s.error().message().find("none of its 2 snapshots is valid"), std::string::npos)
      << s.error().message();
  EXPECT_FALSE(fs::exists(RegionPath(shm2_.path(), "state")));
  EXPECT_TRUE(fs::is_empty(RegionsDir(shm2_.path())));  // no temp file left either
}

TEST_F(SnapshotHostTest, LiveRegionIsNotReplaced) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 1);
  ASSERT_TRUE(r.Write(3 * kBlock, Text("live")));
  r.Commit();
  SnapshotHost restart(DefaultEnv(), Options(shm_.path()));  // agent restarted, pod alive
  ASSERT_TRUE(restart.RestoreAll());
  EXPECT_EQ(Read(r, 3 * kBlock, 4), "live");
  EXPECT_EQ(restart.Stats()[0].restores, 0u);
}

TEST_F(SnapshotHostTest, NewerSnapshotsOfAnotherHistoryAreMovedAside) {
  fs::create_directories(snaps_ / "state");
  std::ofstream(SnapFile(10)) << "from an earlier region of the same name";
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  Result<std::vector<uint64_t>> gens = ListSnapshotGenerations(DefaultEnv(), snaps_ / "state");
  ASSERT_TRUE(gens);
  EXPECT_EQ(*gens, (std::vector<uint64_t>{2, 1}));
  EXPECT_TRUE(fs::exists(snaps_ / ("state/.superseded-" + SnapshotFileName(10))));
}

class FailingWrites : public EnvWrapper {
 public:
  FailingWrites() : EnvWrapper(DefaultEnv()) {}
  Status PWrite(int, std::span<const std::byte>, uint64_t) override {
    return Fail(Code::kIOError, "pwrite: No space left on device (injected)");
  }
};

TEST_F(SnapshotHostTest, WriteFailureLeavesNothingBehind) {
  FailingWrites env;
  SnapshotHost host(&env, Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  ASSERT_TRUE(r.Write(0, Text("x")));
  r.Commit();
  Status s = host.RunOnce();
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("No space left"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(snaps_ / "state"));
  EXPECT_EQ(r.durable_generation(), 0u);
  EXPECT_EQ(host.Stats()[0].snapshot_failures, 1u);
  EXPECT_NE(host.Stats()[0].last_error.find("No space left"), std::string::npos);
}

TEST_F(SnapshotHostTest, EverySnapshotIsOneCommittedStateWhileTheAppCommits) {
  std::vector<uint64_t> durable;
  SnapshotHostOptions o = Options(shm_.path(), /*keep=*/1000);
  o.on_durable = [&](const std::string&, uint64_t gen) { durable.push_back(gen); };
  SnapshotHost host(DefaultEnv(), o);
  Region r = OpenRegion(shm_.path());
  modelswap::testing::CommitWhileSnapshotting(host, r, 150000, kBlock, /*seed=*/7);
  ASSERT_FALSE(durable.empty());
  EXPECT_EQ(durable.back(), 150000u);
  modelswap::testing::ExpectEachRestoresExactly(snaps_ / "state", durable, {kBytes, kBlock});
}

TEST_F(SnapshotHostTest, StopRunsAFinalPass) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  Region r = OpenRegion(shm_.path());
  ASSERT_TRUE(host.Start());
  ASSERT_TRUE(r.Write(0, Text("last words")));
  r.Commit();
  host.Stop();
  EXPECT_EQ(r.durable_generation(), 1u);
}

TEST_F(SnapshotHostTest, StatsJsonAndMetrics) {
  SnapshotHost host(DefaultEnv(), Options(shm_.path()));
  host.RegisterMetrics(registry_);
  Region r = OpenRegion(shm_.path());
  MakeSnapshots(host, r, 2);
  const nlohmann::json j = host.StatsJson();
  ASSERT_TRUE(j.contains("state")) << j.dump();
  EXPECT_EQ(j["state"]["committed_generation"], 2);
  EXPECT_EQ(j["state"]["durable_generation"], 2);
  EXPECT_EQ(j["state"]["snapshots"], 2);
  EXPECT_EQ(j["state"]["last_snapshot"]["stored_bytes"], kBlock);
  EXPECT_TRUE(j["state"]["last_error"].is_null());
  EXPECT_EQ(Metric("modelswap_snapshots_total"), 2.0);
  EXPECT_EQ(Metric("modelswap_region_durable_generation"), 2.0);
  EXPECT_EQ(Metric("modelswap_snapshot_bytes_written_total"), 2.0 * kBlock);
}

TEST(SnapshotHostOptionsTest, BadOptionsAreRefused) {
  SnapshotHostOptions o{"/dev/shm/x", "/tmp/y", 1000, 3, nullptr};
  EXPECT_TRUE(SnapshotHost::ValidateOptions(o));
  auto code = [](SnapshotHostOptions bad) { return SnapshotHost::ValidateOptions(bad).error(); };
  SnapshotHostOptions b = o;
  b.interval_ms = 0;
  EXPECT_NE(code(b).message().find("--snapshot-interval 0"), std::string::npos);
  b = o;
  b.keep = 0;
  EXPECT_NE(code(b).message().find("--snapshot-keep 0"), std::string::npos);
  b = o;
  b.snapshot_dir = "";
  EXPECT_EQ(code(b).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace modelswap::snapshot
