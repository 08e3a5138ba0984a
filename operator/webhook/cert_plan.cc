// The certificate rotation policy; see cert_plan.h.
#include "operator/webhook/cert_plan.h"

#include <optional>

namespace modelswap::op {
namespace {

struct Ca {
  std::string pem;
  CertInfo info;
};

// At renew_fraction of its lifetime (the lifetime includes the backdating: a few minutes of
// difference on a year).
bool Due(const CertInfo& i, double fraction, int64_t now) {
  auto life = static_cast<double>(i.not_after_unix - i.not_before_unix);
  return now >= i.not_before_unix + static_cast<int64_t>(fraction * life);
}

// Seconds since the certificate was issued (x509.h backdates by kBackdateSeconds).
int64_t Age(const CertInfo& i, int64_t now) {
  return now - (i.not_before_unix + kBackdateSeconds);
}

std::string Join(const std::vector<Ca>& cas) {
  std::string out;
  for (const Ca& c : cas)
    out += c.pem;
  return out;
}

Result<Ca> NewCa(const RotationPolicy& p, int64_t now, std::string* key_pem) {
  MS_ASSIGN_OR_RETURN(CertAndKey ca, GenerateCa(now, p.ca_validity));
  MS_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(ca.cert_pem));
  *key_pem = std::move(ca.key_pem);
  return Ca{std::move(ca.cert_pem), std::move(info)};
}

// A new CA and serving certificate; the CAs `served` trusts that are still valid stay in ca.crt
// so the replicas still serving the old certificate remain covered until they re-read.
Result<CertDecision> StartOver(const CertBundle* served, const RotationPolicy& p, int64_t now,
                               std::string reason, bool replaced) {
  CertDecision d;
  std::vector<Ca> cas;
  MS_ASSIGN_OR_RETURN(Ca ca, NewCa(p, now, &d.bundle.ca_key_pem));
  cas.push_back(ca);
  if (served != nullptr && !served->ca_pem.empty()) {
    auto old = SplitCertificates(served->ca_pem);
    for (const std::string& pem : old ? *old : std::vector<std::string>{}) {
      auto info = InspectCertificate(pem);
      if (info && info->is_ca && info->not_after_unix > now) cas.push_back(Ca{pem, *info});
    }
    if (cas.size() > 1) reason += "; the CA served until now stays trusted for the overlap";
  }
  MS_ASSIGN_OR_RETURN(CertAndKey leaf,
                      IssueServingCert({ca.pem, d.bundle.ca_key_pem}, p.names, now, p.validity));
  d.bundle.ca_pem = Join(cas);
  d.bundle.cert_pem = std::move(leaf.cert_pem);
  d.bundle.key_pem = std::move(leaf.key_pem);
  d.write = true;
  d.replaced = replaced;
  d.reasons.push_back(std::move(reason));
  return d;
}

// Why the serving certificate cannot be served as it is ("" = usable); *issuer = the index in
// `cas` of the CA that signed it.
std::string LeafProblem(const CertBundle& s, const std::vector<Ca>& cas, const RotationPolicy& p,
                        int64_t now, int* issuer, CertInfo* info) {
  *issuer = -1;
  if (s.cert_pem.empty() || s.key_pem.empty()) return "tls.crt/tls.key missing";
  auto parsed = InspectCertificate(s.cert_pem);
  if (!parsed) return "tls.crt: " + parsed.error().message();
  *info = *parsed;
  if (auto st = CheckKeyMatches(s.cert_pem, s.key_pem); !st)
    return "tls.key: " + st.error().message();
  for (size_t i = 0; i < cas.size(); ++i) {
    if (IsSignedBy(s.cert_pem, cas[i].pem)) *issuer = static_cast<int>(i);
  }
  if (*issuer < 0) return "tls.crt is not signed by a CA of ca.crt";
  if (auto st = CheckCovers(s.cert_pem, p.names); !st) return st.error().message();
  if (now < info->not_before_unix) return "tls.crt is not valid yet";
  if (now >= info->not_after_unix) return "tls.crt has expired";
  return "";
}

}  // namespace

