// CertManager against the fake API server, through the real KubeClient and KubeCertApi, with a
// fake clock: first boot, a second replica reusing the Secret, two replicas racing (one 409
// loser adopting the winner, then real threads), serving-certificate renewal leaving the CA and
// the caBundle untouched, a CA rotation served by two replicas with the caBundle as the only
// trust anchor of real TLS handshakes at every step, a deleted Secret re-created, a Secret with
// garbage replaced (with its log line), the webhook URL patched in, mounted certificates, and an
// API outage keeping the served certificate.
#include "operator/webhook/cert_manager.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "operator/kube/http_client.h"
#include "operator/kube/resource.h"
#include "operator/webhook/kube_cert_api.h"
#include "operator/webhook/server.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/test_util.h"
#include "tests/operator/webhook/tls_client.h"

namespace modelswap::op {
namespace {

constexpr const char* kNs = "ms";
constexpr const char* kSecret = "modelswap-webhook-tls";
constexpr const char* kConfig = "modelswap";
constexpr const char* kHost = "modelswap-webhook.ms.svc";
constexpr int64_t kDay = 24 * 3600;

// Forwards to the real API; `before_write` runs once before the next Secret write (a test plays
// another replica there).
class RacingApi : public CertApi {
 public:
  explicit RacingApi(CertApi* real) : real_(real) {}
  std::function<void()> before_write;
  bool fail = false;
  Result<Json> GetSecret(const std::string& ns, const std::string& n) override {
    if (fail) return Fail(Code::kUnavailable, "apiserver down");
    return real_->GetSecret(ns, n);
  }
  Result<Json> CreateSecret(const std::string& ns, const Json& s) override {
    if (before_write) std::exchange(before_write, nullptr)();
    return real_->CreateSecret(ns, s);
  }
  Result<Json> MergePatchSecret(const std::string& ns, const std::string& n,
                                const Json& p) override {
    if (before_write) std::exchange(before_write, nullptr)();
    return real_->MergePatchSecret(ns, n, p);
  }
  Result<Json> GetWebhookConfiguration(const std::string& n) override {
    return real_->GetWebhookConfiguration(n);
  }
  Result<Json> JsonPatchWebhookConfiguration(const std::string& n, const Json& p) override {
    return real_->JsonPatchWebhookConfiguration(n, p);
  }

 private:
  CertApi* real_;
};

// One operator replica: its CertManager and an HTTPS server serving what it holds.
struct Replica {
  Replica(CertApi* api, Env* env, CertManagerOptions o) : certs(api, env, std::move(o)) {
    WebhookServerOptions so;
    so.addr = "127.0.0.1:0";
    so.certificate = [this] { return certs.Current(); };
    so.review = [](std::string_view) { return AdmissionOutcome{}; };
    server = std::make_unique<WebhookServer>(so);
    EXPECT_TRUE(server->Start().has_value());
  }
  CertManager certs;
  std::unique_ptr<WebhookServer> server;
};

class CertManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.SetUnix(static_cast<int64_t>(std::time(nullptr)) * 1'000'000'000);
    ClusterConfig cfg;
    cfg.server = server_.url();
    client_ = std::move(*HttpKubeClient::Create(DefaultEnv(), cfg));
    api_ = std::make_unique<KubeCertApi>(client_.get(), kSecret);
    server_.Create(kMutatingWebhookConfigurations, "",
                   {{"apiVersion", "admissionregistration.k8s.io/v1"},
                    {"kind", "MutatingWebhookConfiguration"},
                    {"metadata", {{"name", kConfig}}},
                    {"webhooks",
                     {{{"name", "inject.modelswap.io"},
                       {"clientConfig",
                        {{"service", {{"name", "modelswap-webhook"}, {"namespace", kNs}}}}}}}}});
    server_.Create(kSecrets, kNs,
                   {{"apiVersion", "v1"},
                    {"kind", "Secret"},
                    {"metadata",
                     {{"name", kSecret},
                      {"namespace", kNs},
                      {"labels", {{"app.kubernetes.io/managed-by", "Helm"}}}}},
                    {"type", "Opaque"}});
    logs_ = std::make_shared<std::ostringstream>();
    previous_logger_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*logs_)));
  }
  void TearDown() override { spdlog::set_default_logger(previous_logger_); }

  CertManagerOptions Options() {
    CertManagerOptions o;
    o.ns = kNs;
    o.secret_name = kSecret;
    o.webhook_config_name = kConfig;
    o.rotation.names = ServiceDnsNames("modelswap-webhook", kNs);
    return o;
  }
  std::unique_ptr<Replica> NewReplica(CertApi* api = nullptr) {
    return std::make_unique<Replica>(api ? api : api_.get(), &env_, Options());
  }
  CertBundle Stored() { return BundleFromSecret(*server_.Get(kSecrets, kNs, kSecret)).value(); }
  std::string CaBundle() {
    auto mwc = server_.Get(kMutatingWebhookConfigurations, "", kConfig);
    return Base64Decode(Field<std::string>((*mwc)["webhooks"][0], {"clientConfig", "caBundle"}))
        .value_or("");
  }
  int64_t Now() { return env_.NowUnixNanos() / 1'000'000'000; }
  // A TLS handshake with the replica as the API server makes it: the caBundle of the
  // configuration is the only trust anchor, the Service's name is checked, at the fake time.
  Status Handshake(Replica& r) {
    testing::TlsClient tls;
    return tls.Connect(r.server->port(), CaBundle(), kHost, "127.0.0.1", Now());
  }
  std::string Log() { return logs_->str(); }

  fake::FakeApiServer server_;
  modelswap::testing::FakeClockEnv env_;
  std::unique_ptr<HttpKubeClient> client_;
  std::unique_ptr<KubeCertApi> api_;
  std::shared_ptr<std::ostringstream> logs_;
  std::shared_ptr<spdlog::logger> previous_logger_;
};

