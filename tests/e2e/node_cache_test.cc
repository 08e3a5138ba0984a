// The node cache or its per-pod fallback, decided by the Pod Security level of the namespace as
// the API server serves it: two Namespaces are created (one labelled
// pod-security.kubernetes.io/enforce=baseline, one without the label), the webhook's own
// namespace lookup (NamespaceLevelCache over GET /api/v1/namespaces/NAME, as runtime.cc wires it)
// decides each pod's cache, and the patched Pods are created through the API server. Runs against
// the fake API server too (it serves Namespaces as the recorded server does, 404 included); the
// AdmissionReview is handed to ReviewAdmission directly since the fake calls no webhooks
// (webhook_test.cc covers the API server calling the webhook). Then the operator's side: a pod
// whose annotation says the node cache is disabled gets one NodeCacheDisabled Event, and its
// model's ModelVersion counts it in status.pods.perPodStaging.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "operator/api/well_known.h"
#include "operator/kube/base64.h"
#include "operator/webhook/admission.h"
#include "operator/webhook/namespace_policy.h"
#include "operator/webhook/node_cache_plan.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_request.h"

namespace modelswap::op::e2e {
namespace {

InjectionConfig NodeCacheConfig() {
  InjectionConfig c;
  c.node_cache_host_path = "/var/lib/modelswap/cache";
  c.stage_dir = "/var/run/modelswap/stage";
  c.stage_size = "10Gi";
  return c;
}

Json AppPod(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"name", name},
            {"labels", {{kLabelInjectOptIn, "true"}}},
            {"annotations", {{kLabelInjectOptIn, "true"}, {kAnnotationModels, "ranker"}}}}},
          {"spec",
           {{"containers", {{{"name", "app"}, {"image", "example.invalid/app:e2e"}}}},
            {"automountServiceAccountToken", false}}}};
}

std::set<std::string> VolumeKinds(const Json& pod) {
  std::set<std::string> out;
  for (const auto& v : Field<Json>(pod, {"spec", "volumes"}, Json::array())) {
    for (const char* kind : {"hostPath", "emptyDir", "persistentVolumeClaim"})
      if (v.contains(kind)) out.insert(Field<std::string>(v, {"name"}) + ":" + kind);
  }
  return out;
}

