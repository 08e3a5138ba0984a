// List + watch into a Store; see reflector.h for the state machine.
#include "operator/kube/reflector.h"

#include <spdlog/spdlog.h>

#include <random>

#include "operator/kube/api_error.h"

namespace modelswap::op {

Reflector::Reflector(KubeClient* client, Store* store, ReflectorOptions opts, Handler handler,
                     Env* env)
    : client_(client),
      store_(store),
      opts_(std::move(opts)),
      handler_(std::move(handler)),
      env_(env),
      backoff_(opts_.backoff_initial, opts_.backoff_max) {}

Reflector::~Reflector() {
  Stop();
}

void Reflector::Start() {
  thread_ = std::thread([this] { Run(); });
  watchdog_ = std::thread([this] { WatchdogLoop(); });
}

void Reflector::Stop() {
  std::shared_ptr<Cancellation> watch;
  {
    std::lock_guard lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    watch = current_watch_;
    cv_.notify_all();
  }
  if (watch) watch->Cancel();
  if (thread_.joinable()) thread_.join();
  if (watchdog_.joinable()) watchdog_.join();
}

bool Reflector::stopped() const {
  std::lock_guard lock(mu_);
  return stop_;
}

bool Reflector::SleepFor(std::chrono::nanoseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stop_; });
  return !stop_;
}

Status Reflector::ListOnce(bool most_recent) {
  ListOptions lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  lo.limit = 500;
  if (!most_recent && !rv_.empty()) {
    lo.resource_version = rv_;
    lo.resource_version_match = "NotOlderThan";
  }
  auto list = ListAll(client_, opts_.resource, opts_.ns, lo);
  if (!list && !lo.resource_version.empty() &&
      (IsExpired(list.error()) || IsResourceVersionTooLarge(list.error()))) {
    // Our RV is older than etcd keeps, or newer than the server has (a restored etcd): only
    // the most recent state is left to read.
    spdlog::info("reflector list rv unusable resource={} rv={} err=\"{}\": listing most recent",
                 opts_.name, rv_, list.error().message());
    lo.resource_version.clear();
    lo.resource_version_match.clear();
    list = ListAll(client_, opts_.resource, opts_.ns, lo);
  }
  if (!list) return Fail(list.error());
  lists_.fetch_add(1, std::memory_order_relaxed);
  rv_ = Field<std::string>(*list, {"metadata", "resourceVersion"});
  delivered_since_list_ = false;
  std::vector<Json> items;
  for (auto& item : (*list)["items"])
    items.push_back(std::move(item));
  spdlog::debug("reflector list resource={} items={} rv={}", opts_.name, items.size(), rv_);
  for (const auto& change : store_->Replace(std::move(items), rv_)) {
    handler_(change.old_obj, change.new_obj);
  }
  return Ok();
}

bool Reflector::OnEvent(WatchEvent&& ev) {
  last_activity_ns_.store(env_->NowMonotonicNanos(), std::memory_order_relaxed);
  delivered_since_list_ = true;
  std::string rv = ResourceVersionOf(ev.object);
  switch (ev.type) {
    case EventType::kBookmark:
      if (!rv.empty()) store_->SetResourceVersion(rv);
      break;
    case EventType::kAdded:
    case EventType::kModified: {
      auto change = store_->Upsert(std::move(ev.object));
      handler_(change.old_obj, change.new_obj);
      break;
    }
    case EventType::kDeleted: {
      auto change = store_->Delete(ev.object);
      if (change.old_obj) handler_(change.old_obj, nullptr);
      break;
    }
    case EventType::kError:
      break;  // turned into an Error by the client before it gets here
  }
  if (!rv.empty()) rv_ = rv;
  return !stopped();
}