TEST_F(CertManagerTest, FirstBootFillsTheSecretAndPublishesItsCa) {
  auto a = NewReplica();
  ASSERT_TRUE(a->certs.Start().has_value()) << Log();
  CertBundle stored = Stored();
  EXPECT_FALSE(stored.ca_key_pem.empty());
  EXPECT_EQ(*a->certs.Current(), stored);
  EXPECT_EQ(CaBundle(), stored.ca_pem);
  EXPECT_TRUE(Handshake(*a).has_value());
  auto b = NewReplica();
  ASSERT_TRUE(b->certs.Start().has_value());
  EXPECT_EQ(*b->certs.Current(), stored);
  EXPECT_EQ(server_.CountRequests("PATCH", "secrets"), 1);  // the second replica only read
  EXPECT_EQ(server_.CountRequests("PATCH", "mutatingwebhookconfigurations"), 1);
  EXPECT_TRUE(Handshake(*b).has_value());
}

TEST_F(CertManagerTest, TheLoserOfARaceAdoptsTheWinnersBundle) {
  RacingApi racing(api_.get());
  auto loser = NewReplica(&racing);
  auto winner = NewReplica();
  racing.before_write = [&] { ASSERT_TRUE(winner->certs.Start().has_value()); };
  ASSERT_TRUE(loser->certs.Start().has_value()) << Log();
  EXPECT_EQ(*loser->certs.Current(), *winner->certs.Current());
  EXPECT_EQ(*loser->certs.Current(), Stored());
  EXPECT_NE(Log().find("written by another replica first"), std::string::npos) << Log();
  EXPECT_EQ(CaBundle(), Stored().ca_pem);
}

TEST_F(CertManagerTest, ReplicasStartingTogetherAgreeOnOneBundle) {
  for (int round = 0; round < 5; ++round) {
    server_.PatchSpec(kSecrets, kNs, kSecret, {{"data", nullptr}});
    std::vector<std::unique_ptr<Replica>> replicas;
    for (int i = 0; i < 3; ++i)
      replicas.push_back(NewReplica());
    std::vector<std::thread> threads;
    std::atomic<int> failed{0};
    for (auto& r : replicas) {
      threads.emplace_back([&r, &failed] {
        if (!r->certs.Start()) failed.fetch_add(1, std::memory_order_relaxed);  // read after join
      });
    }
    for (auto& t : threads)
      t.join();
    ASSERT_EQ(failed.load(std::memory_order_relaxed), 0) << Log();
    for (auto& r : replicas) {
      EXPECT_EQ(*r->certs.Current(), Stored()) << round;
      EXPECT_TRUE(Handshake(*r).has_value()) << round;
    }
  }
}

