// What Pod Security admission (PSA) enforces in a pod's namespace, as the injection webhook needs
// to know it: the node cache is a hostPath volume, which PSA "baseline" and "restricted" forbid,
// so a pod in such a namespace must get the per-pod fallback or PSA refuses it after injection
// (mutating webhooks run before validating admission; the pod PSA checks is the patched one).
//
// An AdmissionReview for a pod carries the namespace's name only (AdmissionRequest.namespace),
// never the Namespace object or its labels, so the webhook reads the Namespace (RBAC: get on
// namespaces, nothing more). NamespaceLevelCache keeps answers for a while and bounds how long
// an admission waits for one: an admission must answer within the webhook's timeoutSeconds, and
// a slow or failing API server must not turn into refused pods. A lookup that fails or is late
// is an error for the caller, whose safe answer is the fallback (no hostPath).
//
// Thread safety: the free functions are pure; NamespaceLevelCache may be used from any number of
// threads (the webhook server's).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/status.h"
#include "operator/kube/resource.h"

namespace modelswap::op {

// Cluster-scoped: Path("", name) is /api/v1/namespaces/NAME.
inline const ResourceRef kNamespaces{"", "v1", "namespaces", "Namespace"};

// The label PSA enforces by (kubernetes.io/docs/concepts/security/pod-security-admission).
inline constexpr const char* kPodSecurityEnforceLabel = "pod-security.kubernetes.io/enforce";

enum class PodSecurityLevel { kPrivileged, kBaseline, kRestricted };

const char* PodSecurityLevelName(PodSecurityLevel level);
// "privileged" | "baseline" | "restricted"; kInvalidArgument otherwise.
[[nodiscard]] Result<PodSecurityLevel> ParsePodSecurityLevel(std::string_view text);

// The level enforced in a namespace with these labels: its enforce label, else `cluster_default`
// (the PodSecurity AdmissionConfiguration's defaults.enforce; "privileged" unless the cluster's
// admin set one). A value PSA does not know counts as "restricted", the strictest reading.
PodSecurityLevel EnforcedLevel(const std::map<std::string, std::string>& namespace_labels,
                               PodSecurityLevel cluster_default);

// Whether a pod may use hostPath volumes at that level (only "privileged" allows them).
inline bool AllowsHostPath(PodSecurityLevel level) {
  return level == PodSecurityLevel::kPrivileged;
}

struct NamespaceLevelCacheOptions {
  PodSecurityLevel cluster_default = PodSecurityLevel::kPrivileged;
  // How long an answer is used before the Namespace is read again. A namespace relabelled to
  // "baseline" meanwhile gets hostPath pods, which PSA refuses (their controller retries): at
  // most this long.
  std::chrono::milliseconds ttl{30'000};
  // How long a failed lookup is remembered (so a down API server is not asked per admission).
  std::chrono::milliseconds error_ttl{5'000};
  // How long an admission waits for a lookup before answering without it. Well below the
  // webhook's timeoutSeconds (10 s by default, the chart's webhook.timeoutSeconds).
  std::chrono::milliseconds timeout{2'000};
};

class NamespaceLevelCache {
 public:
  // Reads one Namespace (KubeClient::Get(kNamespaces, "", name)); called on the cache's own
  // thread, never on an admission's. env supplies the clock for expiry.
  using Fetch = std::function<Result<nlohmann::json>(const std::string& name)>;

  NamespaceLevelCache(Env* env, Fetch fetch, NamespaceLevelCacheOptions opts);
  ~NamespaceLevelCache();  // stops the thread (after the fetch in flight returns)
  NamespaceLevelCache(const NamespaceLevelCache&) = delete;
  NamespaceLevelCache& operator=(const NamespaceLevelCache&) = delete;

  // The level `ns` enforces, from the cache when fresh, else read (waiting up to opts.timeout).
  // Errors: the read failed (its error, with the namespace named), or kDeadlineExceeded when it
  // did not finish in time (it keeps running and fills the cache for later admissions).
  [[nodiscard]] Result<PodSecurityLevel> Level(const std::string& ns);

  uint64_t fetches() const;  // Namespace reads started (for tests and metrics)

 private:
  struct Entry {
    bool done = false;  // a read finished (else one is queued or running)
    Result<PodSecurityLevel> level = Fail(Code::kUnavailable, "not read yet");
    int64_t expires_ns = 0;  // monotonic; an expired done entry is read again
  };
  void Run();
  bool Fresh(const Entry& e, int64_t now) const { return e.done && now < e.expires_ns; }

  Env* const env_;
  const Fetch fetch_;
  const NamespaceLevelCacheOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // the worker waits for work, admissions for answers
  std::map<std::string, Entry> entries_;
  std::deque<std::string> queue_;  // names to read, each at most once
  uint64_t fetches_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace modelswap::op
