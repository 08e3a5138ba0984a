// WorkQueue: the controller's rate-limited, deduplicating queue of keys (client-go's workqueue).
//
// Contract (as in client-go): Add() of a key already waiting is a no-op; a key being processed
// (between Get and Done) is never handed to a second worker: adds during processing mark it dirty
// and it is queued again at Done(). AddRateLimited() delays a key by the larger of its
// per-item exponential backoff (5 ms doubling to 5 min: a key that fails every time settles at a
// few retries an hour) and an overall token bucket (10/s, burst 100: a burst of failures cannot
// flood the API server). Forget() resets the key's backoff after a success - remember to call
// it. AddAfter() schedules a plain delayed add (periodic re-checks), without touching backoff.
//
// Time comes from the injected Env's monotonic clock, so tests drive delays with a fake clock
// and TryGet(); Get() additionally blocks on a condition variable for real-time waiting.
// Thread safety: every method is safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/env.h"

namespace modelswap::op {

struct WorkQueueOptions {
  std::chrono::nanoseconds min_backoff = std::chrono::milliseconds(5);
  std::chrono::nanoseconds max_backoff = std::chrono::minutes(5);
  double qps = 10.0;
  int burst = 100;
};

class WorkQueue {
 public:
  WorkQueue(Env* clock, WorkQueueOptions opts = {});

  void Add(const std::string& key);
  void AddAfter(const std::string& key, std::chrono::nanoseconds delay);
  // Returns the delay chosen (for logs and tests); never shorter than min_delay (a server's
  // Retry-After).
  std::chrono::nanoseconds AddRateLimited(const std::string& key,
                                          std::chrono::nanoseconds min_delay = {});
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key) const;

  // Blocks up to max_wait for a key; nullopt on timeout or after ShutDown.
  std::optional<std::string> Get(std::chrono::milliseconds max_wait);
  // Non-blocking: the next ready key (delayed keys whose time has come count as ready).
  std::optional<std::string> TryGet();
  void Done(const std::string& key);

  void ShutDown();
  bool shutting_down() const;
  // Keys ready to be processed (not counting delayed ones or those in processing).
  size_t Len() const;
  size_t DelayedLen() const;

 private:
  void AddLocked(const std::string& key);
  void PromoteDueLocked(int64_t now);
  std::optional<std::string> PopLocked();
  std::chrono::nanoseconds BucketDelayLocked(int64_t now);

  Env* clock_;
  WorkQueueOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  // Delayed adds: earliest time per key, plus a heap to find the next due one.
  std::unordered_map<std::string, int64_t> waiting_;
  std::priority_queue<std::pair<int64_t, std::string>, std::vector<std::pair<int64_t, std::string>>,
                      std::greater<>>
      heap_;
  std::unordered_map<std::string, int> failures_;
  double tokens_;
  int64_t tokens_at_ns_;
  bool shutdown_ = false;
};

}  // namespace modelswap::op
