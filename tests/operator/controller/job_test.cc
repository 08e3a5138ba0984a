// The writer Job as built for each task: every field asserted, the pod checked as a whole against
// Pod Security "restricted" (pss_restricted.h; so is the webhook's injected agent), and the pod
// settings from flags and spec.writer (spec wins; bad values refused with the field named).
#include "operator/controller/job.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "operator/webhook/admission.h"
#include "tests/operator/controller/pss_restricted.h"

namespace modelswap::op {
namespace {

using testing::RestrictedContainerViolations;
using testing::RestrictedViolations;

Json MvObject(Json writer = nullptr) {
  Json spec = {{"model", "ranker"},
               {"version", "v7"},
               {"storage", {{"claimName", "models"}, {"root", "/data"}}},
               {"source", {{"generate", {{"bytes", 4096}, {"seed", 7}}}}}};
  if (!writer.is_null()) spec["writer"] = writer;
  return {
      {"apiVersion", "modelswap.io/v1alpha1"},
      {"kind", "ModelVersion"},
      {"metadata", {{"name", "ranker-v7"}, {"namespace", "ml"}, {"uid", "u-7"}, {"generation", 2}}},
      {"spec", spec}};
}

ModelVersion ParseOk(const Json& obj) {
  auto mv = ParseModelVersion(obj);
  EXPECT_TRUE(mv.has_value()) << mv.error().ToString();
  return mv ? *mv : ModelVersion{};
}

WriterPodOptions Flags() {
  WriterPodOptions o;
  o.image = "example/sidecar:1";
  o.image_pull_policy = "IfNotPresent";
  return o;
}

const Json& PodSpecOf(const Json& job) {
  return job["spec"]["template"]["spec"];
}

TEST(JobTest, WriteJobFieldByField) {
  Json job = BuildJob(ParseOk(MvObject()), TaskKind::kWrite, "ranker-v7-write", Flags());
  EXPECT_EQ(job["apiVersion"], "batch/v1");
  EXPECT_EQ(job["kind"], "Job");
  EXPECT_EQ(job["metadata"]["name"], "ranker-v7-write");
  EXPECT_EQ(job["metadata"]["namespace"], "ml");
  EXPECT_EQ(job["metadata"]["labels"][kLabelTask], "write");
  EXPECT_EQ(job["metadata"]["labels"][kLabelManagedBy], kManagedBy);
  EXPECT_EQ(job["metadata"]["annotations"][kAnnotationGeneration], "2");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], "u-7");
  EXPECT_EQ(job["spec"]["backoffLimit"], 2);
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], 3600);
  EXPECT_EQ(job["spec"]["ttlSecondsAfterFinished"], 600);
  const Json& spec = PodSpecOf(job);
  EXPECT_EQ(spec["restartPolicy"], "Never");
  EXPECT_EQ(spec["automountServiceAccountToken"], false);
  EXPECT_EQ(spec["securityContext"], Json({{"runAsNonRoot", true},
                                           {"runAsUser", 65532},
                                           {"runAsGroup", 65532},
                                           {"fsGroup", 65532},
                                           {"fsGroupChangePolicy", "OnRootMismatch"},
                                           {"seccompProfile", {{"type", "RuntimeDefault"}}}}));
  EXPECT_FALSE(spec.contains("serviceAccountName"));  // the namespace's default
  EXPECT_FALSE(spec.contains("imagePullSecrets"));
  EXPECT_FALSE(spec.contains("nodeSelector"));
  EXPECT_FALSE(spec.contains("tolerations"));
  // Write pods build chunked versions on a scratch emptyDir (the root filesystem is read-only).
  EXPECT_EQ(spec["volumes"],
            Json::parse(R"([{"name":"models","persistentVolumeClaim":{"claimName":"models"}},
                            {"name":"scratch","emptyDir":{}}])"));
  ASSERT_EQ(spec["containers"].size(), 1u);
  const Json& c = spec["containers"][0];
  EXPECT_EQ(c["name"], "writer");
  EXPECT_EQ(c["image"], "example/sidecar:1");
  EXPECT_EQ(c["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(c["securityContext"], Json({{"allowPrivilegeEscalation", false},
                                        {"readOnlyRootFilesystem", true},
                                        {"runAsNonRoot", true},
                                        {"capabilities", {{"drop", {"ALL"}}}}}));
  EXPECT_EQ(c["volumeMounts"], Json::parse(R"([{"name":"models","mountPath":"/data"},
                                                {"name":"scratch","mountPath":"/scratch"}])"));
  EXPECT_EQ(c["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c["terminationMessagePolicy"], "FallbackToLogsOnError");
  EXPECT_EQ(c["ports"],
            Json::parse(R"([{"name":"progress","containerPort":8472,"protocol":"TCP"}])"));
  std::vector<std::string> args = c["args"];
  std::vector<std::string> want = {
      "write",     "--root",           "/data",    "--model",         "ranker", "--version",
      "v7",        "--generate-bytes", "4096",     "--seed",          "7",      "--reuse-existing",
      "--publish", "--scratch-dir",    "/scratch", "--progress-addr", ":8472"};
  EXPECT_EQ(args, want);
  EXPECT_FALSE(c.contains("resources"));
}

TEST(JobTest, OnlyWriteTasksServeProgressAndPortZeroTurnsItOff) {
  ModelVersion mv = ParseOk(MvObject());
  for (TaskKind k : {TaskKind::kPublish, TaskKind::kRemove}) {
    const Json job = BuildJob(mv, k, "j", Flags());
    const Json& c = PodSpecOf(job)["containers"][0];
    EXPECT_FALSE(c.contains("ports"));
    EXPECT_EQ(c["args"].dump().find("--progress-addr"), std::string::npos);
  }
  WriterPodOptions off = Flags();
  off.progress_port = 0;
  const Json job = BuildJob(mv, TaskKind::kWrite, "j", off);
  const Json& c = PodSpecOf(job)["containers"][0];
  EXPECT_FALSE(c.contains("ports"));
  EXPECT_EQ(c["args"].dump().find("--progress-addr"), std::string::npos);
}

TEST(JobTest, EveryTaskPodPassesPodSecurityRestricted) {
  WriterPodOptions flags = Flags();
  ASSERT_TRUE(ParseWriterPodFlags({"pool=writers"}, R"([{"operator":"Exists"}])", &flags));
  flags.service_account = "writer";
  flags.image_pull_secrets = {"acr"};
  ModelVersion mv = ParseOk(MvObject({{"resources", {{"limits", {{"memory", "1Gi"}}}}}}));
  for (TaskKind k : {TaskKind::kWrite, TaskKind::kPublish, TaskKind::kRemove}) {
    Json job = BuildJob(mv, k, "j", flags);
    EXPECT_EQ(RestrictedViolations(PodSpecOf(job)), std::vector<std::string>{}) << TaskKindName(k);
  }
}

// The checker itself fails on each control it checks.
TEST(JobTest, RestrictedCheckerCatchesEachViolation) {
  const Json job = BuildJob(ParseOk(MvObject()), TaskKind::kWrite, "j", Flags());
  const Json good = PodSpecOf(job);
  ASSERT_TRUE(RestrictedViolations(good).empty());
  auto broken = [&](const std::function<void(Json&)>& f) {
    Json s = good;
    f(s);
    return RestrictedViolations(s).size();
  };
  EXPECT_GT(broken([](Json& s) { s["hostNetwork"] = true; }), 0u);
  EXPECT_GT(broken([](Json& s) {
              s["volumes"].push_back({{"name", "h"}, {"hostPath", {{"path", "/"}}}});
            }),
            0u);
  EXPECT_GT(broken([](Json& s) {
              s["securityContext"].erase("runAsNonRoot");
              s["containers"][0]["securityContext"].erase("runAsNonRoot");
            }),
            0u);
  EXPECT_GT(broken([](Json& s) {
              s["securityContext"].erase("runAsNonRoot");
              s["containers"][0]["securityContext"]["runAsNonRoot"] = false;
            }),
            0u);
  EXPECT_GT(broken([](Json& s) { s["securityContext"].erase("seccompProfile"); }), 0u);
  EXPECT_GT(broken([](Json& s) { s["securityContext"]["runAsUser"] = 0; }), 0u);
  EXPECT_GT(broken([](Json& s) {
              s["containers"][0]["securityContext"].erase("allowPrivilegeEscalation");
            }),
            0u);
  EXPECT_GT(broken([](Json& s) {
              s["containers"][0]["securityContext"]["capabilities"]["drop"] = Json::array();
            }),
            0u);
  EXPECT_GT(broken([](Json& s) {
              s["containers"][0]["securityContext"]["capabilities"]["add"] = {"SYS_ADMIN"};
            }),
            0u);
  EXPECT_GT(broken([](Json& s) { s["containers"][0]["securityContext"]["privileged"] = true; }),
            0u);
  EXPECT_GT(broken([](Json& s) { s["containers"][0]["ports"][0]["hostPort"] = 80; }), 0u);
}

TEST(JobTest, InjectedAgentContainerPassesPodSecurityRestricted) {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", "app"},
                {"namespace", "ml"},
                {"labels", {{kLabelInjectOptIn, "true"}}},
                {"annotations", {{kAnnotationInject, "true"}, {kAnnotationModels, "ranker"}}}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "app:1"}}}}}}};
  for (bool native : {true, false}) {
    auto patch = BuildInjectionPatch(pod, InjectionConfig{}, native, nullptr);
    ASSERT_TRUE(patch.has_value()) << patch.error().ToString();
    Json injected = pod.patch(*patch);
    int agents = 0;
    for (const char* list : {"initContainers", "containers"}) {
      for (const auto& c : injected["spec"].value(list, Json::array())) {
        if (c["name"] == "app") continue;
        ++agents;
        // No pod-level context: the app's pod may set none; the agent must stand on its own.
        EXPECT_EQ(RestrictedContainerViolations(c, Json::object()), std::vector<std::string>{})
            << "native=" << native;
      }
    }
    EXPECT_EQ(agents, 1) << "native=" << native;
  }
}

