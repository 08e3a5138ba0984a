// The HTTPS webhook endpoint over loopback: a TLS handshake that verifies the served certificate
// like the API server does (CA from the caBundle, Service DNS name), an AdmissionReview round
// trip, /healthz, wrong paths and methods, a client trusting another CA, rotation, no certificate
// yet, and hostile clients over TLS: an oversized declared length, a body that stalls, and many
// stalled bodies at once while the API server's request must still be answered.
#include "operator/webhook/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "tests/operator/webhook/admission_util.h"
#include "tests/operator/webhook/tls_client.h"

namespace modelswap::op {
namespace {

using testing::Json;
using testing::TlsClient;

constexpr const char* kHost = "modelswap-webhook.modelswap-system.svc";

CertBundle NewBundle() {
  auto b = GenerateCertBundle(ServiceDnsNames("modelswap-webhook", "modelswap-system"),
                              std::time(nullptr), std::chrono::hours(24));
  EXPECT_TRUE(b.has_value()) << b.error().ToString();
  return *b;
}

std::string PodCreateReview() {
  return testing::ReadFile(std::string(MODELSWAP_WEBHOOK_TESTDATA) +
                           "/admission-request-pod-create.json");
}

class WebhookServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bundle_ = std::make_shared<const CertBundle>(NewBundle());
    server_ = std::make_unique<WebhookServer>(Options());
    ASSERT_TRUE(server_->Start().has_value());
  }
  void TearDown() override { server_->Stop(); }

  WebhookServerOptions Options() {
    WebhookServerOptions o;
    o.addr = "127.0.0.1:0";
    o.certificate = [this] {
      std::lock_guard lock(mu_);
      return bundle_;
    };
    o.review = [](std::string_view body) { return ReviewAdmission(body, InjectionConfig{}, true); };
    o.observe = [this](const AdmissionOutcome&, std::chrono::nanoseconds) {
      observed_.fetch_add(1, std::memory_order_relaxed);  // counter only: read after replies
    };
    return o;
  }

  // POSTs to /mutate-pods on a new connection with `rest` after the first headers (the body's
  // framing, the blank line, the body) and reads one response.
  Result<testing::HttpResponse> PostRaw(const std::string& rest) {
    TlsClient c;
    MS_RETURN_IF_ERROR(c.Connect(server_->port(), Ca(), kHost));
    return c.RequestRaw(
        "POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Type: application/json\r\n" + rest);
  }

  std::string Ca() {
    std::lock_guard lock(mu_);
    return bundle_->ca_pem;
  }

  std::mutex mu_;
  std::shared_ptr<const CertBundle> bundle_;
  std::unique_ptr<WebhookServer> server_;
  std::atomic<int> observed_{0};
};

TEST_F(WebhookServerTest, HandshakeVerifiesServedCertificateForServiceName) {
  TlsClient c;
  auto st = c.Connect(server_->port(), Ca(), kHost);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(c.PeerCommonName(), "modelswap-webhook");
}

TEST_F(WebhookServerTest, HandshakeFailsForAnotherName) {
  TlsClient c;
  EXPECT_FALSE(c.Connect(server_->port(), Ca(), "evil.example.com").has_value());
}

TEST_F(WebhookServerTest, HandshakeFailsAgainstAnotherCa) {
  TlsClient c;
  auto st = c.Connect(server_->port(), NewBundle().ca_pem, kHost);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kPermissionDenied);
}

TEST_F(WebhookServerTest, AdmissionRoundTripOverTls) {
  TlsClient c;
  ASSERT_TRUE(c.Connect(server_->port(), Ca(), kHost).has_value());
  std::string body = PodCreateReview();
  for (int i = 0; i < 3; ++i) {  // the same kept-alive connection, like the API server's
    auto r = c.Request("POST", "/mutate-pods?timeout=10s", body);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    EXPECT_EQ(r->status, 200);
    Json review = Json::parse(r->body);
    EXPECT_EQ(review["response"]["uid"], "61f707a2-8248-4b43-bd67-3404593e8268");
    EXPECT_EQ(review["response"]["allowed"], true);
    EXPECT_FALSE(testing::PatchOf(review).empty());
  }
  EXPECT_EQ(observed_.load(std::memory_order_relaxed), 3);
}

TEST_F(WebhookServerTest, MalformedBodyIs400) {
  TlsClient c;
  ASSERT_TRUE(c.Connect(server_->port(), Ca(), kHost).has_value());
  auto r = c.Request("POST", "/mutate-pods", "{not json");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(Json::parse(r->body)["response"]["allowed"], false);
}

