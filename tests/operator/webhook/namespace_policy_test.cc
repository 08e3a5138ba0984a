// Pod Security levels of namespaces (operator/webhook/namespace_policy.h): the enforce label read
// as PSA reads it, and NamespaceLevelCache: one read per namespace while fresh (a fake clock
// moves time), failures remembered briefly and reported, and a read that hangs answered with
// kDeadlineExceeded instead of holding the admission (the read is released by the test, never
// timed).
#include "operator/webhook/namespace_policy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

TEST(PodSecurityLevel, EnforceLabelOrClusterDefault) {
  using L = PodSecurityLevel;
  EXPECT_EQ(EnforcedLevel({}, L::kPrivileged), L::kPrivileged);
  EXPECT_EQ(EnforcedLevel({}, L::kBaseline), L::kBaseline) << "the cluster's default applies";
  EXPECT_EQ(EnforcedLevel({{kPodSecurityEnforceLabel, "privileged"}}, L::kBaseline),
            L::kPrivileged);
  EXPECT_EQ(EnforcedLevel({{kPodSecurityEnforceLabel, "baseline"}}, L::kPrivileged), L::kBaseline);
  EXPECT_EQ(EnforcedLevel({{kPodSecurityEnforceLabel, "restricted"}}, L::kPrivileged),
            L::kRestricted);
  // Unknown values are read as the strictest level; warn/audit labels do not refuse pods.
  EXPECT_EQ(EnforcedLevel({{kPodSecurityEnforceLabel, "Baseline"}}, L::kPrivileged),
            L::kRestricted);
  EXPECT_EQ(EnforcedLevel({{"pod-security.kubernetes.io/warn", "restricted"}}, L::kPrivileged),
            L::kPrivileged);
  EXPECT_TRUE(AllowsHostPath(L::kPrivileged));
  EXPECT_FALSE(AllowsHostPath(L::kBaseline));
  EXPECT_FALSE(AllowsHostPath(L::kRestricted));
  EXPECT_FALSE(ParsePodSecurityLevel("strict"));
  EXPECT_EQ(kNamespaces.Path("", "serving"), "/api/v1/namespaces/serving");
}

// An Env whose monotonic clock the test moves.
class ClockEnv : public EnvWrapper {
 public:
  ClockEnv() : EnvWrapper(DefaultEnv()) {}
  int64_t NowMonotonicNanos() override { return now_.load(std::memory_order_relaxed); }
  void Advance(int64_t ms) { now_.fetch_add(ms * 1'000'000, std::memory_order_relaxed); }

 private:
  // relaxed: a plain value; the cache reads it under its own mutex, ordering comes from there.
  std::atomic<int64_t> now_{1'000'000'000};
};

Json NamespaceWith(const std::string& enforce) {
  Json ns = {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "x"}}}};
  if (!enforce.empty()) ns["metadata"]["labels"][kPodSecurityEnforceLabel] = enforce;
  return ns;
}

TEST(NamespaceLevelCache, ReadsOncePerTtl) {
  ClockEnv env;
  std::mutex mu;
  std::map<std::string, std::string> labels = {{"serving", ""}, {"team", "baseline"}};
  std::vector<std::string> reads;
  NamespaceLevelCache cache(
      &env,
      [&](const std::string& name) -> Result<Json> {
        std::lock_guard lock(mu);
        reads.push_back(name);
        return NamespaceWith(labels[name]);
      },
      {.ttl = std::chrono::milliseconds(30'000), .timeout = std::chrono::milliseconds(60'000)});
  EXPECT_EQ(cache.Level("serving").value(), PodSecurityLevel::kPrivileged);
  EXPECT_EQ(cache.Level("team").value(), PodSecurityLevel::kBaseline);
  EXPECT_EQ(cache.Level("serving").value(), PodSecurityLevel::kPrivileged);
  EXPECT_EQ(cache.fetches(), 2u) << "the second ask for serving came from the cache";
  {
    std::lock_guard lock(mu);
    labels["serving"] = "restricted";  // relabelled: seen once the entry expires
  }
  env.Advance(29'000);
  EXPECT_EQ(cache.Level("serving").value(), PodSecurityLevel::kPrivileged);
  env.Advance(2'000);
  EXPECT_EQ(cache.Level("serving").value(), PodSecurityLevel::kRestricted);
  EXPECT_EQ(cache.fetches(), 3u);
}

TEST(NamespaceLevelCache, FailuresAreReportedAndRememberedBriefly) {
  ClockEnv env;
  std::atomic<int> calls{0};
  NamespaceLevelCache cache(&env,
                            [&](const std::string&) -> Result<Json> {
                              // relaxed: a counter read after Level() returned, which orders it
                              // through the cache.
                              calls.fetch_add(1, std::memory_order_relaxed);
                              return Fail(Code::kPermissionDenied,
                                          "namespaces \"serving\" is forbidden");
                            },
                            {.error_ttl = std::chrono::milliseconds(5'000),
                             .timeout = std::chrono::milliseconds(60'000)});
  auto level = cache.Level("serving");
  ASSERT_FALSE(level);
  EXPECT_EQ(level.error().code(), Code::kPermissionDenied);
  EXPECT_NE(level.error().message().find("get namespace serving"), std::string::npos);
  EXPECT_FALSE(cache.Level("serving"));
  EXPECT_EQ(calls.load(std::memory_order_relaxed), 1) << "a down API server is not asked per pod";
  env.Advance(6'000);
  EXPECT_FALSE(cache.Level("serving"));
  EXPECT_EQ(calls.load(std::memory_order_relaxed), 2);
}

TEST(NamespaceLevelCache, HangingReadTimesOutThenFillsTheCache) {
  ClockEnv env;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  NamespaceLevelCache cache(
      &env,
      [&](const std::string&) -> Result<Json> {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return release; });  // the API server hangs until the test says
        return NamespaceWith("privileged");
      },
      {.timeout = std::chrono::milliseconds(20)});
  auto level = cache.Level("serving");
  ASSERT_FALSE(level);
  EXPECT_EQ(level.error().code(), Code::kDeadlineExceeded);
  EXPECT_NE(level.error().message().find("namespace serving"), std::string::npos);
  // Asked again while the read still hangs: no second read is started.
  EXPECT_FALSE(cache.Level("serving"));
  EXPECT_EQ(cache.fetches(), 1u);
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  // The read completes on the cache's thread and serves later admissions. Bounded: each Level()
  // waits at most the 20 ms timeout, and the released read needs no more than a few.
  Result<PodSecurityLevel> later = Fail(Code::kUnavailable, "not asked");
  for (int i = 0; i < 500 && !later; ++i)
    later = cache.Level("serving");
  ASSERT_TRUE(later) << later.error().message();
  EXPECT_EQ(*later, PodSecurityLevel::kPrivileged);
  EXPECT_EQ(cache.fetches(), 1u);
}

}  // namespace
}  // namespace modelswap::op
