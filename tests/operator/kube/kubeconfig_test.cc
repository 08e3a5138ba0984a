// kubeconfig parsing and credential sources: inline and file certificates, token, tokenFile,
// exec plugins (ExecCredential cached until expiry), and the error paths.
#include "operator/kube/kubeconfig.h"

#include <gtest/gtest.h>

#include "operator/kube/credentials.h"
#include "operator/kube/object.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::TempDir;

// base64 of "CA-PEM", "CERT-PEM", "KEY-PEM".
constexpr const char* kInline = R"(apiVersion: v1
kind: Config
current-context: aks
contexts:
- name: aks
  context: {cluster: c1, user: u1, namespace: models}
- name: other
  context: {cluster: c2, user: u2}
clusters:
- name: c1
  cluster:
    server: https://c1.example:443/
    certificate-authority-data: Q0EtUEVN
- name: c2
  cluster:
    server: https://c2.example
    certificate-authority: ca.crt
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    client-certificate-data: Q0VSVC1QRU0=
    client-key-data: S0VZLVBFTQ==
- name: u2
  user:
    client-certificate: certs/client.crt
    client-key: certs/client.key
    token: static-token
)";

TEST(KubeconfigTest, InlineDataAndCurrentContext) {
  auto cfg = ParseKubeconfig(DefaultEnv(), kInline, "/nonexistent", "test");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
  EXPECT_EQ(cfg->server, "https://c1.example:443");
  EXPECT_EQ(cfg->ca_pem, "CA-PEM");
  EXPECT_EQ(cfg->client_cert_pem, "CERT-PEM");
  EXPECT_EQ(cfg->client_key_pem, "KEY-PEM");
  EXPECT_EQ(cfg->default_namespace, "models");
  EXPECT_FALSE(cfg->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, FilesResolveRelativeToTheKubeconfig) {
  TempDir dir;
  dir.Write("ca.crt", "FILE-CA");
  dir.Write("certs/client.crt", "FILE-CERT");
  dir.Write("certs/client.key", "FILE-KEY");
  std::string path = dir.Write("config", kInline);
  auto cfg = LoadKubeconfig(DefaultEnv(), path, "other");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
  EXPECT_EQ(cfg->ca_pem, "FILE-CA");
  EXPECT_EQ(cfg->client_cert_pem, "FILE-CERT");
  EXPECT_EQ(cfg->client_key_pem, "FILE-KEY");
  EXPECT_EQ(cfg->token, "static-token");
  EXPECT_TRUE(cfg->insecure_skip_tls_verify);
}

TEST(KubeconfigTest, MissingCertificateFileNamesIt) {
  TempDir dir;
  std::string path = dir.Write("config", kInline);
  auto cfg = LoadKubeconfig(DefaultEnv(), path, "other");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("ca.crt"), std::string::npos) << cfg.error().message();
}

TEST(KubeconfigTest, UnknownContextIsAnError) {
  auto cfg = ParseKubeconfig(DefaultEnv(), kInline, "", "test", "nope");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("no context named \"nope\""), std::string::npos);
}

TEST(KubeconfigTest, BadBase64IsAnError) {
  std::string text = kInline;
  text.replace(text.find("Q0EtUEVN"), 8, "Q0E*UEVN");
  auto cfg = ParseKubeconfig(DefaultEnv(), text, "", "test");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("certificate-authority-data"), std::string::npos);
}

// Data wrapped over lines (a YAML block scalar) decodes; data that is not padded base64 does not,
// as kubectl (Go's base64.StdEncoding) refuses it too.
TEST(KubeconfigTest, DataMayBreakLinesButMustBePadded) {
  std::string text = kInline;
  text.replace(text.find("Q0VSVC1QRU0="), 12, "|\n      Q0VS\n      VC1QRU0=");
  auto cfg = ParseKubeconfig(DefaultEnv(), text, "", "test");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
  EXPECT_EQ(cfg->client_cert_pem, "CERT-PEM");

  text = kInline;
  text.replace(text.find("S0VZLVBFTQ=="), 12, "S0VZLVBFTQ");
  cfg = ParseKubeconfig(DefaultEnv(), text, "", "test");
  ASSERT_FALSE(cfg.has_value());
  EXPECT_NE(cfg.error().message().find("client-key-data"), std::string::npos);
  EXPECT_NE(cfg.error().message().find("not a multiple of 4"), std::string::npos);
}

TEST(KubeconfigTest, NotYamlIsAnError) {
  EXPECT_FALSE(ParseKubeconfig(DefaultEnv(), "{{{{", "", "test").has_value());
}

TEST(KubeconfigTest, TokenFileIsReReadAfterRefreshPeriod) {
  TempDir dir;
  testing::FakeClockEnv env;
  std::string path = dir.Write("token", "one\n");
  FileTokenSource src(&env, path, std::chrono::seconds(60));
  EXPECT_EQ(*src.Token(), "one");
  dir.Write("token", "two\n");     // kubelet rotated it
  EXPECT_EQ(*src.Token(), "one");  // still within the refresh period
  env.Advance(std::chrono::seconds(61));
  EXPECT_EQ(*src.Token(), "two");
}