TEST_F(CertManagerTest, ServingRenewalKeepsTheCaAndTheCaBundle) {
  auto a = NewReplica();
  ASSERT_TRUE(a->certs.Start().has_value());
  CertBundle before = Stored();
  int mwc_patches = server_.CountRequests("PATCH", "mutatingwebhookconfigurations");
  env_.Advance(std::chrono::hours(24 * 250));
  auto changed = a->certs.Reload();
  ASSERT_TRUE(changed.has_value()) << changed.error().ToString();
  EXPECT_TRUE(*changed);
  CertBundle after = Stored();
  EXPECT_NE(after.cert_pem, before.cert_pem);
  EXPECT_EQ(after.ca_pem, before.ca_pem);
  EXPECT_EQ(after.ca_key_pem, before.ca_key_pem);
  EXPECT_EQ(CaBundle(), before.ca_pem);
  EXPECT_EQ(server_.CountRequests("PATCH", "mutatingwebhookconfigurations"), mwc_patches);
  EXPECT_TRUE(Handshake(*a).has_value());
  EXPECT_NE(Log().find("serving certificate renewed"), std::string::npos) << Log();
}

TEST_F(CertManagerTest, CaRotationNeverServesAnUncoveredCertificate) {
  auto a = NewReplica();
  auto b = NewReplica();
  ASSERT_TRUE(a->certs.Start().has_value());
  ASSERT_TRUE(b->certs.Start().has_value());
  const std::string first_ca = Stored().ca_pem;
  // Both replicas reload in turn; after each reload, each replica (the one that reloaded and
  // the one that has not yet) must pass a handshake against the configuration's caBundle.
  auto step = [&](std::chrono::hours advance) {
    env_.Advance(advance);
    for (Replica* r : {a.get(), b.get()}) {
      auto st = r->certs.Reload();
      ASSERT_TRUE(st.has_value()) << st.error().ToString();
      for (Replica* s : {a.get(), b.get()}) {
        auto hs = Handshake(*s);
        ASSERT_TRUE(hs.has_value()) << hs.error().ToString() << " day " << (Now() / kDay) << "\n"
                                    << Log();
      }
    }
  };
  // Renewals until the CA is due (2/3 of ten years), then hours for the overlap. Steps of 100
  // days: a replica re-reads well within the third of a serving certificate's life left after
  // its renewal (in a cluster, every minute).
  for (int i = 0; i < 24; ++i)
    ASSERT_NO_FATAL_FAILURE(step(std::chrono::hours(24 * 100)));
  ASSERT_EQ(Stored().ca_pem, first_ca);
  ASSERT_NO_FATAL_FAILURE(step(std::chrono::hours(24 * 40)));  // day 2440: the CA is due
  auto cas = SplitCertificates(CaBundle());
  ASSERT_EQ(cas->size(), 2u) << Log();
  EXPECT_EQ(cas->front(), first_ca);
  EXPECT_NE(Log().find("a new CA joins ca.crt"), std::string::npos);
  for (int i = 0; i < 4; ++i)
    ASSERT_NO_FATAL_FAILURE(step(std::chrono::hours(1)));
  ASSERT_NO_FATAL_FAILURE(step(std::chrono::hours(2)));
  EXPECT_NE(Log().find("moved to the new CA"), std::string::npos) << Log();
  EXPECT_NE(Log().find("the previous CA left ca.crt"), std::string::npos) << Log();
  cas = SplitCertificates(CaBundle());
  ASSERT_EQ(cas->size(), 1u);
  EXPECT_NE(cas->front(), first_ca);
  EXPECT_EQ(*a->certs.Current(), Stored());
  EXPECT_EQ(*b->certs.Current(), Stored());
}

