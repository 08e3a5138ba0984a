// Native-sidecar detection by dry-run pod creation; see native_sidecar.h.
#include "operator/webhook/native_sidecar.h"

#include <spdlog/spdlog.h>

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

constexpr const char* kProbeSidecar = "modelswap-sidecar-probe";

Json RestrictedSecurityContext() {
  return {{"runAsNonRoot", true},
          {"runAsUser", 65532},
          {"allowPrivilegeEscalation", false},
          {"capabilities", {{"drop", {"ALL"}}}},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

std::string RestartPolicyOfProbe(const Json& pod) {
  auto spec = pod.find("spec");
  if (spec == pod.end() || !spec->is_object()) return "";
  auto init = spec->find("initContainers");
  if (init == spec->end() || !init->is_array()) return "";
  for (const auto& c : *init) {
    if (c.is_object() && c.value("name", "") == kProbeSidecar) {
      auto rp = c.find("restartPolicy");
      return rp != c.end() && rp->is_string() ? rp->get<std::string>() : "";
    }
  }
  return "";
}

}  // namespace

const char* SidecarSupportName(SidecarSupport s) {
  switch (s) {
    case SidecarSupport::kNative:
      return "native";
    case SidecarSupport::kNotSupported:
      return "not-supported";
    case SidecarSupport::kUnknown:
      break;
  }
  return "unknown";
}

Json SidecarProbePod(const SidecarSupportOptions& opts) {
  Json resources = {{"requests", {{"cpu", "1m"}, {"memory", "4Mi"}}},
                    {"limits", {{"cpu", "10m"}, {"memory", "16Mi"}}}};
  Json sidecar = {{"name", kProbeSidecar},
                  {"image", opts.probe_image},
                  {"restartPolicy", "Always"},
                  {"startupProbe",
                   {{"httpGet", {{"path", "/readyz"}, {"port", 8471}}},
                    {"periodSeconds", 1},
                    {"failureThreshold", 1}}},
                  {"resources", resources},
                  {"securityContext", RestrictedSecurityContext()}};
  Json app = {{"name", "app"},
              {"image", opts.probe_image},
              {"resources", resources},
              {"securityContext", RestrictedSecurityContext()}};
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"generateName", "modelswap-sidecar-probe-"},
            {"namespace", opts.ns},
            {"labels", {{"app.kubernetes.io/managed-by", "modelswap-operator"}}}}},
          {"spec",
           {{"initContainers", Json::array({sidecar})},
            {"containers", Json::array({app})},
            {"automountServiceAccountToken", false},
            {"securityContext", {{"runAsNonRoot", true}}}}}};
}

SidecarSupport ClassifyDryRun(const Result<Json>& answer, std::string* why) {
  auto say = [why](std::string s) {
    if (why != nullptr) *why = std::move(s);
  };
  if (answer) {
    if (RestartPolicyOfProbe(*answer) == "Always") {
      say("dry-run pod kept restartPolicy: Always on its init container");
      return SidecarSupport::kNative;
    }
    say("dry-run pod lost restartPolicy: Always on its init container (SidecarContainers off)");
    return SidecarSupport::kNotSupported;
  }
  const Error& e = answer.error();
  if (e.code() == Code::kInvalidArgument &&
      e.message().find("spec.initContainers[0].") != std::string::npos &&
      (e.message().find("startupProbe") != std::string::npos ||
       e.message().find("restartPolicy") != std::string::npos)) {
    // 422 Invalid: a gate-off server rejects the startupProbe once it dropped restartPolicy.
    // Only that answer says so: any other 400/422 (another webhook that cannot dry-run, a
    // policy engine, a quota) says nothing about sidecars.
    say("dry-run pod rejected as invalid (no native sidecars): " + e.message());
    return SidecarSupport::kNotSupported;
  }
  if (e.code() == Code::kPermissionDenied) {
    say("dry-run pod create forbidden (grant create on pods in the operator's namespace): " +
        e.message());
  } else {
    say("dry-run pod create failed: " + e.ToString());
  }
  return SidecarSupport::kUnknown;
}

SidecarSupportDetector::SidecarSupportDetector(DryRunPodCreate dry_run, Env* env,
                                               SidecarSupportOptions opts)
    : dry_run_(std::move(dry_run)), env_(env), opts_(std::move(opts)) {}

SidecarSupportDetector::~SidecarSupportDetector() {
  Stop();
}

SidecarSupport SidecarSupportDetector::Check() {
  std::lock_guard check(check_mu_);
  Result<Json> answer = Fail(Code::kInternal, "dry-run callback threw");
  try {
    answer = dry_run_(opts_.ns, SidecarProbePod(opts_));
  } catch (const std::exception& e) {
    answer = Fail(Code::kInternal, std::string("dry-run callback threw: ") + e.what());
  }
  std::string why;
  SidecarSupport result = ClassifyDryRun(answer, &why);
  auto interval =
      result == SidecarSupport::kUnknown ? opts_.retry_interval : opts_.recheck_interval;
  SidecarSupport before = cached_.load(std::memory_order_relaxed);
  if (result != SidecarSupport::kUnknown) cached_.store(result, std::memory_order_relaxed);
  {
    std::lock_guard lock(mu_);
    next_check_ns_ = env_->NowMonotonicNanos() +
                     std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
    reason_ = why;
  }
  if (result != before && result != SidecarSupport::kUnknown) {
    spdlog::info("sidecar support={} reason=\"{}\"", SidecarSupportName(result), why);
  } else if (result == SidecarSupport::kUnknown) {
    spdlog::warn("sidecar support check inconclusive keep={} reason=\"{}\"",
                 SidecarSupportName(before), why);
  }
  return result;
}

void SidecarSupportDetector::MaybeRecheck() {
  int64_t due = 0;
  {
    std::lock_guard lock(mu_);
    due = next_check_ns_;
  }
  if (env_->NowMonotonicNanos() >= due) Check();
}

SidecarSupport SidecarSupportDetector::Cached() const {
  return cached_.load(std::memory_order_relaxed);
}

std::string SidecarSupportDetector::LastReason() const {
  std::lock_guard lock(mu_);
  return reason_;
}

void SidecarSupportDetector::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void SidecarSupportDetector::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SidecarSupportDetector::Loop() {
  while (true) {
    MaybeRecheck();
    std::unique_lock lock(mu_);
    if (stop_) return;
    int64_t wait_ns = next_check_ns_ - env_->NowMonotonicNanos();
    // A timer, not synchronisation: Stop() wakes the wait at once through wake_.
    wake_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(wait_ns, 1'000'000)),
                   [this] { return stop_; });
    if (stop_) return;
  }
}

}  // namespace modelswap::op
