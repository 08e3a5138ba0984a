// The node-cache / per-pod staging decision for an injected pod; see node_cache_plan.h.
#include "operator/webhook/node_cache_plan.h"

#include <string_view>

#include "operator/webhook/pod_json.h"

namespace modelswap::op {

NodeCachePlan PlanNodeCache(const InjectionConfig& cfg, const std::string& ns,
                            const NamespaceLevelFn& namespace_level) {
  NodeCachePlan plan;
  plan.kind = cfg.stage_dir.empty() ? NodeCachePlan::kNone : NodeCachePlan::kPerPod;
  const std::string fallback = cfg.stage_dir.empty()
                                   ? "the agent assembles chunked versions in the shm dir"
                                   : "per-pod cache in " + cfg.stage_dir;
  if (cfg.node_cache_host_path.empty()) {
    if (plan.kind == NodeCachePlan::kPerPod) {
      plan.annotation =
          "disabled: no node cache configured (chart nodeCache.enabled false); " + fallback;
    }
    return plan;
  }
  Result<PodSecurityLevel> level =
      namespace_level ? namespace_level(ns)
                      : Fail(Code::kUnavailable, "the webhook cannot read namespaces");
  if (level && AllowsHostPath(*level)) {
    plan.kind = NodeCachePlan::kNode;
    plan.annotation = "enabled: hostPath " + cfg.node_cache_host_path + " at " + cfg.cache_dir;
  } else if (level) {
    plan.annotation = "disabled: namespace " + ns + " enforces Pod Security \"" +
                      PodSecurityLevelName(*level) + "\" (no hostPath); " + fallback;
  } else {
    // The safe answer: a hostPath pod in a namespace that forbids it would be refused.
    plan.annotation = "disabled: Pod Security level of namespace " + ns + " unknown (" +
                      level.error().message() + "); " + fallback;
  }
  return plan;
}

NodeCachePlan PlanFromInjectedPod(const nlohmann::json& spec) {
  const nlohmann::json* volumes = pod_json::ArrayAt(spec, "volumes");
  if (pod_json::FindByName(volumes, kNodeCacheVolumeName)) return {NodeCachePlan::kNode, ""};
  if (pod_json::FindByName(volumes, kStageVolumeName)) return {NodeCachePlan::kPerPod, ""};
  return {NodeCachePlan::kNone, ""};
}

std::string NodeCacheFallbackReason(const nlohmann::json& pod) {
  constexpr std::string_view kDisabled = "disabled:";
  auto annotations = pod_json::StringMap(pod, "annotations");
  auto it = annotations.find(kAnnotationNodeCache);
  if (it == annotations.end() || !it->second.starts_with(kDisabled)) return "";
  std::string_view why = std::string_view(it->second).substr(kDisabled.size());
  while (!why.empty() && why.front() == ' ')
    why.remove_prefix(1);
  return why.empty() ? "node cache disabled" : std::string(why);
}

}  // namespace modelswap::op
