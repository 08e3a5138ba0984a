// The end-to-end suite's shared fixture; see e2e_fixture.h.
#include "tests/e2e/e2e_fixture.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "common/env.h"
#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "operator/standalone/yaml_json.h"
#include "tests/e2e/fake_cluster.h"

namespace modelswap::op::e2e {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

const Target* GetTarget() {
  static const std::optional<Target> target = []() -> std::optional<Target> {
    if (std::string kc = Env("MODELSWAP_E2E_KUBECONFIG"); !kc.empty()) {
      return Target{
          .kubeconfig = kc, .fake = false, .restart_hook = Env("MODELSWAP_E2E_CONTROL_PLANE")};
    }
    if (Env("MODELSWAP_E2E_FAKE") == "1") {
      return Target{
          .kubeconfig = FakeCluster::Get()->kubeconfig(), .fake = true, .restart_hook = ""};
    }
    return std::nullopt;
  }();
  return target ? &*target : nullptr;
}

bool CanRestartApiServer() {
  const Target* t = GetTarget();
  return t != nullptr && (t->fake || !t->restart_hook.empty());
}

Status RestartApiServer() {
  const Target* t = GetTarget();
  if (t == nullptr) return Fail(Code::kFailedPrecondition, "no API server");
  if (t->fake) {
    FakeCluster::Get()->RestartApiServer();
    return {};
  }
  if (t->restart_hook.empty()) return Fail(Code::kFailedPrecondition, "no restart hook");
  // The hook waits for /readyz itself (60 s at most, scripts/envtest.sh).
  auto r = RunProcess({t->restart_hook}, {}, std::chrono::seconds(120));
  if (!r) return Fail(r.error());
  if (r->exit_code != 0) {
    return Fail(Code::kInternal,
                t->restart_hook + " exited " + std::to_string(r->exit_code) + ": " +
                    r->err.substr(r->err.size() > 2000 ? r->err.size() - 2000 : 0));
  }
  return {};
}

::testing::AssertionResult Eventually(const std::string& what, std::chrono::seconds limit,
                                      const std::function<bool(std::string& seen)>& cond) {
  const auto end = std::chrono::steady_clock::now() + limit;
  std::string seen;
  while (true) {
    seen.clear();
    if (cond(seen)) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return ::testing::AssertionFailure()
         << "timed out after " << limit.count() << " s waiting for " << what
         << "; last seen: " << (seen.empty() ? "(nothing)" : seen);
}

std::string RandomSuffix() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 6; ++i)
    s.push_back(kChars[rd() % 36]);
  return s;
}

std::string NowRfc3339() {
  return FormatTime(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() *
                    1'000'000'000);
}

namespace {
std::string FakeChecksum(const std::string& model, const std::string& version) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016zx", std::hash<std::string>{}(model + "/" + version));
  return std::string("xxh3:") + hex;
}
}  // namespace

std::string WriteResult(const std::string& root, const std::string& model,
                        const std::string& version, int64_t manifest_generation) {
  Json out = {{"model", model},
              {"version", version},
              {"path", root + "/" + model + "/versions/" + version + ".msf"},
              {"bytes", 1048576},
              {"entries", 1024},
              {"checksum", FakeChecksum(model, version)},
              {"seconds", 0.25},
              {"manifest_generation", manifest_generation}};
  return out.dump() + "\n";
}

std::string PublishResult(const std::string& root, const std::string& model,
                          const std::string& version, int64_t manifest_generation) {
  Json out = {{"model", model},
              {"version", version},
              {"path", root + "/" + model + "/versions/" + version + ".msf"},
              {"bytes", 1048576},
              {"checksum", FakeChecksum(model, version)},
              {"manifest_generation", manifest_generation}};
  return out.dump() + "\n";
}

// --- OperatorProcess -------------------------------------------------------------------------

OperatorProcess::~OperatorProcess() {
  if (pid_ > 0) Kill(SIGKILL);
}

