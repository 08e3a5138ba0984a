// Injection settings: what the sidecar-injection webhook adds to a pod, and how a pod's
// annotations may override it.
//
// InjectionConfig holds the operator-wide defaults (agent image, model PVC and its mount point,
// shm mount point and size, agent resources and poll interval, probe timing). PodSettings is what
// one pod gets after its `modelswap.io/*` annotations are applied on top; ParsePodSettings
// validates every annotation and fails with kInvalidArgument naming the annotation and the
// problem, so the webhook can deny the pod with that message.
//
// Annotations read (all optional except models):
//   modelswap.io/inject              "true" | "false"
//   modelswap.io/models              "a,b"  DNS-1123 labels, no duplicates (required)
//   modelswap.io/agent-image         image reference
//   modelswap.io/agent-cpu           CPU request (Kubernetes quantity, e.g. "250m")
//   modelswap.io/agent-memory        memory request ("256Mi")
//   modelswap.io/agent-cpu-limit     CPU limit
//   modelswap.io/agent-memory-limit  memory limit
//   modelswap.io/poll-interval       manifest poll interval: "500ms", "2s", "1m" or bare ms
//   modelswap.io/shm-size            sizeLimit of the memory emptyDir ("1Gi")
//   modelswap.io/claim-name          the model PVC (a DNS-1123 subdomain)
// and one the webhook writes (kAnnotationNodeCache, admission.h): which chunk cache the pod got.
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "operator/webhook/namespace_policy.h"

namespace modelswap::op {

inline constexpr const char* kAnnotationInject = "modelswap.io/inject";
inline constexpr const char* kAnnotationAgentImage = "modelswap.io/agent-image";
inline constexpr const char* kAnnotationAgentCpu = "modelswap.io/agent-cpu";
inline constexpr const char* kAnnotationAgentMemory = "modelswap.io/agent-memory";
inline constexpr const char* kAnnotationAgentCpuLimit = "modelswap.io/agent-cpu-limit";
inline constexpr const char* kAnnotationAgentMemoryLimit = "modelswap.io/agent-memory-limit";
inline constexpr const char* kAnnotationPollInterval = "modelswap.io/poll-interval";
inline constexpr const char* kAnnotationShmSize = "modelswap.io/shm-size";
inline constexpr const char* kAnnotationClaimName = "modelswap.io/claim-name";
// Written by the webhook, not read: "enabled: ..." or "disabled: <why>; ..." (admission.h).
inline constexpr const char* kAnnotationNodeCache = "modelswap.io/node-cache";

// Names the webhook gives the things it adds. A pod that already uses one of them for something
// else is denied rather than silently altered.
inline constexpr const char* kAgentContainerName = "modelswap-agent";
inline constexpr const char* kModelsVolumeName = "modelswap-models";
inline constexpr const char* kShmVolumeName = "modelswap-shm";
inline constexpr const char* kNodeCacheVolumeName = "modelswap-cache";  // the node's hostPath
inline constexpr const char* kStageVolumeName = "modelswap-stage";      // per-pod disk emptyDir

struct InjectionConfig {
  std::string agent_image = "ghcr.io/modelswap/modelswap-sidecar:0.1.0";
  std::string image_pull_policy = "IfNotPresent";
  std::string claim_name = "models";               // PVC in the pod's namespace
  std::string model_root = "/models";              // where the PVC is mounted (read-only)
  std::string shm_dir = "/var/run/modelswap/shm";  // where the memory emptyDir is mounted
  std::string shm_size = "1Gi";                    // emptyDir sizeLimit; "" = no limit
  int agent_port = 8471;                           // the agent's HTTP port, named "agent"
  int64_t poll_interval_ms = 1000;
  std::string cpu_request = "50m";
  std::string memory_request = "128Mi";
  // No limits by default: the agent's page cache for mapped models is charged to its cgroup, so
  // a memory limit below the model size makes the kernel evict and re-read model pages.
  std::string cpu_limit;
  std::string memory_limit;
  // Native sidecar: how long app containers may wait for the models (period x threshold).
  int startup_period_seconds = 1;
  int startup_failure_threshold = 1800;
  // Plain-container fallback: the postStart exec command that blocks until the agent is ready
  // (kubelet starts the next container only after it returns). Runs in the agent's image; every
  // "{port}" in it becomes agent_port.
  std::vector<std::string> wait_command = {
      "/usr/local/bin/modelswap-sidecar", "wait-ready", "--url",
      "http://127.0.0.1:{port}/readyz",   "--timeout",  "1800"};
  // The agent runs as this non-root user (the sidecar image's user). The chart's node-cache
  // DaemonSet gives the node cache directory to this uid (charts/modelswap/templates/
  // node-cache-daemonset.yaml).
  int64_t agent_run_as_user = 65532;

