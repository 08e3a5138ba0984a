// Webhook certificates as pure functions: generation (DNS and IP SANs), each validation check,
// SAN and URL validation, PEM bundles, the Secret bodies, and the MutatingWebhookConfiguration
// patches (caBundle, clientConfig.url). The rotation policy is cert_plan_test.cc, CertManager
// against the fake API server cert_manager_test.cc.
#include "operator/webhook/certs.h"

#include <gtest/gtest.h>

#include "operator/webhook/webhook_config.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

constexpr int64_t kNow = 1'800'000'000;
const std::vector<std::string> kNames = ServiceDnsNames("modelswap-webhook", "ms");

CertBundle Bundle(int64_t now = kNow, std::chrono::hours validity = std::chrono::hours(24 * 365)) {
  auto b = GenerateCertBundle(kNames, now, validity);
  EXPECT_TRUE(b.has_value()) << b.error().ToString();
  return *b;
}

void ExpectInvalid(const Status& st, const char* fragment) {
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find(fragment), std::string::npos) << st.error().message();
}

TEST(Certs, ServiceDnsNames) {
  EXPECT_EQ(kNames, (std::vector<std::string>{"modelswap-webhook", "modelswap-webhook.ms",
                                              "modelswap-webhook.ms.svc",
                                              "modelswap-webhook.ms.svc.cluster.local"}));
}

TEST(Certs, GeneratedBundleIsValidAndCoversNames) {
  CertBundle b = Bundle();
  EXPECT_TRUE(ValidateCertBundle(b, kNames, kNow, std::chrono::hours(24)).has_value());
  auto leaf = InspectCertificate(b.cert_pem);
  ASSERT_TRUE(leaf.has_value());
  EXPECT_EQ(leaf->dns_names, kNames);
  EXPECT_FALSE(leaf->is_ca);
  EXPECT_EQ(leaf->not_before_unix, kNow - 3600);
  EXPECT_EQ(leaf->not_after_unix, kNow + 365 * 24 * 3600);
  auto ca = InspectCertificate(b.ca_pem);
  ASSERT_TRUE(ca.has_value());
  EXPECT_TRUE(ca->is_ca);
}

TEST(Certs, IpAddressesBecomeIpSans) {
  auto b = GenerateCertBundle({"modelswap-webhook", "127.0.0.1", "::1", "dev.example.com"}, kNow,
                              std::chrono::hours(24));
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  auto leaf = InspectCertificate(b->cert_pem);
  ASSERT_TRUE(leaf.has_value());
  EXPECT_EQ(leaf->dns_names, (std::vector<std::string>{"modelswap-webhook", "dev.example.com"}));
  EXPECT_EQ(leaf->ip_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_TRUE(CheckCovers(b->cert_pem, {"127.0.0.1", "::1", "dev.example.com"}).has_value());
  ExpectInvalid(CheckCovers(b->cert_pem, {"127.0.0.2"}), "does not cover 127.0.0.2");
  // An IP is not matched as a DNS name, nor the other way round.
  ExpectInvalid(CheckCovers(Bundle().cert_pem, {"127.0.0.1"}), "does not cover");
}

TEST(Certs, SubjectAltNamesAreValidated) {
  for (const char* ok : {"localhost", "10.0.0.1", "fd00::1", "::1", "a.b-c.example"}) {
    EXPECT_TRUE(ValidateSubjectAltName(ok).has_value()) << ok;
  }
  for (const char* bad :
       {"", "[::1]", "*.example.com", "UPPER.example", "a..b", "-a", "1.2.3.4:80", "has space"}) {
    EXPECT_FALSE(ValidateSubjectAltName(bad).has_value()) << bad;
  }
}

TEST(Certs, ServingCertNeverOutlivesItsCa) {
  auto ca = GenerateCa(kNow, std::chrono::hours(48));
  ASSERT_TRUE(ca.has_value());
  auto leaf = IssueServingCert(*ca, kNames, kNow, std::chrono::hours(24 * 365));
  ASSERT_TRUE(leaf.has_value());
  EXPECT_EQ(InspectCertificate(leaf->cert_pem)->not_after_unix,
            InspectCertificate(ca->cert_pem)->not_after_unix);
  EXPECT_TRUE(IsSignedBy(leaf->cert_pem, ca->cert_pem));
  EXPECT_FALSE(IsSignedBy(leaf->cert_pem, Bundle().ca_pem));
}

TEST(Certs, SplitCertificates) {
  CertBundle a = Bundle(), b = Bundle();
  auto both = SplitCertificates(a.ca_pem + "\n" + b.ca_pem);
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ(*both, (std::vector<std::string>{a.ca_pem, b.ca_pem}));
  EXPECT_FALSE(SplitCertificates("").has_value());
  EXPECT_FALSE(SplitCertificates("garbage").has_value());
  EXPECT_FALSE(
      SplitCertificates(a.ca_pem + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
          .has_value());
}

TEST(Certs, SignedByEitherCaOfABundle) {
  CertBundle b = Bundle();
  CertBundle two = b;
  two.ca_pem = Bundle().ca_pem + b.ca_pem;
  EXPECT_TRUE(ValidateCertBundle(two, kNames, kNow, {}).has_value());
}

TEST(Certs, NoNamesIsAnError) {
  EXPECT_FALSE(GenerateCertBundle({}, kNow, std::chrono::hours(1)).has_value());
}

TEST(Certs, KeyMismatch) {
  CertBundle b = Bundle();
  b.key_pem = Bundle().key_pem;
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, {}), "does not match the certificate");
}

