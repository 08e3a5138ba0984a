// The fake API server with a stand-in job controller; see fake_cluster.h.
#include "tests/e2e/fake_cluster.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>

#include "common/env.h"
#include "operator/kube/kubeconfig.h"

namespace modelswap::op::e2e {
namespace {

std::string Now() {
  return FormatTime(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

Json Condition(const char* type, const char* reason, const char* message, const std::string& t) {
  return {{"type", type},     {"status", "True"},  {"lastProbeTime", t}, {"lastTransitionTime", t},
          {"reason", reason}, {"message", message}};
}

bool Finished(const Json& job) {
  for (const auto& c : Field<Json>(job, {"status", "conditions"}, Json::array())) {
    std::string type = Field<std::string>(c, {"type"});
    if ((type == "Complete" || type == "Failed") && Field<std::string>(c, {"status"}) == "True")
      return true;
  }
  return false;
}

}  // namespace

FakeCluster* FakeCluster::Get() {
  // Destroyed at exit, after every test: the controller thread is joined then.
  static std::unique_ptr<FakeCluster> cluster(new FakeCluster());
  return cluster.get();
}

FakeCluster::FakeCluster() {
  kubeconfig_ = dir_ / "kubeconfig";
  std::ofstream(kubeconfig_) << "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
                                "contexts: [{name: fake, context: {cluster: fake, user: e2e}}]\n"
                                "clusters: [{name: fake, cluster: {server: \""
                             << server_.url()
                             << "\"}}]\n"
                                "users: [{name: e2e, user: {token: e2e}}]\n";
  auto cfg = LoadKubeconfig(DefaultEnv(), kubeconfig_);
  if (cfg) {
    auto c = HttpKubeClient::Create(DefaultEnv(), *cfg);
    if (c) client_ = std::move(*c);
  }
  if (!client_) std::abort();  // a kubeconfig this file wrote itself: cannot fail
  server_.SetJobCreatedHook([this](const Json& job) {
    // Called inside the fake's request handler: only queue, the loop does the writes.
    std::lock_guard lock(mu_);
    created_.push_back(job);
  });
  thread_ = std::thread([this] { Run(); });
}

FakeCluster::~FakeCluster() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

void FakeCluster::Run() {
  while (!stop_.load(std::memory_order_relaxed)) {
    std::deque<Json> jobs;
    {
      std::lock_guard lock(mu_);
      jobs.swap(created_);
    }
    for (const Json& job : jobs)
      StartPod(job);
    FinishJobs();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void FakeCluster::StartPod(const Json& job) {
  const std::string ns = NamespaceOf(job), name = NameOf(job);
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"generateName", name + "-"},
                {"namespace", ns},
                {"labels", Field<Json>(job, {"spec", "template", "metadata", "labels"})},
                {"finalizers", {"batch.kubernetes.io/job-tracking"}},
                {"ownerReferences",
                 {{{"apiVersion", "batch/v1"},
                   {"kind", "Job"},
                   {"name", name},
                   {"uid", UidOf(job)},
                   {"controller", true},
                   {"blockOwnerDeletion", true}}}}}},
              {"spec", Field<Json>(job, {"spec", "template", "spec"})}};
  if (auto st = client_->Create(kPods, ns, pod); !st) {
    spdlog::warn("fake job controller: pod for {}: {}", name, st.error().ToString());
    return;
  }
  Json status = {{"startTime", Now()},
                 {"active", 1},
                 {"ready", 0},
                 {"terminating", 0},
                 {"uncountedTerminatedPods", Json::object()}};
  (void)client_->Patch(kJobs, ns, name, PatchType::kMerge, {{"status", status}}, true);
}

void FakeCluster::FinishJobs() {
  for (const Json& pod : server_.List(kPods)) {
    const std::string phase = Field<std::string>(pod, {"status", "phase"});
    const std::string job_name = LabelOf(pod, "job-name");
    if (job_name.empty() || (phase != "Succeeded" && phase != "Failed")) continue;
    const std::string ns = NamespaceOf(pod);
    auto job = server_.Get(kJobs, ns, job_name);
    if (job && !Finished(*job)) {
      const std::string t = Now();
      Json status = {{"active", nullptr},
                     {"ready", 0},
                     {"terminating", 0},
                     {"uncountedTerminatedPods", Json::object()}};
      if (phase == "Succeeded") {
        status["conditions"] = {Condition("SuccessCriteriaMet", "CompletionsReached",
                                          "Reached expected number of succeeded pods", t),
                                Condition("Complete", "CompletionsReached",
                                          "Reached expected number of succeeded pods", t)};
        status["succeeded"] = 1;
        status["completionTime"] = t;
      } else {
        status["conditions"] = {Condition("FailureTarget", "BackoffLimitExceeded",
                                          "Job has reached the specified backoff limit", t),
                                Condition("Failed", "BackoffLimitExceeded",
                                          "Job has reached the specified backoff limit", t)};
        status["failed"] = 1;
      }
      (void)client_->Patch(kJobs, ns, job_name, PatchType::kMerge, {{"status", status}}, true);
    }
    if (HasFinalizer(pod, "batch.kubernetes.io/job-tracking")) {
      (void)client_->Patch(kPods, ns, NameOf(pod), PatchType::kMerge,
                           {{"metadata", {{"finalizers", nullptr}}}});
    }
  }
}

}  // namespace modelswap::op::e2e
