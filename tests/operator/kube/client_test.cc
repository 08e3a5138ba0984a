// HttpKubeClient against the fake API server: the wire behaviours the recorded fixtures show.
#include "operator/kube/http_client.h"

#include <gtest/gtest.h>

#include "operator/api/well_known.h"
#include "operator/kube/api_error.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

// The body of the first request of a fixture: a real object the recorder sent.
Json RecordedRequest(const std::string& file) {
  return Json::parse(testing::ParseHttpFixture(testing::Fixture(file))[0].request_body);
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterConfig cfg;
    cfg.server = server_.url();
    auto c = HttpKubeClient::Create(DefaultEnv(), cfg);
    ASSERT_TRUE(c.has_value());
    client_ = std::move(*c);
  }
  fake::FakeApiServer server_;
  std::unique_ptr<HttpKubeClient> client_;
};

TEST_F(ClientTest, CreateGetAndNotFound) {
  auto created = client_->Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  EXPECT_EQ(GenerationOf(*created), 1);
  EXPECT_FALSE(created->contains("status"));
  auto got = client_->Get(kModelVersions, "default", NameOf(*created));
  ASSERT_TRUE(got.has_value());
  auto missing = client_->Get(kModelVersions, "default", "ranker-v99");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  auto again = client_->Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  EXPECT_EQ(again.error().code(), Code::kAlreadyExists);
}

TEST_F(ClientTest, StatusOnMainEndpointIsIgnoredAndGenerationFollowsSpec) {
  Json mv = *client_->Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  Json with_status = mv;
  with_status["status"] = {{"phase", "Active"}};
  auto r = client_->Update(kModelVersions, "default", with_status, false);
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->contains("status"));
  EXPECT_EQ(ResourceVersionOf(*r), ResourceVersionOf(mv));  // no change: no write
  auto st = client_->Update(kModelVersions, "default", with_status, true);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(Field<std::string>(*st, {"status", "phase"}), "Active");
  EXPECT_EQ(GenerationOf(*st), 1);
  auto spec = client_->Patch(kModelVersions, "default", NameOf(mv), PatchType::kMerge,
                             {{"spec", {{"retain", 5}}}}, false);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(GenerationOf(*spec), 2);
}

TEST_F(ClientTest, StaleResourceVersionIsAConflict) {
  Json mv = *client_->Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  ASSERT_TRUE(client_->Patch(kModelVersions, "default", NameOf(mv), PatchType::kMerge,
                             {{"spec", {{"retain", 5}}}}, false));
  mv["status"] = {{"phase", "Writing"}};
  auto r = client_->Update(kModelVersions, "default", mv, true);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(IsConflict(r.error()));
  auto p = client_->Patch(kModelVersions, "default", NameOf(mv), PatchType::kMerge,
                          {{"metadata", {{"resourceVersion", ResourceVersionOf(mv)}}}}, false);
  EXPECT_TRUE(IsConflict(p.error()));
}

TEST_F(ClientTest, DeleteReturnsStatusOrObjectWithFinalizers) {
  Json a = *client_->Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  auto gone = client_->Delete(kModelVersions, "default", NameOf(a));
  ASSERT_TRUE(gone.has_value());
  EXPECT_EQ(gone->value("kind", ""), "Status");
  EXPECT_EQ(client_->Delete(kModelVersions, "default", NameOf(a)).error().code(), Code::kNotFound);
  Json b = RecordedRequest("create-2.http");
  b["metadata"]["finalizers"] = {"modelswap.io/finalizer"};
  b = *client_->Create(kModelVersions, "default", b);
  auto pending = client_->Delete(kModelVersions, "default", NameOf(b));
  ASSERT_TRUE(pending.has_value());
  EXPECT_TRUE(IsBeingDeleted(*pending));
  EXPECT_EQ(GenerationOf(*pending), 2);
  Json patch = Json::array({{{"op", "test"},
                             {"path", "/metadata/resourceVersion"},
                             {"value", ResourceVersionOf(*pending)}},
                            {{"op", "remove"}, {"path", "/metadata/finalizers/0"}}});
  ASSERT_TRUE(client_->Patch(kModelVersions, "default", NameOf(b), PatchType::kJson, patch, false));
  EXPECT_EQ(client_->Get(kModelVersions, "default", NameOf(b)).error().code(), Code::kNotFound);
}

TEST_F(ClientTest, LargeBodiesArriveChunked) {
  Json job = RecordedRequest("job-create.http");
  job["metadata"]["annotations"] = {{"padding", std::string(3000, 'x')}};  // > 2 KiB: chunked
  auto created = client_->Create(kJobs, "default", job);
  ASSERT_TRUE(created.has_value());
  EXPECT_GT(created->dump().size(), 2048u);
  EXPECT_EQ(LabelOf((*created)["spec"]["template"], "job-name"), "ranker-v7-write");
}

