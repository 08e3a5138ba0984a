// The JSONPatch that injects modelswap into a pod (BuildInjectionPatch, admission.h): the agent
// container, the volumes and mounts, the env, the injected label and the annotations, each added
// only where the pod lacks it so a reinvocation converges. The chunk cache's choice comes from
// node_cache_plan.h; the AdmissionReview around the patch is admission.cc's.
#include <map>

#include "operator/api/well_known.h"
#include "operator/webhook/admission.h"
#include "operator/webhook/node_cache_plan.h"
#include "operator/webhook/pod_json.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;
using pod_json::ArrayAt;
using pod_json::FindByName;
using pod_json::NameField;
using pod_json::PodNamespace;
using pod_json::Quote;
using pod_json::StringMap;

std::string WithPort(std::string s, int port) {
  for (size_t at; (at = s.find("{port}")) != std::string::npos;)
    s.replace(at, 6, std::to_string(port));
  return s;
}

// Collects ops; `Add` of a whole list or map when its parent key is missing, else one element.
class Patch {
 public:
  void Add(const std::string& path, Json value) {
    ops_.push_back({{"op", "add"}, {"path", path}, {"value", std::move(value)}});
  }
  // Appends `items` to the array at `path` (whose current value is `current`, null if absent).
  void Append(const std::string& path, const Json* current, const Json& items) {
    if (items.empty()) return;
    if (current == nullptr) {
      Add(path, items);
      return;
    }
    for (const auto& item : items)
      Add(path + "/-", item);
  }
  Json Take() { return std::move(ops_); }

 private:
  Json ops_ = Json::array();
};

struct Plan {
  const InjectionConfig& cfg;
  const PodSettings& pod;
  bool native;
  bool labelled;  // the pod already carries modelswap.io/injected: "true"
  NodeCachePlan cache;
};

Json DesiredVolumes(const Plan& p) {
  Json empty_dir = {{"medium", "Memory"}};
  if (!p.pod.shm_size.empty()) empty_dir["sizeLimit"] = p.pod.shm_size;
  Json volumes = Json::array(
      {{{"name", kModelsVolumeName},
        {"persistentVolumeClaim", {{"claimName", p.pod.claim_name}, {"readOnly", true}}}},
       {{"name", kShmVolumeName}, {"emptyDir", empty_dir}}});
  if (p.cache.kind == NodeCachePlan::kNode) {
    // DirectoryOrCreate: a pod scheduled before the DaemonSet prepared the node still starts; its
    // agent cannot write the root-owned directory until then, which rejects chunked versions
    // (retried with backoff) but never blocks the pod.
    volumes.push_back(
        {{"name", kNodeCacheVolumeName},
         {"hostPath", {{"path", p.cfg.node_cache_host_path}, {"type", "DirectoryOrCreate"}}}});
  } else if (p.cache.kind == NodeCachePlan::kPerPod) {
    Json disk = Json::object();  // no medium: the node's disk, not memory
    if (!p.cfg.stage_size.empty()) disk["sizeLimit"] = p.cfg.stage_size;
    volumes.push_back({{"name", kStageVolumeName}, {"emptyDir", disk}});
  }
  return volumes;
}

// The agent mounts the cache read-write; app containers read-only, recursively where the runtime
// can (recursiveReadOnly needs readOnly and no mount propagation; API servers older than the
// field drop it, and IfPossible never keeps a pod from starting).
Json DesiredMounts(const Plan& p, bool agent) {
  Json mounts = Json::array(
      {{{"name", kModelsVolumeName}, {"mountPath", p.cfg.model_root}, {"readOnly", true}},
       {{"name", kShmVolumeName}, {"mountPath", p.cfg.shm_dir}}});
  const char* name = p.cache.kind == NodeCachePlan::kNode     ? kNodeCacheVolumeName
                     : p.cache.kind == NodeCachePlan::kPerPod ? kStageVolumeName
                                                              : nullptr;
  if (name != nullptr) {
    Json m = {
        {"name", name},
        {"mountPath", p.cache.kind == NodeCachePlan::kNode ? p.cfg.cache_dir : p.cfg.stage_dir}};
    if (!agent) {
      m["readOnly"] = true;
      m["recursiveReadOnly"] = "IfPossible";
    }
    mounts.push_back(m);
  }
  return mounts;
}

