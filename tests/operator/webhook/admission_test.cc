// The admission function against the recorded AdmissionReview requests: responses are decoded,
// their JSONPatch applied with an RFC 6902 implementation, and the result compared with expected
// pods (testdata/expected-*.json, reviewed by hand; MODELSWAP_UPDATE_GOLDEN=1 rewrites them).
#include "operator/webhook/admission.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "tests/operator/webhook/admission_util.h"

namespace modelswap::op {
namespace {

using testing::Fixture;
using testing::Json;
using testing::PatchOf;
using testing::RequestWithPod;

constexpr const char* kUid = "61f707a2-8248-4b43-bd67-3404593e8268";

struct Reviewed {
  AdmissionOutcome outcome;
  Json review;  // the parsed response body
  Json patch;   // decoded ops
};

Reviewed Review(const Json& request, bool native = true, InjectionConfig cfg = {}) {
  Reviewed r;
  r.outcome = ReviewAdmission(request.dump(), cfg, native);
  r.review = Json::parse(r.outcome.body);
  r.patch = r.review.contains("response") ? PatchOf(r.review) : Json::array();
  return r;
}

Json PodOf(const Json& request) {
  return request["request"]["object"];
}

// The pod after the API server applied the response's patch.
Json Mutated(const Json& request, bool native = true) {
  Reviewed r = Review(request, native);
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kPatched) << r.outcome.body;
  return PodOf(request).patch(r.patch);
}

void ExpectGolden(const Json& pod, const std::string& name) {
  std::string path = std::string(MODELSWAP_WEBHOOK_TESTDATA) + "/" + name;
  if (std::getenv("MODELSWAP_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << pod.dump(2) << "\n";
  }
  Json expected = Json::parse(testing::ReadFile(path));
  EXPECT_EQ(pod, expected) << "diff: " << Json::diff(expected, pod).dump(2);
}

const Json* Find(const Json& list, const std::string& name) {
  for (const auto& c : list)
    if (c.value("name", "") == name) return &c;
  return nullptr;
}

Json WithAnnotation(Json request, const std::string& key, const std::string& value) {
  request["request"]["object"]["metadata"]["annotations"][key] = value;
  return request;
}

void ExpectDenied(const Json& request, std::initializer_list<const char*> fragments) {
  Reviewed r = Review(request);
  EXPECT_EQ(r.outcome.http_status, 200);
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kDenied);
  const Json& resp = r.review["response"];
  EXPECT_EQ(resp["uid"], kUid);
  EXPECT_EQ(resp["allowed"], false);
  EXPECT_FALSE(resp.contains("patch"));
  EXPECT_EQ(resp["status"]["code"], 400);
  std::string msg = resp["status"]["message"];
  for (const char* f : fragments)
    EXPECT_NE(msg.find(f), std::string::npos) << "missing \"" << f << "\" in: " << msg;
}

TEST(Webhook, EchoesUidAndAnswersJsonPatch) {
  Reviewed r = Review(Fixture("admission-request-pod-create.json"));
  EXPECT_EQ(r.outcome.http_status, 200);
  EXPECT_EQ(r.review["apiVersion"], "admission.k8s.io/v1");
  EXPECT_EQ(r.review["kind"], "AdmissionReview");
  EXPECT_EQ(r.review["response"]["uid"], kUid);
  EXPECT_EQ(r.review["response"]["allowed"], true);
  EXPECT_EQ(r.review["response"]["patchType"], "JSONPatch");
}

TEST(Webhook, PatchOnlyAddsAndEscapesSlashes) {
  Reviewed r = Review(Fixture("admission-request-pod-create.json"));
  bool label_op = false;
  for (const auto& op : r.patch) {
    EXPECT_EQ(op["op"], "add") << op.dump();  // never replace/remove what others wrote
    std::string path = op["path"];
    EXPECT_NE(path, "/spec") << "whole spec re-serialised";
    EXPECT_NE(path, "/spec/containers") << "whole container list re-serialised";
    label_op |= path == "/metadata/labels/modelswap.io~1injected";
  }
  EXPECT_TRUE(label_op) << r.patch.dump(2);
}

TEST(Webhook, NativeSidecarMatchesExpectedPod) {
  Json pod = Mutated(Fixture("admission-request-pod-create.json"), true);
  ExpectGolden(pod, "expected-pod-native.json");
  const Json& agent = pod["spec"]["initContainers"][0];
  EXPECT_EQ(agent["name"], "modelswap-agent");
  EXPECT_EQ(agent["restartPolicy"], "Always");
  EXPECT_EQ(agent["startupProbe"]["httpGet"]["path"], "/readyz");
  EXPECT_EQ(agent["startupProbe"]["httpGet"]["port"], 8471);
  EXPECT_EQ(pod["spec"]["containers"].size(), 1u);
}

TEST(Webhook, PlainContainerFallbackMatchesExpectedPod) {
  Reviewed r = Review(Fixture("admission-request-pod-create.json"), false);
  Json pod = PodOf(Fixture("admission-request-pod-create.json")).patch(r.patch);
  ExpectGolden(pod, "expected-pod-container.json");
  EXPECT_FALSE(pod["spec"].contains("initContainers"));
  const Json& agent = pod["spec"]["containers"][0];  // listed first: kubelet starts it first
  EXPECT_EQ(agent["name"], "modelswap-agent");
  EXPECT_FALSE(agent.contains("restartPolicy"));
  EXPECT_FALSE(agent.contains("startupProbe"));
  EXPECT_EQ(agent["lifecycle"]["postStart"]["exec"]["command"][3], "http://127.0.0.1:8471/readyz");
  EXPECT_EQ(pod["spec"]["containers"][1]["name"], "app");
  // kubectl logs/exec without -c stay on the app, not the agent listed first.
  EXPECT_EQ(pod["metadata"]["annotations"]["kubectl.kubernetes.io/default-container"], "app");
  ASSERT_TRUE(r.review["response"].contains("warnings"));
  EXPECT_NE(r.review["response"]["warnings"][0].get<std::string>().find("native sidecars"),
            std::string::npos);
}

TEST(Webhook, WiresEveryAppContainer) {
  Json pod = Mutated(Fixture("admission-request-pod-create.json"));
  const Json& app = pod["spec"]["containers"][0];
  const Json* models = Find(app["volumeMounts"], "modelswap-models");
  const Json* shm = Find(app["volumeMounts"], "modelswap-shm");
  ASSERT_TRUE(models && shm);
  EXPECT_EQ((*models)["mountPath"], "/models");
  EXPECT_EQ((*models)["readOnly"], true);
  EXPECT_EQ((*shm)["mountPath"], "/var/run/modelswap/shm");
  EXPECT_EQ((*Find(app["env"], "MODELSWAP_SHM_DIR"))["value"], "/var/run/modelswap/shm");
  EXPECT_EQ((*Find(app["env"], "MODELSWAP_ROOT"))["value"], "/models");
  EXPECT_EQ((*Find(app["env"], "MODELSWAP_MODELS"))["value"], "ranker");
  EXPECT_EQ((*Find(app["env"], "MODELSWAP_AGENT_URL"))["value"], "http://127.0.0.1:8471");
  const Json* vol = Find(pod["spec"]["volumes"], "modelswap-shm");
  ASSERT_TRUE(vol);
  EXPECT_EQ((*vol)["emptyDir"]["medium"], "Memory");
  EXPECT_EQ((*vol)["emptyDir"]["sizeLimit"], "1Gi");
  const Json* pvc = Find(pod["spec"]["volumes"], "modelswap-models");
  ASSERT_TRUE(pvc);
  EXPECT_EQ((*pvc)["persistentVolumeClaim"]["readOnly"], true);
  EXPECT_EQ(pod["metadata"]["labels"]["modelswap.io/injected"], "true");
  // The pod's own memory volume named "shm" is left alone.
  EXPECT_EQ((*Find(pod["spec"]["volumes"], "shm"))["emptyDir"], Json({{"medium", "Memory"}}));
}

TEST(Webhook, GenerateNameWithoutName) {
  Json request = Fixture("admission-request-pod-create-generatename.json");
  ASSERT_FALSE(request["request"].contains("name"));
  Reviewed r = Review(request);
  EXPECT_EQ(r.review["response"]["uid"], "2b9cecec-fe3d-4a50-a347-b6a416f29f2b");
  Json pod = PodOf(request).patch(r.patch);
  ExpectGolden(pod, "expected-pod-generatename-native.json");
  EXPECT_FALSE(pod["metadata"].contains("name"));
}

TEST(Webhook, IdempotentInBothModes) {
  for (bool native : {true, false}) {
    Json request = Fixture("admission-request-pod-create.json");
    Json once = Mutated(request, native);
    Reviewed again = Review(RequestWithPod(once), native);
    EXPECT_EQ(again.outcome.verdict, AdmissionVerdict::kUnchanged) << again.outcome.body;
    EXPECT_EQ(again.review["response"]["allowed"], true);
    EXPECT_FALSE(again.review["response"].contains("patch")) << again.patch.dump(2);
    EXPECT_EQ(again.review["response"]["uid"], kUid);
  }
}

TEST(Webhook, IdempotentWhenTheOtherModeRunsAgain) {
  // Support detection may flip between invocations; an injected pod must stay as it is.
  Json once = Mutated(Fixture("admission-request-pod-create.json"), true);
  EXPECT_EQ(Review(RequestWithPod(once), false).patch, Json::array());
}

TEST(Webhook, ReinvocationWiresOnlyTheNewContainer) {
  Json once = Mutated(Fixture("admission-request-pod-create.json"));
  once["spec"]["containers"].push_back({{"name", "logger"}, {"image", "fluent-bit:3"}});
  Reviewed r = Review(RequestWithPod(once));
  ASSERT_EQ(r.outcome.verdict, AdmissionVerdict::kPatched);
  for (const auto& op : r.patch)
    EXPECT_TRUE(op["path"].get<std::string>().starts_with("/spec/containers/1/")) << op.dump();
  Json pod = once.patch(r.patch);
  const Json& logger = pod["spec"]["containers"][1];
  EXPECT_EQ(logger["volumeMounts"].size(), 2u);
  EXPECT_EQ(logger["env"].size(), 4u);
  EXPECT_EQ(Review(RequestWithPod(pod)).patch, Json::array());
}

TEST(Webhook, ExistingInitContainersAndOtherNativeSidecarsSurvive) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"]["initContainers"] = Json::array(
      {{{"name", "istio-proxy"},
        {"image", "istio/proxyv2:1.22"},
        {"restartPolicy", "Always"},
        {"startupProbe", {{"httpGet", {{"path", "/healthz/ready"}, {"port", 15021}}}}}},
       {{"name", "setup"}, {"image", "busybox"}, {"env", {{{"name", "A"}, {"value", "1"}}}}}});
  Json request = RequestWithPod(pod);
  Json out = pod.patch(Review(request).patch);
  const Json& init = out["spec"]["initContainers"];
  ASSERT_EQ(init.size(), 3u);
  EXPECT_EQ(init[0]["name"], "modelswap-agent");
  EXPECT_EQ(init[1]["name"], "istio-proxy");
  EXPECT_EQ(init[1]["restartPolicy"], "Always");  // another injector's field survives
  EXPECT_EQ(init[1]["startupProbe"], pod["spec"]["initContainers"][0]["startupProbe"]);
  EXPECT_EQ(init[2]["name"], "setup");
  EXPECT_EQ(init[2]["env"][0], Json({{"name", "A"}, {"value", "1"}}));
  EXPECT_EQ(init[2]["env"].size(), 5u);
  EXPECT_EQ(init[2]["volumeMounts"].size(), 2u);
  EXPECT_EQ(init[1]["volumeMounts"].size(), 2u);
  EXPECT_EQ(Review(RequestWithPod(out)).patch, Json::array());
}

