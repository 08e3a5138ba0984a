// End to end against a real cluster (skipped unless MODELSWAP_E2E_KUBECONFIG is set):
// the CRD is applied, a ModelVersion created, the operator (in this process) creates the
// writer Job with the right spec and sets the status; leader election over a real Lease (one
// holder, hand-over on release, one winner when two replicas race); cleanup deletes what the
// test made.
// MODELSWAP_E2E_NAMESPACE picks the namespace (default "default"). The writer Job need not
// succeed (the cluster may have no PVC "models"): the test checks what the operator controls.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "operator/api/well_known.h"
#include "operator/controller/controller.h"
#include "operator/controller/kube_backend.h"
#include "operator/kube/api_error.h"
#include "operator/kube/http_client.h"
#include "operator/kube/leaderelection.h"
#include "operator/standalone/yaml_json.h"

namespace modelswap::op {
namespace {

const ResourceRef kCrds{"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                        "CustomResourceDefinition"};

bool WaitFor(const std::function<bool()>& cond, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return cond();
}

class E2E : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* kc = std::getenv("MODELSWAP_E2E_KUBECONFIG");
    if (kc == nullptr || *kc == '\0') {
      GTEST_SKIP() << "MODELSWAP_E2E_KUBECONFIG is not set: real-cluster tests skipped";
    }
    const char* ns = std::getenv("MODELSWAP_E2E_NAMESPACE");
    ns_ = ns != nullptr && *ns != '\0' ? ns : "default";
    auto cfg = LoadKubeconfig(DefaultEnv(), kc);
    ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
    auto client = HttpKubeClient::Create(DefaultEnv(), *cfg);
    ASSERT_TRUE(client.has_value()) << client.error().ToString();
    client_ = std::move(*client);
  }
  void ApplyCrd() {
    std::ifstream in(MODELSWAP_CRD_FILE);
    std::stringstream ss;
    ss << in.rdbuf();
    auto docs = YamlToJson(ss.str());
    ASSERT_TRUE(docs.has_value() && docs->size() == 1);
    Json crd = (*docs)[0];
    auto created = client_->Create(kCrds, "", crd);
    if (!created && created.error().code() == Code::kAlreadyExists) {
      auto current = client_->Get(kCrds, "", NameOf(crd));
      ASSERT_TRUE(current.has_value()) << current.error().ToString();
      crd["metadata"]["resourceVersion"] = ResourceVersionOf(*current);
      auto updated = client_->Update(kCrds, "", crd);
      ASSERT_TRUE(updated.has_value()) << updated.error().ToString();
    } else {
      ASSERT_TRUE(created.has_value()) << created.error().ToString();
    }
    ASSERT_TRUE(WaitFor(
        [&] {
          auto c = client_->Get(kCrds, "", "modelversions.modelswap.io");
          if (!c) return false;
          for (const auto& cond : Field<Json>(*c, {"status", "conditions"}, Json::array())) {
            if (cond.value("type", "") == "Established" && cond.value("status", "") == "True")
              return true;
          }
          return false;
        },
        std::chrono::seconds(30)));
  }

