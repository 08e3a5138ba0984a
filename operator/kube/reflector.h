// Reflector: keeps a Store in step with the API server by list + watch (client-go's reflector,
// kube-rs's watcher).
//
// States, one thread:
//   kList   list, paged (limit 500). The first list, and every relist after a 410, is a
//           consistent read of the most recent state (RV unset), as client-go's reflector does
//           after "too old resource version". Never RV=<old>&limit=N: a real server answers that
//           with the exact snapshot at that old RV (v1.32/list-rv-exact-with-limit.http), whose
//           RV the next watch rejects with 410 again, forever, while etcd keeps it
//           (list-410-after-compaction.http). A relist for other reasons (a watch that keeps
//           failing) asks resourceVersionMatch=NotOlderThan at the last RV (current data, served
//           by the watch cache, list-rv-notolderthan-with-limit.http) and falls back to RV unset
//           if that RV is too old (410) or too large (504 ResourceVersionTooLarge: a restored
//           etcd). The result is swapped into the Store whole; readiness turns true.
//   kWatch  watch from the RV with allowWatchBookmarks; events update the Store and call the
//           handler; bookmarks only move the RV forward. A watch the server ends normally
//           (timeoutSeconds, randomised between 1x and 2x the configured minimum so many
//           watches do not expire together) is simply reopened from the RV. An ERROR event with
//           code 410 (inside an HTTP 200), or an HTTP 410, goes back to kList; if the watch had
//           delivered nothing since the last list (the fresh RV expired at once), the relist
//           waits the backoff first so no loop can spin. Other failures
//           (connection refused, broken stream) back off (0.8 s .. 30 s, see backoff.h) and
//           reopen the watch; after repeated failures a relist is done to resynchronise.
// A watchdog thread cancels a watch that has delivered nothing (no event, no bookmark) for
// longer than its timeoutSeconds plus a grace period: a half-open TCP connection would
// otherwise leave the cache silently frozen.
//
// Thread safety: Start/Stop from one owner thread; HasSynced and counters from any thread. The
// handler runs on the reflector's thread and must not block for long.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/env.h"
#include "operator/kube/backoff.h"
#include "operator/kube/client.h"
#include "operator/kube/store.h"

namespace modelswap::op {

struct ReflectorOptions {
  ResourceRef resource;
  std::string ns;  // "" = all namespaces
  std::string label_selector;
  std::string field_selector;
  int min_watch_timeout_seconds = 300;
  std::chrono::milliseconds watchdog_grace{30'000};
  std::chrono::milliseconds backoff_initial{800};
  std::chrono::milliseconds backoff_max{30'000};
  std::string name;  // for logs and metrics ("modelversions", "jobs", ...)
};

class Reflector {
 public:
  // Called for every change (old null: added; new null: deleted).
  using Handler = std::function<void(const ObjectPtr& old_obj, const ObjectPtr& new_obj)>;

  Reflector(KubeClient* client, Store* store, ReflectorOptions opts, Handler handler, Env* env);
  ~Reflector();

  void Start();
  void Stop();

  bool HasSynced() const { return store_->HasSynced(); }
  // Relaxed counters: monotonic, read for metrics and tests only.
  uint64_t lists() const { return lists_.load(std::memory_order_relaxed); }
  uint64_t watch_restarts() const { return watch_restarts_.load(std::memory_order_relaxed); }
  uint64_t watchdog_fires() const { return watchdog_fires_.load(std::memory_order_relaxed); }

 private:
  void Run();
  // most_recent: RV unset (a consistent read), else NotOlderThan the last RV.
  Status ListOnce(bool most_recent);
  Status WatchOnce();
  bool OnEvent(WatchEvent&& ev);
  void WatchdogLoop();
  // Waits up to d unless stopped; false when stopped.
  bool SleepFor(std::chrono::nanoseconds d);
  bool stopped() const;

  KubeClient* client_;
  Store* store_;
  ReflectorOptions opts_;
  Handler handler_;
  Env* env_;
  Backoff backoff_;

  std::thread thread_, watchdog_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::shared_ptr<Cancellation> current_watch_;  // guarded by mu_
  int current_timeout_s_ = 0;                    // guarded by mu_
  // Monotonic ns of the last byte-level sign of life of the current watch. Written by the
  // reflector thread, read by the watchdog; relaxed is enough: it is a heuristic timestamp and
  // the Cancellation it leads to is itself synchronised by its mutex.
  std::atomic<int64_t> last_activity_ns_{0};
  std::atomic<uint64_t> lists_{0}, watch_restarts_{0}, watchdog_fires_{0};
  std::string rv_;  // reflector thread only
  // The current watch delivered an event or bookmark since the last list (reflector thread).
  bool delivered_since_list_ = false;
};

}  // namespace modelswap::op
