// The injection webhook wired into cluster mode: a real modelswap-operator process against the
// fake API server with --webhook-addr on loopback. It must fill the chart's empty Secret with a
// certificate, patch the MutatingWebhookConfiguration's caBundle with its CA, detect native
// sidecars by a dry-run pod create (nothing stored), answer a real HTTPS AdmissionReview with a
// patch, create a missing Secret, serve on a dual-stack address with extra SANs and point the
// configuration at --webhook-url, and stop cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpprest/http_client.h>
#include <algorithm>
#include <ctime>
#include <regex>

#include "common/subprocess.h"
#include "operator/kube/resource.h"
#include "operator/webhook/certs.h"
#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/testing/prometheus_lint.h"
#include "tests/operator/testing/test_util.h"
#include "tests/operator/webhook/tls_client.h"

namespace modelswap::op {
namespace {

using modelswap::testing::WaitFor;

constexpr const char* kNs = "modelswap-system";
constexpr const char* kSecret = "modelswap-webhook-tls";
constexpr const char* kConfig = "modelswap";
constexpr const char* kServiceHost = "modelswap-webhook.modelswap-system.svc";

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  try {
    web::http::client::http_client c("http://127.0.0.1:" + std::to_string(port));
    auto r = c.request(web::http::methods::GET, path).get();
    return {r.status_code(), r.extract_string(true).get()};
  } catch (const std::exception&) {
    return {0, ""};
  }
}

class OperatorWebhook : public ::testing::Test {
 protected:
  void SetUp() override {
    // The chart passes the pod's namespace this way; the child inherits it.
    ::setenv("POD_NAMESPACE", kNs, 1);
    kubeconfig_ = dir_.Write("kubeconfig",
                             "apiVersion: v1\ncurrent-context: t\n"
                             "contexts: [{name: t, context: {cluster: f, user: u}}]\n"
                             "clusters: [{name: f, cluster: {server: \"" +
                                 server_.url() +
                                 "\"}}]\n"
                                 "users: [{name: u, user: {token: test}}]\n");
    // As the chart installs it: no caBundle (the operator owns it).
    server_.Create(kMutatingWebhookConfigurations, "",
                   {{"apiVersion", "admissionregistration.k8s.io/v1"},
                    {"kind", "MutatingWebhookConfiguration"},
                    {"metadata", {{"name", kConfig}}},
                    {"webhooks",
                     {{{"name", "inject.modelswap.io"},
                       {"clientConfig",
                        {{"service",
                          {{"name", "modelswap-webhook"},
                           {"namespace", kNs},
                           {"path", "/mutate-pods"},
                           {"port", 443}}}}}}}}});
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void CreateEmptySecret() {
    server_.Create(kSecrets, kNs,
                   {{"apiVersion", "v1"},
                    {"kind", "Secret"},
                    {"metadata", {{"name", kSecret}, {"namespace", kNs}}},
                    {"type", "Opaque"}});
  }
  // The chart's flags; `extra` adds to them. Without cert_dir the certificate is kept in the
  // Secret, else it is read from the mounted files.
  std::vector<std::string> Args(const std::vector<std::string>& extra,
                                const std::string& cert_dir) {
    std::vector<std::string> a = {MODELSWAP_OPERATOR_BIN,
                                  "--kubeconfig",
                                  kubeconfig_,
                                  "--namespace",
                                  "default",
                                  "--metrics-addr",
                                  "127.0.0.1:0",
                                  "--log-level",
                                  "info",
                                  "--webhook-addr",
                                  "127.0.0.1:0",
                                  "--webhook-service",
                                  "modelswap-webhook",
                                  "--webhook-config-name",
                                  kConfig,
                                  "--agent-image",
                                  "example/sidecar:2",
                                  "--poll-interval",
                                  "500ms",
                                  "--agent-memory-limit",
                                  "1Gi"};
    if (cert_dir.empty()) {
      a.insert(a.end(), {"--webhook-secret", kSecret});
    } else {
      a.insert(a.end(), {"--webhook-cert-dir", cert_dir});
    }
    a.insert(a.end(), extra.begin(), extra.end());
    // An --webhook-addr in `extra` replaces the loopback default (the flag is taken once).
    if (std::count(a.begin(), a.end(), "--webhook-addr") > 1) {
      a.erase(std::find(a.begin(), a.end(), "--webhook-addr"),
              std::find(a.begin(), a.end(), "--webhook-addr") + 2);
    }
    return a;
  }
  void Start(const std::vector<std::string>& extra = {}, const std::string& cert_dir = "") {
    auto pid = SpawnProcess(Args(extra, cert_dir), dir_.path + "/op.out", dir_.path + "/op.err");
    ASSERT_TRUE(pid.has_value()) << pid.error().ToString();
    pid_ = *pid;
    ASSERT_TRUE(WaitFor([&] {
      std::string log = modelswap::testing::ReadFile(dir_.path + "/op.err");
      std::smatch m;
      if (std::regex_search(
              log, m,
              std::regex("webhook listening url=https://(?:127\\.0\\.0\\.1|\\[::\\]):(\\d+)")))
        webhook_port_ = std::stoi(m[1]);
      if (std::regex_search(log, m, std::regex("health listening addr=\\S+ port=(\\d+)")))
        health_port_ = std::stoi(m[1]);
      return webhook_port_ > 0 && health_port_ > 0;
    })) << modelswap::testing::ReadFile(dir_.path + "/op.err");
  }
  std::string SecretData(const char* key) {
    auto s = server_.Get(kSecrets, kNs, kSecret);
    if (!s || !s->contains("data") || !(*s)["data"].contains(key)) return "";
    return (*s)["data"][key].get<std::string>();
  }
  std::string CaBundle() {
    auto mwc = server_.Get(kMutatingWebhookConfigurations, "", kConfig);
    return mwc ? Field<std::string>((*mwc)["webhooks"][0], {"clientConfig", "caBundle"}) : "";
  }
  std::string Log() { return modelswap::testing::ReadFile(dir_.path + "/op.err"); }
  // POSTs the recorded AdmissionReview over TLS, verifying the server against the Secret's CA
  // and the Service's DNS name like the API server does; returns the decoded JSONPatch.
  Json Admit() {
    auto ca = Base64Decode(SecretData(kSecretCaKey));
    EXPECT_TRUE(ca.has_value());
    op::testing::TlsClient tls;
    auto connected = tls.Connect(webhook_port_, ca.value_or(""), kServiceHost);
    EXPECT_TRUE(connected) << "handshake against the Secret's CA";
    if (!connected) return Json::array();
    std::string request = modelswap::testing::Fixture("admission-request-pod-create.json");
    auto resp = tls.Request("POST", "/mutate-pods", request);
    EXPECT_TRUE(resp.has_value());
    if (!resp) return Json::array();
    EXPECT_EQ(resp->status, 200) << resp->body;
    Json review = Json::parse(resp->body, nullptr, false);
    EXPECT_EQ(review["response"]["uid"], Json::parse(request)["request"]["uid"]);
    EXPECT_EQ(review["response"]["allowed"], true);
    EXPECT_EQ(review["response"]["patchType"], "JSONPatch");
    auto text = Base64Decode(review["response"].value("patch", ""));
    EXPECT_TRUE(text.has_value());
    return text ? Json::parse(*text, nullptr, false) : Json::array();
  }

  fake::FakeApiServer server_;
  modelswap::testing::TempDir dir_;
  std::string kubeconfig_;
  pid_t pid_ = -1;
  int webhook_port_ = 0, health_port_ = 0;
};

TEST_F(OperatorWebhook, ServesAdmissionsWithTheCertificateItKeepsInTheSecret) {
  CreateEmptySecret();
  Start();
  ASSERT_TRUE(WaitFor([&] { return !SecretData(kSecretCertKey).empty(); })) << Log();
  ASSERT_TRUE(WaitFor([&] { return !CaBundle().empty(); })) << Log();
  EXPECT_EQ(CaBundle(), SecretData(kSecretCaKey));
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  // The dry-run probe found native sidecars (the fake server keeps restartPolicy) and stored
  // nothing.
  ASSERT_TRUE(WaitFor([&] {
    return HttpGet(health_port_, "/metrics").second.find("modelswap_webhook_native_sidecars 1") !=
           std::string::npos;
  })) << Log();
  EXPECT_GE(server_.CountRequests("POST", "pods"), 1);
  EXPECT_TRUE(server_.List(kPods, kNs).empty());

  Json patch = Admit();
  const Json* agent = nullptr;
  for (const Json& op : patch) {
    if (op["path"] == "/spec/initContainers") agent = &op["value"][0];
  }
  ASSERT_NE(agent, nullptr) << patch.dump(1);
  EXPECT_EQ((*agent)["name"], "modelswap-agent");
  EXPECT_EQ((*agent)["restartPolicy"], "Always");  // native sidecar, as detected
  EXPECT_EQ((*agent)["image"], "example/sidecar:2");
  EXPECT_EQ((*agent)["resources"]["limits"]["memory"], "1Gi");
  EXPECT_NE(HttpGet(health_port_, "/metrics")
                .second.find("modelswap_webhook_admissions_total{verdict=\"patched\"} 1"),
            std::string::npos);
  // Every family the operator exports follows Prometheus' naming (counters end in _total, and
  // only they; base units).
  EXPECT_EQ(modelswap::testing::LintMetrics(HttpGet(health_port_, "/metrics").second),
            std::vector<std::string>{});

  // SIGTERM: webhook, certificate thread and detector stop; exit 0.
  ::kill(pid_, SIGTERM);
  std::optional<int> code;
  ASSERT_TRUE(WaitFor([&] { return (code = TryReap(pid_)).has_value(); })) << Log();
  pid_ = -1;
  EXPECT_EQ(*code, 0) << Log();
}

TEST_F(OperatorWebhook, FallsBackToAPlainContainerWhenTheDryRunDropsRestartPolicy) {
  server_.SetNativeSidecars(false);  // like a 1.28 server with the SidecarContainers gate off
  CreateEmptySecret();
  Start();
  ASSERT_TRUE(WaitFor([&] { return Log().find("sidecar support=") != std::string::npos; }));
  EXPECT_NE(Log().find("sidecar support=not-supported"), std::string::npos) << Log();
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  Json patch = Admit();
  bool init = false, first_container = false;
  for (const Json& op : patch) {
    init |= op["path"].get<std::string>().starts_with("/spec/initContainers");
    first_container |=
        op["path"] == "/spec/containers/0" && op["value"]["name"] == "modelswap-agent";
  }
  EXPECT_FALSE(init) << patch.dump(1);
  EXPECT_TRUE(first_container) << patch.dump(1);
}

// With a node cache configured the operator reads the pod's namespace before offering the
// hostPath. The fake API server serves no Namespace objects (a 404, like a missing RBAC grant
// answers 403): the pod gets the per-pod fallback and the annotation says why; nothing is refused.
TEST_F(OperatorWebhook, NodeCacheFallsBackWhenTheNamespaceCannotBeRead) {
  CreateEmptySecret();
  Start({"--node-cache-host-path", "/var/lib/modelswap/cache", "--agent-stage-dir",
         "/var/run/modelswap/stage", "--per-pod-cache-max-bytes", "1Gi"});
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  Json patch = Admit();
  const Json* agent = nullptr;
  std::string note;
  bool host_path = false;
  for (const Json& op : patch) {
    if (op["path"] == "/spec/initContainers") agent = &op["value"][0];
    if (op["path"] == "/metadata/annotations/modelswap.io~1node-cache") note = op["value"];
    host_path |= op.dump().find("hostPath") != std::string::npos;
  }
  ASSERT_NE(agent, nullptr) << patch.dump(1);
  EXPECT_FALSE(host_path) << patch.dump(1);
  const Json& args = (*agent)["args"];
  EXPECT_NE(std::find(args.begin(), args.end(), "/var/run/modelswap/stage"), args.end())
      << args.dump();
  EXPECT_EQ(note.rfind("disabled: Pod Security level of namespace default unknown (get namespace "
                       "default: ",
                       0),
            0u)
      << note;
  EXPECT_NE(Log().find("webhook: no node cache for a pod in namespace default"), std::string::npos)
      << Log();
}

TEST_F(OperatorWebhook, AMissingSecretIsCreated) {
  Start();  // no Secret: deleted, or the chart's not applied yet
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  EXPECT_FALSE(SecretData(kSecretCertKey).empty());
  EXPECT_FALSE(SecretData(kSecretCaPrivateKey).empty());
  EXPECT_NE(Log().find("is missing: re-creating it"), std::string::npos) << Log();
  EXPECT_TRUE(WaitFor([&] { return CaBundle() == SecretData(kSecretCaKey); })) << Log();
  EXPECT_FALSE(Admit().empty());
}

bool HasIpv6Loopback() {
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

TEST_F(OperatorWebhook, OutsideTheClusterOnADualStackAddressWithAUrl) {
  if (!HasIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  CreateEmptySecret();
  const std::string url = "https://127.0.0.1:9443/mutate-pods";
  Start({"--webhook-addr", "[::]:0", "--webhook-extra-san", "::1", "--webhook-extra-san",
         "dev.example.com", "--webhook-url", url});
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  ASSERT_TRUE(WaitFor([&] {
    auto mwc = server_.Get(kMutatingWebhookConfigurations, "", kConfig);
    return mwc && Field<std::string>((*mwc)["webhooks"][0], {"clientConfig", "url"}) == url;
  })) << Log();
  auto mwc = server_.Get(kMutatingWebhookConfigurations, "", kConfig);
  EXPECT_FALSE((*mwc)["webhooks"][0]["clientConfig"].contains("service"));
  ASSERT_TRUE(WaitFor([&] { return !CaBundle().empty(); })) << Log();
  std::string trust = *Base64Decode(CaBundle());
  // IPv4 through the dual-stack socket (a v4-mapped peer) and IPv6, each verified against the
  // name the API server would use: the URL's IP, ::1, an extra DNS name, the Service.
  struct Case {
    const char* ip;
    const char* name;
  };
  for (Case c : {Case{"127.0.0.1", "127.0.0.1"}, Case{"::1", "::1"},
                 Case{"127.0.0.1", "dev.example.com"}, Case{"::1", kServiceHost}}) {
    op::testing::TlsClient tls;
    EXPECT_TRUE(tls.Connect(webhook_port_, trust, c.name, c.ip)) << c.ip << " " << c.name;
  }
  op::testing::TlsClient tls;
  EXPECT_FALSE(tls.Connect(webhook_port_, trust, "127.0.0.2", "127.0.0.1"));  // not named
}

TEST_F(OperatorWebhook, RotatedSecretIsServedFromTheNextConnection) {
  CreateEmptySecret();
  Start({"--webhook-cert-reload", "0.2"});
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  auto fresh = GenerateCertBundle(ServiceDnsNames("modelswap-webhook", kNs), std::time(nullptr),
                                  std::chrono::hours(24 * 365));
  ASSERT_TRUE(fresh.has_value());
  op::testing::TlsClient tls;
  EXPECT_FALSE(tls.Connect(webhook_port_, fresh->ca_pem, kServiceHost))
      << "the old certificate is not signed by the new CA";
  // Rotated by someone else (another replica renewing, an admin): the Secret changes.
  ASSERT_TRUE(server_.PatchSpec(kSecrets, kNs, kSecret, SecretPatch(*fresh, "")));
  ASSERT_TRUE(WaitFor([&] {
    op::testing::TlsClient c;
    return c.Connect(webhook_port_, fresh->ca_pem, kServiceHost).has_value();
  })) << Log();
  ASSERT_TRUE(WaitFor([&] { return CaBundle() == Base64Encode(fresh->ca_pem); })) << Log();
}

TEST_F(OperatorWebhook, MountedCertificatesAreServedWithoutASecret) {
  auto bundle = GenerateCertBundle(ServiceDnsNames("modelswap-webhook", kNs), std::time(nullptr),
                                   std::chrono::hours(24 * 365));
  ASSERT_TRUE(bundle.has_value());
  dir_.Write("certs/tls.crt", bundle->cert_pem);
  dir_.Write("certs/tls.key", bundle->key_pem);
  dir_.Write("certs/ca.crt", bundle->ca_pem);
  Start({}, dir_.path + "/certs");
  ASSERT_TRUE(WaitFor([&] { return HttpGet(health_port_, "/readyz").first == 200; })) << Log();
  op::testing::TlsClient tls;
  EXPECT_TRUE(tls.Connect(webhook_port_, bundle->ca_pem, kServiceHost));
  ASSERT_TRUE(WaitFor([&] { return CaBundle() == Base64Encode(bundle->ca_pem); })) << Log();
  EXPECT_EQ(server_.CountRequests("GET", "secrets"), 0);
}

TEST(OperatorWebhookFlags, BadWebhookFlagsFailAtStartNamingTheFlag) {
  struct Case {
    std::vector<std::string> extra;
    std::string message;
    int exit_code = 2;  // 2: checked after parsing; CLI11's own checks exit 105 (ValidationError)
  };
  const Case cases[] = {
      {{"--webhook-addr", "127.0.0.1:0"}, "--webhook-secret"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--poll-interval", "soon"},
       "--poll-interval"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--agent-cpu", "lots"},
       "webhook injection flags"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--webhook-service", "a.b"},
       "--webhook-service"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--webhook-extra-san", "a_b"},
       "--webhook-extra-san"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--webhook-config-name", "c",
        "--webhook-url", "http://127.0.0.1:9443/m"},
       "--webhook-url"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--webhook-url",
        "https://127.0.0.1:9443/m"},
       "--webhook-config-name"},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--pod-security-default",
        "strict"},
       "--pod-security-default",
       105},
      {{"--webhook-addr", "127.0.0.1:0", "--webhook-secret", "s", "--node-cache-host-path",
        "/var/lib/modelswap/cache", "--node-cache-max-bytes", "500m"},
       "node cache max bytes"},
  };
  fake::FakeApiServer server;
  modelswap::testing::TempDir dir;
  std::string kubeconfig =
      dir.Write("kubeconfig",
                "apiVersion: v1\ncurrent-context: t\n"
                "contexts: [{name: t, context: {cluster: f, user: u, namespace: ops}}]\n"
                "clusters: [{name: f, cluster: {server: \"" +
                    server.url() + "\"}}]\nusers: [{name: u, user: {token: test}}]\n");
  for (const Case& c : cases) {
    std::vector<std::string> argv = {MODELSWAP_OPERATOR_BIN, "--kubeconfig", kubeconfig,
                                     "--metrics-addr", "127.0.0.1:0"};
    argv.insert(argv.end(), c.extra.begin(), c.extra.end());
    auto out = RunProcess(argv, {}, std::chrono::seconds(60));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->exit_code, c.exit_code) << c.message;
    EXPECT_NE(out->err.find(c.message), std::string::npos) << out->err;
  }
}

}  // namespace
}  // namespace modelswap::op