// Review finding: a chunked body has no Content-Length, so the size cap never applied to it.
TEST_F(WebhookServerTest, BodyWithoutContentLengthIsRefused) {
  auto r = PostRaw("Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 411);
}

TEST_F(WebhookServerTest, HealthzAndWrongPathsAndMethods) {
  TlsClient c;
  ASSERT_TRUE(c.Connect(server_->port(), Ca(), kHost).has_value());
  auto health = c.Request("GET", "/healthz", "");
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
  auto missing = c.Request("POST", "/mutate", "{}");
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 404);
  auto get = c.Request("GET", "/mutate-pods", "");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->status, 405);
}

TEST_F(WebhookServerTest, RotatedCertificateServedOnNextConnection) {
  TlsClient old_conn;
  ASSERT_TRUE(old_conn.Connect(server_->port(), Ca(), kHost).has_value());
  std::string old_ca = Ca();
  {
    std::lock_guard lock(mu_);
    bundle_ = std::make_shared<const CertBundle>(NewBundle());
  }
  TlsClient fresh;
  EXPECT_TRUE(fresh.Connect(server_->port(), Ca(), kHost).has_value());
  TlsClient stale;
  EXPECT_FALSE(stale.Connect(server_->port(), old_ca, kHost).has_value());
  // The connection made before the rotation keeps working.
  auto r = old_conn.Request("GET", "/healthz", "");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

// The cap is checked against the declared length: the 413 comes back with no body sent.
TEST_F(WebhookServerTest, OversizedDeclaredLengthIs413BeforeTheBody) {
  auto r = PostRaw("Content-Length: 9000000\r\n\r\n");
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(observed_.load(std::memory_order_relaxed), 0);
}

TEST_F(WebhookServerTest, StalledBodyIsCutOffAtTheBodyDeadline) {
  WebhookServerOptions o = Options();
  o.body_timeout = std::chrono::milliseconds(200);
  WebhookServer server(o);
  ASSERT_TRUE(server.Start().has_value());
  TlsClient c;
  ASSERT_TRUE(c.Connect(server.port(), Ca(), kHost).has_value());
  std::string body = PodCreateReview();
  ASSERT_TRUE(c.Send("POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, body.size() / 2))
                  .has_value());
  auto r = c.Receive();  // the server closes the connection; nothing is answered
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(observed_.load(std::memory_order_relaxed), 0);
}

// More stalled bodies than cpprestsdk's pool had threads (40): with a thread held per waiting
// body (the old extract_string().get()), the API server's request could not be answered.
TEST_F(WebhookServerTest, ManyStalledBodiesDoNotStopAnAdmission) {
  std::vector<std::unique_ptr<TlsClient>> stalled;
  for (int i = 0; i < 48; ++i) {
    stalled.push_back(std::make_unique<TlsClient>());
    ASSERT_TRUE(stalled.back()->Connect(server_->port(), Ca(), kHost).has_value());
    ASSERT_TRUE(stalled.back()
                    ->Send("POST /mutate-pods HTTP/1.1\r\nHost: webhook\r\n"
                           "Content-Length: 4096\r\n\r\n{\"apiVersion\"")
                    .has_value());
  }
  TlsClient api_server;
  ASSERT_TRUE(api_server.Connect(server_->port(), Ca(), kHost).has_value());
  auto r = api_server.Request("POST", "/mutate-pods?timeout=10s", PodCreateReview());
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(observed_.load(std::memory_order_relaxed), 1);
}

TEST_F(WebhookServerTest, NoCertificateYetRefusesTheHandshake) {
  WebhookServerOptions o = Options();
  o.certificate = [] { return std::shared_ptr<const CertBundle>(); };
  WebhookServer server(o);
  ASSERT_TRUE(server.Start().has_value());
  TlsClient c;
  EXPECT_FALSE(c.Connect(server.port(), Ca(), kHost).has_value());
}

TEST(WebhookServer, RejectsBadAddressAndMissingReview) {
  WebhookServerOptions o;
  o.addr = "nonsense";
  o.review = [](std::string_view) { return AdmissionOutcome{}; };
  EXPECT_FALSE(WebhookServer(o).Start().has_value());
  WebhookServerOptions none;
  none.addr = "127.0.0.1:0";
  EXPECT_FALSE(WebhookServer(none).Start().has_value());
}

}  // namespace
}  // namespace modelswap::op
