// Sidecar injection through a real API server: a MutatingWebhookConfiguration (as the chart's,
// scoped to the test's namespace) whose clientConfig.url points at the operator's webhook on
// loopback; the operator fills its certificate Secret and patches the configuration's caBundle;
// a Pod created through the API server comes out injected.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "tests/e2e/e2e_fixture.h"

namespace modelswap::op::e2e {
namespace {

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// Whether this operator build has the flag (the URL-style clientConfig came later than the
// Service one): asked of the binary itself.
bool OperatorHasFlag(const std::string& flag) {
  auto r = RunProcess({MODELSWAP_OPERATOR_BIN, "--help"}, {}, std::chrono::seconds(30));
  return r && (r->out + r->err).find(flag) != std::string::npos;
}

bool Injected(const Json& pod, std::string& seen) {
  seen =
      "labels " + Field<Json>(pod, {"metadata", "labels"}, Json::object()).dump() + ", containers:";
  bool agent = false;
  for (const char* list : {"initContainers", "containers"}) {
    for (const auto& c : Field<Json>(pod, {"spec", list}, Json::array())) {
      seen += " " + Field<std::string>(c, {"name"});
      agent |= Field<std::string>(c, {"name"}) == "modelswap-agent";
    }
  }
  return agent && LabelOf(pod, kLabelInjected) == "true";
}

class E2eWebhook : public E2ETest {
 protected:
  void TearDown() override {
    if (!mwc_.empty()) (void)client_->Delete(kMutatingWebhookConfigurations, "", mwc_);
    E2ETest::TearDown();
  }
  std::string mwc_;  // cluster-scoped: deleted even when the test fails
};

TEST_F(E2eWebhook, PodCreatedThroughTheApiServerComesOutInjected) {
  E2E_REQUIRE_REAL_SERVER("admission webhooks");
  // The webhook listens on this machine's loopback: only an API server here can call it.
  const std::string& server = config_.server;
  if (server.find("://127.") == std::string::npos &&
      server.find("://localhost") == std::string::npos &&
      server.find("://[::1]") == std::string::npos) {
    GTEST_SKIP() << "the API server (" << server
                 << ") is not on this machine, so it cannot call a webhook on 127.0.0.1";
  }
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const bool url_flag = OperatorHasFlag("--webhook-url");
  // With --webhook-url the URL's host (an IP here) joins the certificate; without it the
  // certificate names the Service, so the Service is called "localhost".
  const std::string url = "https://" + std::string(url_flag ? "127.0.0.1" : "localhost") + ":" +
                          std::to_string(port) + "/mutate-pods";
  const std::string secret = "modelswap-webhook-tls";
  mwc_ = "modelswap-e2e-" + RandomSuffix();

  ASSERT_TRUE(client_
                  ->Create(kSecrets, ns_,
                           {{"apiVersion", "v1"},
                            {"kind", "Secret"},
                            {"metadata", {{"name", secret}}},
                            {"type", "Opaque"}})
                  .has_value());
  // As the chart installs it, but called by URL and limited to this test's namespace; no
  // caBundle: the operator patches it.
  Json mwc = {{"apiVersion", "admissionregistration.k8s.io/v1"},
              {"kind", "MutatingWebhookConfiguration"},
              {"metadata", {{"name", mwc_}}},
              {"webhooks",
               {{{"name", "inject.modelswap.io"},
                 {"admissionReviewVersions", {"v1"}},
                 {"sideEffects", "None"},
                 {"failurePolicy", "Fail"},
                 {"reinvocationPolicy", "IfNeeded"},
                 {"matchPolicy", "Equivalent"},
                 {"timeoutSeconds", 10},
                 {"clientConfig", {{"url", url}}},
                 {"rules",
                  {{{"operations", {"CREATE"}},
                    {"apiGroups", {""}},
                    {"apiVersions", {"v1"}},
                    {"resources", {"pods"}},
                    {"scope", "Namespaced"}}}},
                 {"objectSelector", {{"matchLabels", {{kLabelInjectOptIn, "true"}}}}},
                 {"namespaceSelector",
                  {{"matchExpressions",
                    {{{"key", "kubernetes.io/metadata.name"},
                      {"operator", "In"},
                      {"values", {ns_}}}}}}}}}}};
  auto created = client_->Create(kMutatingWebhookConfigurations, "", mwc);
  ASSERT_TRUE(created.has_value()) << created.error().ToString();

  ::setenv("POD_NAMESPACE", ns_.c_str(), 1);  // the operator's own namespace: its Secret
  std::vector<std::string> flags = {
      "--webhook-addr",        "127.0.0.1:" + std::to_string(port),
      "--webhook-secret",      secret,
      "--webhook-config-name", mwc_,
      "--agent-image",         "example.invalid/modelswap-sidecar:e2e"};
  if (url_flag) {
    flags.insert(flags.end(), {"--webhook-url", url});
  } else {
    flags.insert(flags.end(), {"--webhook-service", "localhost"});
  }
  OperatorProcess* op = StartOperator("operator", flags);
  ASSERT_NE(op, nullptr);

  ASSERT_TRUE(Eventually(
      "the Secret's CA as the configuration's caBundle", std::chrono::seconds(60),
      [&](std::string& seen) {
        auto s = client_->Get(kSecrets, ns_, secret);
        auto m = client_->Get(kMutatingWebhookConfigurations, "", mwc_);
        if (!s || !m) return false;
        std::string ca = Field<std::string>(*s, {"data", "ca.crt"});
        std::string bundle = Field<std::string>(Field<Json>(*m, {"webhooks"}, Json::array())[0],
                                                {"clientConfig", "caBundle"});
        seen = "ca.crt " + std::to_string(ca.size()) + " bytes, caBundle " +
               std::to_string(bundle.size()) + " bytes";
        return !ca.empty() && ca == bundle;
      }))
      << op->Log();

  const std::string pod_name = "app-" + RandomSuffix();
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", pod_name},
                {"labels", {{kLabelInjectOptIn, "true"}}},
                {"annotations", {{kLabelInjectOptIn, "true"}, {kAnnotationModels, "ranker"}}}}},
              {"spec",
               {{"containers", {{{"name", "app"}, {"image", "example.invalid/app:e2e"}}}},
                {"automountServiceAccountToken", false}}}};
  // The API server picks up a new configuration within about a second, and a new namespace's
  // default ServiceAccount may lag: dry-run until the answer comes back injected.
  ASSERT_TRUE(Eventually("a dry-run Pod to come back injected", std::chrono::seconds(60),
                         [&](std::string& seen) {
                           auto r = client_->Create(kPods, ns_, pod, /*dry_run=*/true);
                           if (!r) {
                             seen = r.error().ToString();
                             return false;
                           }
                           return Injected(*r, seen);
                         }))
      << op->Log();
  auto real = client_->Create(kPods, ns_, pod);
  ASSERT_TRUE(real.has_value()) << real.error().ToString();
  std::string seen;
  EXPECT_TRUE(Injected(*real, seen)) << seen;
  auto stored = client_->Get(kPods, ns_, pod_name);
  ASSERT_TRUE(stored.has_value()) << stored.error().ToString();
  EXPECT_TRUE(Injected(*stored, seen)) << seen;
  std::set<std::string> volumes;
  for (const auto& v : Field<Json>(*stored, {"spec", "volumes"}, Json::array()))
    volumes.insert(Field<std::string>(v, {"name"}));
  EXPECT_TRUE(volumes.count("modelswap-models") && volumes.count("modelswap-shm"))
      << Field<Json>(*stored, {"spec", "volumes"}).dump();
  bool env = false;
  for (const auto& c : Field<Json>(*stored, {"spec", "containers"}, Json::array())) {
    if (Field<std::string>(c, {"name"}) != "app") continue;
    for (const auto& e : Field<Json>(c, {"env"}, Json::array()))
      env |= Field<std::string>(e, {"name"}) == "MODELSWAP_MODELS" &&
             Field<std::string>(e, {"value"}) == "ranker";
  }
  EXPECT_TRUE(env) << "the app container lacks MODELSWAP_MODELS=ranker: " << stored->dump();
  (void)client_->Delete(kPods, ns_, pod_name);
}

}  // namespace
}  // namespace modelswap::op::e2e