TEST(Webhook, PodWithoutLabelsVolumesEnvOrMounts) {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"generateName", "x-"},
                {"annotations", {{"modelswap.io/inject", "true"}, {"modelswap.io/models", "a"}}}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "app:1"}}}}}}};
  Reviewed r = Review(RequestWithPod(pod));
  Json out = pod.patch(r.patch);
  EXPECT_EQ(out["metadata"]["labels"], Json({{"modelswap.io/injected", "true"}}));
  EXPECT_EQ(out["spec"]["volumes"].size(), 2u);
  EXPECT_EQ(out["spec"]["containers"][0]["volumeMounts"].size(), 2u);
  EXPECT_EQ(out["spec"]["containers"][0]["env"].size(), 4u);
  EXPECT_EQ(out["spec"]["initContainers"].size(), 1u);
}

TEST(Webhook, UserEnvValuesWin) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"]["containers"][0]["env"] = {{{"name", "MODELSWAP_SHM_DIR"}, {"value", "/custom"}}};
  Json out = pod.patch(Review(RequestWithPod(pod)).patch);
  const Json& env = out["spec"]["containers"][0]["env"];
  EXPECT_EQ(env.size(), 4u);
  EXPECT_EQ((*Find(env, "MODELSWAP_SHM_DIR"))["value"], "/custom");
}