TEST(Certs, WrongCa) {
  CertBundle b = Bundle();
  b.ca_pem = Bundle().ca_pem;
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, {}), "not signed by ca.crt");
}

TEST(Certs, NameNotCovered) {
  ExpectInvalid(ValidateCertBundle(Bundle(), {"other.ms.svc"}, kNow, {}), "does not cover other");
}

TEST(Certs, WithinRenewalWindow) {
  CertBundle b = Bundle(kNow, std::chrono::hours(24));
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, std::chrono::hours(25)), "renewal");
}

TEST(Certs, NotYetValid) {
  ExpectInvalid(ValidateCertBundle(Bundle(), kNames, kNow - 7200, {}), "not valid yet");
}

TEST(Certs, GarbagePem) {
  CertBundle b = Bundle();
  b.cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, {}), "certificate PEM does not parse");
  b = Bundle();
  b.key_pem = "nope";
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, {}), "private key PEM does not parse");
}

TEST(SecretBodies, PatchThenReadBack) {
  CertBundle b = Bundle();
  Json patch = SecretPatch(b, "42");
  EXPECT_EQ(patch["metadata"]["resourceVersion"], "42");
  Json secret = {{"metadata", {{"name", "x"}}}, {"data", patch["data"]}};
  auto back = BundleFromSecret(secret);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, b);
  EXPECT_FALSE(back->ca_key_pem.empty());  // the CA key is kept: renewal needs it
  EXPECT_FALSE(SecretPatch(b, "").contains("metadata"));
}

TEST(SecretBodies, ReCreatedSecretKeepsLabelsAndAnnotations) {
  Json last = {{"metadata",
                {{"name", "tls"},
                 {"resourceVersion", "9"},
                 {"labels", {{"app.kubernetes.io/managed-by", "Helm"}}},
                 {"annotations", {{"meta.helm.sh/release-name", "modelswap"}}}}}};
  CertBundle b = Bundle();
  Json obj = SecretObject("ms", "tls", b, last);
  EXPECT_EQ(obj["metadata"]["labels"], last["metadata"]["labels"]);
  EXPECT_EQ(obj["metadata"]["annotations"], last["metadata"]["annotations"]);
  EXPECT_FALSE(obj["metadata"].contains("resourceVersion"));  // a create takes none
  EXPECT_EQ(*BundleFromSecret(obj), b);
  EXPECT_EQ(SecretObject("ms", "tls", Bundle(), nullptr)["metadata"].size(), 2u);
}

