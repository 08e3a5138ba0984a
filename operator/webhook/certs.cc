// The webhook's certificate bundle and its Secret form; see certs.h.
#include "operator/webhook/certs.h"

namespace modelswap::op {

using Json = nlohmann::json;

std::vector<std::string> ServiceDnsNames(const std::string& service, const std::string& ns) {
  return {service, service + "." + ns, service + "." + ns + ".svc",
          service + "." + ns + ".svc.cluster.local"};
}

Result<CertBundle> GenerateCertBundle(const std::vector<std::string>& names, int64_t now_unix,
                                      std::chrono::seconds validity,
                                      std::chrono::seconds ca_validity) {
  if (names.empty()) return Fail(Code::kInvalidArgument, "certificate needs a DNS name");
  if (ca_validity.count() <= 0) ca_validity = validity + std::chrono::hours(24);
  MS_ASSIGN_OR_RETURN(CertAndKey ca, GenerateCa(now_unix, ca_validity));
  MS_ASSIGN_OR_RETURN(CertAndKey leaf, IssueServingCert(ca, names, now_unix, validity));
  return CertBundle{ca.cert_pem, ca.key_pem, leaf.cert_pem, leaf.key_pem};
}

Status ValidateCertBundle(const CertBundle& b, const std::vector<std::string>& names,
                          int64_t now_unix, std::chrono::seconds renew_before) {
  if (auto st = CheckKeyMatches(b.cert_pem, b.key_pem); !st) {
    return Fail(st.error().Context("certificate check: tls.crt/tls.key"));
  }
  if (!b.ca_pem.empty()) {
    auto cas = SplitCertificates(b.ca_pem);
    if (!cas) return Fail(cas.error().Context("certificate check: ca.crt"));
    bool signed_by_one = false;
    for (const auto& ca : *cas)
      signed_by_one |= IsSignedBy(b.cert_pem, ca);
    if (!signed_by_one) {
      return Fail(Code::kInvalidArgument, "certificate check: tls.crt is not signed by ca.crt");
    }
  }
  if (auto st = CheckCovers(b.cert_pem, names); !st) {
    return Fail(st.error().Context("certificate check"));
  }
  MS_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(b.cert_pem));
  if (now_unix < info.not_before_unix) {
    return Fail(Code::kInvalidArgument, "certificate check: tls.crt is not valid yet");
  }
  if (now_unix + renew_before.count() >= info.not_after_unix) {
    return Fail(Code::kInvalidArgument,
                "certificate check: tls.crt expires within the renewal window (or has expired)");
  }
  return Ok();
}

Result<CertBundle> BundleFromSecret(const Json& secret) {
  auto data = secret.find("data");
  CertBundle b;
  bool any = false;
  for (auto [key, out] : {std::pair{kSecretCaKey, &b.ca_pem},
                          {kSecretCaPrivateKey, &b.ca_key_pem},
                          {kSecretCertKey, &b.cert_pem},
                          {kSecretKeyKey, &b.key_pem}}) {
    if (data == secret.end() || !data->is_object()) break;
    auto it = data->find(key);
    if (it == data->end()) continue;
    any = true;
    if (!it->is_string())
      return Fail(Code::kInvalidArgument, std::string("secret data ") + key + " is not a string");
    auto decoded = Base64Decode(it->get<std::string>());
    if (!decoded) return Fail(decoded.error().Context(std::string("secret data ") + key));
    *out = std::move(*decoded);
  }
  if (!any) return Fail(Code::kNotFound, "the secret holds no certificate yet");
  return b;
}

namespace {

Json SecretData(const CertBundle& b) {
  return {{kSecretCaKey, Base64Encode(b.ca_pem)},
          {kSecretCaPrivateKey, Base64Encode(b.ca_key_pem)},
          {kSecretCertKey, Base64Encode(b.cert_pem)},
          {kSecretKeyKey, Base64Encode(b.key_pem)}};
}

}  // namespace

Json SecretPatch(const CertBundle& b, const std::string& resource_version) {
  Json patch = {{"data", SecretData(b)}};
  if (!resource_version.empty()) patch["metadata"]["resourceVersion"] = resource_version;
  return patch;
}

Json SecretObject(const std::string& ns, const std::string& name, const CertBundle& b,
                  const Json& last_seen) {
  Json meta = {{"name", name}, {"namespace", ns}};
  if (last_seen.is_object() && last_seen.contains("metadata")) {
    for (const char* key : {"labels", "annotations"}) {
      if (last_seen["metadata"].contains(key)) meta[key] = last_seen["metadata"][key];
    }
  }
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", meta},
          {"type", "Opaque"},
          {"data", SecretData(b)}};
}

}  // namespace modelswap::op