TEST(Webhook, AnnotationsOverrideAgent) {
  Json request = Fixture("admission-request-pod-create.json");
  request = WithAnnotation(request, "modelswap.io/models", "ranker,embeddings");
  request = WithAnnotation(request, "modelswap.io/agent-image", "registry.example/agent:2");
  request = WithAnnotation(request, "modelswap.io/agent-cpu", "250m");
  request = WithAnnotation(request, "modelswap.io/agent-memory-limit", "4Gi");
  request = WithAnnotation(request, "modelswap.io/poll-interval", "2s");
  request = WithAnnotation(request, "modelswap.io/shm-size", "64Mi");
  request = WithAnnotation(request, "modelswap.io/claim-name", "team-models");
  Json pod = Mutated(request);
  const Json& agent = pod["spec"]["initContainers"][0];
  EXPECT_EQ(agent["image"], "registry.example/agent:2");
  EXPECT_EQ(agent["resources"]["requests"]["cpu"], "250m");
  EXPECT_EQ(agent["resources"]["requests"]["memory"], "128Mi");
  EXPECT_EQ(agent["resources"]["limits"], Json({{"memory", "4Gi"}}));
  EXPECT_EQ(agent["args"], Json({"agent", "--root", "/models", "--models", "ranker,embeddings",
                                 "--shm-dir", "/var/run/modelswap/shm", "--listen", "0.0.0.0:8471",
                                 "--poll-interval", "2000"}));
  EXPECT_EQ((*Find(pod["spec"]["volumes"], "modelswap-shm"))["emptyDir"]["sizeLimit"], "64Mi");
  EXPECT_EQ(
      (*Find(pod["spec"]["volumes"], "modelswap-models"))["persistentVolumeClaim"]["claimName"],
      "team-models");
  EXPECT_EQ((*Find(pod["spec"]["containers"][0]["env"], "MODELSWAP_MODELS"))["value"],
            "ranker,embeddings");
}