TEST_F(CertManagerTest, ADeletedSecretIsReCreatedAndTheCaBundleUpdated) {
  auto a = NewReplica();
  auto b = NewReplica();
  ASSERT_TRUE(a->certs.Start().has_value());
  ASSERT_TRUE(b->certs.Start().has_value());
  const CertBundle old = Stored();
  ASSERT_EQ(server_.Delete(kSecrets, kNs, kSecret), 200);
  auto changed = a->certs.Reload();
  ASSERT_TRUE(changed.has_value()) << changed.error().ToString();
  EXPECT_TRUE(*changed);
  auto secret = server_.Get(kSecrets, kNs, kSecret);
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ((*secret)["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
  CertBundle fresh = Stored();
  EXPECT_NE(fresh.ca_key_pem, old.ca_key_pem);
  EXPECT_EQ(CaBundle(), fresh.ca_pem);
  EXPECT_NE(Log().find("is missing: re-creating it"), std::string::npos) << Log();
  // b has not re-read yet and serves the old certificate: the old CA stays trusted meanwhile.
  EXPECT_TRUE(Handshake(*a).has_value());
  EXPECT_TRUE(Handshake(*b).has_value());
  ASSERT_TRUE(b->certs.Reload().has_value());
  EXPECT_EQ(*b->certs.Current(), fresh);
  env_.Advance(std::chrono::hours(2));
  ASSERT_TRUE(a->certs.Reload().has_value());
  EXPECT_EQ(SplitCertificates(CaBundle())->size(), 1u);  // the old CA retired after the overlap
  EXPECT_TRUE(Handshake(*a).has_value());
  ASSERT_TRUE(b->certs.Reload().has_value());
  EXPECT_TRUE(Handshake(*b).has_value());
}

TEST_F(CertManagerTest, ASecretWithGarbageIsReplacedWithALogLine) {
  server_.PatchSpec(kSecrets, kNs, kSecret,
                    {{"data",
                      {{"ca.crt", Base64Encode("garbage")},
                       {"tls.crt", Base64Encode("junk")},
                       {"tls.key", Base64Encode("junk")}}}});
  auto a = NewReplica();
  ASSERT_TRUE(a->certs.Start().has_value()) << Log();
  EXPECT_NE(Log().find("webhook certificate secret ms/modelswap-webhook-tls holds unusable data: "
                       "replacing it (ca.crt unusable"),
            std::string::npos)
      << Log();
  EXPECT_TRUE(ValidateCertBundle(Stored(), Options().rotation.names, Now(), {}).has_value());
  EXPECT_TRUE(Handshake(*a).has_value());
  server_.PatchSpec(kSecrets, kNs, kSecret, {{"data", {{"ca.key", "!!"}}}});  // not base64
  ASSERT_TRUE(a->certs.Reload().has_value());
  EXPECT_NE(Log().find("holds unusable data: replacing it (secret unusable (secret data ca.key"),
            std::string::npos)
      << Log();
  EXPECT_TRUE(Handshake(*a).has_value());
}

TEST_F(CertManagerTest, WebhookUrlAndExtraSans) {
  CertManagerOptions o = Options();
  o.webhook_url = "https://127.0.0.1:9443/mutate-pods";
  o.rotation.names.push_back("127.0.0.1");
  Replica a(api_.get(), &env_, o);
  ASSERT_TRUE(a.certs.Start().has_value()) << Log();
  auto mwc = server_.Get(kMutatingWebhookConfigurations, "", kConfig);
  const Json& cc = (*mwc)["webhooks"][0]["clientConfig"];
  EXPECT_EQ(cc["url"], o.webhook_url);
  EXPECT_FALSE(cc.contains("service"));
  testing::TlsClient tls;  // as the API server calls a URL with an IP: the IP SAN is checked
  EXPECT_TRUE(tls.Connect(a.server->port(), CaBundle(), "127.0.0.1", "127.0.0.1", Now()));
}

TEST_F(CertManagerTest, AnApiOutageKeepsTheServedCertificate) {
  RacingApi flaky(api_.get());
  auto a = NewReplica(&flaky);
  ASSERT_TRUE(a->certs.Start().has_value());
  auto before = a->certs.Current();
  flaky.fail = true;
  EXPECT_FALSE(a->certs.Reload().has_value());
  EXPECT_EQ(a->certs.Current(), before);
}

TEST_F(CertManagerTest, MountedFilesWinAndLeaveTheSecretAlone) {
  modelswap::testing::TempDir dir;
  auto b = GenerateCertBundle(Options().rotation.names, Now(), std::chrono::hours(24 * 365));
  ASSERT_TRUE(b.has_value());
  dir.Write("certs/tls.crt", b->cert_pem);
  dir.Write("certs/tls.key", b->key_pem);
  CertManagerOptions o = Options();
  o.cert_dir = dir.path + "/certs";
  Replica r(api_.get(), &env_, o);
  ASSERT_TRUE(r.certs.Start().has_value());
  EXPECT_EQ(r.certs.Current()->cert_pem, b->cert_pem);
  EXPECT_EQ(server_.CountRequests("GET", "secrets"), 0);
  EXPECT_EQ(CaBundle(), "");  // no ca.crt mounted: its issuer injects the caBundle
  dir.Write("certs/ca.crt", b->ca_pem);
  auto changed = r.certs.Reload();
  ASSERT_TRUE(changed.has_value());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(CaBundle(), b->ca_pem);
  EXPECT_TRUE(Handshake(r).has_value());
  dir.Write("certs/tls.key", GenerateCa(Now(), std::chrono::hours(1))->key_pem);  // half-rotated
  EXPECT_FALSE(r.certs.Reload().has_value());
  EXPECT_EQ(r.certs.Current()->key_pem, b->key_pem);
}

}  // namespace
}  // namespace modelswap::op
