// The node cache across real processes (cache_helper): N agents racing for one version, agents
// assembling delta versions that share delta chunks and bases, a filler SIGKILLed mid-fetch at
// the version and at the chunk level, and eviction sparing a version that a live process holds.
// Every wait is a bounded loop; nothing is timed.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "sidecar/cache/eviction.h"
#include "sidecar/cache/ofd_lock.h"
#include "tests/sidecar/cache/cache_fixture.h"
#include "tests/sidecar/cache/delta_test_util.h"

namespace modelswap::cache::testing {
namespace {

class CacheProcessTest : public CacheTest {
 protected:
  std::string WriteRecipe(const Version& v) {
    std::string path = work() + "/" + v.recipe.model + "-" + v.recipe.version + ".recipe";
    std::string bytes = chunk::EncodeRecipe(v.recipe);
    WriteWhole(path, std::as_bytes(std::span(bytes)));
    return path;
  }

  pid_t Start(const std::vector<std::string>& args) {
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv;
      static std::string bin = CACHE_HELPER_BIN;
      argv.push_back(bin.data());
      for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      _exit(127);
    }
    return pid;
  }

  std::vector<std::string> Args(const std::string& recipe, const std::string& tag) {
    return {"--cache",  cache_dir(),
            "--recipe", recipe,
            "--volume", volume(),
            "--log",    work() + "/fetch-" + tag + ".log",
            "--result", work() + "/result-" + tag};
  }