Status Reflector::WatchOnce() {
  static thread_local std::mt19937 rng(std::random_device{}());
  int timeout = opts_.min_watch_timeout_seconds +
                std::uniform_int_distribution<int>(0, opts_.min_watch_timeout_seconds)(rng);
  auto cancel = std::make_shared<Cancellation>();
  {
    std::lock_guard lock(mu_);
    if (stop_) return Ok();
    current_watch_ = cancel;
    current_timeout_s_ = timeout;
  }
  last_activity_ns_.store(env_->NowMonotonicNanos(), std::memory_order_relaxed);
  WatchOptions wo{.label_selector = opts_.label_selector,
                  .field_selector = opts_.field_selector,
                  .resource_version = rv_,
                  .allow_bookmarks = true,
                  .timeout_seconds = timeout};
  auto st = client_->Watch(
      opts_.resource, opts_.ns, wo, [this](WatchEvent&& ev) { return OnEvent(std::move(ev)); },
      cancel.get());
  std::lock_guard lock(mu_);
  current_watch_.reset();
  return st;
}

void Reflector::Run() {
  bool need_list = true;
  bool most_recent = true;     // the next list reads the most recent state (RV unset)
  bool backoff_first = false;  // the next list waits the backoff first
  int watch_failures = 0;
  while (!stopped()) {
    if (need_list) {
      if (backoff_first && !SleepFor(backoff_.Next())) return;
      backoff_first = false;
      auto st = ListOnce(most_recent);
      if (!st) {
        spdlog::warn("reflector list failed resource={} err=\"{}\"", opts_.name,
                     st.error().ToString());
        std::chrono::nanoseconds wait = backoff_.Next();
        if (auto server_wait = RetryAfter(st.error()))
          wait = std::max<std::chrono::nanoseconds>(wait, *server_wait);
        if (!SleepFor(wait)) return;
        continue;
      }
      need_list = false;
      most_recent = false;
      watch_failures = 0;
    }
    auto st = WatchOnce();
    if (stopped()) return;
    watch_restarts_.fetch_add(1, std::memory_order_relaxed);
    if (st) {  // the server ended the watch (timeout): reopen from the RV at once
      backoff_.Reset();
      continue;
    }
    if (IsExpired(st.error())) {
      // As client-go after "too old resource version": relist the most recent state. A watch
      // that expired before delivering anything since the list means the list's RV is already
      // unusable (a restarted API server's empty watch cache): back off before the next try.
      backoff_first = !delivered_since_list_;
      if (delivered_since_list_) backoff_.Reset();
      spdlog::info("reflector watch expired resource={} rv={} backoff={}: relisting most recent",
                   opts_.name, rv_, backoff_first);
      need_list = true;
      most_recent = true;
      continue;
    }
    if (st.error().code() == Code::kAborted) continue;  // watchdog cancelled a silent watch
    spdlog::warn("reflector watch failed resource={} err=\"{}\"", opts_.name,
                 st.error().ToString());
    // After a few failed reopenings, resynchronise with a list: the server may have restarted
    // with a new etcd whose RVs mean nothing to our old ones.
    if (++watch_failures >= 3) need_list = true;
    if (!SleepFor(backoff_.Next())) return;
  }
}

void Reflector::WatchdogLoop() {
  for (;;) {
    std::shared_ptr<Cancellation> watch;
    int timeout_s = 0;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
      if (stop_) return;
      watch = current_watch_;
      timeout_s = current_timeout_s_;
    }
    if (!watch) continue;
    int64_t silent = env_->NowMonotonicNanos() - last_activity_ns_.load(std::memory_order_relaxed);
    int64_t limit =
        (static_cast<int64_t>(timeout_s) * 1000 + opts_.watchdog_grace.count()) * 1'000'000;
    if (silent > limit) {
      spdlog::warn("reflector watchdog resource={} silent_ms={}: restarting watch", opts_.name,
                   silent / 1'000'000);
      watchdog_fires_.fetch_add(1, std::memory_order_relaxed);
      watch->Cancel();
      last_activity_ns_.store(env_->NowMonotonicNanos(), std::memory_order_relaxed);
    }
  }
}

}  // namespace modelswap::op