TEST(Webhook, ExbiQuantitiesAreAcceptedAndPassedThrough) {
  // "1Ei" is a binary suffix of the API's quantity grammar, not the exponent "1e..." (2^60 bytes:
  // beyond any int32, within the int64 the API server stores).
  Json request = Fixture("admission-request-pod-create.json");
  request = WithAnnotation(request, "modelswap.io/shm-size", "1Ei");
  request = WithAnnotation(request, "modelswap.io/agent-memory-limit", "1Ei");
  request = WithAnnotation(request, "modelswap.io/agent-memory", "2Pi");
  Json pod = Mutated(request);
  const Json& agent = pod["spec"]["initContainers"][0];
  EXPECT_EQ(agent["resources"]["limits"], Json({{"memory", "1Ei"}}));
  EXPECT_EQ(agent["resources"]["requests"]["memory"], "2Pi");
  EXPECT_EQ((*Find(pod["spec"]["volumes"], "modelswap-shm"))["emptyDir"]["sizeLimit"], "1Ei");
  // The limit is still compared with the request: 1Pi is below 2Pi.
  Reviewed below = Review(WithAnnotation(request, "modelswap.io/agent-memory-limit", "1Pi"));
  EXPECT_EQ(below.outcome.verdict, AdmissionVerdict::kDenied);
}

TEST(Webhook, UnknownAnnotationWarns) {
  Reviewed r = Review(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/agent-cpus", "1"));
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kPatched);
  EXPECT_EQ(r.review["response"]["warnings"],
            Json({"modelswap: unknown annotation modelswap.io/agent-cpus is ignored"}));
}