// The agent's cache flags: the node cache, or the per-pod stage dir (whose chunk-cache
// subdirectory then holds the cache), each with its budget.
Json CacheArgs(const Plan& p) {
  switch (p.cache.kind) {
    case NodeCachePlan::kNode:
      return {"--cache-dir", p.cfg.cache_dir, "--cache-max-bytes", p.cfg.node_cache_max_bytes};
    case NodeCachePlan::kPerPod:
      return {"--stage-dir", p.cfg.stage_dir, "--cache-max-bytes", p.cfg.per_pod_cache_max_bytes};
    case NodeCachePlan::kNone:
      break;
  }
  return Json::array();
}

Json DesiredEnv(const Plan& p) {
  return Json::array({{{"name", "MODELSWAP_ROOT"}, {"value", p.cfg.model_root}},
                      {{"name", "MODELSWAP_MODELS"}, {"value", p.pod.models_csv}},
                      {{"name", "MODELSWAP_SHM_DIR"}, {"value", p.cfg.shm_dir}},
                      {{"name", "MODELSWAP_AGENT_URL"},
                       {"value", "http://127.0.0.1:" + std::to_string(p.cfg.agent_port)}}});
}

Json HttpProbe(const Plan& p, const char* path, int period, int failures) {
  return {{"httpGet", {{"path", path}, {"port", p.cfg.agent_port}, {"scheme", "HTTP"}}},
          {"periodSeconds", period},
          {"timeoutSeconds", 1},
          {"failureThreshold", failures}};
}

Json AgentResources(const PodSettings& s) {
  Json requests = Json::object(), limits = Json::object();
  if (!s.cpu_request.empty()) requests["cpu"] = s.cpu_request;
  if (!s.memory_request.empty()) requests["memory"] = s.memory_request;
  if (!s.cpu_limit.empty()) limits["cpu"] = s.cpu_limit;
  if (!s.memory_limit.empty()) limits["memory"] = s.memory_limit;
  Json r = Json::object();
  if (!requests.empty()) r["requests"] = requests;
  if (!limits.empty()) r["limits"] = limits;
  return r;
}

Json AgentContainer(const Plan& p) {
  const InjectionConfig& c = p.cfg;
  Json env = DesiredEnv(p);
  Json agent = {
      {"name", kAgentContainerName},
      {"image", p.pod.agent_image},
      {"imagePullPolicy", c.image_pull_policy},
      {"args",
       {"agent", "--root", c.model_root, "--models", p.pod.models_csv, "--shm-dir", c.shm_dir,
        "--listen", "0.0.0.0:" + std::to_string(c.agent_port), "--poll-interval",
        std::to_string(p.pod.poll_interval_ms)}},
      {"env", env},
      {"ports", {{{"name", "agent"}, {"containerPort", c.agent_port}, {"protocol", "TCP"}}}},
      {"resources", AgentResources(p.pod)},
      {"volumeMounts", DesiredMounts(p, /*agent=*/true)},
      {"readinessProbe", HttpProbe(p, "/readyz", 5, 1)},
      {"livenessProbe", HttpProbe(p, "/healthz", 10, 6)},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", c.agent_run_as_user},
        {"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", {"ALL"}}}},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
  };
  for (const auto& arg : CacheArgs(p))
    agent["args"].push_back(arg);
  if (p.native) {
    agent["restartPolicy"] = "Always";
    agent["startupProbe"] =
        HttpProbe(p, "/readyz", c.startup_period_seconds, c.startup_failure_threshold);
  } else {
    Json command = Json::array();
    for (const auto& arg : c.wait_command)
      command.push_back(WithPort(arg, c.agent_port));
    agent["lifecycle"] = {{"postStart", {{"exec", {{"command", command}}}}}};
  }
  return agent;
}

Status AddVolumes(const Plan& p, const Json& spec, Patch& patch) {
  const Json* volumes = ArrayAt(spec, "volumes");
  Json missing = Json::array();
  for (const auto& want : DesiredVolumes(p)) {
    const Json* have = FindByName(volumes, want["name"].get<std::string>());
    if (have == nullptr) {
      missing.push_back(want);
    } else if (!p.labelled && *have != want) {
      return Fail(Code::kInvalidArgument,
                  "volume name " + Quote(want["name"].get<std::string>()) +
                      " is already used by the pod for another volume; modelswap needs that "
                      "name: rename the pod's volume");
    }
  }
  patch.Append("/spec/volumes", volumes, missing);
  return Ok();
}