  // The node cache (sidecar/cache/README.md): a hostPath directory on every node, shared by every
  // agent of the node and prepared by the chart's DaemonSet. "" = none: every pod gets the
  // per-pod fallback below. Used only where the pod's namespace allows hostPath (Pod Security
  // "privileged", namespace_policy.h).
  std::string node_cache_host_path;
  // Where the agent (read-write) and the app containers (read-only) mount it: one path for both,
  // since apps map assembled files by the absolute path the control block names.
  std::string cache_dir = "/var/run/modelswap/cache";
  // The agent's --cache-max-bytes on the node cache. Every agent of a node must pass the same
  // value (any agent's eviction applies its budget to all), so pods cannot override it.
  std::string node_cache_max_bytes = "20Gi";
  // The level Pod Security admission enforces in namespaces without the enforce label.
  PodSecurityLevel pod_security_default = PodSecurityLevel::kPrivileged;
  // The per-pod fallback: a disk emptyDir mounted here, passed as the agent's --stage-dir (its
  // chunk cache is <stage>/chunk-cache; whole-file versions are staged there too). "" = none:
  // the agent assembles chunked versions in the shm dir, which costs pod memory.
  std::string stage_dir;
  std::string stage_size;                       // the emptyDir's sizeLimit; "" = none
  std::string per_pod_cache_max_bytes = "2Gi";  // the agent's --cache-max-bytes there
};

// Checks every field of an operator-wide config (quantities, names, port, command).
[[nodiscard]] Status ValidateConfig(const InjectionConfig& cfg);

// One pod's effective settings.
struct PodSettings {
  std::vector<std::string> models;
  std::string models_csv;  // models joined with ","
  std::string agent_image;
  std::string cpu_request, memory_request, cpu_limit, memory_limit;
  int64_t poll_interval_ms = 0;
  std::string shm_size;
  std::string claim_name;
};

enum class InjectRequest { kNone, kInject, kInvalid };

// Whether the pod asks for injection: the annotation modelswap.io/inject: "true" (or, when the
// annotation is absent, the label of the same name, which is what the webhook's objectSelector
// routes on). kInvalid when the annotation is neither "true" nor "false".
InjectRequest WantsInjection(const std::map<std::string, std::string>& annotations,
                             const std::map<std::string, std::string>& labels);

// Applies the pod's annotations to cfg. kInvalidArgument names the annotation and the problem.
[[nodiscard]] Result<PodSettings> ParsePodSettings(
    const std::map<std::string, std::string>& annotations, const InjectionConfig& cfg);

// modelswap.io/* annotations this webhook does not know (typos), for admission warnings.
std::vector<std::string> UnknownModelswapAnnotations(
    const std::map<std::string, std::string>& annotations);

// A Kubernetes resource quantity ("250m", "1Gi", "1e3", "0.5"), as a number of base units
// (cores, bytes). kInvalidArgument if it does not follow the API's quantity grammar.
[[nodiscard]] Result<double> ParseQuantity(std::string_view text);

// "500ms", "2s", "1m", "1h" or bare milliseconds -> milliseconds.
[[nodiscard]] Result<int64_t> ParseDurationMs(std::string_view text);

// A container image reference: non-empty, at most 512 bytes, no whitespace or control bytes,
// and no leading '-' (it becomes a field of the container, never a shell word, but a clear
// error beats a pod stuck in InvalidImageName).
[[nodiscard]] Status ValidateImageReference(std::string_view image);

// A byte count both Kubernetes and the agent's --cache-max-bytes read alike: digits, optionally
// followed by Ki, Mi, Gi, Ti or Pi ("0" = no budget). Decimal suffixes are refused: "500m" is
// milli to Kubernetes but mega to the agent.
[[nodiscard]] Status ValidateByteSize(std::string_view text);

// DNS-1123 subdomain (PVC names): [a-z0-9]([-a-z0-9.]*[a-z0-9])?, at most 253 bytes.
[[nodiscard]] Status ValidateDnsSubdomain(std::string_view name);

}  // namespace modelswap::op