TEST(Webhook, PodsThatDoNotAskAreLeftAlone) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["metadata"].erase("annotations");
  pod["metadata"]["labels"].erase("modelswap.io/inject");
  Reviewed r = Review(RequestWithPod(pod));
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kSkipped);
  EXPECT_EQ(r.review["response"], Json({{"uid", kUid}, {"allowed", true}}));
}

TEST(Webhook, InjectFalseOptsOut) {
  Reviewed r = Review(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/inject", "false"));
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kSkipped);
  EXPECT_FALSE(r.review["response"].contains("patch"));
}

TEST(Webhook, LabelAloneAsksForInjection) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["metadata"]["annotations"].erase("modelswap.io/inject");
  EXPECT_EQ(Review(RequestWithPod(pod)).outcome.verdict, AdmissionVerdict::kPatched);
}

TEST(Webhook, UpdatesAndOtherKindsPassUntouched) {
  Json update = Fixture("admission-request-pod-create.json");
  update["request"]["operation"] = "UPDATE";
  EXPECT_EQ(Review(update).outcome.verdict, AdmissionVerdict::kSkipped);
  Json binding = Fixture("admission-request-pod-create.json");
  binding["request"]["subResource"] = "binding";
  EXPECT_EQ(Review(binding).outcome.verdict, AdmissionVerdict::kSkipped);
  Json deploy = Fixture("admission-request-pod-create.json");
  deploy["request"]["kind"] = {{"group", "apps"}, {"version", "v1"}, {"kind", "Deployment"}};
  deploy["request"]["resource"] = {
      {"group", "apps"}, {"version", "v1"}, {"resource", "deployments"}};
  Reviewed r = Review(deploy);
  EXPECT_EQ(r.outcome.verdict, AdmissionVerdict::kSkipped);
  EXPECT_EQ(r.review["response"]["uid"], kUid);
}

TEST(Webhook, DeniesBadInjectValue) {
  ExpectDenied(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/inject", "yes"),
      {"modelswap.io/inject", "\"yes\"", "\"true\" or \"false\""});
}

TEST(Webhook, DeniesBadModelName) {
  ExpectDenied(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/models", "Ranker"),
      {"modelswap.io/models", "Ranker"});
}

TEST(Webhook, DeniesMissingModels) {
  Json request = Fixture("admission-request-pod-create.json");
  request["request"]["object"]["metadata"]["annotations"].erase("modelswap.io/models");
  ExpectDenied(request, {"modelswap.io/models", "required"});
}

TEST(Webhook, DeniesBadShmSize) {
  ExpectDenied(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/shm-size", "lots"),
      {"modelswap.io/shm-size", "\"lots\"", "quantity"});
}

TEST(Webhook, DeniesBadAgentCpu) {
  ExpectDenied(
      WithAnnotation(Fixture("admission-request-pod-create.json"), "modelswap.io/agent-cpu", "0"),
      {"modelswap.io/agent-cpu", "greater than zero"});
}

TEST(Webhook, DeniesClashingVolumeName) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"]["volumes"].push_back({{"name", "modelswap-shm"}, {"hostPath", {{"path", "/tmp"}}}});
  ExpectDenied(RequestWithPod(pod), {"volume name \"modelswap-shm\"", "rename"});
}

TEST(Webhook, DeniesClashingContainerName) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"]["containers"].push_back({{"name", "modelswap-agent"}, {"image", "mine:1"}});
  ExpectDenied(RequestWithPod(pod), {"container name \"modelswap-agent\""});
}

TEST(Webhook, DeniesClashingMountPath) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"]["containers"][0]["volumeMounts"].push_back(
      {{"name", "shm"}, {"mountPath", "/models"}});
  ExpectDenied(RequestWithPod(pod), {"container \"app\"", "\"/models\""});
}

TEST(Webhook, DeniesPodWithoutContainers) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  pod["spec"].erase("containers");
  ExpectDenied(RequestWithPod(pod), {"spec.containers"});
}