// Mounts and env for one existing container at `path` ("/spec/containers/2").
Status WireContainer(const Plan& p, const Json& container, const std::string& path, Patch& patch) {
  const std::string name = NameField(container);
  const Json* mounts = ArrayAt(container, "volumeMounts");
  Json missing_mounts = Json::array();
  for (const auto& want : DesiredMounts(p, /*agent=*/false)) {
    bool have_volume = false, path_taken = false;
    for (const auto& m : mounts ? *mounts : Json::array()) {
      if (!m.is_object()) continue;
      have_volume |= NameField(m) == want["name"].get<std::string>();
      auto mp = m.find("mountPath");
      path_taken |= mp != m.end() && *mp == want["mountPath"];
    }
    if (have_volume) continue;
    if (path_taken) {
      return Fail(Code::kInvalidArgument,
                  "container " + Quote(name) + " already mounts a volume at " +
                      Quote(want["mountPath"].get<std::string>()) + ", where modelswap mounts " +
                      Quote(want["name"].get<std::string>()) + ": move that mount");
    }
    missing_mounts.push_back(want);
  }
  patch.Append(path + "/volumeMounts", mounts, missing_mounts);

  const Json* env = ArrayAt(container, "env");
  Json missing_env = Json::array();
  for (const auto& want : DesiredEnv(p)) {
    // A value the pod sets itself wins: it is how users point a client elsewhere.
    if (FindByName(env, want["name"].get<std::string>()) == nullptr) missing_env.push_back(want);
  }
  patch.Append(path + "/env", env, missing_env);
  return Ok();
}

Status WireContainers(const Plan& p, const Json& spec, const char* list, Patch& patch) {
  const Json* containers = ArrayAt(spec, list);
  if (containers == nullptr) return Ok();
  for (size_t i = 0; i < containers->size(); ++i) {
    const Json& c = (*containers)[i];
    if (!c.is_object() || NameField(c) == kAgentContainerName) continue;
    MS_RETURN_IF_ERROR(
        WireContainer(p, c, "/spec/" + std::string(list) + "/" + std::to_string(i), patch));
  }
  return Ok();
}

// Adds the agent unless the pod has it. Must run after every op that indexes the container
// lists: inserting at index 0 shifts them.
Result<bool> AddAgent(const Plan& p, const Json& spec, Patch& patch) {
  const Json* init = ArrayAt(spec, "initContainers");
  const Json* containers = ArrayAt(spec, "containers");
  if (FindByName(init, kAgentContainerName) || FindByName(containers, kAgentContainerName)) {
    if (p.labelled) return false;
    return Fail(Code::kInvalidArgument,
                std::string("container name \"") + kAgentContainerName +
                    "\" is already used by the pod; modelswap needs that name for its agent");
  }
  Json agent = AgentContainer(p);
  if (p.native) {
    if (init == nullptr)
      patch.Add("/spec/initContainers", Json::array({agent}));
    else
      patch.Add("/spec/initContainers/0", agent);
  } else {
    patch.Add("/spec/containers/0", agent);
  }
  return true;
}

// Adds annotations the pod lacks (keys it has keep their values: a reinvocation changes nothing).
void AddAnnotations(const Json& pod, const Json& wanted, Patch& patch) {
  auto meta = pod.find("metadata");
  const Json* have = nullptr;
  if (meta != pod.end() && meta->is_object()) {
    if (auto a = meta->find("annotations"); a != meta->end() && a->is_object()) have = &*a;
  }
  if (have == nullptr) {
    if (!wanted.empty()) patch.Add("/metadata/annotations", wanted);
    return;
  }
  for (const auto& [key, value] : wanted.items()) {
    if (!have->contains(key)) patch.Add("/metadata/annotations/" + JsonPointerEscape(key), value);
  }
}

// In the plain-container fallback the agent is containers[0], which kubectl logs/exec/attach pick
// when no container is named: the annotation kubectl honours keeps them on the app's first
// container, unless the pod already names one.
void DefaultContainerAnnotation(const Json& spec, Json& wanted) {
  const Json* containers = ArrayAt(spec, "containers");
  if (containers == nullptr || containers->empty() || !(*containers)[0].contains("name")) return;
  wanted["kubectl.kubernetes.io/default-container"] = (*containers)[0]["name"];
}