Status OperatorProcess::Start(const std::vector<std::string>& args) {
  if (pid_ > 0) return Fail(Code::kFailedPrecondition, name_ + " already runs");
  std::vector<std::string> argv = {MODELSWAP_OPERATOR_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  // One file per run, so a restarted process keeps the earlier run's log.
  std::string err_path = dir_ + "/" + name_ + ".err." + std::to_string(runs_++);
  MS_ASSIGN_OR_RETURN(pid_, SpawnProcess(argv, dir_ + "/" + name_ + ".out", err_path));
  err_paths_.push_back(err_path);
  return {};
}

void OperatorProcess::Kill(int sig) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  if (sig != SIGKILL) {
    for (int i = 0; i < 300 && !TryReap(pid_).has_value(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (::kill(pid_, 0) == 0) ::kill(pid_, SIGKILL);
  }
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool OperatorProcess::Running() {
  if (pid_ <= 0) return false;
  if (auto code = TryReap(pid_); code.has_value()) {
    exit_code_ = *code;
    pid_ = -1;
    return false;
  }
  return true;
}

std::string OperatorProcess::Log() const {
  std::string all;
  for (const auto& p : err_paths_)
    all += "---- " + p + "\n" + ReadText(p);
  if (all.size() > 6000) all = "..." + all.substr(all.size() - 6000);
  return name_ + " (exit " + std::to_string(exit_code_) + ") log:\n" + all;
}

// --- InProcessOperator -----------------------------------------------------------------------

InProcessOperator::InProcessOperator(KubeClient* client, const std::string& ns)
    : backend_(std::make_unique<KubeBackend>(
          client, DefaultEnv(),
          KubeBackendOptions{.ns = ns, .sidecar_image = kSidecarImage, .instance = "e2e"})),
      controller_(std::make_unique<Controller>(backend_.get(), DefaultEnv(), nullptr,
                                               ControllerOptions{.workers = 2, .queue = {}})) {}

InProcessOperator::~InProcessOperator() {
  if (!started_) return;
  controller_->Stop();
  backend_->Stop();
}

Status InProcessOperator::Start() {
  backend_->Start(controller_.get());
  started_ = true;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!backend_->HasSynced()) {
    if (std::chrono::steady_clock::now() >= end)
      return Fail(Code::kDeadlineExceeded, "informers not synced after 60 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  controller_->Start();
  return {};
}

// --- E2ETest ---------------------------------------------------------------------------------

void E2ETest::SetUp() {
  target_ = GetTarget();
  if (target_ == nullptr) {
    GTEST_SKIP() << "e2e: no API server: set MODELSWAP_E2E_KUBECONFIG (or KUBEBUILDER_ASSETS "
                    "with scripts/test.sh), or MODELSWAP_E2E_FAKE=1 for the in-repo fake";
  }
  auto cfg = LoadKubeconfig(DefaultEnv(), target_->kubeconfig);
  ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
  config_ = *cfg;
  auto client = HttpKubeClient::Create(DefaultEnv(), config_);
  ASSERT_TRUE(client.has_value()) << client.error().ToString();
  client_ = std::move(*client);
  ns_ = "ms-e2e-" + RandomSuffix();
  if (target_->fake) return;  // the fake serves any namespace without a Namespace object
  Json ns = {{"apiVersion", "v1"},
             {"kind", "Namespace"},
             {"metadata", {{"name", ns_}, {"labels", {{"modelswap.io/e2e", "true"}}}}}};
  auto created = client_->Create(kNamespaces, "", ns);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  ns_created_ = true;
}

void E2ETest::TearDown() {
  for (auto& op : operators_) {
    if (HasFailure()) std::cerr << op->Log() << "\n";
    op->Kill(SIGKILL);
  }
  operators_.clear();
  if (!client_ || ns_.empty()) return;
  // With the operator gone nobody releases its finalizer: drop it, or the namespace would hang
  // in Terminating on a cluster that outlives the test.
  if (auto mvs = client_->List(kModelVersions, ns_, {}); mvs) {
    for (const auto& mv : Field<Json>(*mvs, {"items"}, Json::array())) {
      (void)client_->Patch(kModelVersions, ns_, NameOf(mv), PatchType::kMerge,
                           {{"metadata", {{"finalizers", nullptr}}}});
    }
  }
  if (ns_created_) (void)client_->Delete(kNamespaces, "", ns_, "Background");
}

Json E2ETest::Crd() {
  // The chart's template is the CRD wrapped in `{{- if .Values.crds.install }}`; test_chart.py
  // keeps it identical to crds/modelversion.yaml plus the resource-policy annotation.
  std::istringstream in(
      ReadText(std::string(MODELSWAP_CHART_DIR) + "/templates/crd-modelversion.yaml"));
  std::string yaml, line;
  while (std::getline(in, line)) {
    if (line.rfind("{{", 0) != 0) yaml += line + "\n";
  }
  auto docs = YamlToJson(yaml);
  if (!docs || docs->size() != 1) return Json();
  return (*docs)[0];
}

void E2ETest::ApplyCrd() {
  if (target_->fake) return;  // the fake serves ModelVersions without a CRD
  Json crd = Crd();
  ASSERT_TRUE(crd.is_object()) << "templates/crd-modelversion.yaml does not parse";
  // Tests may run in parallel: create, else update from the latest (409 -> retry).
  Status applied = Fail(Code::kAborted, "not tried");
  for (int attempt = 0; attempt < 10 && !applied; ++attempt) {
    auto created = client_->Create(kCrds, "", crd);
    if (created) {
      applied = {};
      break;
    }
    if (created.error().code() != Code::kAlreadyExists) {
      applied = Fail(created.error());
      break;
    }
    auto current = client_->Get(kCrds, "", NameOf(crd));
    if (!current) continue;
    Json next = crd;
    next["metadata"]["resourceVersion"] = ResourceVersionOf(*current);
    auto updated = client_->Update(kCrds, "", next);
    applied = updated ? Status{} : Status(Fail(updated.error()));
  }
  ASSERT_TRUE(applied) << applied.error().ToString();
  ASSERT_TRUE(Eventually(
      "the CRD to be Established and ModelVersions served", std::chrono::seconds(60),
      [&](std::string& seen) {
        auto c = client_->Get(kCrds, "", NameOf(crd));
        if (!c) {
          seen = c.error().ToString();
          return false;
        }
        bool established = false;
        for (const auto& cond : Field<Json>(*c, {"status", "conditions"}, Json::array())) {
          seen += cond.value("type", "") + "=" + cond.value("status", "") + " ";
          if (cond.value("type", "") == "Established" && cond.value("status", "") == "True")
            established = true;
        }
        if (!established) return false;
        auto list = client_->List(kModelVersions, ns_, {});
        if (!list) seen += list.error().ToString();
        return list.has_value();
      }));
}

Json E2ETest::Mv(const std::string& name, const std::string& model, const std::string& version,
                 const Json& spec_extra) const {
  Json spec = {{"model", model},
               {"version", version},
               {"storage", {{"claimName", "models"}, {"root", kRoot}}},
               {"source", {{"generate", {{"bytes", 1048576}, {"seed", 1}}}}}};
  for (const auto& [k, v] : spec_extra.items())
    spec[k] = v;
  return {{"apiVersion", "modelswap.io/v1alpha1"},
          {"kind", "ModelVersion"},
          {"metadata", {{"name", name}, {"namespace", ns_}}},
          {"spec", spec}};
}

Json E2ETest::GetOr(const ResourceRef& r, const std::string& name) {
  auto o = client_->Get(r, ns_, name);
  return o ? *o : Json();
}

std::string E2ETest::MvSummary(const std::string& name) {
  auto o = client_->Get(kModelVersions, ns_, name);
  if (!o) return name + ": " + o.error().ToString();
  std::string s = name + ": phase=" + Field<std::string>(*o, {"status", "phase"}) +
                  " jobName=" + Field<std::string>(*o, {"status", "jobName"}) +
                  " observedGeneration=" +
                  std::to_string(Field<int64_t>(*o, {"status", "observedGeneration"})) +
                  " generation=" + std::to_string(GenerationOf(*o)) + " message=\"" +
                  Field<std::string>(*o, {"status", "message"}) + "\" conditions=[";
  for (const auto& c : Field<Json>(*o, {"status", "conditions"}, Json::array())) {
    s += Field<std::string>(c, {"type"}) + "=" + Field<std::string>(c, {"status"}) + "(" +
         Field<std::string>(c, {"reason"}) + ") ";
  }
  return s + "] finalizers=" + Field<Json>(*o, {"metadata", "finalizers"}, Json::array()).dump();
}

std::string E2ETest::Phase(const std::string& name) {
  auto o = client_->Get(kModelVersions, ns_, name);
  return o ? Field<std::string>(*o, {"status", "phase"}) : "";
}

std::vector<Json> E2ETest::JobsOf(const std::string& mv_name) {
  ListOptions opts;
  opts.label_selector = std::string(kLabelOwner) + "=" + mv_name;
  auto list = client_->List(kJobs, ns_, opts);
  std::vector<Json> out;
  if (!list) return out;
  for (const auto& j : Field<Json>(*list, {"items"}, Json::array()))
    out.push_back(j);
  return out;
}

std::vector<Json> E2ETest::Events(const std::string& involved_name) {
  std::vector<Json> out;
  auto list = client_->List(kEvents, ns_, {});  // filtered here: the fake has no fieldSelector
  if (!list) return out;
  for (const auto& e : Field<Json>(*list, {"items"}, Json::array())) {
    if (Field<std::string>(e, {"involvedObject", "name"}) == involved_name) out.push_back(e);
  }
  return out;
}

Json E2ETest::WaitForJob(const std::string& job_name, std::chrono::seconds limit) {
  Json job;
  EXPECT_TRUE(Eventually("Job " + job_name, limit, [&](std::string& seen) {
    auto j = client_->Get(kJobs, ns_, job_name);
    if (!j) {
      seen = j.error().ToString();
      return false;
    }
    job = *j;
    return true;
  }));
  return job;
}

Status E2ETest::PlayKubelet(const std::string& job_name, int exit_code,
                            const std::string& message) {
  if (!target_->fake) {
    // A cluster with nodes runs writer pods for real: nothing to play.
    auto nodes = client_->List(ResourceRef{"", "v1", "nodes", "Node"}, "", {});
    if (nodes && !Field<Json>(*nodes, {"items"}, Json::array()).empty()) {
      return Fail(Code::kFailedPrecondition,
                  "the cluster has nodes: a real kubelet runs writer pods (image " +
                      std::string(kSidecarImage) +
                      ", never pulled), so this test, which plays the kubelet, is skipped");
    }
  }
  Json pod;
  ListOptions opts;
  opts.label_selector = "job-name=" + job_name;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (pod.is_null()) {
    if (auto pods = client_->List(kPods, ns_, opts); pods) {
      for (const auto& p : Field<Json>(*pods, {"items"}, Json::array())) {
        std::string phase = Field<std::string>(p, {"status", "phase"});
        if (phase != "Succeeded" && phase != "Failed" && !IsBeingDeleted(p)) pod = p;
      }
    }
    if (!pod.is_null()) break;
    if (std::chrono::steady_clock::now() >= end) {
      return Fail(Code::kNotFound,
                  "no pod of Job " + job_name +
                      " appeared within 30 s: no job controller (kube-controller-manager) runs, "
                      "so writer Jobs never complete; this test is skipped");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (std::string node = Field<std::string>(pod, {"spec", "nodeName"}); !node.empty()) {
    return Fail(Code::kFailedPrecondition, "pod " + NameOf(pod) + " was scheduled to node " + node +
                                               ": a real kubelet runs it; not faked");
  }
  // What a kubelet writes for a finished container (v1.32/job-succeeded-by-controller.http).
  const std::string t = NowRfc3339();
  const std::string image =
      Field<std::string>(Field<Json>(pod, {"spec", "containers"}, Json::array())[0], {"image"});
  const std::string cid = "containerd://e2e" + RandomSuffix();
  const bool ok = exit_code == 0;
  Json terminated = {{"exitCode", exit_code}, {"reason", ok ? "Completed" : "Error"},
                     {"message", message},    {"startedAt", t},
                     {"finishedAt", t},       {"containerID", cid}};
  Json status = {{"phase", ok ? "Succeeded" : "Failed"},
                 {"conditions",
                  {{{"type", "Ready"},
                    {"status", "False"},
                    {"reason", ok ? "PodCompleted" : "PodFailed"},
                    {"lastTransitionTime", t}}}},
                 {"containerStatuses",
                  {{{"name", "writer"},
                    {"image", image},
                    {"imageID", image + "@sha256:0000"},
                    {"containerID", cid},
                    {"ready", false},
                    {"restartCount", 0},
                    {"started", false},
                    {"state", {{"terminated", terminated}}}}}}};
  auto patched =
      client_->Patch(kPods, ns_, NameOf(pod), PatchType::kMerge, {{"status", status}}, true);
  if (!patched) return Fail(patched.error());
  return {};
}

std::vector<std::string> E2ETest::OperatorArgs() const {
  return {"--kubeconfig", target_->kubeconfig, "--namespace", ns_,           "--sidecar-image",
          kSidecarImage,  "--metrics-addr",    "127.0.0.1:0", "--log-level", "info"};
}

OperatorProcess* E2ETest::StartOperator(const std::string& name,
                                        const std::vector<std::string>& extra) {
  auto op = std::make_unique<OperatorProcess>(dir_.path(), name);
  std::vector<std::string> args = OperatorArgs();
  args.insert(args.end(), extra.begin(), extra.end());
  Status st = op->Start(args);
  EXPECT_TRUE(st) << st.error().ToString();
  if (!st) return nullptr;
  operators_.push_back(std::move(op));
  return operators_.back().get();
}

}  // namespace modelswap::op::e2e