TEST(JobTest, FlagsGiveTheWriterPodItsSettings) {
  WriterPodOptions flags = Flags();
  flags.service_account = "writer";
  flags.image_pull_secrets = {"acr", "ghcr"};
  ASSERT_TRUE(ParseWriterPodFlags(
      {"kubernetes.azure.com/agentpool=writers", "disk=ssd"},
      R"([{"key":"dedicated","operator":"Equal","value":"writers","effect":"NoSchedule"}])",
      &flags));
  const Json spec = PodSpecOf(BuildJob(ParseOk(MvObject()), TaskKind::kWrite, "j", flags));
  EXPECT_EQ(spec["serviceAccountName"], "writer");
  EXPECT_EQ(spec["imagePullSecrets"], Json::parse(R"([{"name":"acr"},{"name":"ghcr"}])"));
  EXPECT_EQ(spec["nodeSelector"],
            Json::parse(R"({"disk":"ssd","kubernetes.azure.com/agentpool":"writers"})"));
  EXPECT_EQ(spec["tolerations"], Json::parse(R"([{"key":"dedicated","operator":"Equal",
                                               "value":"writers","effect":"NoSchedule"}])"));
}

TEST(JobTest, SpecWriterWinsOverFlagsFieldByField) {
  WriterPodOptions flags = Flags();
  flags.service_account = "writer";
  flags.image_pull_secrets = {"acr"};
  ASSERT_TRUE(ParseWriterPodFlags({"pool=writers"}, R"([{"operator":"Exists"}])", &flags));
  Json writer = {{"serviceAccountName", "ranker-writer"},
                 {"imagePullSecrets", {{{"name", "private"}}}},
                 {"nodeSelector", {{"pool", "gpu"}}},
                 {"tolerations", Json::array()}};
  const Json spec = PodSpecOf(BuildJob(ParseOk(MvObject(writer)), TaskKind::kWrite, "j", flags));
  EXPECT_EQ(spec["serviceAccountName"], "ranker-writer");
  EXPECT_EQ(spec["imagePullSecrets"], Json::parse(R"([{"name":"private"}])"));
  EXPECT_EQ(spec["nodeSelector"], Json::parse(R"({"pool":"gpu"})"));  // replaced, not merged
  EXPECT_FALSE(spec.contains("tolerations"));                         // [] clears the flag's
  // Unset fields keep the flags' values.
  const Json partial = PodSpecOf(BuildJob(ParseOk(MvObject({{"nodeSelector", {{"pool", "gpu"}}}})),
                                          TaskKind::kWrite, "j", flags));
  EXPECT_EQ(partial["serviceAccountName"], "writer");
  EXPECT_EQ(partial["imagePullSecrets"], Json::parse(R"([{"name":"acr"}])"));
  EXPECT_EQ(partial["tolerations"], Json::parse(R"([{"operator":"Exists"}])"));
}