Result<CertDecision> PlanCertificates(const Result<CertBundle>& stored, const CertBundle* served,
                                      const RotationPolicy& p, int64_t now,
                                      const std::function<bool(const std::string&)>& ca_published) {
  if (!stored) {
    if (stored.error().code() == Code::kNotFound) {
      return StartOver(served, p, now, "new CA and serving certificate (the secret was empty)",
                       false);
    }
    return StartOver(served, p, now, "secret unusable (" + stored.error().message() + ")", true);
  }
  const CertBundle& s = *stored;
  auto split = SplitCertificates(s.ca_pem);
  if (!split) {
    return StartOver(served, p, now, "ca.crt unusable (" + split.error().message() + ")", true);
  }
  CertDecision d;
  std::vector<Ca> cas;
  bool cas_changed = false;
  for (const std::string& pem : *split) {
    MS_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(pem));
    if (!info.is_ca) {
      return StartOver(served, p, now, "ca.crt unusable (it holds a certificate that is not a CA)",
                       true);
    }
    if (info.not_after_unix <= now) {
      cas_changed = true;
      d.reasons.push_back("an expired CA left ca.crt");
      continue;
    }
    cas.push_back(Ca{pem, info});
  }
  if (cas.empty()) return StartOver(served, p, now, "every CA in ca.crt has expired", true);

  // The signer: the CA ca.key belongs to. A new one joins ca.crt when there is none, or when it
  // is due; the previous signer can still sign in this one write (`prev`).
  std::string ca_key = s.ca_key_pem;
  int signer = -1;
  for (size_t i = 0; i < cas.size() && !ca_key.empty(); ++i) {
    if (CheckKeyMatches(cas[i].pem, ca_key)) signer = static_cast<int>(i);
  }
  std::optional<CertAndKey> prev;
  if (signer < 0 || Due(cas[static_cast<size_t>(signer)].info, p.renew_fraction, now)) {
    if (signer >= 0) {
      prev = CertAndKey{cas[static_cast<size_t>(signer)].pem, ca_key};
      d.reasons.push_back("the CA is due for rotation: a new CA joins ca.crt");
    } else {
      d.reasons.push_back(ca_key.empty() ? "ca.key missing: a new CA joins ca.crt"
                                         : "ca.key matches no CA of ca.crt: a new CA joins ca.crt");
    }
    MS_ASSIGN_OR_RETURN(Ca fresh, NewCa(p, now, &ca_key));
    cas.push_back(std::move(fresh));
    signer = static_cast<int>(cas.size()) - 1;
    cas_changed = true;
  }
  const Ca& sig = cas[static_cast<size_t>(signer)];
  // A serving certificate from the signer may be served once every replica and the API server
  // trust it: the signer is the only CA, or has been in ca.crt for the overlap and is published.
  auto signer_ready = [&] {
    return cas.size() == 1 || (Age(sig.info, now) >= p.overlap.count() && ca_published(sig.pem));
  };

  d.bundle = CertBundle{"", ca_key, s.cert_pem, s.key_pem};
  int issuer = -1;
  CertInfo leaf;
  std::string problem = LeafProblem(s, cas, p, now, &issuer, &leaf);
  bool due = problem.empty() && Due(leaf, p.renew_fraction, now);
  bool off_signer = problem.empty() && issuer != signer;
  if (!problem.empty() || due || off_signer) {
    const CertAndKey signer_pair{sig.pem, ca_key};
    const CertAndKey* by = nullptr;
    if (signer_ready())
      by = &signer_pair;
    else if ((!problem.empty() || due) && prev)
      by = &*prev;  // the new CA is not trusted everywhere yet: the old one signs once more
    else if (!problem.empty())
      by = &signer_pair;  // nothing servable otherwise
    if (by != nullptr) {
      MS_ASSIGN_OR_RETURN(CertAndKey fresh, IssueServingCert(*by, p.names, now, p.validity));
      d.bundle.cert_pem = std::move(fresh.cert_pem);
      d.bundle.key_pem = std::move(fresh.key_pem);
      MS_ASSIGN_OR_RETURN(leaf, InspectCertificate(d.bundle.cert_pem));
      issuer = by == &signer_pair ? signer : -1;
      d.reasons.push_back(!problem.empty() ? "serving certificate re-issued: " + problem
                          : due            ? "serving certificate renewed (due)"
                                           : "serving certificate moved to the new CA");
    }
  }
  // Once the serving certificate from the signer has been out for the overlap, every replica
  // serves it: the other CAs can go.
  if (issuer == signer && cas.size() > 1 && Age(leaf, now) >= p.overlap.count()) {
    Ca keep = sig;
    cas.assign(1, std::move(keep));
    cas_changed = true;
    d.reasons.push_back("the previous CA left ca.crt");
  }
  d.bundle.ca_pem = cas_changed ? Join(cas) : s.ca_pem;
  d.write = d.bundle != s;
  return d;
}

}  // namespace modelswap::op
