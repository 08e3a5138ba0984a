// Whether the cluster runs native sidecars (init containers with restartPolicy: Always), found
// out for real rather than from the server version.
//
// Why not the version: a 1.28 API server with the SidecarContainers gate off silently DROPS
// restartPolicy: Always from an init container (the pod then blocks in init forever) and rejects
// a startupProbe on it with 422 (tests/operator/testdata/native-sidecar-*.http); managed clusters
// differ in their gates. So the detector dry-run creates (POST ...?dryRun=All: admission and
// validation run, nothing is stored) a probe pod shaped like an injected one, with a native
// sidecar and a startupProbe, and reads the answer:
//   2xx and initContainers[0].restartPolicy == "Always"  -> kNative
//   2xx with the field dropped, or 422 Invalid           -> kNotSupported
//   anything else (403, 5xx, timeouts, another webhook)  -> inconclusive: keep the last answer
// Conclusive answers are cached and re-checked every recheck_interval (clusters get upgraded);
// inconclusive ones are retried after retry_interval. Until a check has proved native sidecars
// work, Native() is false: the plain-container fallback works everywhere.
//
// The API call is a callback (DryRunPodCreate) so this is testable without an API server. With
// operator/kube/client.h: [client](const std::string& ns, const Json& pod) { return
// client->Create(ResourceRef{"", "v1", "pods?dryRun=All", "Pod"}, ns, pod); } (or a dry-run flag
// on KubeClient::Create). RBAC: create on pods in the operator's namespace.
//
// Thread safety: all methods are safe from any thread. Check() calls the callback on the calling
// thread; Start() runs checks on one background thread until Stop().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::op {

enum class SidecarSupport : uint8_t { kUnknown = 0, kNative = 1, kNotSupported = 2 };

const char* SidecarSupportName(SidecarSupport s);

// POSTs `pod` to /api/v1/namespaces/{ns}/pods?dryRun=All and returns the server's object, or
// the Error of its Status (422 -> kInvalidArgument, 403 -> kPermissionDenied, ...).
using DryRunPodCreate =
    std::function<Result<nlohmann::json>(const std::string& ns, const nlohmann::json& pod)>;

struct SidecarSupportOptions {
  std::string ns = "default";  // where the probe pod is dry-run created: the operator's own
  std::string probe_image = "registry.k8s.io/pause:3.9";  // never pulled: a dry run
  std::chrono::seconds recheck_interval{600};
  std::chrono::seconds retry_interval{15};
};

// The probe pod: one pause container and one native-sidecar init container with a startupProbe,
// restricted-PSS compliant so Pod Security admission in the namespace does not reject it.
nlohmann::json SidecarProbePod(const SidecarSupportOptions& opts);

// Classifies one dry-run answer; `why` (may be null) gets a sentence for logs.
SidecarSupport ClassifyDryRun(const Result<nlohmann::json>& answer, std::string* why);

class SidecarSupportDetector {
 public:
  SidecarSupportDetector(DryRunPodCreate dry_run, Env* env, SidecarSupportOptions opts = {});
  ~SidecarSupportDetector();
  SidecarSupportDetector(const SidecarSupportDetector&) = delete;
  SidecarSupportDetector& operator=(const SidecarSupportDetector&) = delete;

  // Runs one check now and returns its classification (kUnknown if inconclusive). A conclusive
  // answer replaces the cached one.
  SidecarSupport Check();
  // Runs Check() if the cached answer is due for a re-check (per the Env's monotonic clock).
  void MaybeRecheck();
  // The cached answer; never calls the API.
  SidecarSupport Cached() const;
  bool Native() const { return Cached() == SidecarSupport::kNative; }
  // Why the last check concluded what it did (for logs, /readyz details, events).
  std::string LastReason() const;

  // A background thread that calls MaybeRecheck() until Stop(). Idempotent.
  void Start();
  void Stop();

 private:
  void Loop();

  DryRunPodCreate dry_run_;
  Env* env_;
  SidecarSupportOptions opts_;
  // The cached answer. Relaxed: a standalone value; nothing else is published with it, and a
  // reader that sees the previous answer for a moment just injects in the previous mode.
  std::atomic<SidecarSupport> cached_{SidecarSupport::kUnknown};
  static_assert(std::atomic<SidecarSupport>::is_always_lock_free);

  mutable std::mutex mu_;      // guards everything below
  std::mutex check_mu_;        // one check at a time
  int64_t next_check_ns_ = 0;  // monotonic; 0 = check at once
  std::string reason_ = "not checked yet";
  bool stop_ = false;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace modelswap::op