TEST(JobTest, BadFlagsAreRefusedNamingTheFlag) {
  struct Case {
    std::vector<std::string> selector;
    std::string tolerations, sa, secret, policy, want;
  };
  const Case cases[] = {
      {{"pool"}, "", "", "", "", "--writer-node-selector pool: expected KEY=VALUE"},
      {{"bad key=x"}, "", "", "", "", "is not a qualified name"},
      {{"pool=a b"}, "", "", "", "", "is not a label value"},
      {{"pool=a", "pool=b"}, "", "", "", "", "given twice"},
      {{}, "{not json", "", "", "", "--writer-tolerations: not JSON"},
      {{}, R"({"key":"a"})", "", "", "", "must be a list"},
      {{}, R"([{"key":"a","operator":"Exists","value":"x"}])", "", "", "", "must be empty when"},
      {{}, R"([{"operator":"Equal"}])", "", "", "", "must be Exists when key is empty"},
      {{}, R"([{"key":"a","effect":"Sometimes"}])", "", "", "", ".effect"},
      {{},
       R"([{"key":"a","tolerationSeconds":5}])",
       "",
       "",
       "",
       "only applies with effect NoExecute"},
      {{}, R"([{"key":"a","colour":"red"}])", "", "", "", "unknown field \"colour\""},
      {{}, "", "Writer_SA", "", "", "--writer-service-account"},
      {{}, "", "", "-acr", "", "--writer-image-pull-secret"},
      {{}, "", "", "", "Sometimes", "--writer-image-pull-policy"},
  };
  for (const Case& c : cases) {
    WriterPodOptions o = Flags();
    o.service_account = c.sa;
    if (!c.secret.empty()) o.image_pull_secrets = {c.secret};
    if (!c.policy.empty()) o.image_pull_policy = c.policy;
    Status st = ParseWriterPodFlags(c.selector, c.tolerations, &o);
    ASSERT_FALSE(st) << c.want;
    EXPECT_NE(st.error().message().find(c.want), std::string::npos) << st.error().message();
  }
}