  static int Wait(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

  static bool WaitForFile(const std::string& p) {
    for (int i = 0; i < 6000; ++i) {  // at most 60 s
      if (Exists(p)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  static std::vector<std::string> Lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);)
      out.push_back(l);
    return out;
  }

  std::string Result(const std::string& tag) {
    auto l = Lines(work() + "/result-" + tag);
    return l.empty() ? "" : l[0];
  }
};

TEST_F(CacheProcessTest, EightProcessesFetchEachChunkOnceAndShareOneFile) {
  Version v = Make({.entries = 600});
  std::string recipe = WriteRecipe(v);
  std::string go = work() + "/go";
  std::vector<pid_t> pids;
  for (int i = 0; i < 8; ++i) {
    auto args = Args(recipe, std::to_string(i));
    args.insert(args.end(), {"--start-after", go, "--threads", "2"});
    pids.push_back(Start(args));
  }
  WriteWhole(go, {});
  for (pid_t p : pids)
    EXPECT_EQ(Wait(p), 0);

  std::map<std::string, int> fetched;
  int builders = 0;
  for (int i = 0; i < 8; ++i) {
    for (const auto& hex : Lines(work() + "/fetch-" + std::to_string(i) + ".log"))
      ++fetched[hex];
    std::string r = Result(std::to_string(i));
    ASSERT_TRUE(r.starts_with("ok " + FinalPath(v) + " ")) << r;
    if (r.find("already=0") != std::string::npos) ++builders;
  }
  EXPECT_EQ(builders, 1);
  EXPECT_EQ(fetched.size(), UniqueDataChunks(v.recipe));
  for (const auto& [hex, n] : fetched)
    EXPECT_EQ(n, 1) << hex << " fetched " << n << " times";
  EXPECT_EQ(ReadWhole(FinalPath(v)), v.bytes);
  EXPECT_FALSE(HasTemp("ranker"));
}

// Four models whose versions share their data chunks, delta chunks included (only the header
// chunks differ), assembled by four processes at once from a ChunkStore with no previous
// version: across all of them, each delta chunk and each base is fetched from the volume once.
TEST_F(CacheProcessTest, ProcessesAssemblingDeltaVersionsFetchEachDeltaAndBaseOnce) {
  std::string store_root = work() + "/store";
  chunk::ChunkStore store(DefaultEnv(), store_root);
  std::vector<Version> v2s;
  for (int m = 0; m < 4; ++m) {
    std::string model = "m" + std::to_string(m);
    Version v1 = MakeVersion(work(), work() + "/raw", {.model = model, .entries = 400});
    Version v2 =
        MakeVersion(work(), work() + "/raw",
                    {.model = model, .version = "v2", .entries = 400, .changed_every = 50});
    v1.recipe = PutVersion(&store, v1, nullptr);
    v2.recipe = PutVersion(&store, v2, &v1);
    ASSERT_GE(DeltaEntries(v2.recipe), 4u);
    v2s.push_back(std::move(v2));
  }
  std::string go = work() + "/go";
  std::vector<pid_t> pids;
  for (int m = 0; m < 4; ++m) {
    auto args = Args(WriteRecipe(v2s[m]), std::to_string(m));
    args.insert(args.end(), {"--store", store_root, "--start-after", go, "--threads", "2"});
    pids.push_back(Start(args));
  }
  WriteWhole(go, {});
  for (pid_t p : pids)
    EXPECT_EQ(Wait(p), 0);

  std::map<std::string, int> fetched;
  for (int m = 0; m < 4; ++m) {
    for (const auto& line : Lines(work() + "/fetch-" + std::to_string(m) + ".log"))
      ++fetched[line];
    EXPECT_TRUE(Result(std::to_string(m)).starts_with("ok ")) << Result(std::to_string(m));
    EXPECT_EQ(ReadWhole(FinalPath(v2s[m])), v2s[m].bytes);
  }
  std::set<std::string> deltas, bases;
  for (const auto& v : v2s) {
    for (const auto& c : v.recipe.chunks) {
      if (!c.delta) continue;
      deltas.insert(chunk::ToHex(c.hash) + "." + chunk::ToHex(c.base_hash));
      bases.insert(chunk::ToHex(c.base_hash));
    }
  }
  for (const auto& d : deltas)
    EXPECT_EQ(fetched[d], 1) << "delta " << d;
  for (const auto& b : bases)
    EXPECT_EQ(fetched[b], 1) << "base " << b;
  for (const auto& [line, n] : fetched)
    EXPECT_EQ(n, 1) << line << " fetched " << n << " times";
  EXPECT_LT(deltas.size(), 4 * DeltaEntries(v2s[0].recipe)) << "the models share delta chunks";
}

// The builder dies while fetching: a process waiting for the same version takes over.
TEST_F(CacheProcessTest, AWaiterTakesOverFromAKilledBuilder) {
  Version v = Make({});
  std::string recipe = WriteRecipe(v);
  std::string blocked_hex = chunk::ToHex(DataChunk(v.recipe, DataChunks(v.recipe) / 2).hash);
  auto a = Args(recipe, "filler");
  a.insert(a.end(),
           {"--block-on", blocked_hex, "--blocked-marker", work() + "/blocked", "--threads", "1"});
  pid_t filler = Start(a);
  ASSERT_TRUE(WaitForFile(work() + "/blocked"));
  pid_t waiter = Start(Args(recipe, "waiter"));
  // Give the waiter a moment to queue on the build lock (not required for correctness).
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(Result("waiter").empty());
  ASSERT_EQ(::kill(filler, SIGKILL), 0);
  EXPECT_EQ(Wait(filler), -SIGKILL);
  ASSERT_EQ(Wait(waiter), 0) << Result("waiter");
  EXPECT_TRUE(Result("waiter").starts_with("ok ")) << Result("waiter");
  EXPECT_EQ(ReadWhole(FinalPath(v)), v.bytes);
  EXPECT_FALSE(HasTemp("ranker")) << "the dead builder's temp was left";
  auto log = Lines(work() + "/fetch-waiter.log");
  EXPECT_EQ(std::count(log.begin(), log.end(), blocked_hex), 1);
}

// Two models share data chunks: the second waits on the chunk the first is filling, and fills it
// itself when the first dies.
TEST_F(CacheProcessTest, AWaiterTakesOverAChunkFromAKilledFiller) {
  Version alpha = Make({.model = "alpha"});
  Version beta = Make({.model = "beta"});
  std::string blocked_hex;
  for (const auto& c : alpha.recipe.chunks) {
    for (const auto& d : beta.recipe.chunks) {
      if (!c.hole && c.hash == d.hash && blocked_hex.empty()) blocked_hex = chunk::ToHex(c.hash);
    }
  }
  ASSERT_FALSE(blocked_hex.empty());
  auto a = Args(WriteRecipe(alpha), "alpha");
  a.insert(a.end(), {"--block-on", blocked_hex, "--blocked-marker", work() + "/blocked"});
  pid_t filler = Start(a);
  ASSERT_TRUE(WaitForFile(work() + "/blocked"));
  auto hash = chunk::ParseChunkHash(blocked_hex);
  ASSERT_TRUE(hash.has_value());
  auto locked = OfdLock::IsLocked(LockFilePath(cache_dir(), LockKind::kChunkFill),
                                  ChunkLockOffset(*hash), OfdLock::Mode::kExclusive);
  ASSERT_TRUE(locked.has_value());
  EXPECT_TRUE(*locked) << "the filler holds the chunk's lock while it fetches";

  pid_t waiter = Start(Args(WriteRecipe(beta), "beta"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto early = Lines(work() + "/fetch-beta.log");
  EXPECT_EQ(std::count(early.begin(), early.end(), blocked_hex), 0);
  ASSERT_EQ(::kill(filler, SIGKILL), 0);
  Wait(filler);
  ASSERT_EQ(Wait(waiter), 0) << Result("beta");
  auto log = Lines(work() + "/fetch-beta.log");
  EXPECT_EQ(std::count(log.begin(), log.end(), blocked_hex), 1);
  EXPECT_EQ(ReadWhole(FinalPath(beta)), beta.bytes);

  // The killed model assembles later from what is cached; its dead temp is cleaned.
  ASSERT_EQ(Wait(Start(Args(WriteRecipe(alpha), "alpha2"))), 0) << Result("alpha2");
  EXPECT_EQ(ReadWhole(FinalPath(alpha)), alpha.bytes);
  EXPECT_FALSE(HasTemp("alpha"));
  auto alpha2 = Lines(work() + "/fetch-alpha2.log");
  EXPECT_EQ(std::count(alpha2.begin(), alpha2.end(), blocked_hex), 0);
}

TEST_F(CacheProcessTest, EvictionSparesAVersionALiveProcessHolds) {
  Version v0 = Make({.version = "v0", .seed = 1});
  Version v1 = Make({.version = "v1", .seed = 2});
  Version v2 = Make({.version = "v2", .seed = 3});
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v0.recipe, CountingFetch()).has_value());
  auto a = Args(WriteRecipe(v1), "holder");
  a.insert(a.end(), {"--hold-until", work() + "/release", "--held-marker", work() + "/held"});
  pid_t holder = Start(a);
  ASSERT_TRUE(WaitForFile(work() + "/held")) << Result("holder");
  ASSERT_TRUE(Assemble(DefaultEnv(), Options(), v2.recipe, CountingFetch()).has_value());

  CacheOptions o = Options();
  o.max_bytes = 1;  // evict everything that may go
  auto st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_FALSE(Exists(FinalPath(v0)));
  EXPECT_TRUE(Exists(FinalPath(v1))) << "held by a live process";
  EXPECT_TRUE(Exists(FinalPath(v2))) << "the model's newest";
  EXPECT_GE(st->skipped_held, 1u);

  WriteWhole(work() + "/release", {});
  EXPECT_EQ(Wait(holder), 0);
  st = Evict(DefaultEnv(), o);
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(Exists(FinalPath(v1)));
  EXPECT_TRUE(Exists(FinalPath(v2)));
}

}  // namespace
}  // namespace modelswap::cache::testing
