// Watch stream decoding against the exact recorded bytes (*.wire) of a real API server, and the
// reflector built on it against the fake API server.
#include "operator/kube/watch.h"

#include <gtest/gtest.h>

#include "operator/api/well_known.h"
#include "operator/kube/api_error.h"
#include "operator/kube/http_client.h"
#include "operator/kube/reflector.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

// Splits a raw HTTP/1.1 response into its status code and its chunk payloads.
std::vector<std::string> Chunks(const std::string& wire, int* status) {
  *status = std::atoi(wire.substr(9, 3).c_str());
  size_t pos = wire.find("\r\n\r\n") + 4;
  std::vector<std::string> out;
  for (;;) {
    size_t eol = wire.find("\r\n", pos);
    size_t len = std::stoul(wire.substr(pos, eol - pos), nullptr, 16);
    if (len == 0) break;
    out.push_back(wire.substr(eol + 2, len));
    pos = eol + 2 + len + 2;
  }
  return out;
}

TEST(WatchTest, RecordedStreamDecodesEveryEvent) {
  int status = 0;
  auto chunks = Chunks(testing::Fixture("watch-stream.wire"), &status);
  EXPECT_EQ(status, 200);
  WatchDecoder d;
  std::vector<WatchEvent> events;
  for (const auto& c : chunks) {
    ASSERT_TRUE(d.Feed(c, [&](WatchEvent&& e) {
                   events.push_back(std::move(e));
                   return true;
                 }).has_value());
  }
  EXPECT_EQ(d.pending(), 0u);
  ASSERT_EQ(events.size(), 10u);
  EXPECT_EQ(events[0].type, EventType::kAdded);
  EXPECT_EQ(events[3].type, EventType::kDeleted);
  EXPECT_EQ(ResourceVersionOf(events[3].object), "249");
  EXPECT_EQ(events[9].type, EventType::kBookmark);
  EXPECT_EQ(ResourceVersionOf(events[9].object), "252");
}

TEST(WatchTest, BytesSplitAnywhereDecodeTheSame) {
  int status = 0;
  std::string body;
  for (const auto& c : Chunks(testing::Fixture("watch-stream.wire"), &status))
    body += c;
  WatchDecoder d;
  int n = 0;
  for (size_t i = 0; i < body.size(); i += 7) {
    ASSERT_TRUE(d.Feed(body.substr(i, 7), [&](WatchEvent&&) {
                   ++n;
                   return true;
                 }).has_value());
  }
  EXPECT_EQ(n, 10);
}

TEST(WatchTest, ExpiredWatchIsErrorEventInsideHttp200) {
  int status = 0;
  auto chunks = Chunks(testing::Fixture("watch-410.wire"), &status);
  EXPECT_EQ(status, 200);
  ASSERT_EQ(chunks.size(), 1u);
  WatchDecoder d;
  std::optional<WatchEvent> ev;
  ASSERT_TRUE(d.Feed(chunks[0], [&](WatchEvent&& e) {
                 ev = std::move(e);
                 return true;
               }).has_value());
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->type, EventType::kError);
  Error e = WatchErrorToError(ev->object);
  EXPECT_TRUE(IsExpired(e));
  EXPECT_NE(e.message().find("too old resource version: 307"), std::string::npos);
}

TEST(WatchTest, MalformedLineIsCorruption) {
  WatchDecoder d;
  auto r = d.Feed("{\"type\":\"ADDED\"\n", [](WatchEvent&&) { return true; });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
}

TEST(WatchTest, UnknownTypeIsCorruption) {
  EXPECT_FALSE(ParseWatchLine(R"({"type":"NOPE","object":{}})").has_value());
}

TEST(WatchTest, HandlerCanStopTheStream) {
  WatchDecoder d;
  int n = 0;
  auto r = d.Feed("{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"ADDED\",\"object\":{}}\n",
                  [&](WatchEvent&&) {
                    ++n;
                    return false;
                  });
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(*r);
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace modelswap::op

namespace modelswap::op {
namespace {

// The reflector against a fake API server that restarts (v1.32: the new watch cache rejects
// every older RV with 410, etcd still serves exact lists at them): it must relist the most
// recent state, not the snapshot at its old RV, and then see new objects through its watch.
TEST(ReflectorTest, RelistAfterApiServerRestartSeesTheCurrentState) {
  fake::FakeApiServer server;
  auto mv = [](const std::string& v) {
    return Json{{"apiVersion", "modelswap.io/v1alpha1"},
                {"kind", "ModelVersion"},
                {"metadata", {{"name", "ranker-" + v}}},
                {"spec", {{"model", "ranker"}, {"version", v}}}};
  };
  server.Create(kModelVersions, "default", mv("v1"));
  server.Create(kModelVersions, "default", mv("v2"));
  ClusterConfig cfg;
  cfg.server = server.url();
  auto client = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
  Store store;
  ReflectorOptions o{.resource = kModelVersions,
                     .ns = "default",
                     .min_watch_timeout_seconds = 5,
                     .watchdog_grace = std::chrono::milliseconds(1000),
                     .backoff_initial = std::chrono::milliseconds(50),
                     .backoff_max = std::chrono::milliseconds(1000),
                     .name = "modelversions"};
  Reflector reflector(
      client.get(), &store, o, [](const ObjectPtr&, const ObjectPtr&) {}, DefaultEnv());
  reflector.Start();
  ASSERT_TRUE(testing::WaitFor([&] { return store.HasSynced() && store.size() == 2; }));
  server.Restart(2);  // v1.32.13: RV 312 -> 314 across the restart
  server.Create(kModelVersions, "default", mv("v3"));
  ASSERT_TRUE(testing::WaitFor([&] { return store.Get("default/ranker-v3") != nullptr; }))
      << "lists=" << reflector.lists();
  const uint64_t lists = reflector.lists();
  EXPECT_LE(lists, 3u);  // the first list, at most one relist per watch cut, no loop
  server.Create(kModelVersions, "default", mv("v4"));  // now through the watch, no relist
  ASSERT_TRUE(testing::WaitFor([&] { return store.Get("default/ranker-v4") != nullptr; }));
  EXPECT_EQ(reflector.lists(), lists);
  reflector.Stop();
}

}  // namespace
}  // namespace modelswap::op