  std::string ns_;
  std::unique_ptr<HttpKubeClient> client_;
};

std::string RandomSuffix() {
  return std::to_string(std::random_device{}() % 1000000);
}

TEST_F(E2E, CrdRejectsBadInput) {
  ApplyCrd();
  Json bad = {{"apiVersion", "modelswap.io/v1alpha1"},
              {"kind", "ModelVersion"},
              {"metadata", {{"generateName", "e2e-bad-"}}},
              {"spec",
               {{"model", "Bad_Name"},
                {"version", "v1"},
                {"storage", {{"claimName", "models"}}},
                {"source", {{"generate", {{"bytes", 0}}}, {"tsv", {{"path", "../x"}}}}}}}};
  auto r = client_->Create(kModelVersions, ns_, bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
}

TEST_F(E2E, ModelVersionGetsAWriterJobAndStatus) {
  ApplyCrd();
  std::string model = "e2e-" + std::to_string(std::random_device{}() % 100000);
  KubeBackend backend(
      client_.get(), DefaultEnv(),
      KubeBackendOptions{.ns = ns_, .sidecar_image = "example.invalid/modelswap-sidecar:e2e"});
  Controller controller(&backend, DefaultEnv(), nullptr,
                        ControllerOptions{.workers = 1, .queue = {}});
  backend.Start(&controller);
  ASSERT_TRUE(WaitFor([&] { return backend.HasSynced(); }, std::chrono::seconds(60)));
  controller.Start();
  Json mv = {{"apiVersion", "modelswap.io/v1alpha1"},
             {"kind", "ModelVersion"},
             {"metadata", {{"name", model + "-v1"}}},
             {"spec",
              {{"model", model},
               {"version", "v1"},
               {"storage", {{"claimName", "models"}}},
               {"source", {{"generate", {{"bytes", 1048576}, {"seed", 1}}}}},
               // Without a PVC the pod never starts: a short deadline ends the Job so
               // the finalizer (which waits for running writers) is released.
               {"writer", {{"activeDeadlineSeconds", 20}}}}}};
  auto created = client_->Create(kModelVersions, ns_, mv);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  std::string job_name = model + "-v1-write";
  ASSERT_TRUE(WaitFor([&] { return client_->Get(kJobs, ns_, job_name).has_value(); },
                      std::chrono::seconds(60)));
  Json job = *client_->Get(kJobs, ns_, job_name);
  const Json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "example.invalid/modelswap-sidecar:e2e");
  EXPECT_EQ(c["args"][0], "write");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], UidOf(*created));
  EXPECT_EQ(job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "models");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto o = client_->Get(kModelVersions, ns_, model + "-v1");
        return o && Field<std::string>(*o, {"status", "jobName"}) == job_name &&
               !Field<std::string>(*o, {"status", "phase"}).empty();
      },
      std::chrono::seconds(60)));
  // Cleanup: the operator releases its finalizer; the Job goes with its owner.
  ASSERT_TRUE(client_->Delete(kModelVersions, ns_, model + "-v1").has_value());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto o = client_->Get(kModelVersions, ns_, model + "-v1");
        return !o && o.error().code() == Code::kNotFound;
      },
      std::chrono::seconds(120)));
  controller.Stop();
  backend.Stop();
  (void)client_->Delete(kJobs, ns_, job_name);
}

// The API rules the reconciler relies on, checked on a real server: status goes only through the
// status subresource (status sent to the main endpoint is dropped), generation moves with spec
// changes only (not annotations), status fields the operator writes are in the CRD's schema, a
// stale resourceVersion is a 409, and a watch from a list's resourceVersion
// delivers the changes after it in order.
TEST_F(E2E, StatusSubresourceGenerationAndWatchFollowTheApiRules) {
  ApplyCrd();
  const std::string name = "e2e-rules-" + RandomSuffix();
  Json mv = {{"apiVersion", "modelswap.io/v1alpha1"},
             {"kind", "ModelVersion"},
             {"metadata", {{"name", name}}},
             {"spec",
              {{"model", name},
               {"version", "v1"},
               {"storage", {{"claimName", "models"}}},
               {"source", {{"generate", {{"bytes", 4096}}}}}}}};
  auto created = client_->Create(kModelVersions, ns_, mv);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_EQ(Field<int64_t>(*created, {"metadata", "generation"}), 1);
  const std::string created_rv = ResourceVersionOf(*created);

  auto with_status = client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                                    {{"status", {{"phase", "Pending"}}}}, true);
  ASSERT_TRUE(with_status.has_value()) << with_status.error().ToString();
  EXPECT_EQ(Field<std::string>(*with_status, {"status", "phase"}), "Pending");
  EXPECT_EQ(Field<int64_t>(*with_status, {"metadata", "generation"}), 1);

  Json main_put = *with_status;
  main_put["status"]["phase"] = "Failed";  // dropped: the main endpoint ignores status
  auto put = client_->Update(kModelVersions, ns_, main_put);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_EQ(Field<std::string>(*put, {"status", "phase"}), "Pending");
  EXPECT_EQ(Field<int64_t>(*put, {"metadata", "generation"}), 1);

  // Annotations are metadata: no new generation (a rollback by annotation needs no spec edit),
  // and the status field recording a handled request survives the CRD's structural pruning.
  const std::string request = "2026-11-22T07:00:00Z";
  auto annotated =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                     {{"metadata", {{"annotations", {{kAnnotationActivateRequest, request}}}}}});
  ASSERT_TRUE(annotated.has_value()) << annotated.error().ToString();
  EXPECT_EQ(Field<int64_t>(*annotated, {"metadata", "generation"}), 1);
  auto handled = client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                                {{"status", {{"lastHandledActivateRequest", request}}}}, true);
  ASSERT_TRUE(handled.has_value()) << handled.error().ToString();
  EXPECT_EQ(Field<std::string>(*handled, {"status", "lastHandledActivateRequest"}), request);

  auto spec_patch =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge, {{"spec", {{"retain", 5}}}});
  ASSERT_TRUE(spec_patch.has_value()) << spec_patch.error().ToString();
  EXPECT_EQ(Field<int64_t>(*spec_patch, {"metadata", "generation"}), 2);
  EXPECT_EQ(Field<std::string>(*spec_patch, {"status", "phase"}), "Pending");

  Json stale = *with_status;  // carries the resourceVersion from before the spec patch
  stale["status"]["phase"] = "Writing";
  auto conflict = client_->Update(kModelVersions, ns_, stale, true);
  ASSERT_FALSE(conflict.has_value());
  EXPECT_EQ(conflict.error().code(), Code::kAborted) << conflict.error().ToString();

  std::vector<std::pair<EventType, int64_t>> seen;  // event type, generation
  Cancellation cancel;
  WatchOptions opts;
  opts.resource_version = created_rv;
  opts.field_selector = "metadata.name=" + name;
  opts.timeout_seconds = 30;
  auto st = client_->Watch(
      kModelVersions, ns_, opts,
      [&](WatchEvent&& e) {
        if (e.type == EventType::kBookmark) return true;
        seen.emplace_back(e.type, Field<int64_t>(e.object, {"metadata", "generation"}));
        return Field<int64_t>(e.object, {"metadata", "generation"}) < 2;  // stop at the patch
      },
      &cancel);
  EXPECT_TRUE(st) << st.error().ToString();
  ASSERT_FALSE(seen.empty());
  for (const auto& [type, generation] : seen)
    EXPECT_EQ(type, EventType::kModified);
  EXPECT_EQ(seen.back().second, 2);
  EXPECT_EQ(seen.front().second, 1);  // the status patch, before the spec patch

  auto deleted = client_->Delete(kModelVersions, ns_, name);
  EXPECT_TRUE(deleted.has_value()) << deleted.error().ToString();
}