TEST_F(ClientTest, ListPaginatesAndFiltersByLabel) {
  for (int i = 0; i < 5; ++i) {
    Json pod = {{"metadata",
                 {{"name", "p" + std::to_string(i)},
                  {"labels", {{"modelswap.io/injected", i % 2 ? "true" : "false"}}}}}};
    ASSERT_TRUE(client_->Create(kPods, "default", pod));
  }
  auto all = ListAll(client_.get(), kPods, "default", ListOptions{.limit = 2});
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ((*all)["items"].size(), 5u);
  EXPECT_GE(server_.CountRequests("LIST", "pods"), 3);
  auto some =
      client_->List(kPods, "default", ListOptions{.label_selector = "modelswap.io/injected=true"});
  EXPECT_EQ((*some)["items"].size(), 2u);
}

TEST_F(ClientTest, WatchDeliversEventsAndEndsOnExpiry) {
  auto list = client_->List(kModelVersions, "default", {});
  std::string rv = Field<std::string>(*list, {"metadata", "resourceVersion"});
  server_.Create(kModelVersions, "default", RecordedRequest("create-1.http"));
  std::vector<EventType> seen;
  auto st = client_->Watch(
      kModelVersions, "default", WatchOptions{.resource_version = rv, .timeout_seconds = 5},
      [&](WatchEvent&& e) {
        seen.push_back(e.type);
        return false;
      },
      nullptr);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], EventType::kAdded);
  server_.Compact();
  auto expired = client_->Watch(
      kModelVersions, "default", WatchOptions{.resource_version = rv, .timeout_seconds = 5},
      [](WatchEvent&&) { return true; }, nullptr);
  ASSERT_FALSE(expired.has_value());
  EXPECT_TRUE(IsExpired(expired.error()));
}

TEST_F(ClientTest, CancelAbortsABlockedWatch) {
  server_.HangWatches(true);
  Cancellation cancel;
  std::thread t([&] {
    testing::WaitFor([&] { return server_.open_watches() > 0; });
    cancel.Cancel();
  });
  auto st = client_->Watch(
      kModelVersions, "default", WatchOptions{.timeout_seconds = 60},
      [](WatchEvent&&) { return true; }, &cancel);
  t.join();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kAborted);
}

// The fake's list semantics against v1.32/list-*.http: the same writes as
// list-r1-then-changes-r2.http (R1: v1, v2, v3; then create v4, patch v1's spec, delete v2,
// create v5; R2), then each recorded query.
class FakeListTest : public ClientTest {
 protected:
  Json Mv(const std::string& v) {
    return {{"apiVersion", "modelswap.io/v1alpha1"},
            {"kind", "ModelVersion"},
            {"metadata", {{"name", "ranker-" + v}}},
            {"spec", {{"model", "ranker"}, {"version", v}}}};
  }
  void SetUp() override {
    ClientTest::SetUp();
    for (const char* v : {"v1", "v2", "v3"})
      server_.Create(kModelVersions, "default", Mv(v));
    r1_ = std::to_string(server_.rv());
    server_.Create(kModelVersions, "default", Mv("v4"));
    server_.PatchSpec(kModelVersions, "default", "ranker-v1", {{"spec", {{"retain", 5}}}});
    server_.Delete(kModelVersions, "default", "ranker-v2");
    server_.Create(kModelVersions, "default", Mv("v5"));
    r2_ = std::to_string(server_.rv());
  }
  Result<Json> List(ListOptions o) { return client_->List(kModelVersions, "default", o); }
  static std::vector<std::string> Names(const Json& list) {
    std::vector<std::string> out;
    for (const auto& i : list["items"])
      out.push_back(NameOf(i));
    return out;
  }
  static std::string Rv(const Json& list) {
    return Field<std::string>(list, {"metadata", "resourceVersion"});
  }
  static Json RecordedBody(const std::string& file, size_t i) {
    return Json::parse(
        testing::ParseHttpFixture(testing::Fixture("v1.32/" + file))[i].response_body);
  }
  std::string r1_, r2_;
  using V = std::vector<std::string>;
};

