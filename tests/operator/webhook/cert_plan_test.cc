// The certificate rotation policy (cert_plan.h) as a pure function over time: a fresh start, a
// bundle left alone, serving-certificate renewal that keeps the CA byte for byte, a SAN change,
// each step of a CA rotation and its overlap, an old-format Secret without ca.key, garbage and
// expired material, and a twelve-year simulation checking that no transition ever serves a
// certificate the previous or next trust bundle does not cover.
#include "operator/webhook/cert_plan.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace modelswap::op {
namespace {

constexpr int64_t kT0 = 1'800'000'000;
constexpr int64_t kDay = 24 * 3600;

RotationPolicy Policy() {
  RotationPolicy p;
  p.names = ServiceDnsNames("modelswap-webhook", "ms");
  return p;
}

auto Always = [](const std::string&) { return true; };
auto Never = [](const std::string&) { return false; };

std::vector<std::string> Cas(const CertBundle& b) {
  auto cas = SplitCertificates(b.ca_pem);
  return cas ? *cas : std::vector<std::string>{};
}

// The serving certificate is signed by one of `trust`'s CAs.
bool Trusted(const std::string& cert, const std::string& trust) {
  for (const auto& ca : Cas(CertBundle{.ca_pem = trust})) {
    if (IsSignedBy(cert, ca)) return true;
  }
  return false;
}

CertDecision Plan(const Result<CertBundle>& stored, int64_t now,
                  const std::function<bool(const std::string&)>& published = Always,
                  const CertBundle* served = nullptr, const RotationPolicy& p = Policy()) {
  auto d = PlanCertificates(stored, served, p, now, published);
  EXPECT_TRUE(d.has_value()) << d.error().ToString();
  return d.value_or(CertDecision{});
}

CertBundle Fresh(int64_t now = kT0) {
  return Plan(Fail(Code::kNotFound, "empty"), now).bundle;
}

TEST(CertPlan, EmptySecretStartsWithOneCaAndItsServingCert) {
  CertDecision d = Plan(Fail(Code::kNotFound, "empty"), kT0);
  EXPECT_TRUE(d.write);
  EXPECT_FALSE(d.replaced);
  ASSERT_EQ(Cas(d.bundle).size(), 1u);
  EXPECT_TRUE(CheckKeyMatches(d.bundle.ca_pem, d.bundle.ca_key_pem).has_value());
  EXPECT_TRUE(ValidateCertBundle(d.bundle, Policy().names, kT0, {}).has_value());
  auto ca = InspectCertificate(d.bundle.ca_pem);
  auto leaf = InspectCertificate(d.bundle.cert_pem);
  EXPECT_EQ(ca->not_after_unix - kT0, 3650 * kDay);
  EXPECT_EQ(leaf->not_after_unix - kT0, 365 * kDay);
}

TEST(CertPlan, AGoodBundleIsLeftAlone) {
  CertBundle b = Fresh();
  for (int64_t at : {kT0, kT0 + 100 * kDay, kT0 + 240 * kDay}) {
    CertDecision d = Plan(b, at, Never);
    EXPECT_FALSE(d.write) << at;
    EXPECT_EQ(d.bundle, b);
  }
}

TEST(CertPlan, ServingRenewalAtTwoThirdsKeepsTheCa) {
  CertBundle b = Fresh();
  CertDecision d = Plan(b, kT0 + 245 * kDay, Never);  // 2/3 of 365 days is 243.3
  EXPECT_TRUE(d.write);
  EXPECT_EQ(d.bundle.ca_pem, b.ca_pem);  // the caBundle does not change at all
  EXPECT_EQ(d.bundle.ca_key_pem, b.ca_key_pem);
  EXPECT_NE(d.bundle.cert_pem, b.cert_pem);
  EXPECT_TRUE(IsSignedBy(d.bundle.cert_pem, b.ca_pem));
  EXPECT_EQ(InspectCertificate(d.bundle.cert_pem)->not_before_unix, kT0 + 245 * kDay - 3600);
}

TEST(CertPlan, ANewSanReissuesAtOnceUnderTheSameCa) {
  CertBundle b = Fresh();
  RotationPolicy p = Policy();
  p.names.push_back("127.0.0.1");
  CertDecision d = Plan(b, kT0 + kDay, Never, nullptr, p);
  EXPECT_TRUE(d.write);
  EXPECT_EQ(d.bundle.ca_pem, b.ca_pem);
  EXPECT_TRUE(CheckCovers(d.bundle.cert_pem, p.names).has_value());
  // A certificate naming more than asked is fine (a replica with fewer names in a rollout).
  EXPECT_FALSE(Plan(d.bundle, kT0 + kDay, Never).write);
}

TEST(CertPlan, CaRotationOverlapsOldAndNewCa) {
  RotationPolicy p = Policy();
  CertBundle b = Fresh();
  int64_t t = kT0 + 2435 * kDay;  // the CA is due (2/3 of 3650 days), the serving cert renewed
  b = Plan(b, t - 10 * kDay, Always).bundle;  // steady state: renewed ten days ago
  ASSERT_EQ(Cas(b).size(), 1u);
  const std::string old_ca = b.ca_pem;

  // 1. The new CA joins ca.crt and signs from now on; the serving certificate stays.
  CertDecision d = Plan(b, t, Always);
  ASSERT_TRUE(d.write);
  ASSERT_EQ(Cas(d.bundle).size(), 2u);
  EXPECT_EQ(Cas(d.bundle)[0], old_ca);
  EXPECT_EQ(d.bundle.cert_pem, b.cert_pem);
  const std::string new_ca = Cas(d.bundle)[1];
  EXPECT_TRUE(CheckKeyMatches(new_ca, d.bundle.ca_key_pem).has_value());
  b = d.bundle;

  // Within the overlap, or before the caBundle trusts the new CA, nothing moves.
  EXPECT_FALSE(Plan(b, t + 1800, Always).write);
  std::vector<std::string> asked;
  auto record = [&](const std::string& ca) {
    asked.push_back(ca);
    return false;
  };
  EXPECT_FALSE(Plan(b, t + 7200, record).write);
  EXPECT_EQ(asked, std::vector<std::string>{new_ca});

  // 2. Both conditions hold: the serving certificate moves to the new CA; both CAs stay.
  d = Plan(b, t + 7200, Always);
  ASSERT_TRUE(d.write);
  EXPECT_EQ(d.bundle.ca_pem, b.ca_pem);
  EXPECT_TRUE(IsSignedBy(d.bundle.cert_pem, new_ca));
  b = d.bundle;
  EXPECT_FALSE(Plan(b, t + 7200 + 1800, Always).write);

  // 3. The new serving certificate has been out for the overlap: the old CA goes.
  d = Plan(b, t + 4 * 3600, Always);
  ASSERT_TRUE(d.write);
  EXPECT_EQ(Cas(d.bundle), std::vector<std::string>{new_ca});
  EXPECT_EQ(d.bundle.cert_pem, b.cert_pem);
  EXPECT_FALSE(Plan(d.bundle, t + 5 * 3600, Never).write);
}

TEST(CertPlan, ServingCertDueDuringTheOverlapIsSignedOnceMoreByTheOldCa) {
  CertBundle b = Fresh();
  int64_t t = kT0 + 2435 * kDay;  // CA due, and the serving certificate long expired
  CertDecision d = Plan(b, t, Always);
  ASSERT_TRUE(d.write);
  ASSERT_EQ(Cas(d.bundle).size(), 2u);
  // The new CA is not trusted anywhere yet: the old one, still in the caBundle, signs.
  EXPECT_TRUE(IsSignedBy(d.bundle.cert_pem, b.ca_pem));
  EXPECT_TRUE(CheckKeyMatches(Cas(d.bundle)[1], d.bundle.ca_key_pem).has_value());
}

TEST(CertPlan, AnOldSecretWithoutCaKeyGetsANewCaAndKeepsServing) {
  CertBundle b = Fresh();
  b.ca_key_pem.clear();  // what the operator wrote before it kept ca.key
  CertDecision d = Plan(b, kT0 + kDay, Always);
  ASSERT_TRUE(d.write);
  EXPECT_FALSE(d.replaced);
  EXPECT_EQ(Cas(d.bundle).size(), 2u);
  EXPECT_EQ(d.bundle.cert_pem, b.cert_pem);  // still trusted: no window
  EXPECT_NE(std::find(d.reasons.begin(), d.reasons.end(), "ca.key missing: a new CA joins ca.crt"),
            d.reasons.end());
}

TEST(CertPlan, GarbageCaCrtStartsOverKeepingTheServedCaTrusted) {
  CertBundle served = Fresh();
  CertBundle garbage = served;
  garbage.ca_pem = "not a certificate";
  CertDecision d = Plan(garbage, kT0 + kDay, Always, &served);
  ASSERT_TRUE(d.write);
  EXPECT_TRUE(d.replaced);
  ASSERT_EQ(Cas(d.bundle).size(), 2u);
  EXPECT_EQ(Cas(d.bundle)[1], served.ca_pem);  // replicas still serving the old cert are covered
  EXPECT_TRUE(Trusted(served.cert_pem, d.bundle.ca_pem));
  EXPECT_TRUE(IsSignedBy(d.bundle.cert_pem, Cas(d.bundle)[0]));
  EXPECT_NE(d.reasons[0].find("ca.crt unusable"), std::string::npos) << d.reasons[0];
  // The carried-over CA leaves once the new serving certificate has been out for the overlap.
  CertDecision later = Plan(d.bundle, kT0 + 2 * kDay, Always);
  EXPECT_TRUE(later.write);
  EXPECT_EQ(Cas(later.bundle).size(), 1u);
}

TEST(CertPlan, AServingCertificateThatIsNotACaInCaCrtStartsOver) {
  CertBundle b = Fresh();
  b.ca_pem = b.cert_pem;
  CertDecision d = Plan(b, kT0, Always);
  EXPECT_TRUE(d.replaced);
  EXPECT_NE(d.reasons[0].find("not a CA"), std::string::npos);
}

TEST(CertPlan, GarbageServingCertIsReissuedUnderTheSameCa) {
  CertBundle b = Fresh();
  for (auto broken : {std::pair<std::string, std::string>{"garbage", b.key_pem},
                      {b.cert_pem, Fresh().key_pem},
                      {Fresh().cert_pem, ""}}) {
    CertBundle s = b;
    s.cert_pem = broken.first;
    s.key_pem = broken.second;
    CertDecision d = Plan(s, kT0 + kDay, Never);
    ASSERT_TRUE(d.write);
    EXPECT_FALSE(d.replaced);
    EXPECT_EQ(d.bundle.ca_pem, b.ca_pem);
    EXPECT_TRUE(ValidateCertBundle(d.bundle, Policy().names, kT0 + kDay, {}).has_value());
  }
}

TEST(CertPlan, AllCasExpiredStartsOver) {
  CertBundle b = Fresh();
  CertDecision d = Plan(b, kT0 + 3651 * kDay, Always);
  EXPECT_TRUE(d.replaced);
  EXPECT_EQ(Cas(d.bundle).size(), 1u);
  EXPECT_NE(d.bundle.ca_pem, b.ca_pem);
}

TEST(CertPlan, TwelveYearsWithoutAnUncoveredCertificate) {
  // A replica re-reading every four days; the API server's caBundle lags one re-read behind.
  CertBundle s = Fresh();
  std::string published = s.ca_pem;
  int renewals = 0, rotations = 0, retired = 0;
  for (int64_t t = kT0 + kDay; t < kT0 + 12 * 365 * kDay; t += 4 * kDay) {
    // A self-signed CA is "signed by" a CA of the bundle exactly when the bundle holds it.
    auto trusted_by_api = [&](const std::string& ca) { return Trusted(ca, published); };
    CertDecision d = Plan(s, t, trusted_by_api);
    ASSERT_FALSE(d.replaced) << t;
    if (d.write) {
      // The new certificate is covered by the caBundle the API server has now and by the new one;
      // replicas still serving the previous certificate are covered by the new caBundle.
      ASSERT_TRUE(Trusted(d.bundle.cert_pem, published)) << (t - kT0) / kDay;
      ASSERT_TRUE(Trusted(d.bundle.cert_pem, d.bundle.ca_pem)) << (t - kT0) / kDay;
      ASSERT_TRUE(Trusted(s.cert_pem, d.bundle.ca_pem)) << (t - kT0) / kDay;
      renewals += d.bundle.cert_pem != s.cert_pem;
      rotations += Cas(d.bundle).size() > Cas(s).size();
      retired += Cas(d.bundle).size() < Cas(s).size();
    }
    ASSERT_TRUE(ValidateCertBundle(d.bundle, Policy().names, t, {}).has_value()) << t;
    published = s.ca_pem;  // what was written last time has reached the API server
    s = d.bundle;
  }
  EXPECT_EQ(rotations, 1);
  EXPECT_EQ(retired, 1);
  EXPECT_GE(renewals, 17);  // about every 243 days, plus the move to the new CA
}

}  // namespace
}  // namespace modelswap::op