void AddLabel(const Json& pod, Patch& patch) {
  auto meta = pod.find("metadata");
  const Json* labels = nullptr;
  if (meta != pod.end() && meta->is_object()) {
    if (auto l = meta->find("labels"); l != meta->end() && l->is_object()) labels = &*l;
  }
  if (labels == nullptr) {
    patch.Add("/metadata/labels", {{kLabelInjected, "true"}});
    return;
  }
  auto it = labels->find(kLabelInjected);
  if (it != labels->end() && *it == "true") return;
  // "add" on an existing member replaces it (RFC 6902 4.1).
  patch.Add("/metadata/labels/" + JsonPointerEscape(kLabelInjected), "true");
}

}  // namespace

bool PodMissingAgent(const Json& pod) {
  if (!pod.is_object()) return false;
  if (WantsInjection(StringMap(pod, "annotations"), StringMap(pod, "labels")) !=
      InjectRequest::kInject) {
    return false;
  }
  auto spec = pod.find("spec");
  if (spec == pod.end() || !spec->is_object()) return false;
  return FindByName(ArrayAt(*spec, "initContainers"), kAgentContainerName) == nullptr &&
         FindByName(ArrayAt(*spec, "containers"), kAgentContainerName) == nullptr;
}

std::string JsonPointerEscape(std::string_view token) {
  std::string out;
  out.reserve(token.size() + 4);
  for (char c : token) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

Result<Json> BuildInjectionPatch(const Json& pod, const InjectionConfig& cfg, bool native_sidecars,
                                 std::vector<std::string>* warnings) {
  return BuildInjectionPatch(pod, cfg, AdmissionContext{native_sidecars, nullptr},
                             PodNamespace(pod), warnings);
}

Result<Json> BuildInjectionPatch(const Json& pod, const InjectionConfig& cfg,
                                 const AdmissionContext& ctx, const std::string& ns,
                                 std::vector<std::string>* warnings) {
  const bool native_sidecars = ctx.native_sidecars;
  if (!pod.is_object()) return Fail(Code::kInvalidArgument, "the object is not a JSON object");
  auto annotations = StringMap(pod, "annotations");
  auto labels = StringMap(pod, "labels");
  switch (WantsInjection(annotations, labels)) {
    case InjectRequest::kNone:
      return Json::array();
    case InjectRequest::kInvalid:
      return Fail(Code::kInvalidArgument, std::string("annotation ") + kAnnotationInject + ": " +
                                              Quote(annotations[kAnnotationInject]) +
                                              " must be \"true\" or \"false\"");
    case InjectRequest::kInject:
      break;
  }
  MS_ASSIGN_OR_RETURN(PodSettings settings, ParsePodSettings(annotations, cfg));
  auto spec = pod.find("spec");
  if (spec == pod.end() || !spec->is_object() || ArrayAt(*spec, "containers") == nullptr) {
    return Fail(Code::kInvalidArgument, "the pod has no spec.containers");
  }
  if (warnings != nullptr) {
    for (const auto& key : UnknownModelswapAnnotations(annotations))
      warnings->push_back("modelswap: unknown annotation " + key + " is ignored");
  }
  auto injected = labels.find(kLabelInjected);
  const bool labelled = injected != labels.end() && injected->second == "true";
  Plan plan{cfg, settings, native_sidecars, labelled,
            labelled
                ? PlanFromInjectedPod(*spec)
                : PlanNodeCache(cfg, ns.empty() ? PodNamespace(pod) : ns, ctx.namespace_level)};
  Patch patch;
  MS_RETURN_IF_ERROR(AddVolumes(plan, *spec, patch));
  MS_RETURN_IF_ERROR(WireContainers(plan, *spec, "initContainers", patch));
  MS_RETURN_IF_ERROR(WireContainers(plan, *spec, "containers", patch));
  MS_ASSIGN_OR_RETURN(bool added_agent, AddAgent(plan, *spec, patch));
  Json add = Json::object();
  // spec is the pod as it came: its containers[0] is the app's, not the agent just added.
  if (added_agent && !native_sidecars) DefaultContainerAnnotation(*spec, add);
  if (added_agent && !plan.cache.annotation.empty()) {
    add[kAnnotationNodeCache] = plan.cache.annotation;
  }
  AddAnnotations(pod, add, patch);
  AddLabel(pod, patch);
  if (added_agent && !native_sidecars && warnings != nullptr) {
    warnings->push_back(
        "modelswap: this cluster does not keep restartPolicy: Always on init containers (no "
        "native sidecars); the agent runs as the first container with a postStart wait");
  }
  return patch.Take();
}

}  // namespace modelswap::op