TEST_F(FakeListTest, OldRvWithLimitIsTheExactSnapshot) {  // list-rv-exact-with-limit.http
  auto a = List({.resource_version = r1_, .limit = 500});
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(Names(*a), (V{"ranker-v1", "ranker-v2", "ranker-v3"}));
  EXPECT_EQ(Rv(*a), r1_);
  EXPECT_EQ(GenerationOf((*a)["items"][0]), 1);  // v1 before its spec patch
  auto page = List({.resource_version = r1_, .limit = 2});
  EXPECT_EQ(Names(*page), (V{"ranker-v1", "ranker-v2"}));
  EXPECT_EQ(Field<int>(*page, {"metadata", "remainingItemCount"}), 1);
  std::string token = Field<std::string>(*page, {"metadata", "continue"});
  auto rest = List({.limit = 2, .continue_token = token});
  EXPECT_EQ(Names(*rest), (V{"ranker-v3"}));
  EXPECT_EQ(Rv(*rest), r1_);
  auto exact = List({.resource_version = r1_, .resource_version_match = "Exact", .limit = 500});
  EXPECT_EQ(*exact, *a);
}

TEST_F(FakeListTest, NotOlderThanAndRvZeroAndUnsetAreCurrent) {
  const V now = {"ranker-v1", "ranker-v3", "ranker-v4", "ranker-v5"};
  // list-rv-notolderthan-with-limit.http
  auto b = List({.resource_version = r1_, .resource_version_match = "NotOlderThan", .limit = 500});
  EXPECT_EQ(Names(*b), now);
  EXPECT_EQ(Rv(*b), r2_);
  auto b2 = List({.resource_version = r1_, .resource_version_match = "NotOlderThan", .limit = 2});
  EXPECT_EQ(Names(*b2).size(), 2u);
  EXPECT_EQ(Field<int>(*b2, {"metadata", "remainingItemCount"}), 2);
  EXPECT_EQ(Names(*List({.resource_version = r1_})), now);
  // list-rv0-with-limit.http: the limit is ignored
  auto c = List({.resource_version = "0", .limit = 2});
  EXPECT_EQ(Names(*c), now);
  EXPECT_EQ(Field<std::string>(*c, {"metadata", "continue"}), "");
  // list-no-rv-with-limit.http
  auto d = List({.limit = 2});
  EXPECT_EQ(Names(*d), (V{"ranker-v1", "ranker-v3"}));
  EXPECT_EQ(Rv(*d), r2_);
  auto d2 = List({.limit = 2, .continue_token = Field<std::string>(*d, {"metadata", "continue"})});
  EXPECT_EQ(Names(*d2), (V{"ranker-v4", "ranker-v5"}));
}

TEST_F(FakeListTest, CompactedRvIsGoneAsRecorded) {  // list-410-after-compaction.http
  auto page = List({.resource_version = r1_, .limit = 2});
  std::string token = Field<std::string>(*page, {"metadata", "continue"});
  server_.Create(kModelVersions, "default", Mv("v6"));
  server_.Compact();
  for (ListOptions o : {ListOptions{.resource_version = r1_, .limit = 500},
                        ListOptions{.resource_version = r1_, .resource_version_match = "Exact"}}) {
    auto gone = List(o);
    ASSERT_FALSE(gone.has_value());
    EXPECT_TRUE(IsExpired(gone.error()));
  }
  EXPECT_TRUE(
      List({.resource_version = r1_, .resource_version_match = "NotOlderThan", .limit = 500}));
  EXPECT_TRUE(List({.resource_version = r1_}));
  // The raw bodies: exactly the recorded Status objects.
  for (auto [query, index] : {std::pair{"?resourceVersion=" + r1_ + "&limit=500", 0},
                              std::pair{"?limit=2&continue=" + token, 4}}) {
    auto body = server_.RawList(kModelVersions.Path("default") + query);
    EXPECT_EQ(body.first, 410);
    EXPECT_EQ(Json::parse(body.second), RecordedBody("list-410-after-compaction.http", index))
        << body.second;
  }
}

TEST_F(FakeListTest, FutureRvIsTooLargeAfterAWait) {  // rv-too-large.http
  server_.SetTooLargeWait(std::chrono::milliseconds(10));
  auto future = List({.resource_version = std::to_string(server_.rv() + 1000000)});
  ASSERT_FALSE(future.has_value());
  EXPECT_TRUE(IsResourceVersionTooLarge(future.error())) << future.error().ToString();
  EXPECT_EQ(RetryAfter(future.error()), std::chrono::seconds(1));
}

TEST(ClientConfigTest, BadPemIsRejectedAtCreation) {
  ClusterConfig cfg;
  cfg.server = "https://127.0.0.1:1";
  cfg.ca_pem = "not a certificate";
  auto c = HttpKubeClient::Create(DefaultEnv(), cfg);
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message().find("PEM"), std::string::npos);
}

TEST(ClientConfigTest, UnreachableServerIsUnavailable) {
  ClusterConfig cfg;
  cfg.server = "http://127.0.0.1:1";
  auto c = HttpKubeClient::Create(DefaultEnv(), cfg);
  ASSERT_TRUE(c.has_value());
  auto r = (*c)->Get(kModelVersions, "default", "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
}

}  // namespace
}  // namespace modelswap::op
