// The webhook's TLS material: a CA and a serving certificate for the webhook Service's DNS
// names (OpenSSL 3), kept in a Secret shared by every replica, with the CA published as the
// caBundle of the operator's MutatingWebhookConfiguration.
//
// Where the certificate comes from, in order:
//   1. files mounted into the pod (tls.crt, tls.key, optional ca.crt in cert_dir), e.g. by
//      cert-manager: used as they are; the caBundle is patched only if ca.crt is there;
//   2. the Secret, when it holds a bundle that parses, chains to its CA, covers the DNS names and
//      is not within renew_before of expiry;
//   3. otherwise a new CA + serving certificate (ECDSA P-256), written to the Secret with a
//      resourceVersion precondition: when two replicas race, one write wins (409 for the other),
//      and the loser re-reads and serves the winner's bundle.
// CertManager::Reload() re-reads the source and swaps the served bundle when it changed (every
// replica calls it periodically; the leader is not special). The HTTPS server asks Current() for
// every new connection, so a rotation needs no restart.
//
// The API calls go through CertApi (the lead adapts operator/kube/client.h to it); the JSON bodies
// are built by pure functions (SecretPatch, CaBundlePatch) tested without a server.
//
// Thread safety: the free functions are pure. CertManager's methods are safe from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/status.h"
// Secret data and caBundle values are base64: Base64Encode / Base64Decode come with this header.
#include "operator/kube/base64.h"

namespace modelswap::op {

struct CertBundle {
  std::string ca_pem;    // the CA certificate (the caBundle); may be empty for mounted certs
  std::string cert_pem;  // the serving certificate (leaf first, then intermediates)
  std::string key_pem;   // its private key (PKCS#8 PEM)
  bool operator==(const CertBundle&) const = default;
};

struct CertInfo {
  std::vector<std::string> dns_names;  // subjectAltName DNS entries
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
  bool is_ca = false;
};

// The Service's names the API server may use: name, name.ns, name.ns.svc,
// name.ns.svc.cluster.local.
std::vector<std::string> ServiceDnsNames(const std::string& service, const std::string& ns);

// A fresh self-signed CA and a serving certificate for dns_names (first name is the CN), valid
// from now - 1 h (clock skew) for `validity`.
[[nodiscard]] Result<CertBundle> GenerateCertBundle(const std::vector<std::string>& dns_names,
                                                    int64_t now_unix, std::chrono::hours validity);

// Parses the first certificate of a PEM text.
[[nodiscard]] Result<CertInfo> InspectCertificate(std::string_view pem);

// Checks that the key matches the certificate, the certificate chains to ca_pem (when set),
// covers every name, and is valid at now_unix + renew_before. The message names the failed check.
[[nodiscard]] Status ValidateCertBundle(const CertBundle& b, const std::vector<std::string>& names,
                                        int64_t now_unix, std::chrono::seconds renew_before);

// Secret data keys (kubernetes.io/tls plus ca.crt).
inline constexpr const char* kSecretCaKey = "ca.crt";
inline constexpr const char* kSecretCertKey = "tls.crt";
inline constexpr const char* kSecretKeyKey = "tls.key";

// Reads the bundle out of a Secret object; kNotFound if it has no tls.crt/tls.key yet.
[[nodiscard]] Result<CertBundle> BundleFromSecret(const nlohmann::json& secret);
// A merge patch writing `b` into the Secret, with metadata.resourceVersion as the precondition
// (omitted when empty).
nlohmann::json SecretPatch(const CertBundle& b, const std::string& resource_version);
// A JSON patch setting clientConfig.caBundle of every webhook of `mwc` whose name is in
// `webhooks` (all when empty), each guarded by a "test" of that webhook's name so a concurrent
// reorder fails (422) instead of patching the wrong entry. Empty when nothing changes.
nlohmann::json CaBundlePatch(const nlohmann::json& mwc, const std::string& ca_pem,
                             const std::vector<std::string>& webhooks = {});

// The API calls CertManager needs. Errors as operator/kube/api_error.h maps them (404 -> kNotFound,
// 409 -> kAborted).
class CertApi {
 public:
  virtual ~CertApi() = default;
  virtual Result<nlohmann::json> GetSecret(const std::string& ns, const std::string& name) = 0;
  virtual Result<nlohmann::json> MergePatchSecret(const std::string& ns, const std::string& name,
                                                  const nlohmann::json& patch) = 0;
  virtual Result<nlohmann::json> GetWebhookConfiguration(const std::string& name) = 0;
  virtual Result<nlohmann::json> JsonPatchWebhookConfiguration(const std::string& name,
                                                               const nlohmann::json& patch) = 0;
};

struct CertManagerOptions {
  std::string ns;                   // the operator's namespace (Secret and Service)
  std::string secret_name;          // e.g. modelswap-webhook-tls
  std::string webhook_config_name;  // the MutatingWebhookConfiguration; "" = do not patch
  std::vector<std::string> dns_names;
  std::string cert_dir;  // mounted certificates; "" or no tls.crt there = use Secret
  std::chrono::hours validity{24 * 365};
  std::chrono::seconds renew_before{30 * 24 * 3600};
};

class CertManager {
 public:
  // api may be null when cert_dir holds mounted certificates.
  CertManager(CertApi* api, Env* env, CertManagerOptions opts);

  // Loads (or creates) the bundle and publishes the caBundle. Call once before serving.
  [[nodiscard]] Status Start();
  // Re-reads the source; returns true when the served bundle changed. Renews a bundle that is
  // due. Errors keep the current bundle.
  [[nodiscard]] Result<bool> Reload();
  // The bundle to serve now (empty before Start succeeded).
  std::shared_ptr<const CertBundle> Current() const;

 private:
  Result<CertBundle> FromFiles();
  Result<CertBundle> FromSecret();
  Status PublishCaBundle(const std::string& ca_pem);
  bool Mounted();

  CertApi* api_;
  Env* env_;
  CertManagerOptions opts_;
  mutable std::mutex mu_;
  std::shared_ptr<const CertBundle> current_;  // guarded by mu_
};

}  // namespace modelswap::op