TEST(Webhook, MalformedJsonIsABadRequest) {
  std::string body = Fixture("admission-request-pod-create.json").dump();
  AdmissionOutcome out = ReviewAdmission(body.substr(0, body.size() / 2), InjectionConfig{}, true);
  EXPECT_EQ(out.http_status, 400);
  EXPECT_EQ(out.verdict, AdmissionVerdict::kBadRequest);
  Json review = Json::parse(out.body);
  EXPECT_EQ(review["response"]["uid"], "");
  EXPECT_EQ(review["response"]["allowed"], false);
  EXPECT_NE(review["response"]["status"]["message"].get<std::string>().find("not JSON"),
            std::string::npos);
}

// Review findings: a deeply nested body overflowed the stack when an error message dumped part of
// it, and raw invalid UTF-8 in a parse error made the response itself throw (a 500).
TEST(Webhook, HostileBodiesAreBadRequestsNotCrashes) {
  const std::string deep = R"({"kind":"AdmissionReview","apiVersion":)" +
                           std::string(100'000, '[') + std::string(100'000, ']') + "}";
  AdmissionOutcome out = ReviewAdmission(deep, InjectionConfig{}, true);
  EXPECT_EQ(out.http_status, 400);
  EXPECT_NE(out.message.find("deeper"), std::string::npos) << out.message;
  out = ReviewAdmission(std::string("{\"kind\":\xff\xfe}"), InjectionConfig{}, true);
  EXPECT_EQ(out.http_status, 400);
  EXPECT_TRUE(Json::accept(out.body)) << "the response is valid JSON";
  Json request = Fixture("admission-request-pod-create.json");
  request["apiVersion"] = Json::array({Json::array({1})});
  Reviewed r = Review(request);
  EXPECT_EQ(r.outcome.http_status, 400);
  EXPECT_NE(r.outcome.message.find("a JSON array"), std::string::npos) << r.outcome.message;
}

TEST(Webhook, WrongApiVersionIsABadRequestThatEchoesUid) {
  Json request = Fixture("admission-request-pod-create.json");
  request["apiVersion"] = "admission.k8s.io/v1beta1";
  Reviewed r = Review(request);
  EXPECT_EQ(r.outcome.http_status, 400);
  EXPECT_EQ(r.review["response"]["uid"], kUid);
  EXPECT_NE(r.outcome.message.find("v1beta1"), std::string::npos);
}

TEST(Webhook, WrongKindIsABadRequest) {
  Json request = Fixture("admission-request-pod-create.json");
  request["kind"] = "Pod";
  EXPECT_EQ(Review(request).outcome.http_status, 400);
}

TEST(Webhook, MissingRequestOrUidIsABadRequest) {
  Json request = Fixture("admission-request-pod-create.json");
  request["request"].erase("uid");
  EXPECT_EQ(Review(request).outcome.http_status, 400);
  request.erase("request");
  EXPECT_EQ(Review(request).outcome.http_status, 400);
  EXPECT_EQ(ReviewAdmission("[1,2]", InjectionConfig{}, true).http_status, 400);
}

TEST(Webhook, MissingObjectIsABadRequest) {
  Json request = Fixture("admission-request-pod-create.json");
  request["request"].erase("object");
  Reviewed r = Review(request);
  EXPECT_EQ(r.outcome.http_status, 400);
  EXPECT_EQ(r.review["response"]["uid"], kUid);
}

TEST(PodMissingAgent, OnlyOptedInPodsWithoutTheAgent) {
  Json pod = PodOf(Fixture("admission-request-pod-create.json"));
  EXPECT_TRUE(PodMissingAgent(pod));  // annotated, created without the webhook
  EXPECT_FALSE(PodMissingAgent(Mutated(Fixture("admission-request-pod-create.json"), true)));
  EXPECT_FALSE(PodMissingAgent(Mutated(Fixture("admission-request-pod-create.json"), false)));
  pod["metadata"]["annotations"]["modelswap.io/inject"] = "false";
  EXPECT_FALSE(PodMissingAgent(pod));
  EXPECT_FALSE(PodMissingAgent(Json::array()));
}

TEST(JsonPointerEscape, Rfc6901) {
  EXPECT_EQ(JsonPointerEscape("modelswap.io/injected"), "modelswap.io~1injected");
  EXPECT_EQ(JsonPointerEscape("a~b/c"), "a~0b~1c");
  EXPECT_EQ(JsonPointerEscape(""), "");
}

}  // namespace
}  // namespace modelswap::op
