// Lease-based leader election; see leaderelection.h.
#include "operator/kube/leaderelection.h"

#include <spdlog/spdlog.h>

#include <thread>

namespace modelswap::op {

Status ValidateLeaderElectionConfig(const LeaderElectionConfig& c) {
  if (c.identity.empty()) return Fail(Code::kInvalidArgument, "leader election: identity is empty");
  if (c.ns.empty()) return Fail(Code::kInvalidArgument, "leader election: namespace is empty");
  if (c.retry_period.count() <= 0) {
    return Fail(Code::kInvalidArgument, "leader election: retry period must be > 0");
  }
  if (c.lease_duration <= c.renew_deadline) {
    return Fail(Code::kInvalidArgument,
                "leader election: lease duration must be greater than the renew deadline");
  }
  if (c.renew_deadline.count() <= c.retry_period.count() * 12 / 10) {
    return Fail(Code::kInvalidArgument,
                "leader election: renew deadline must be greater than 1.2 x retry period");
  }
  return Ok();
}

Result<std::unique_ptr<LeaderElector>> LeaderElector::Create(KubeClient* client, Env* env,
                                                             LeaderElectionConfig cfg) {
  MS_RETURN_IF_ERROR(ValidateLeaderElectionConfig(cfg));
  return std::unique_ptr<LeaderElector>(new LeaderElector(client, env, std::move(cfg)));
}

Json LeaderElector::NewRecord(const Json* old, int64_t now_unix) const {
  std::string now = FormatMicroTime(now_unix);
  Json lease = old != nullptr ? *old
                              : Json{{"apiVersion", "coordination.k8s.io/v1"},
                                     {"kind", "Lease"},
                                     {"metadata", {{"name", cfg_.name}, {"namespace", cfg_.ns}}},
                                     {"spec", Json::object()}};
  Json& spec = lease["spec"];
  std::string holder = Field<std::string>(lease, {"spec", "holderIdentity"});
  if (holder != cfg_.identity) {
    spec["acquireTime"] = now;
    int transitions = Field<int>(lease, {"spec", "leaseTransitions"});
    spec["leaseTransitions"] = old != nullptr ? transitions + 1 : 0;
  }
  spec["holderIdentity"] = cfg_.identity;
  spec["leaseDurationSeconds"] = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(cfg_.lease_duration).count());
  spec["renewTime"] = now;
  return lease;
}

Status LeaderElector::TryAcquireOrRenew() {
  int64_t now_mono = env_->NowMonotonicNanos();
  auto current = client_->Get(kLeases, cfg_.ns, cfg_.name);
  if (!current) {
    if (current.error().code() != Code::kNotFound) return Fail(current.error());
    MS_ASSIGN_OR_RETURN(
        Json created, client_->Create(kLeases, cfg_.ns, NewRecord(nullptr, env_->NowUnixNanos())));
    resource_version_ = ResourceVersionOf(created);
    leader_.store(true, std::memory_order_release);
    return Ok();
  }
  std::string holder = Field<std::string>(*current, {"spec", "holderIdentity"});
  std::string record = holder + "|" + Field<std::string>(*current, {"spec", "renewTime"});
  if (record != observed_record_) {
    observed_record_ = record;
    observed_at_mono_ns_ = now_mono;
  }
  int64_t lease_ns = Field<int64_t>(*current, {"spec", "leaseDurationSeconds"}, 15) * 1'000'000'000;
  bool expired = now_mono - observed_at_mono_ns_ >= lease_ns;
  if (!holder.empty() && holder != cfg_.identity && !expired) {
    leader_.store(false, std::memory_order_release);
    return Fail(Code::kFailedPrecondition, "lease held by " + holder);
  }
  MS_ASSIGN_OR_RETURN(
      Json updated, client_->Update(kLeases, cfg_.ns, NewRecord(&*current, env_->NowUnixNanos())));
  resource_version_ = ResourceVersionOf(updated);
  observed_record_ = cfg_.identity + "|" + Field<std::string>(updated, {"spec", "renewTime"});
  observed_at_mono_ns_ = now_mono;
  leader_.store(true, std::memory_order_release);
  return Ok();
}

bool LeaderElector::Wait(std::chrono::milliseconds d, const std::atomic<bool>& stop) {
  // Short slices keep shutdown prompt without a condition variable shared with signal code.
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (stop.load(std::memory_order_acquire)) return false;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(50), end - std::chrono::steady_clock::now()));
  }
  return !stop.load(std::memory_order_acquire);
}

bool LeaderElector::Acquire(const std::atomic<bool>& stop) {
  spdlog::info("leader election: waiting for lease {}/{} identity={}", cfg_.ns, cfg_.name,
               cfg_.identity);
  for (;;) {
    if (stop.load(std::memory_order_acquire)) return false;
    auto st = TryAcquireOrRenew();
    if (st) {
      spdlog::info("leader election: acquired lease {}/{} identity={}", cfg_.ns, cfg_.name,
                   cfg_.identity);
      return true;
    }
    spdlog::debug("leader election: not acquired: {}", st.error().message());
    if (!Wait(cfg_.retry_period, stop)) return false;
  }
}

bool LeaderElector::RunRenewals(const std::atomic<bool>& stop) {
  int64_t last_ok = env_->NowMonotonicNanos();
  int64_t deadline_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(cfg_.renew_deadline).count();
  for (;;) {
    if (!Wait(cfg_.retry_period, stop)) return true;
    auto st = TryAcquireOrRenew();
    int64_t now = env_->NowMonotonicNanos();
    if (st) {
      last_ok = now;
      continue;
    }
    spdlog::warn("leader election: renew failed: {}", st.error().message());
    if (now - last_ok >= deadline_ns || st.error().code() == Code::kFailedPrecondition) {
      leader_.store(false, std::memory_order_release);
      spdlog::error("leader election: lost lease {}/{}", cfg_.ns, cfg_.name);
      return false;
    }
  }
}

void LeaderElector::Release() {
  if (!IsLeader()) return;
  auto current = client_->Get(kLeases, cfg_.ns, cfg_.name);
  if (!current || Field<std::string>(*current, {"spec", "holderIdentity"}) != cfg_.identity) return;
  Json lease = *current;
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = FormatMicroTime(env_->NowUnixNanos());
  if (auto r = client_->Update(kLeases, cfg_.ns, lease); !r) {
    spdlog::warn("leader election: release failed: {}", r.error().message());
  }
  leader_.store(false, std::memory_order_release);
}

}  // namespace modelswap::op
