// The fixture of the controller's end-to-end tests (controller_test.cc,
// controller_api_server_test.cc, controller_agents_test.cc): the fake API server, a real HTTP
// client, KubeBackend and Controller (restartable, as an operator process), and builders of the
// ModelVersions and writer results the tests play with.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "operator/api/well_known.h"
#include "operator/controller/controller.h"
#include "operator/controller/kube_backend.h"
#include "operator/kube/http_client.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {

// ModelVersion `version` of model ranker: a small generated source.
inline Json NewMv(const std::string& version, bool activate = true, int retain = 3) {
  return {{"apiVersion", "modelswap.io/v1alpha1"},
          {"kind", "ModelVersion"},
          {"metadata", {{"name", "ranker-" + version}}},
          {"spec",
           {{"model", "ranker"},
            {"version", version},
            {"storage", {{"claimName", "models"}, {"root", "/models"}}},
            {"source", {{"generate", {{"bytes", 4096}, {"seed", 7}}}}},
            {"activate", activate},
            {"retain", retain}}}};
}

// A writer's termination message for version `v` published under manifest generation `gen`.
inline std::string Result(const std::string& v, int gen) {
  return R"({"model":"ranker","version":")" + v + R"(","path":"/models/ranker/versions/)" + v +
         R"(.msf","bytes":4096,"checksum":"xxh3:00112233445566)" + std::to_string(10 + gen) +
         R"(","seconds":0.5,"manifest_generation":)" + std::to_string(gen) + "}\n";
}

class ControllerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.SetBookmarkInterval(std::chrono::milliseconds(200));
    ClusterConfig cfg;
    cfg.server = server_.url();
    client_ = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
    StartOperator();
  }
  // A fresh backend and controller, as a restarted operator process: empty caches and no memory
  // of earlier watch events.
  void StartOperator() {
    KubeBackendOptions o{.ns = "default",
                         .sidecar_image = "example/sidecar:1",
                         .instance = "test",
                         .min_watch_timeout_seconds = 5,
                         .watchdog_grace = std::chrono::milliseconds(1000),
                         .backoff_initial = std::chrono::milliseconds(50),
                         .probe_interval = std::chrono::milliseconds(100)};
    backend_ = std::make_unique<KubeBackend>(client_.get(), DefaultEnv(), o);
    controller_ = std::make_unique<Controller>(backend_.get(), DefaultEnv(), &metrics_,
                                               ControllerOptions{.workers = 2, .queue = {}});
    backend_->Start(controller_.get());
    ASSERT_TRUE(testing::WaitFor([&] { return backend_->HasSynced(); }));
    controller_->Start();
  }
  void TearDown() override { StopOperator(); }
  void StopOperator() {
    controller_->Stop();
    backend_->Stop();
  }

  std::optional<Json> Job(const std::string& name) { return server_.Get(kJobs, "default", name); }
  std::string Phase(const std::string& mv) {
    auto o = server_.Get(kModelVersions, "default", mv);
    return o ? Field<std::string>(*o, {"status", "phase"}) : "<gone>";
  }
  bool WaitPhase(const std::string& mv, const std::string& phase) {
    return testing::WaitFor([&] { return Phase(mv) == phase; });
  }
  int JobCount() { return static_cast<int>(server_.List(kJobs, "default").size()); }
  // Creates v1 and v2 (activate, retain 1) and completes both writers: v2 ends up Active.
  void WriteV1ThenV2() {
    for (const auto& [version, gen] : {std::pair{"v1", 1}, std::pair{"v2", 2}}) {
      const std::string job = std::string("ranker-") + version + "-write";
      server_.Create(kModelVersions, "default", NewMv(version, true, 1));
      ASSERT_TRUE(testing::WaitFor([&] { return Job(job).has_value(); }));
      server_.CompleteJob("default", job, Result(version, gen));
    }
  }

  fake::FakeApiServer server_;
  OperatorMetrics metrics_;
  std::unique_ptr<HttpKubeClient> client_;
  std::unique_ptr<KubeBackend> backend_;
  std::unique_ptr<Controller> controller_;
};

}  // namespace modelswap::op
