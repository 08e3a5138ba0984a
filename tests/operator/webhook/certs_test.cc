// Webhook certificates: generation and each validation check, base64, the Secret and caBundle
// JSON bodies, and CertManager against a fake API (first replica creates, second reuses, a 409
// race serves the winner, renewal near expiry, reload on change, mounted files, a caBundle reset
// by helm re-patched).
#include "operator/webhook/certs.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

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

TEST(Certs, NoNamesIsAnError) {
  EXPECT_FALSE(GenerateCertBundle({}, kNow, std::chrono::hours(1)).has_value());
}

TEST(Certs, KeyMismatch) {
  CertBundle b = Bundle();
  b.key_pem = Bundle().key_pem;
  ExpectInvalid(ValidateCertBundle(b, kNames, kNow, {}), "does not match");
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
  EXPECT_FALSE(SecretPatch(b, "").contains("metadata"));
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

TEST(CaBundlePatch, GuardsEachEntryWithANameTest) {
  Json ops = CaBundlePatch(Mwc(), "PEM");
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
  EXPECT_EQ(CaBundlePatch(patched, "PEM"), Json::array());  // nothing to change
}

TEST(CaBundlePatch, OnlyNamedWebhooks) {
  Json ops = CaBundlePatch(Mwc(), "PEM", {"inject.modelswap.io"});
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[1]["path"], "/webhooks/0/clientConfig/caBundle");
  Json no_client = {{"webhooks", {{{"name", "w"}}}}};
  EXPECT_EQ(CaBundlePatch(no_client, "PEM")[1]["path"], "/webhooks/0/clientConfig");
}

// An API server holding one Secret and one MutatingWebhookConfiguration in memory, with
// resourceVersion preconditions like the real one.
class FakeCertApi : public CertApi {
 public:
  Json secret = {{"metadata", {{"name", "tls"}, {"resourceVersion", "1"}}}};
  Json mwc = Mwc();
  int secret_writes = 0, mwc_patches = 0;
  std::function<void()> before_secret_write;  // lets a test race another replica

  Result<Json> GetSecret(const std::string&, const std::string&) override { return secret; }
  Result<Json> MergePatchSecret(const std::string&, const std::string&,
                                const Json& patch) override {
    if (before_secret_write) std::exchange(before_secret_write, nullptr)();
    std::string rv =
        patch.contains("metadata") ? patch["metadata"].value("resourceVersion", "") : "";
    if (rv != secret["metadata"]["resourceVersion"]) {
      return Fail(Code::kAborted, "the object has been modified");
    }
    secret["data"] = patch["data"];
    Bump(secret);
    ++secret_writes;
    return secret;
  }
  Result<Json> GetWebhookConfiguration(const std::string&) override { return mwc; }
  Result<Json> JsonPatchWebhookConfiguration(const std::string&, const Json& ops) override {
    mwc = mwc.patch(ops);
    ++mwc_patches;
    return mwc;
  }
  static void Bump(Json& obj) {
    auto& rv = obj["metadata"]["resourceVersion"];
    rv = std::to_string(std::stoi(rv.get<std::string>()) + 1);
  }
};

CertManagerOptions Options() {
  CertManagerOptions o;
  o.ns = "ms";
  o.secret_name = "tls";
  o.webhook_config_name = "modelswap";
  o.dns_names = kNames;
  return o;
}

std::string CaBundleOf(const FakeCertApi& api) {
  return *Base64Decode(api.mwc["webhooks"][0]["clientConfig"]["caBundle"].get<std::string>());
}

TEST(CertManager, FirstReplicaCreatesSecondReuses) {
  FakeCertApi api;
  CertManager first(&api, DefaultEnv(), Options());
  ASSERT_TRUE(first.Start().has_value());
  EXPECT_EQ(api.secret_writes, 1);
  ASSERT_TRUE(first.Current());
  EXPECT_EQ(CaBundleOf(api), first.Current()->ca_pem);
  CertManager second(&api, DefaultEnv(), Options());
  ASSERT_TRUE(second.Start().has_value());
  EXPECT_EQ(api.secret_writes, 1);
  EXPECT_EQ(*second.Current(), *first.Current());
  EXPECT_EQ(api.mwc_patches, 1);  // the second replica found the caBundle in place
}