TEST_F(E2E, LeaseIsHeldByOneReplicaAndHandedOverOnRelease) {
  const std::string name = "modelswap-e2e-lease-" + RandomSuffix();
  auto a = LeaderElector::Create(client_.get(), DefaultEnv(),
                                 {.ns = ns_, .name = name, .identity = "e2e-a"});
  auto b = LeaderElector::Create(client_.get(), DefaultEnv(),
                                 {.ns = ns_, .name = name, .identity = "e2e-b"});
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto st = (*a)->TryAcquireOrRenew();
  ASSERT_TRUE(st) << st.error().ToString();  // creates the Lease
  EXPECT_TRUE((*a)->IsLeader());
  st = (*b)->TryAcquireOrRenew();
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), Code::kFailedPrecondition) << st.error().ToString();
  EXPECT_FALSE((*b)->IsLeader());
  st = (*a)->TryAcquireOrRenew();  // a renewal: an Update with the Lease's resourceVersion
  ASSERT_TRUE(st) << st.error().ToString();
  (*a)->Release();
  EXPECT_FALSE((*a)->IsLeader());
  st = (*b)->TryAcquireOrRenew();  // free at once, no lease duration to wait out
  ASSERT_TRUE(st) << st.error().ToString();
  EXPECT_TRUE((*b)->IsLeader());
  auto lease = client_->Get(kLeases, ns_, name);
  ASSERT_TRUE(lease.has_value()) << lease.error().ToString();
  EXPECT_EQ(Field<std::string>(*lease, {"spec", "holderIdentity"}), "e2e-b");
  EXPECT_GE(Field<int64_t>(*lease, {"spec", "leaseTransitions"}), 1);
  (void)client_->Delete(kLeases, ns_, name);
}

// Two replicas try to take a fresh Lease at the same moment: the API server's create and
// resourceVersion checks let exactly one win; the other sees AlreadyExists or a 409.
TEST_F(E2E, RacingReplicasElectExactlyOneLeader) {
  for (int round = 0; round < 5; ++round) {
    const std::string name = "modelswap-e2e-race-" + RandomSuffix();
    std::vector<std::unique_ptr<LeaderElector>> electors;
    for (const char* id : {"e2e-a", "e2e-b"}) {
      auto e = LeaderElector::Create(client_.get(), DefaultEnv(),
                                     {.ns = ns_, .name = name, .identity = id});
      ASSERT_TRUE(e.has_value());
      electors.push_back(std::move(*e));
    }
    std::thread other([&] { (void)electors[1]->TryAcquireOrRenew(); });
    (void)electors[0]->TryAcquireOrRenew();
    other.join();
    EXPECT_EQ(int(electors[0]->IsLeader()) + int(electors[1]->IsLeader()), 1) << "round " << round;
    auto lease = client_->Get(kLeases, ns_, name);
    ASSERT_TRUE(lease.has_value()) << lease.error().ToString();
    const std::string holder = Field<std::string>(*lease, {"spec", "holderIdentity"});
    EXPECT_EQ(holder, electors[0]->IsLeader() ? "e2e-a" : "e2e-b");
    (void)client_->Delete(kLeases, ns_, name);
  }
}

}  // namespace
}  // namespace modelswap::op
