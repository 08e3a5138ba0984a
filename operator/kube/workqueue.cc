// Rate-limited deduplicating work queue; see workqueue.h.
#include "operator/kube/workqueue.h"

#include <algorithm>
#include <cmath>

namespace modelswap::op {

WorkQueue::WorkQueue(Env* clock, WorkQueueOptions opts)
    : clock_(clock), opts_(opts), tokens_(opts.burst), tokens_at_ns_(clock->NowMonotonicNanos()) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutdown_ || dirty_.count(key) != 0) return;
  dirty_.insert(key);
  if (processing_.count(key) != 0) return;  // re-queued by Done()
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::nanoseconds delay) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  if (delay.count() <= 0) {
    AddLocked(key);
    return;
  }
  int64_t due = clock_->NowMonotonicNanos() + delay.count();
  auto it = waiting_.find(key);
  if (it != waiting_.end() && it->second <= due) return;  // an earlier add already covers it
  waiting_[key] = due;
  heap_.emplace(due, key);
  cv_.notify_all();  // a Get() may be sleeping past this new, earlier deadline
}

std::chrono::nanoseconds WorkQueue::BucketDelayLocked(int64_t now) {
  double elapsed_s = static_cast<double>(now - tokens_at_ns_) / 1e9;
  tokens_ = std::min<double>(opts_.burst, tokens_ + elapsed_s * opts_.qps);
  tokens_at_ns_ = now;
  tokens_ -= 1.0;  // reserve a token now, even if it is only available later
  if (tokens_ >= 0) return std::chrono::nanoseconds(0);
  return std::chrono::nanoseconds(static_cast<int64_t>(-tokens_ / opts_.qps * 1e9));
}

std::chrono::nanoseconds WorkQueue::AddRateLimited(const std::string& key,
                                                   std::chrono::nanoseconds min_delay) {
  std::chrono::nanoseconds delay;
  {
    std::lock_guard lock(mu_);
    int n = failures_[key]++;
    double item = static_cast<double>(opts_.min_backoff.count()) * std::pow(2.0, n);
    auto item_delay = std::chrono::nanoseconds(
        static_cast<int64_t>(std::min(item, static_cast<double>(opts_.max_backoff.count()))));
    delay = std::max({item_delay, BucketDelayLocked(clock_->NowMonotonicNanos()), min_delay});
  }
  AddAfter(key, delay);
  return delay;
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::PromoteDueLocked(int64_t now) {
  while (!heap_.empty() && heap_.top().first <= now) {
    auto [due, key] = heap_.top();
    heap_.pop();
    auto it = waiting_.find(key);
    if (it == waiting_.end() || it->second != due) continue;  // superseded by an earlier add
    waiting_.erase(it);
    AddLocked(key);
  }
}

std::optional<std::string> WorkQueue::PopLocked() {
  if (queue_.empty()) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  return key;
}

std::optional<std::string> WorkQueue::TryGet() {
  std::lock_guard lock(mu_);
  PromoteDueLocked(clock_->NowMonotonicNanos());
  return PopLocked();
}

std::optional<std::string> WorkQueue::Get(std::chrono::milliseconds max_wait) {
  std::unique_lock lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (;;) {
    int64_t now = clock_->NowMonotonicNanos();
    PromoteDueLocked(now);
    if (auto key = PopLocked()) return key;
    if (shutdown_) return std::nullopt;
    auto until = deadline;
    if (!heap_.empty()) {
      auto next_due = std::chrono::steady_clock::now() +
                      std::chrono::nanoseconds(std::max<int64_t>(0, heap_.top().first - now));
      until = std::min(until, next_due);
    }
    if (cv_.wait_until(lock, until) == std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      PromoteDueLocked(clock_->NowMonotonicNanos());
      return PopLocked();
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

size_t WorkQueue::Len() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t WorkQueue::DelayedLen() const {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

}  // namespace modelswap::op
