// The controller against an unreliable or busy API server (controller_fixture.h): conflicts,
// dropped and silent watches, expiry (410) and restarts lose nothing and start no second writer;
// creates cost no 409; a steady state costs no request beyond the watches.
#include <gtest/gtest.h>

#include <cstdint>

#include "tests/operator/controller/controller_fixture.h"

namespace modelswap::op {
namespace {

using testing::WaitFor;

TEST_F(ControllerTest, ConflictsOnStatusAreRetriedNotLost) {
  server_.FailStatusUpdates(3);
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  EXPECT_EQ(JobCount(), 1);
}

TEST_F(ControllerTest, DroppedWatchesAndExpiryLoseNothing) {
  // No bookmarks: one carrying an RV past the compaction below would let the reflectors resume
  // without the 410 (and relist) this test is about.
  server_.SetBookmarkInterval(std::chrono::hours(1));
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.DropWatches();
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  server_.Create(kEvents, "default",  // moves the RV past every one the reflectors hold
                 {{"apiVersion", "v1"}, {"kind", "Event"}, {"metadata", {{"name", "bump"}}}});
  server_.Compact();  // every RV the reflectors hold is now too old: ERROR 410 in a 200
  server_.DropWatches();
  server_.Create(kModelVersions, "default", NewMv("v2"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v2-write", Result("v2", 2));
  ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  EXPECT_EQ(JobCount(), 2);
  EXPECT_GE(server_.CountRequests("LIST", "modelversions"), 2);  // relisted after the 410
}

TEST_F(ControllerTest, ApiServerRestartWithNewResourceVersions) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.Restart(5000);
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  server_.Create(kModelVersions, "default", NewMv("v2"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v2-write").has_value(); }));
  EXPECT_EQ(JobCount(), 2);  // no duplicate writer after the restart
}

TEST_F(ControllerTest, SilentWatchIsRestartedByTheWatchdog) {
  server_.HangWatches(true);
  server_.DropWatches();  // reflectors reconnect into watches that never speak
  uint64_t before = server_.CountRequests("WATCH");
  // timeout 5..10 s + 1 s grace: the watchdog cancels and the reflector reopens.
  ASSERT_TRUE(
      WaitFor([&] { return server_.CountRequests("WATCH") >= static_cast<int>(before) + 8; },
              std::chrono::seconds(40)));
  server_.HangWatches(false);
  server_.DropWatches();
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
}

// N creates cost no 409 and no failed reconcile: every write starts from the latest object the
// operator wrote, and the fake answers 409 exactly where a real server would.
TEST_F(ControllerTest, CreatesCostNoConflicts) {
  constexpr int kN = 12;
  auto mv = [](int i) {
    Json o = NewMv("v1");
    o["metadata"]["name"] = "m" + std::to_string(i) + "-v1";
    o["spec"]["model"] = "m" + std::to_string(i);
    return o;
  };
  for (int i = 0; i < kN; ++i)
    server_.Create(kModelVersions, "default", mv(i));
  auto phase_all = [&](const std::string& p) {
    for (int i = 0; i < kN; ++i) {
      if (Phase("m" + std::to_string(i) + "-v1") != p) return false;
    }
    return true;
  };
  ASSERT_TRUE(WaitFor([&] { return phase_all("Writing"); }));
  for (int i = 0; i < kN; ++i)
    server_.CompleteJob("default", "m" + std::to_string(i) + "-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitFor([&] { return phase_all("Active"); }));
  ASSERT_TRUE(WaitFor([&] { return controller_->queue().Len() == 0; }));
  int writes = 0;
  for (const auto& [k, v] : server_.RequestCounts()) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0) writes += v;
  }
  EXPECT_EQ(server_.CountResponses(409), 0);
  EXPECT_EQ(metrics_.reconciles_error(), 0);
  // Per version: finalizer, Job, status Writing, status Active, and an Event for the task and
  // for each phase change. CompleteJob's own writes go around HTTP.
  EXPECT_LE(writes, 7 * kN) << "writes=" << writes;
}

TEST_F(ControllerTest, SteadyStateMakesNoRequestsBeyondWatches) {
  server_.Create(kModelVersions, "default", NewMv("v1"));
  ASSERT_TRUE(WaitFor([&] { return Job("ranker-v1-write").has_value(); }));
  server_.CompleteJob("default", "ranker-v1-write", Result("v1", 1));
  ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
  ASSERT_TRUE(WaitFor([&] { return controller_->queue().Len() == 0; }));
  // An empty queue does not mean an idle worker: the pass that wrote Active may still be sending
  // its Events. Stopping the workers waits for it, so only the passes below are measured.
  controller_->Stop();
  auto counts = server_.RequestCounts();
  int writes = 0;
  for (const auto& [k, v] : counts) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0) writes += v;
  }
  // Reconcile the model again and again: with nothing changed, nothing is written.
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(controller_->ReconcileOnce("default/ranker").has_value());
  int writes_after = 0;
  for (const auto& [k, v] : server_.RequestCounts()) {
    if (k.rfind("PUT", 0) == 0 || k.rfind("POST", 0) == 0 || k.rfind("PATCH", 0) == 0)
      writes_after += v;
  }
  EXPECT_EQ(writes_after, writes);
  EXPECT_EQ(server_.CountRequests("GET"), 0);  // reads come from the informer caches
}

}  // namespace
}  // namespace modelswap::op