TEST(KubeconfigTest, InClusterReadsServiceAccount) {
  TempDir dir;
  dir.Write("sa/token", "sa-token");
  dir.Write("sa/ca.crt", "SA-CA");
  dir.Write("sa/namespace", "modelswap");
  auto cfg = InClusterConfig(DefaultEnv(), "10.0.0.1", "443", dir.path + "/sa");
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->server, "https://10.0.0.1:443");
  EXPECT_EQ(cfg->ca_pem, "SA-CA");
  EXPECT_EQ(cfg->default_namespace, "modelswap");
  EXPECT_EQ(*MakeTokenSource(DefaultEnv(), *cfg)->Token(), "sa-token");
  EXPECT_FALSE(InClusterConfig(DefaultEnv(), "", "", dir.path + "/sa").has_value());
}

std::string ExecKubeconfig(const std::string& command) {
  return std::string(R"(apiVersion: v1
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://aks.example"}}]
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: )") +
         command + R"(
      args: [get-token, --server-id, abc]
      env: [{name: PLUGIN_MODE, value: test}]
      installHint: install kubelogin from https://aka.ms/kubelogin
)";
}

class ExecPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    counter_ = dir_.path + "/runs";
    // Counts its runs, checks args/env/KUBERNETES_EXEC_INFO, prints an ExecCredential.
    plugin_ = dir_.Write(
        "kubelogin",
        "#!/bin/sh\n"
        "echo x >> " +
            counter_ +
            "\n"
            "[ \"$1 $2 $3\" = \"get-token --server-id abc\" ] || exit 5\n"
            "[ \"$PLUGIN_MODE\" = test ] || exit 6\n"
            "case \"$KUBERNETES_EXEC_INFO\" in *aks.example*) ;; *) exit 7;; esac\n"
            "cat <<J\n{\"apiVersion\":\"client.authentication.k8s.io/v1\","
            "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"tok-$(wc -l < " +
            counter_ + " | tr -d ' ')\",\"expirationTimestamp\":\"2026-11-22T01:00:00Z\"}}\nJ\n",
        /*exec=*/true);
  }
  int Runs() {
    std::string text = testing::ReadFile(counter_);
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
  }
  TempDir dir_;
  std::string plugin_, counter_;
};

TEST_F(ExecPluginTest, TokenIsCachedUntilExpiry) {
  testing::FakeClockEnv env;
  env.SetUnix(ParseTime("2026-11-22T00:00:00Z"));
  auto cfg = ParseKubeconfig(&env, ExecKubeconfig(plugin_), "", "test");
  ASSERT_TRUE(cfg.has_value()) << cfg.error().ToString();
  ASSERT_TRUE(cfg->exec.has_value());
  auto src = MakeTokenSource(&env, *cfg);
  auto t1 = src->Token();
  ASSERT_TRUE(t1.has_value()) << t1.error().ToString();
  EXPECT_EQ(*t1, "tok-1");
  env.Advance(std::chrono::minutes(30));
  EXPECT_EQ(*src->Token(), "tok-1");  // cached: expiry is 01:00
  EXPECT_EQ(Runs(), 1);
  env.Advance(std::chrono::minutes(31));  // past the expiry
  EXPECT_EQ(*src->Token(), "tok-2");
  EXPECT_EQ(Runs(), 2);
}

TEST_F(ExecPluginTest, InvalidateForcesANewToken) {
  testing::FakeClockEnv env;
  env.SetUnix(ParseTime("2026-11-22T00:00:00Z"));
  auto cfg = ParseKubeconfig(&env, ExecKubeconfig(plugin_), "", "test");
  auto src = MakeTokenSource(&env, *cfg);
  EXPECT_EQ(*src->Token(), "tok-1");
  src->Invalidate();  // the server said 401
  EXPECT_EQ(*src->Token(), "tok-2");
}

TEST(ExecPluginErrorTest, MissingPluginIsAClearError) {
  auto cfg = ParseKubeconfig(DefaultEnv(), ExecKubeconfig("kubelogin-not-installed-here"), "", "t");
  ASSERT_TRUE(cfg.has_value());
  auto tok = MakeTokenSource(DefaultEnv(), *cfg)->Token();
  ASSERT_FALSE(tok.has_value());
  EXPECT_EQ(tok.error().code(), Code::kNotFound);
  EXPECT_NE(tok.error().message().find("kubelogin-not-installed-here"), std::string::npos);
  EXPECT_NE(tok.error().message().find("aka.ms/kubelogin"), std::string::npos);
}

TEST(ExecPluginErrorTest, FailingPluginReportsItsStderr) {
  TempDir dir;
  std::string p = dir.Write(
      "plugin", "#!/bin/sh\necho 'AADSTS70043: refresh token expired' >&2\nexit 1\n", true);
  auto cfg = ParseKubeconfig(DefaultEnv(), ExecKubeconfig(p), "", "t");
  auto tok = MakeTokenSource(DefaultEnv(), *cfg)->Token();
  ASSERT_FALSE(tok.has_value());
  EXPECT_NE(tok.error().message().find("AADSTS70043"), std::string::npos);
}

TEST(ExecPluginErrorTest, WrongApiVersionIsRejectedAtParse) {
  std::string text = ExecKubeconfig("x");
  text.replace(text.find("client.authentication.k8s.io/v1"), 31,
               "client.authentication.k8s.io/v1alpha1");
  EXPECT_FALSE(ParseKubeconfig(DefaultEnv(), text, "", "t").has_value());
}

TEST(ExecPluginErrorTest, CredentialWithoutTokenIsAnError) {
  EXPECT_FALSE(ParseExecCredential(R"({"kind":"ExecCredential","status":{}})").has_value());
  EXPECT_FALSE(ParseExecCredential("not json").has_value());
  EXPECT_FALSE(
      ParseExecCredential(
          R"({"kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"soon"}})")
          .has_value());
}

}  // namespace
}  // namespace modelswap::op
