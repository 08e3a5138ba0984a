// The end-to-end suite's shared fixture: where the API server is, a client for it, a namespace of
// its own per test, the CRD from the chart, the operator (in this process or as a real
// subprocess of the built binary), and "playing the kubelet" for writer pods where no kubelet
// runs. Every wait is bounded and says on failure what it last saw.
//
// Targets, in order (README.md beside this file):
//   - MODELSWAP_E2E_KUBECONFIG: a real API server (a disposable cluster, or the throwaway control
//     plane scripts/envtest.sh starts; MODELSWAP_E2E_CONTROL_PLANE then names its script that
//     restarts kube-apiserver);
//   - MODELSWAP_E2E_FAKE=1: the in-repo fake API server (tests/operator/fake) started in this
//     process, with a stand-in job controller (fake_cluster.h). It serves no CRDs, validation,
//     discovery, Table or admission webhooks (tests needing those skip with a line), and
//     Namespaces only as objects to GET (the test's own namespace is not created there);
//   - neither: every test skips with one line.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/controller/controller.h"
#include "operator/controller/kube_backend.h"
#include "operator/kube/http_client.h"
#include "operator/kube/object.h"
#include "operator/kube/resource.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::op::e2e {

inline const ResourceRef kCrds{"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                               "CustomResourceDefinition"};
inline const ResourceRef kNamespaces{"", "v1", "namespaces", "Namespace"};

// Where the suite runs; null when it has no API server.
struct Target {
  std::string kubeconfig;
  bool fake = false;         // the in-process fake API server
  std::string restart_hook;  // script restarting kube-apiserver ("" = none, e.g. a real cluster)
};
const Target* GetTarget();
// Restarts the API server under whatever runs (hook script or fake); false if there is no way.
bool CanRestartApiServer();
Status RestartApiServer();

// Polls `cond` every 200 ms until it returns true or `limit` passes. `cond` fills `seen` with
// what it observed, which the failure message quotes.
::testing::AssertionResult Eventually(const std::string& what, std::chrono::seconds limit,
                                      const std::function<bool(std::string& seen)>& cond);

std::string RandomSuffix();  // 6 characters [a-z0-9]
std::string NowRfc3339();    // UTC, seconds

// The writer's result line (sidecar/commands/file_commands.cc RunWrite with --publish), as the
// termination message carries it: one JSON line ending in "\n".
std::string WriteResult(const std::string& root, const std::string& model,
                        const std::string& version, int64_t manifest_generation);
// A publish task's result (ManifestJson in the same file).
std::string PublishResult(const std::string& root, const std::string& model,
                          const std::string& version, int64_t manifest_generation);

// modelswap-operator as a child process, its output in files under `dir`.
class OperatorProcess {
 public:
  OperatorProcess(std::string dir, std::string name)
      : dir_(std::move(dir)), name_(std::move(name)) {}
  ~OperatorProcess();
  OperatorProcess(const OperatorProcess&) = delete;
  OperatorProcess& operator=(const OperatorProcess&) = delete;
  Status Start(const std::vector<std::string>& args);
  void Kill(int sig);  // and reap (SIGKILL: a crash; SIGTERM: graceful, waited for up to 30 s)
  bool Running();
  std::string Log() const;  // the end of its stderr over every run
  const std::string& name() const { return name_; }

 private:
  std::string dir_, name_;
  pid_t pid_ = -1;
  int runs_ = 0;
  int exit_code_ = -1;                  // of the last run that ended by itself
  std::vector<std::string> err_paths_;  // stderr of every run, oldest first
};

// The operator in this process, as cluster mode runs it without leader election: informers,
// reconciler and workers over the test's namespace.
class InProcessOperator {
 public:
  InProcessOperator(KubeClient* client, const std::string& ns);
  ~InProcessOperator();
  // Starts the informers, waits (bounded) for their first lists, then starts the workers.
  Status Start();

 private:
  std::unique_ptr<KubeBackend> backend_;
  std::unique_ptr<Controller> controller_;
  bool started_ = false;
};

class E2ETest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Creates or updates the ModelVersion CRD from the chart (templates/crd-modelversion.yaml)
  // and waits until it is Established. Use with ASSERT_NO_FATAL_FAILURE. No-op on the fake.
  void ApplyCrd();
  Json Crd();  // the CRD as the chart renders it

  Json Mv(const std::string& name, const std::string& model, const std::string& version,
          const Json& spec_extra = Json::object()) const;
  Json GetOr(const ResourceRef& r, const std::string& name);  // null if absent
  std::string MvSummary(const std::string& name);  // phase, jobName, conditions, for messages
  std::string Phase(const std::string& name);
  // Jobs the operator made for a ModelVersion (label modelswap.io/modelversion).
  std::vector<Json> JobsOf(const std::string& mv_name);
  std::vector<Json> Events(const std::string& involved_name);
  // Waits for the Job to exist; its JSON (null on timeout, with a test failure).
  Json WaitForJob(const std::string& job_name, std::chrono::seconds limit);

  // Plays the kubelet for the Job's writer pod: waits for the pod the job controller creates,
  // then writes pods/status as a kubelet would (terminated container with `message` as its
  // termination message, phase Succeeded for exit code 0, else Failed). kNotFound: no pod
  // appeared (no job controller); kFailedPrecondition: the pod was scheduled to a node (a real
  // kubelet runs it: not faked). Use E2E_PLAY_KUBELET.
  Status PlayKubelet(const std::string& job_name, int exit_code, const std::string& message);

  // Arguments of an operator subprocess watching this test's namespace.
  std::vector<std::string> OperatorArgs() const;
  // Starts one (owned by the fixture, SIGKILLed in TearDown); null with a test failure.
  OperatorProcess* StartOperator(const std::string& name,
                                 const std::vector<std::string>& extra = {});

  const Target* target_ = nullptr;
  std::unique_ptr<HttpKubeClient> client_;
  ClusterConfig config_;
  std::string ns_;
  bool ns_created_ = false;
  testing::TempDir dir_;
  std::vector<std::unique_ptr<OperatorProcess>> operators_;  // killed in TearDown
};

inline constexpr const char* kSidecarImage = "example.invalid/modelswap-sidecar:e2e";
inline constexpr const char* kRoot = "/models";

}  // namespace modelswap::op::e2e

// Skips a test the fake API server cannot serve, with one line naming what is missing.
#define E2E_REQUIRE_REAL_SERVER(what)                   \
  if (target_->fake)                                    \
  GTEST_SKIP() << "the fake API server has no " << what \
               << ": this test runs against a real one (MODELSWAP_E2E_KUBECONFIG)"

// Plays the kubelet, or skips the test with the reason when no job controller creates pods or a
// real kubelet runs them.
#define E2E_PLAY_KUBELET(job_name, exit_code, termination_message)                   \
  do {                                                                               \
    ::modelswap::Status st_ = PlayKubelet(job_name, exit_code, termination_message); \
    if (!st_ && (st_.error().code() == ::modelswap::Code::kNotFound ||               \
                 st_.error().code() == ::modelswap::Code::kFailedPrecondition))      \
      GTEST_SKIP() << st_.error().message();                                         \
    ASSERT_TRUE(st_) << st_.error().ToString();                                      \
  } while (0)