TEST(SecretBodies, PartialSecretKeepsWhatItHas) {
  CertBundle b = Bundle();
  auto r = BundleFromSecret({{"data", {{"ca.crt", Base64Encode(b.ca_pem)}}}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->ca_pem, b.ca_pem);
  EXPECT_TRUE(r->cert_pem.empty());
}

TEST(SecretBodies, EmptySecretIsNotFound) {
  auto r = BundleFromSecret({{"metadata", {{"name", "x"}}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kNotFound);
}

TEST(SecretBodies, BadBase64NamesTheKey) {
  auto r = BundleFromSecret({{"data", {{"tls.crt", "***"}, {"tls.key", "YWI="}}}});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("tls.crt"), std::string::npos);
}

Json Mwc() {
  return {{"metadata", {{"name", "modelswap"}}},
          {"webhooks",
           {{{"name", "inject.modelswap.io"}, {"clientConfig", {{"service", {{"name", "s"}}}}}},
            {{"name", "other.example.com"}, {"clientConfig", {{"caBundle", "b2xk"}}}}}}};
}

TEST(WebhookConfigPatch, GuardsEachEntryWithANameTest) {
  Json ops = WebhookConfigPatch(Mwc(), "PEM");
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(ops[0],
            Json({{"op", "test"}, {"path", "/webhooks/0/name"}, {"value", "inject.modelswap.io"}}));
  EXPECT_EQ(
      ops[1],
      Json({{"op", "add"}, {"path", "/webhooks/0/clientConfig/caBundle"}, {"value", "UEVN"}}));
  EXPECT_EQ(ops[2]["path"], "/webhooks/1/name");
  Json patched = Mwc().patch(ops);
  EXPECT_EQ(patched["webhooks"][0]["clientConfig"]["caBundle"], "UEVN");
  EXPECT_EQ(patched["webhooks"][0]["clientConfig"]["service"]["name"], "s");
  EXPECT_EQ(WebhookConfigPatch(patched, "PEM"), Json::array());  // nothing to change
}

TEST(WebhookConfigPatch, OnlyNamedWebhooks) {
  Json ops = WebhookConfigPatch(Mwc(), "PEM", "", {"inject.modelswap.io"});
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[1]["path"], "/webhooks/0/clientConfig/caBundle");
  Json no_client = {{"webhooks", {{{"name", "w"}}}}};
  EXPECT_EQ(WebhookConfigPatch(no_client, "PEM")[1]["path"], "/webhooks/0/clientConfig");
}

TEST(WebhookConfigPatch, UrlReplacesTheService) {
  const std::string url = "https://127.0.0.1:9443/mutate-pods";
  Json patched = Mwc().patch(WebhookConfigPatch(Mwc(), "PEM", url, {"inject.modelswap.io"}));
  const Json& cc = patched["webhooks"][0]["clientConfig"];
  EXPECT_EQ(cc["url"], url);
  EXPECT_FALSE(cc.contains("service"));  // the API takes exactly one of url and service
  EXPECT_EQ(cc["caBundle"], "UEVN");
  EXPECT_EQ(patched["webhooks"][1], Mwc()["webhooks"][1]);
  EXPECT_EQ(WebhookConfigPatch(patched, "PEM", url, {"inject.modelswap.io"}), Json::array());
  Json bare = {{"webhooks", {{{"name", "w"}}}}};
  EXPECT_EQ(bare.patch(WebhookConfigPatch(bare, "PEM", url))["webhooks"][0]["clientConfig"],
            Json({{"caBundle", "UEVN"}, {"url", url}}));
}

TEST(WebhookConfigPatch, CaBundlesTrust) {
  CertBundle a = Bundle(), b = Bundle();
  Json mwc =
      Mwc().patch(WebhookConfigPatch(Mwc(), b.ca_pem + a.ca_pem, "", {"inject.modelswap.io"}));
  EXPECT_TRUE(CaBundlesTrust(mwc, a.ca_pem, {"inject.modelswap.io"}));
  EXPECT_TRUE(CaBundlesTrust(mwc, b.ca_pem, {"inject.modelswap.io"}));
  EXPECT_FALSE(CaBundlesTrust(mwc, Bundle().ca_pem, {"inject.modelswap.io"}));
  EXPECT_FALSE(CaBundlesTrust(mwc, a.ca_pem));  // the other webhook's caBundle is garbage
  EXPECT_FALSE(CaBundlesTrust(mwc, a.ca_pem, {"absent"}));
}

TEST(WebhookUrl, Validation) {
  EXPECT_EQ(*ValidateWebhookUrl("https://127.0.0.1:9443/mutate-pods"), "127.0.0.1");
  EXPECT_EQ(*ValidateWebhookUrl("https://[::1]:9443/mutate-pods"), "::1");
  EXPECT_EQ(*ValidateWebhookUrl("https://dev.example.com/x"), "dev.example.com");
  for (const char* bad : {"http://127.0.0.1:9443/m", "127.0.0.1:9443", "https://",
                          "https://:9443/m", "https://u@h:9443/m", "https://h:9443/m?x=1",
                          "https://h/m#f", "https://h:0/m", "https://h:99999/m", "https://h:x/m",
                          "https://[::1/m", "https://[nothost]:1/m", "https://Bad_Host/m"}) {
    EXPECT_FALSE(ValidateWebhookUrl(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace modelswap::op
