// Leader election with a coordination.k8s.io/v1 Lease (client-go's leaderelection).
//
// One replica holds the Lease and reconciles; standbys keep serving health (and the webhook).
// Defaults 15 s lease / 10 s renew deadline / 2 s retry, checked at construction: the lease must
// outlast the renew deadline, which must exceed 1.2x the retry period, or a healthy leader could
// lose its lease between two renewals.
//
// What it does NOT guarantee (as client-go says of itself): there is no fencing. A leader that
// stalls (GC pause, partition) longer than the lease may still act while a new leader already
// does; the operator narrows the window by exiting as soon as a renewal misses the deadline, and
// its writes are idempotent and guarded by resourceVersion preconditions. Expiry is judged only
// with the local monotonic clock: a lease is free when its record has not changed for
// leaseDuration since this replica last saw it change, never by comparing the holder's
// timestamps with our wall clock.
//
// Thread safety: Acquire/RunRenewals/Release from the owner thread; IsLeader from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/env.h"
#include "operator/kube/client.h"

namespace modelswap::op {

struct LeaderElectionConfig {
  std::string ns;
  std::string name = "modelswap-operator";
  std::string identity;
  std::chrono::milliseconds lease_duration{15'000};
  std::chrono::milliseconds renew_deadline{10'000};
  std::chrono::milliseconds retry_period{2'000};
};

Status ValidateLeaderElectionConfig(const LeaderElectionConfig& c);

class LeaderElector {
 public:
  static Result<std::unique_ptr<LeaderElector>> Create(KubeClient* client, Env* env,
                                                       LeaderElectionConfig cfg);

  // Tries until this replica holds the lease (true) or `stop` turns true (false).
  bool Acquire(const std::atomic<bool>& stop);
  // Renews every retry period until `stop` (then returns true) or until no renewal succeeded
  // within the renew deadline (calls nothing, returns false: the caller must stop at once).
  bool RunRenewals(const std::atomic<bool>& stop);
  // Gives the lease up so a standby takes over without waiting for expiry.
  void Release();
  bool IsLeader() const { return leader_.load(std::memory_order_acquire); }
  // One acquire-or-renew attempt (tests).
  Status TryAcquireOrRenew();

 private:
  LeaderElector(KubeClient* client, Env* env, LeaderElectionConfig cfg)
      : client_(client), env_(env), cfg_(std::move(cfg)) {}
  Json NewRecord(const Json* old, int64_t now_unix) const;
  // Sleeps up to d, waking early when stop turns true; false if stopped.
  bool Wait(std::chrono::milliseconds d, const std::atomic<bool>& stop);

  KubeClient* client_;
  Env* env_;
  LeaderElectionConfig cfg_;
  // Release/acquire: set after the lease write succeeded, read by health and metrics threads.
  std::atomic<bool> leader_{false};
  std::string observed_record_;      // holder + renewTime of the last record seen
  int64_t observed_at_mono_ns_ = 0;  // local time it was first seen
  std::string resource_version_;
};

}  // namespace modelswap::op
