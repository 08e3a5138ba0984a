// The aggregating Event recorder against the fake API server
// (v1.32/event-core-v1-create-409-series.http: create, then count and lastTimestamp patched).
#include "operator/controller/event_recorder.h"

#include <gtest/gtest.h>

#include "operator/api/well_known.h"
#include "operator/kube/http_client.h"
#include "tests/operator/fake/fake_apiserver.h"

namespace modelswap::op {
namespace {

class ControllerEventRecorderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterConfig cfg;
    cfg.server = server_.url();
    client_ = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
  }
  fake::FakeApiServer server_;
  std::unique_ptr<HttpKubeClient> client_;
  EventSubject mv_{kModelVersions, "default", "ranker-v1", "uid-1", "101"};
};

TEST_F(ControllerEventRecorderTest, SameEventTwiceIsOneEventCountedTwice) {
  EventRecorder rec(client_.get(), "modelswap-operator", "op-0");
  const int64_t t0 = 1'790'000'000'000'000'000;
  EXPECT_EQ(rec.Record(mv_, "Normal", "TaskStarted", "write task ranker-v1-write", t0), 1);
  EXPECT_EQ(
      rec.Record(mv_, "Normal", "TaskStarted", "write task ranker-v1-write", t0 + 1'000'000'000),
      2);
  auto events = server_.List(kEvents, "default");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["count"], 2);
  EXPECT_EQ(events[0]["lastTimestamp"], FormatTime(t0 + 1'000'000'000));
  EXPECT_EQ(events[0]["firstTimestamp"], FormatTime(t0));
  EXPECT_EQ(server_.CountRequests("PATCH", "events"), 1);
  // Another message, reason or object is another Event.
  EXPECT_EQ(rec.Record(mv_, "Normal", "TaskStarted", "write task other", t0 + 2), 1);
  EXPECT_EQ(server_.List(kEvents, "default").size(), 2u);
}

TEST_F(ControllerEventRecorderTest, ExpiredEventIsCreatedAgain) {
  EventRecorder rec(client_.get(), "modelswap-operator", "op-0");
  const int64_t t0 = 1'790'000'000'000'000'000;
  rec.Record(mv_, "Warning", "FileKept", "kept", t0);
  for (const Json& e : server_.List(kEvents, "default"))  // the event TTL passed
    server_.Delete(kEvents, "default", NameOf(e));
  EXPECT_EQ(rec.Record(mv_, "Warning", "FileKept", "kept", t0 + 5), 1);
  EXPECT_EQ(server_.List(kEvents, "default").size(), 1u);
}

}  // namespace
}  // namespace modelswap::op