class E2eNodeCache : public E2ETest {
 protected:
  void TearDown() override {
    for (const auto& ns : created_)
      (void)client_->Delete(kNamespaces, "", ns, "Background");
    E2ETest::TearDown();
  }
  // Creates Namespace `name` with `labels`; deleted in TearDown.
  void CreateNamespace(const std::string& name, const Json& labels) {
    Json ns = {{"apiVersion", "v1"},
               {"kind", "Namespace"},
               {"metadata", {{"name", name}, {"labels", labels}}}};
    auto created = client_->Create(kNamespaces, "", ns);
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
    created_.push_back(name);
  }
  // The webhook's answer for `pod` created in `ns`, applied to it, then the Pod created through
  // the API server: what the server stored.
  Json Admit(const Json& pod, const std::string& ns, NamespaceLevelCache& levels) {
    Json review = {{"apiVersion", kAdmissionApiVersion},
                   {"kind", "AdmissionReview"},
                   {"request",
                    {{"uid", "e2e-" + RandomSuffix()},
                     {"kind", {{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}},
                     {"resource", {{"group", ""}, {"version", "v1"}, {"resource", "pods"}}},
                     {"namespace", ns},
                     {"operation", "CREATE"},
                     {"object", pod}}}};
    AdmissionContext ctx;
    ctx.native_sidecars = true;
    ctx.namespace_level = [&levels](const std::string& n) { return levels.Level(n); };
    AdmissionOutcome out = ReviewAdmission(review.dump(), NodeCacheConfig(), ctx);
    EXPECT_EQ(out.verdict, AdmissionVerdict::kPatched) << out.body;
    auto patch = Base64Decode(Field<std::string>(Json::parse(out.body), {"response", "patch"}));
    if (!patch) return Json();
    auto created = client_->Create(kPods, ns, pod.patch(Json::parse(*patch)));
    EXPECT_TRUE(created.has_value()) << created.error().ToString();
    auto stored = client_->Get(kPods, ns, NameOf(pod));
    return stored ? *stored : Json();
  }
  std::vector<std::string> created_;
};

TEST_F(E2eNodeCache, BaselineNamespaceGetsPerPodStagingAndUnlabelledOneTheHostPath) {
  const std::string baseline = ns_ + "-baseline", open = ns_ + "-open";
  ASSERT_NO_FATAL_FAILURE(CreateNamespace(baseline, {{kPodSecurityEnforceLabel, "baseline"}}));
  ASSERT_NO_FATAL_FAILURE(CreateNamespace(open, {{"modelswap.io/e2e", "true"}}));
  KubeClient* client = client_.get();
  NamespaceLevelCache levels(
      DefaultEnv(),
      [client](const std::string& name) { return client->Get(kNamespaces, "", name); },
      NamespaceLevelCacheOptions{});

  Json staged = Admit(AppPod("app-staged"), baseline, levels);
  EXPECT_EQ(VolumeKinds(staged),
            (std::set<std::string>{"modelswap-models:persistentVolumeClaim",
                                   "modelswap-shm:emptyDir", "modelswap-stage:emptyDir"}))
      << staged.dump();
  const std::string why = AnnotationOf(staged, kAnnotationNodeCache);
  EXPECT_EQ(why, "disabled: namespace " + baseline +
                     " enforces Pod Security \"baseline\" (no hostPath); per-pod cache in "
                     "/var/run/modelswap/stage");

  Json cached = Admit(AppPod("app-cached"), open, levels);
  EXPECT_EQ(VolumeKinds(cached),
            (std::set<std::string>{"modelswap-models:persistentVolumeClaim",
                                   "modelswap-shm:emptyDir", "modelswap-cache:hostPath"}))
      << cached.dump();
  EXPECT_EQ(AnnotationOf(cached, kAnnotationNodeCache),
            "enabled: hostPath /var/lib/modelswap/cache at /var/run/modelswap/cache");
}

TEST_F(E2eNodeCache, MissingNamespaceIsA404AndMeansTheFallback) {
  KubeClient* client = client_.get();
  auto got = client->Get(kNamespaces, "", ns_ + "-absent");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code(), Code::kNotFound) << got.error().ToString();
  // The Status body as kube-apiserver sends it (the shape of testdata/get-404.http; a core
  // resource's details carry no group).
  auto raw = RawGet(config_, "/api/v1/namespaces/" + ns_ + "-absent");
  ASSERT_TRUE(raw.has_value()) << raw.error().ToString();
  EXPECT_EQ(raw->code, 404);
  Json status = Json::parse(raw->body, nullptr, false);
  EXPECT_EQ(status, Json({{"kind", "Status"},
                          {"apiVersion", "v1"},
                          {"metadata", Json::object()},
                          {"status", "Failure"},
                          {"message", "namespaces \"" + ns_ + "-absent\" not found"},
                          {"reason", "NotFound"},
                          {"details", {{"name", ns_ + "-absent"}, {"kind", "namespaces"}}},
                          {"code", 404}}))
      << raw->body;
  NamespaceLevelCache levels(
      DefaultEnv(),
      [client](const std::string& name) { return client->Get(kNamespaces, "", name); },
      NamespaceLevelCacheOptions{});
  auto level = levels.Level(ns_ + "-absent");
  ASSERT_FALSE(level.has_value());
  NodeCachePlan plan = PlanNodeCache(NodeCacheConfig(), ns_ + "-absent",
                                     [&levels](const std::string& n) { return levels.Level(n); });
  EXPECT_EQ(plan.kind, NodeCachePlan::kPerPod);
  EXPECT_TRUE(plan.annotation.starts_with("disabled: Pod Security level of namespace " + ns_ +
                                          "-absent unknown ("))
      << plan.annotation;
}

