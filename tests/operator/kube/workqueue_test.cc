// WorkQueue: dedupe, one key never on two workers, per-item backoff, token bucket, fake clock.
#include "operator/kube/workqueue.h"

#include <gtest/gtest.h>

#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

TEST(WorkQueueTest, DuplicateAddsMerge) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  q.Add("a");
  q.Add("a");
  q.Add("b");
  EXPECT_EQ(q.Len(), 2u);
  EXPECT_EQ(*q.TryGet(), "a");
  EXPECT_EQ(*q.TryGet(), "b");
  EXPECT_FALSE(q.TryGet().has_value());
}

TEST(WorkQueueTest, KeyInProcessingIsNotHandedOutTwice) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  q.Add("a");
  auto k = q.TryGet();
  ASSERT_TRUE(k.has_value());
  q.Add("a");  // arrives while a worker holds it
  EXPECT_FALSE(q.TryGet().has_value());
  q.Done("a");
  EXPECT_EQ(*q.TryGet(), "a");
}

TEST(WorkQueueTest, PerItemBackoffDoublesAndForgetResets) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  EXPECT_EQ(q.AddRateLimited("a"), milliseconds(5));
  EXPECT_EQ(q.AddRateLimited("a"), milliseconds(10));
  EXPECT_EQ(q.AddRateLimited("a"), milliseconds(20));
  EXPECT_EQ(q.NumRequeues("a"), 3);
  q.Forget("a");
  EXPECT_EQ(q.NumRequeues("a"), 0);
  EXPECT_EQ(q.AddRateLimited("a"), milliseconds(5));
}

TEST(WorkQueueTest, BackoffIsCappedAtFiveMinutes) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  nanoseconds d{};
  for (int i = 0; i < 40; ++i)
    d = q.AddRateLimited("a");
  EXPECT_EQ(d, std::chrono::minutes(5));
}

TEST(WorkQueueTest, DelayedKeyBecomesReadyWhenClockPasses) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  q.AddAfter("a", milliseconds(100));
  EXPECT_FALSE(q.TryGet().has_value());
  clock.Advance(milliseconds(99));
  EXPECT_FALSE(q.TryGet().has_value());
  clock.Advance(milliseconds(1));
  EXPECT_EQ(*q.TryGet(), "a");
}

TEST(WorkQueueTest, TokenBucketLimitsBurstsAcrossKeys) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock, WorkQueueOptions{.qps = 10, .burst = 3});
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(q.AddRateLimited("k" + std::to_string(i)), milliseconds(5));
  // The bucket is empty: the 4th key waits for a token (100 ms at 10/s), not its 5 ms backoff.
  EXPECT_EQ(q.AddRateLimited("k3"), milliseconds(100));
}

TEST(WorkQueueTest, RetryAfterIsAMinimum) {
  testing::FakeClockEnv clock;
  WorkQueue q(&clock);
  EXPECT_EQ(q.AddRateLimited("a", std::chrono::seconds(2)), std::chrono::seconds(2));
}

TEST(WorkQueueTest, ShutDownWakesGet) {
  WorkQueue q(DefaultEnv());
  std::thread t([&] { q.ShutDown(); });
  EXPECT_FALSE(q.Get(std::chrono::seconds(30)).has_value());
  t.join();
}

TEST(WorkQueueTest, ConcurrentWorkersNeverShareAKey) {
  WorkQueue q(DefaultEnv());
  std::atomic<int> in_flight[4] = {};
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto k = q.Get(milliseconds(200))) {
        int idx = (*k)[0] - 'a';
        if (in_flight[idx].fetch_add(1) != 0) overlap = true;
        std::this_thread::yield();
        in_flight[idx].fetch_sub(1);
        processed.fetch_add(1);
        q.Done(*k);
      }
    });
  }
  for (int i = 0; i < 2000; ++i)
    q.Add(std::string(1, static_cast<char>('a' + i % 4)));
  ASSERT_TRUE(testing::WaitFor([&] { return q.Len() == 0; }));
  q.ShutDown();
  for (auto& t : workers)
    t.join();
  EXPECT_FALSE(overlap.load());
  EXPECT_GT(processed.load(), 0);
}

}  // namespace
}  // namespace modelswap::op
