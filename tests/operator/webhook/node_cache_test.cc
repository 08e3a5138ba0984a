// Which chunk cache the webhook gives an injected pod (admission.h PlanNodeCache), through the
// whole AdmissionReview path on the recorded pod request: the node's hostPath where the
// namespace's Pod Security level allows it (enforce label absent or "privileged"), mounted
// read-write in the agent and read-only in every app container at the same path; the per-pod
// disk emptyDir otherwise ("baseline", "restricted", an unreadable namespace), each with the
// modelswap.io/node-cache annotation saying which and why.
#include <gtest/gtest.h>

#include <string>

#include "operator/webhook/admission.h"
#include "tests/operator/webhook/admission_util.h"

namespace modelswap::op {
namespace {

using testing::Fixture;
using testing::Json;
using testing::PatchOf;

InjectionConfig CacheConfig() {
  InjectionConfig c;
  c.node_cache_host_path = "/var/lib/modelswap/cache";
  c.cache_dir = "/var/run/modelswap/cache";
  c.node_cache_max_bytes = "30Gi";
  c.stage_dir = "/var/run/modelswap/stage";
  c.stage_size = "10Gi";
  c.per_pod_cache_max_bytes = "1Gi";
  return c;
}

struct Result_ {
  Json pod;              // the pod after the patch
  std::string asked_ns;  // the namespace the lookup was asked for ("" = not asked)
  int lookups = 0;
};

// Reviews the recorded pod create (namespace "default") with `level` as the lookup's answer.
Result_ Inject(const InjectionConfig& cfg, const NamespaceLevelFn& level_of, bool native = true,
               Json request = Fixture("admission-request-pod-create.json")) {
  Result_ r;
  AdmissionContext ctx;
  ctx.native_sidecars = native;
  if (level_of) {
    ctx.namespace_level = [&r, &level_of](const std::string& ns) {
      r.asked_ns = ns;
      ++r.lookups;
      return level_of(ns);
    };
  }
  AdmissionOutcome out = ReviewAdmission(request.dump(), cfg, ctx);
  EXPECT_EQ(out.verdict, AdmissionVerdict::kPatched) << out.body;
  r.pod = request["request"]["object"].patch(PatchOf(Json::parse(out.body)));
  return r;
}

NamespaceLevelFn Level(PodSecurityLevel level) {
  return [level](const std::string&) -> Result<PodSecurityLevel> { return level; };
}

const Json* Named(const Json& list, const std::string& name) {
  for (const auto& item : list)
    if (item.value("name", "") == name) return &item;
  return nullptr;
}

const Json& Agent(const Json& pod) {
  const Json* a = Named(pod["spec"]["initContainers"], kAgentContainerName);
  EXPECT_NE(a, nullptr);
  return *a;
}

// The value following `flag` in the agent's args ("" if absent).
std::string Arg(const Json& agent, const std::string& flag) {
  const Json& args = agent["args"];
  for (size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == flag) return args[i + 1];
  return "";
}

void ExpectNodeCache(const Json& pod, const InjectionConfig& cfg) {
  const Json* vol = Named(pod["spec"]["volumes"], kNodeCacheVolumeName);
  ASSERT_NE(vol, nullptr) << pod["spec"]["volumes"].dump(2);
  EXPECT_EQ((*vol)["hostPath"]["path"], cfg.node_cache_host_path);
  EXPECT_EQ((*vol)["hostPath"]["type"], "DirectoryOrCreate");
  EXPECT_EQ(Named(pod["spec"]["volumes"], kStageVolumeName), nullptr);
  const Json& agent = Agent(pod);
  EXPECT_EQ(Arg(agent, "--cache-dir"), cfg.cache_dir);
  EXPECT_EQ(Arg(agent, "--cache-max-bytes"), cfg.node_cache_max_bytes);
  EXPECT_EQ(Arg(agent, "--stage-dir"), "");
  const Json* agent_mount = Named(agent["volumeMounts"], kNodeCacheVolumeName);
  ASSERT_NE(agent_mount, nullptr);
  EXPECT_EQ((*agent_mount)["mountPath"], cfg.cache_dir);
  EXPECT_FALSE(agent_mount->value("readOnly", false)) << "the agent assembles into the cache";
  // Every app container sees the cache read-only, at the agent's path (the control block names
  // the assembled file by that absolute path).
  ASSERT_FALSE(pod["spec"]["containers"].empty());
  for (const auto& c : pod["spec"]["containers"]) {
    const Json* m = Named(c["volumeMounts"], kNodeCacheVolumeName);
    ASSERT_NE(m, nullptr) << c["name"];
    EXPECT_EQ((*m)["mountPath"], cfg.cache_dir);
    EXPECT_EQ((*m)["readOnly"], true) << c["name"];
    EXPECT_EQ((*m)["recursiveReadOnly"], "IfPossible") << c["name"];
    EXPECT_FALSE(m->contains("mountPropagation")) << "recursiveReadOnly needs None";
  }
  std::string note = pod["metadata"]["annotations"][kAnnotationNodeCache];
  EXPECT_EQ(note.rfind("enabled: hostPath /var/lib/modelswap/cache", 0), 0u) << note;
}

void ExpectPerPod(const Json& pod, const InjectionConfig& cfg, const std::string& why) {
  for (const auto& v : pod["spec"]["volumes"])
    EXPECT_FALSE(v.contains("hostPath")) << "no hostPath in the fallback: " << v.dump();
  const Json* vol = Named(pod["spec"]["volumes"], kStageVolumeName);
  ASSERT_NE(vol, nullptr) << pod["spec"]["volumes"].dump(2);
  EXPECT_FALSE((*vol)["emptyDir"].contains("medium")) << "the node's disk, not memory";
  EXPECT_EQ((*vol)["emptyDir"]["sizeLimit"], cfg.stage_size);
  const Json& agent = Agent(pod);
  EXPECT_EQ(Arg(agent, "--cache-dir"), "");
  EXPECT_EQ(Arg(agent, "--stage-dir"), cfg.stage_dir);
  EXPECT_EQ(Arg(agent, "--cache-max-bytes"), cfg.per_pod_cache_max_bytes);
  EXPECT_FALSE(Named(agent["volumeMounts"], kStageVolumeName)->value("readOnly", false));
  for (const auto& c : pod["spec"]["containers"]) {
    const Json* m = Named(c["volumeMounts"], kStageVolumeName);
    ASSERT_NE(m, nullptr) << c["name"];
    EXPECT_EQ((*m)["mountPath"], cfg.stage_dir);
    EXPECT_EQ((*m)["readOnly"], true);
  }
  std::string note = pod["metadata"]["annotations"][kAnnotationNodeCache];
  EXPECT_EQ(note.rfind("disabled: ", 0), 0u) << note;
  EXPECT_NE(note.find(why), std::string::npos) << note;
  EXPECT_NE(note.find("per-pod cache in /var/run/modelswap/stage"), std::string::npos) << note;
}

TEST(NodeCache, PrivilegedNamespaceGetsTheHostPathReadOnlyForApps) {
  InjectionConfig cfg = CacheConfig();
  for (bool native : {true, false}) {
    Result_ r = Inject(cfg, Level(PodSecurityLevel::kPrivileged), native);
    EXPECT_EQ(r.asked_ns, "default") << "the request's namespace";
    EXPECT_EQ(r.lookups, 1);
    if (native) {
      ExpectNodeCache(r.pod, cfg);
    } else {
      // The agent is containers[0] in the plain-container fallback: read-write there only.
      const Json& agent = r.pod["spec"]["containers"][0];
      ASSERT_EQ(agent["name"], kAgentContainerName);
      EXPECT_FALSE(Named(agent["volumeMounts"], kNodeCacheVolumeName)->value("readOnly", false));
      const Json& app = r.pod["spec"]["containers"][1];
      EXPECT_EQ((*Named(app["volumeMounts"], kNodeCacheVolumeName))["readOnly"], true);
      EXPECT_EQ(r.pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"], "app");
    }
  }
}

TEST(NodeCache, BaselineAndRestrictedFallBackWithAnnotation) {
  InjectionConfig cfg = CacheConfig();
  ExpectPerPod(Inject(cfg, Level(PodSecurityLevel::kBaseline)).pod, cfg,
               "namespace default enforces Pod Security \"baseline\" (no hostPath)");
  ExpectPerPod(Inject(cfg, Level(PodSecurityLevel::kRestricted)).pod, cfg,
               "enforces Pod Security \"restricted\"");
}

TEST(NodeCache, LookupFailureFallsBack) {
  InjectionConfig cfg = CacheConfig();
  NamespaceLevelFn failing = [](const std::string&) -> Result<PodSecurityLevel> {
    return Fail(Code::kPermissionDenied, "namespaces \"default\" is forbidden");
  };
  ExpectPerPod(Inject(cfg, failing).pod, cfg,
               "Pod Security level of namespace default unknown (namespaces \"default\" is "
               "forbidden)");
  // No lookup at all (a webhook without namespace access): the same fallback.
  ExpectPerPod(Inject(cfg, nullptr).pod, cfg, "unknown");
}

TEST(NodeCache, InitContainersGetTheReadOnlyMountToo) {
  InjectionConfig cfg = CacheConfig();
  Json request = Fixture("admission-request-pod-create.json");
  request["request"]["object"]["spec"]["initContainers"] =
      Json::array({{{"name", "warmup"}, {"image", "busybox"}}});
  Result_ r = Inject(cfg, Level(PodSecurityLevel::kPrivileged), true, request);
  const Json* warmup = Named(r.pod["spec"]["initContainers"], "warmup");
  ASSERT_NE(warmup, nullptr);
  const Json* m = Named((*warmup)["volumeMounts"], kNodeCacheVolumeName);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ((*m)["readOnly"], true);
}

TEST(NodeCache, NoNodeCacheConfiguredAsksNothing) {
  InjectionConfig cfg = CacheConfig();
  cfg.node_cache_host_path.clear();
  Result_ r = Inject(cfg, Level(PodSecurityLevel::kPrivileged));
  EXPECT_EQ(r.lookups, 0) << "no namespace read when there is no hostPath to offer";
  ExpectPerPod(r.pod, cfg, "no node cache configured");
  // Neither configured: today's pods, no cache volume and no annotation.
  cfg.stage_dir.clear();
  r = Inject(cfg, Level(PodSecurityLevel::kPrivileged));
  EXPECT_EQ(r.pod["spec"]["volumes"].size(), 4u) << r.pod["spec"]["volumes"].dump(2);
  EXPECT_FALSE(r.pod["metadata"]["annotations"].contains(kAnnotationNodeCache));
  EXPECT_EQ(Arg(Agent(r.pod), "--cache-max-bytes"), "");
}

TEST(NodeCache, ReinvocationKeepsTheFirstDecision) {
  InjectionConfig cfg = CacheConfig();
  Result_ first = Inject(cfg, Level(PodSecurityLevel::kPrivileged));
  // Another webhook adds a container; the namespace now reads as baseline (relabelled, or the
  // lookup fails): the pod keeps its hostPath and the new container gets the same read-only view.
  Json pod = first.pod;
  pod["spec"]["containers"].push_back({{"name", "late"}, {"image", "busybox"}});
  Json request = Fixture("admission-request-pod-create.json");
  request["request"]["object"] = pod;
  int lookups = 0;
  AdmissionContext ctx;
  ctx.native_sidecars = true;
  ctx.namespace_level = [&lookups](const std::string&) -> Result<PodSecurityLevel> {
    ++lookups;
    return PodSecurityLevel::kBaseline;
  };
  AdmissionOutcome out = ReviewAdmission(request.dump(), cfg, ctx);
  ASSERT_EQ(out.verdict, AdmissionVerdict::kPatched) << out.body;
  Json again = pod.patch(PatchOf(Json::parse(out.body)));
  EXPECT_EQ(lookups, 0);
  ExpectNodeCache(again, cfg);
  EXPECT_EQ(again["metadata"]["annotations"][kAnnotationNodeCache],
            first.pod["metadata"]["annotations"][kAnnotationNodeCache]);
  // And once more: nothing left to add.
  request["request"]["object"] = again;
  EXPECT_EQ(ReviewAdmission(request.dump(), cfg, ctx).verdict, AdmissionVerdict::kUnchanged);
}

TEST(NodeCache, PodVolumeNamedLikeTheCacheIsDenied) {
  InjectionConfig cfg = CacheConfig();
  Json request = Fixture("admission-request-pod-create.json");
  request["request"]["object"]["spec"]["volumes"].push_back(
      {{"name", kNodeCacheVolumeName}, {"emptyDir", Json::object()}});
  AdmissionContext ctx;
  ctx.native_sidecars = true;
  ctx.namespace_level = Level(PodSecurityLevel::kPrivileged);
  AdmissionOutcome out = ReviewAdmission(request.dump(), cfg, ctx);
  EXPECT_EQ(out.verdict, AdmissionVerdict::kDenied);
  EXPECT_NE(out.message.find("modelswap-cache"), std::string::npos) << out.message;
}

TEST(NodeCache, ConfigIsValidated) {
  EXPECT_TRUE(ValidateConfig(CacheConfig()));
  auto bad = [](auto change, const char* fragment) {
    InjectionConfig c = CacheConfig();
    change(c);
    auto st = ValidateConfig(c);
    ASSERT_FALSE(st) << fragment;
    EXPECT_NE(st.error().message().find(fragment), std::string::npos) << st.error().message();
  };
  bad([](InjectionConfig& c) { c.node_cache_host_path = "var/lib/x"; }, "node cache host path");
  bad([](InjectionConfig& c) { c.cache_dir = "/models/cache"; }, "overlap");
  bad([](InjectionConfig& c) { c.stage_dir = c.cache_dir; }, "overlap");
  bad([](InjectionConfig& c) { c.node_cache_max_bytes = "500m"; }, "node cache max bytes");
  bad([](InjectionConfig& c) { c.per_pod_cache_max_bytes = "2GB"; }, "per-pod cache max bytes");
  bad([](InjectionConfig& c) { c.stage_size = "lots"; }, "lots");
  for (const char* ok : {"0", "1073741824", "20Gi", "512Mi", "1Ti"})
    EXPECT_TRUE(ValidateByteSize(ok)) << ok;
  for (const char* no : {"", "Gi", "20G", "20GiB", "-1", "1.5Gi", "20gi"})
    EXPECT_FALSE(ValidateByteSize(no)) << no;
}

// What the operator reads back from an injected pod (kube_backend.cc, probe_scheduler.cc): the
// annotation PlanNodeCache wrote, "disabled: <why>; <fallback>" -> "<why>; <fallback>".
TEST(NodeCache, FallbackReasonIsReadBackFromThePodsAnnotation) {
  InjectionConfig cfg = CacheConfig();
  NodeCachePlan staged = PlanNodeCache(cfg, "team-a", Level(PodSecurityLevel::kBaseline));
  NodeCachePlan cached = PlanNodeCache(cfg, "team-b", Level(PodSecurityLevel::kPrivileged));
  auto pod = [](const std::string& annotation) {
    Json p = {{"metadata", {{"annotations", Json::object()}}}};
    if (!annotation.empty()) p["metadata"]["annotations"][kAnnotationNodeCache] = annotation;
    return p;
  };
  EXPECT_EQ(NodeCacheFallbackReason(pod(staged.annotation)),
            "namespace team-a enforces Pod Security \"baseline\" (no hostPath); per-pod cache in " +
                cfg.stage_dir);
  EXPECT_EQ(NodeCacheFallbackReason(pod(cached.annotation)), "");
  EXPECT_EQ(NodeCacheFallbackReason(pod("")), "");
  EXPECT_EQ(NodeCacheFallbackReason(pod("disabled:")), "node cache disabled");
  EXPECT_EQ(NodeCacheFallbackReason(Json::array()), "");  // not a pod at all
}

}  // namespace
}  // namespace modelswap::op