TEST(JobTest, BadSpecWriterPodFieldsAreRefusedNamingTheField) {
  const std::pair<Json, std::string> cases[] = {
      {{{"serviceAccountName", "Bad_Name"}}, "spec.writer.serviceAccountName"},
      {{{"imagePullSecrets", {"acr"}}}, "spec.writer.imagePullSecrets[0].name"},
      {{{"nodeSelector", {{"pool", 3}}}}, "spec.writer.nodeSelector.pool must be a string"},
      {{{"nodeSelector", {{"-pool", "x"}}}}, "spec.writer.nodeSelector"},
      {{{"tolerations", {{{"operator", "Maybe"}}}}}, "spec.writer.tolerations[0].operator"},
  };
  for (const auto& [writer, want] : cases) {
    auto mv = ParseModelVersion(MvObject(writer));
    ASSERT_FALSE(mv.has_value()) << want;
    EXPECT_NE(mv.error().message().find(want), std::string::npos) << mv.error().message();
  }
}

// The operator binary takes the writer flags in the forms the chart renders them (deployment.yaml:
// --flag=value, one per secret and node label, tolerations as toJson), and refuses bad ones at
// start, naming the flag: before it looks for a cluster (exit 2 either way: the message says
// which).
TEST(JobTest, OperatorBinaryParsesTheChartsWriterFlags) {
  std::vector<std::string> good = {
      MODELSWAP_OPERATOR_BIN,
      "--kubeconfig=/nonexistent/kubeconfig",
      "--writer-service-account=model-writer",
      "--writer-image-pull-secret=acr-pull",
      "--writer-image-pull-secret=ghcr-pull",
      "--writer-node-selector=kubernetes.azure.com/agentpool=writers",
      "--writer-node-selector=disk=ssd",
      R"(--writer-tolerations=[{"effect":"NoSchedule","key":"dedicated","operator":"Equal","value":"writers"}])",
      "--writer-image-pull-policy=Always"};
  auto run = RunProcess(good, {}, std::chrono::seconds(20));
  ASSERT_TRUE(run.has_value()) << run.error().ToString();
  EXPECT_EQ(run->exit_code, 2);
  EXPECT_NE(run->err.find("nonexistent"), std::string::npos) << run->err;  // got to the config
  EXPECT_EQ(run->err.find("--writer"), std::string::npos) << run->err;
  std::vector<std::string> bad = good;
  bad[5] = "--writer-node-selector=disk";
  run = RunProcess(bad, {}, std::chrono::seconds(20));
  ASSERT_TRUE(run.has_value()) << run.error().ToString();
  EXPECT_EQ(run->exit_code, 2);
  EXPECT_NE(run->err.find("--writer-node-selector disk: expected KEY=VALUE"), std::string::npos)
      << run->err;
}

}  // namespace
}  // namespace modelswap::op
