// A read on the model volume that never returns (a hung blobfuse mount) must cost only the
// model's volume worker: the loop keeps beating, reports the blocked step in its status after
// --volume-timeout, and Stop() returns. In-process, with an Env whose manifest open blocks until
// the test lets it go.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "sidecar/agent/model_agent.h"
#include "sidecar/agent/status_json.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"
#include "tests/testing/write_request.h"

namespace modelswap::agent {
namespace {

using modelswap::testing::MakeWriteRequest;

using modelswap::testing::PollUntil;
using modelswap::testing::TempDir;

// Blocks every open of a manifest.json once `hang` is set, until Release().
class HangingEnv : public EnvWrapper {
 public:
  HangingEnv() : EnvWrapper(DefaultEnv()) {}
  Result<int> OpenBeneath(const std::string& root, const std::string& rel, OpenMode m) override {
    if (rel.ends_with("manifest.json")) {
      std::unique_lock lock(mu_);
      if (hang_) {
        ++blocked_;
        cv_.wait(lock, [&] { return !hang_; });
      }
    }
    return EnvWrapper::OpenBeneath(root, rel, m);
  }
  void Hang() {
    std::lock_guard lock(mu_);
    hang_ = true;
  }
  void Release() {
    {
      std::lock_guard lock(mu_);
      hang_ = false;
    }
    cv_.notify_all();
  }
  int blocked() {
    std::lock_guard lock(mu_);
    return blocked_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool hang_ = false;
  int blocked_ = 0;
};

TEST(VolumeBlockedTest, HungManifestReadIsReportedAndStopStillReturns) {
  TempDir dir;
  std::string root = dir / "root";
  WriteRequest req = MakeWriteRequest(root, "m", "v1", GenerateSource{64 << 10, 1, 64});
  ASSERT_TRUE(WriteVersion(DefaultEnv(), req).has_value());
  ASSERT_TRUE(PublishVersion(DefaultEnv(), root, "m", "v1").has_value());
  // Leaked on purpose: a worker left blocked may still be inside it after the test.
  static HangingEnv* env = new HangingEnv();
  ModelAgentConfig config;
  config.root = root;
  config.shm_dir = dir / "shm";
  config.poll_interval_ns = 20'000'000;
  config.heartbeat_interval_ns = 20'000'000;
  config.reader_timeout_ns = 1'000'000'000;
  config.volume_timeout_ns = 100'000'000;
  auto agent = ModelAgent::Create(env, "m", config);
  ASSERT_TRUE(agent.has_value()) << agent.error().ToString();
  std::thread loop([a = agent->get()] { a->Run(); });
  ASSERT_TRUE(PollUntil([&] { return (*agent)->Snapshot().active != nullptr; }));

  env->Hang();
  ASSERT_TRUE(PollUntil([&] {
    ModelStatus s = (*agent)->Snapshot();
    return s.volume_blocked && s.volume_step == "read manifest";
  })) << ModelStatusJson((*agent)->Snapshot()).dump();
  EXPECT_EQ(env->blocked(), 1);  // one job stuck; no pile of threads behind it
  ModelStatus s = (*agent)->Snapshot();
  EXPECT_EQ(s.state, "active");  // the loaded version keeps serving
  EXPECT_NE(MetricsText({s}).find("modelswap_agent_volume_blocked{model=\"m\"} 1"),
            std::string::npos);
  EXPECT_TRUE(ModelStatusJson(s)["volume"]["blocked"].get<bool>());

  (*agent)->Stop();
  loop.join();  // returns although the read is still blocked
  agent->reset();
  env->Release();
}

TEST(VolumeBlockedTest, WorkerLeftBlockedDoesNotTouchItsOwner) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  {
    VolumeWorker worker([] {});
    ASSERT_TRUE(worker.Start("block", [&, done](const auto& set_step) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return go; });
      set_step("after");                             // the worker object is gone by now
      done->store(true, std::memory_order_release);  // pairs with the acquire load below
    }));
    EXPECT_FALSE(worker.Start("second", [](const auto&) {}));
    EXPECT_TRUE(worker.busy());
  }  // destroyed while its job is blocked: must not wait for it
  {
    std::lock_guard lock(mu);
    go = true;
  }
  cv.notify_all();
  EXPECT_TRUE(PollUntil([&] { return done->load(std::memory_order_acquire); }));
}

}  // namespace
}  // namespace modelswap::agent
