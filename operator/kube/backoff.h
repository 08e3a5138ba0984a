// Exponential backoff with jitter for the reflector's list/watch retries.
//
// Defaults follow client-go's reflector: start at 0.8 s, double per failure, cap at 30 s, with up
// to 100 % jitter so many operators restarted by one API server outage do not all relist at the
// same instant. 0.8 s is long enough for an API server restart to finish accepting connections,
// 30 s short enough that a recovered server is used within half a minute.
// Thread safety: one owner thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace modelswap::op {

class Backoff {
 public:
  using Duration = std::chrono::nanoseconds;
  explicit Backoff(Duration initial = std::chrono::milliseconds(800),
                   Duration max = std::chrono::seconds(30), double jitter = 1.0)
      : initial_(initial),
        max_(max),
        jitter_(jitter),
        next_(initial),
        rng_(std::random_device{}()) {}

  // The delay to wait before the next attempt; grows each call.
  Duration Next() {
    Duration base = next_;
    next_ = std::min<Duration>(max_, Duration(static_cast<int64_t>(next_.count() * 2)));
    std::uniform_real_distribution<double> dist(0.0, jitter_);
    auto d = Duration(static_cast<int64_t>(base.count() * (1.0 + dist(rng_))));
    return std::min<Duration>(d, max_);
  }
  // Back to the initial delay after a success.
  void Reset() { next_ = initial_; }

 private:
  Duration initial_, max_;
  double jitter_;
  Duration next_;
  std::mt19937_64 rng_;
};

}  // namespace modelswap::op