TEST(CertManager, LosingARaceServesTheWinnersBundle) {
  FakeCertApi api;
  CertBundle winner = Bundle(std::time(nullptr));
  api.before_secret_write = [&] {
    api.secret["data"] = SecretPatch(winner, "")["data"];
    FakeCertApi::Bump(api.secret);
  };
  CertManager m(&api, DefaultEnv(), Options());
  ASSERT_TRUE(m.Start().has_value());
  EXPECT_EQ(*m.Current(), winner);
  EXPECT_EQ(api.secret_writes, 0);
}

TEST(CertManager, RenewsAnExpiringBundle) {
  FakeCertApi api;
  CertBundle old = Bundle(std::time(nullptr), std::chrono::hours(24));  // < 30 day window
  api.secret["data"] = SecretPatch(old, "")["data"];
  CertManager m(&api, DefaultEnv(), Options());
  ASSERT_TRUE(m.Start().has_value());
  EXPECT_NE(*m.Current(), old);
  EXPECT_EQ(api.secret_writes, 1);
}

TEST(CertManager, ReloadPicksUpAnotherReplicasBundleAndRepublishes) {
  FakeCertApi api;
  CertManager m(&api, DefaultEnv(), Options());
  ASSERT_TRUE(m.Start().has_value());
  auto unchanged = m.Reload();
  ASSERT_TRUE(unchanged.has_value());
  EXPECT_FALSE(*unchanged);
  CertBundle other = Bundle(std::time(nullptr));
  api.secret["data"] = SecretPatch(other, "")["data"];
  api.mwc["webhooks"][0]["clientConfig"].erase("caBundle");  // e.g. a helm upgrade
  auto changed = m.Reload();
  ASSERT_TRUE(changed.has_value());
  EXPECT_TRUE(*changed);
  EXPECT_EQ(*m.Current(), other);
  EXPECT_EQ(CaBundleOf(api), other.ca_pem);
}

TEST(CertManager, ApiErrorKeepsCurrentBundle) {
  struct Failing : FakeCertApi {
    bool fail = false;
    Result<Json> GetSecret(const std::string& a, const std::string& b) override {
      if (fail) return Fail(Code::kUnavailable, "apiserver down");
      return FakeCertApi::GetSecret(a, b);
    }
  } api;
  CertManager m(&api, DefaultEnv(), Options());
  ASSERT_TRUE(m.Start().has_value());
  auto before = m.Current();
  api.fail = true;
  EXPECT_FALSE(m.Reload().has_value());
  EXPECT_EQ(m.Current(), before);
}

TEST(CertManager, MountedFilesWinAndLeaveTheSecretAlone) {
  std::string dir = ::testing::TempDir() + "/certs-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  CertBundle b = Bundle(std::time(nullptr));
  std::ofstream(dir + "/tls.crt") << b.cert_pem;
  std::ofstream(dir + "/tls.key") << b.key_pem;
  FakeCertApi api;
  CertManagerOptions o = Options();
  o.cert_dir = dir;
  CertManager m(&api, DefaultEnv(), o);
  ASSERT_TRUE(m.Start().has_value());
  EXPECT_EQ(m.Current()->cert_pem, b.cert_pem);
  EXPECT_EQ(api.secret_writes, 0);
  EXPECT_EQ(api.mwc_patches, 0);  // no ca.crt mounted: its issuer injects the caBundle
  std::ofstream(dir + "/ca.crt") << b.ca_pem;
  auto r = m.Reload();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r);
  EXPECT_EQ(CaBundleOf(api), b.ca_pem);
  std::ofstream(dir + "/tls.key") << Bundle().key_pem;  // a half-rotated mount
  EXPECT_FALSE(m.Reload().has_value());
  EXPECT_EQ(m.Current()->key_pem, b.key_pem);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace modelswap::op
