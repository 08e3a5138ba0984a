// CertManager: keeps the webhook's serving certificate, on every replica.
//
// Where the certificate comes from, in order:
//   1. files mounted into the pod (tls.crt, tls.key, optional ca.crt in cert_dir), e.g. by
//      cert-manager: used as they are; the caBundle is patched only if ca.crt is there;
//   2. the Secret, evolved by cert_plan.h's policy: a long-lived CA (ca.crt + ca.key) and a
//      short-lived serving certificate it signs, renewed alone; CA rotations keep old and new CA
//      in ca.crt for an overlap; an empty, garbage or deleted Secret is (re-)created.
// Every replica runs the same policy; the Secret is the only shared state. Writes carry the
// resourceVersion read (a re-create is a POST): when two replicas race, one write wins, the
// other gets 409, re-reads and adopts the winner's bundle (as controller-runtime's
// cert-controller rotator does).
//
// Publishing: the trust bundle (ca.crt) becomes the caBundle of the MutatingWebhookConfiguration
// (and, with a webhook URL, clientConfig.url replaces clientConfig.service) BEFORE this replica
// serves a certificate from a newly read bundle, and on every reload (a helm upgrade may have
// re-applied the configuration without it). The serving certificate only moves to a new CA once
// the published caBundle trusts it (cert_plan.h step 2).
//
// Reload() re-reads the source and swaps the served bundle when it changed; the HTTPS server
// asks Current() for every new connection, so a rotation needs no restart.
//
// Thread safety: all methods are safe from any thread; Reload/Start calls are serialized by the
// caller (one certificate thread per process).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/status.h"
#include "operator/webhook/cert_plan.h"
#include "operator/webhook/certs.h"

namespace modelswap::op {

// The API calls CertManager needs. Errors as operator/kube/api_error.h maps them (404 kNotFound,
// 409 Conflict kAborted, 409 AlreadyExists kAlreadyExists, 422 kInvalidArgument).
class CertApi {
 public:
  virtual ~CertApi() = default;
  virtual Result<nlohmann::json> GetSecret(const std::string& ns, const std::string& name) = 0;
  virtual Result<nlohmann::json> CreateSecret(const std::string& ns,
                                              const nlohmann::json& secret) = 0;
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
  std::string webhook_url;          // set as clientConfig.url instead of the service; "" = keep
  std::string cert_dir;             // mounted certificates; "" or no tls.crt there = use Secret
  RotationPolicy rotation;          // rotation.names: the SANs to serve
};

class CertManager {
 public:
  // api may be null when cert_dir holds mounted certificates.
  CertManager(CertApi* api, Env* env, CertManagerOptions opts);

  // Loads (or creates) the bundle and publishes the caBundle. Call once before serving.
  [[nodiscard]] Status Start();
  // Re-reads the source (renewing, rotating or repairing per cert_plan.h); returns true when the
  // served bundle changed. Errors keep the current bundle.
  [[nodiscard]] Result<bool> Reload();
  // The bundle to serve now (empty before Start succeeded).
  std::shared_ptr<const CertBundle> Current() const;

 private:
  Result<CertBundle> FromFiles();
  Result<CertBundle> FromSecret();
  Result<CertBundle> WriteSecret(const CertDecision& d, bool exists, const nlohmann::json& secret);
  bool CaPublished(const std::string& ca_pem);
  Status PublishCaBundle(const std::string& ca_pem);
  bool Mounted();

  CertApi* api_;
  Env* env_;
  CertManagerOptions opts_;
  nlohmann::json last_seen_;  // the Secret as last read, to re-create it alike; Reload's thread
  mutable std::mutex mu_;
  std::shared_ptr<const CertBundle> current_;  // guarded by mu_
};

}  // namespace modelswap::op
