// Which chunk cache an injected pod gets: the node's hostPath cache, or the per-pod fallback (a
// disk emptyDir as the agent's stage dir), or none; and the pod annotation modelswap.io/node-cache
// (kAnnotationNodeCache, injection_config.h) saying which and why. The operator reads that
// annotation back to report the fallback in Events and ModelVersion status
// (KubeBackend in operator/controller/kube_backend.h, AgentProber for the count), so its
// "disabled: <why>; <fallback>" shape is part of the contract: NodeCacheFallbackReason reads it.
// Design and Pod Security: docs/aks.md section 4.1.
//
// Thread safety: pure functions apart from the namespace lookup the caller supplies, which must
// be thread-safe.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "operator/webhook/injection_config.h"
#include "operator/webhook/namespace_policy.h"

namespace modelswap::op {

// The Pod Security level a namespace enforces (NamespaceLevelCache::Level in the operator). Called
// at most once per admission, only for a pod that gets the agent while a node cache is configured.
using NamespaceLevelFn = std::function<Result<PodSecurityLevel>(const std::string& ns)>;

// Which chunk cache an injected pod gets.
struct NodeCachePlan {
  enum Kind {
    kNone,    // no cache volume: the agent's cache falls back to the shm dir (memory)
    kNode,    // the node's hostPath
    kPerPod,  // a disk emptyDir as the agent's stage dir
  };
  Kind kind = kNone;
  std::string annotation;  // modelswap.io/node-cache; "" = none
};

// The decision for a new pod in namespace `ns`: the node cache only when configured and the
// level is known to allow hostPath; a lookup error means the fallback (its message goes into the
// annotation). Pure apart from calling namespace_level.
NodeCachePlan PlanNodeCache(const InjectionConfig& cfg, const std::string& ns,
                            const NamespaceLevelFn& namespace_level);

// The plan an already injected pod (its `spec`) follows: the cache volume it has, so a
// reinvocation wires new containers the way the first pass did, whatever a new namespace lookup
// would say. No annotation (the first pass wrote it).
NodeCachePlan PlanFromInjectedPod(const nlohmann::json& spec);

// The reason of the Normal Event the operator records once per pod that falls back (the webhook
// cannot: a pod being admitted has no uid to attach an Event to).
inline constexpr const char* kReasonNodeCacheDisabled = "NodeCacheDisabled";

// For a pod whose modelswap.io/node-cache annotation starts with "disabled:", what follows it
// ("<why>; <fallback>", trimmed; "node cache disabled" if that is empty); "" for any other pod.
std::string NodeCacheFallbackReason(const nlohmann::json& pod);

}  // namespace modelswap::op