// An injected pod as the webhook leaves it, with its node-cache annotation (no agent container:
// the operator reads labels and annotations only, and no kubelet runs it here).
Json InjectedPod(const std::string& name, const std::string& model, const std::string& cache) {
  Json pod = AppPod(name);
  pod["metadata"]["labels"][kLabelInjected] = "true";
  pod["metadata"]["annotations"][kAnnotationNodeCache] = cache;
  pod["metadata"]["annotations"][kAnnotationModels] = model;
  return pod;
}

TEST_F(E2eNodeCache, OperatorRecordsTheFallbackOnThePodAndCountsItInStatus) {
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  InProcessOperator op(client_.get(), ns_);
  ASSERT_TRUE(op.Start());
  const std::string model = "nc-" + RandomSuffix(), name = model + "-v1";
  const std::string why = "namespace " + ns_ +
                          " enforces Pod Security \"baseline\" (no hostPath); per-pod cache in "
                          "/var/run/modelswap/stage";
  for (const auto& [pod, cache] :
       {std::pair<std::string, std::string>{"staged", "disabled: " + why},
        {"cached", "enabled: hostPath /var/lib/modelswap/cache at /var/run/modelswap/cache"}}) {
    auto created = client_->Create(kPods, ns_, InjectedPod(pod, model, cache));
    ASSERT_TRUE(created.has_value()) << created.error().ToString();
  }
  auto mv = client_->Create(kModelVersions, ns_, Mv(name, model, "v1"));
  ASSERT_TRUE(mv.has_value()) << mv.error().ToString();

  ASSERT_TRUE(Eventually("a NodeCacheDisabled Event on pod staged", std::chrono::seconds(30),
                         [&](std::string& seen) {
                           seen.clear();
                           for (const auto& e : Events("staged")) {
                             seen += e.dump() + "\n";
                             if (Field<std::string>(e, {"reason"}) == kReasonNodeCacheDisabled)
                               return true;
                           }
                           return false;
                         }));
  ASSERT_TRUE(Eventually("status.pods 2 total, 1 on per-pod staging", std::chrono::seconds(30),
                         [&](std::string& seen) {
                           auto o = client_->Get(kModelVersions, ns_, name);
                           if (!o) return false;
                           Json pods = Field<Json>(*o, {"status", "pods"}, Json::object());
                           seen = pods.dump();
                           return Field<int>(pods, {"total"}) == 2 &&
                                  Field<int>(pods, {"perPodStaging"}) == 1;
                         }));
  // Once per pod: a later change of the pod records nothing new.
  ASSERT_TRUE(client_
                  ->Patch(kPods, ns_, "staged", PatchType::kMerge,
                          {{"metadata", {{"labels", {{"touched", "true"}}}}}})
                  .has_value());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  std::vector<Json> events;
  for (const auto& e : Events("staged"))
    if (Field<std::string>(e, {"reason"}) == kReasonNodeCacheDisabled) events.push_back(e);
  ASSERT_EQ(events.size(), 1u);
  const Json& e = events[0];
  EXPECT_EQ(Field<std::string>(e, {"type"}), "Normal");
  EXPECT_EQ(Field<std::string>(e, {"message"}), why);
  EXPECT_EQ(Field<int>(e, {"count"}), 1);
  EXPECT_EQ(Field<std::string>(e, {"involvedObject", "kind"}), "Pod");
  EXPECT_EQ(Field<std::string>(e, {"involvedObject", "uid"}),
            UidOf(*client_->Get(kPods, ns_, "staged")));
  for (const auto& other : Events("cached"))
    EXPECT_NE(Field<std::string>(other, {"reason"}), kReasonNodeCacheDisabled) << other.dump();
}

}  // namespace
}  // namespace modelswap::op::e2e
