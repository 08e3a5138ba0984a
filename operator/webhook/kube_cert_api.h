// KubeCertApi: the webhook CertManager's API calls (certs.h CertApi) over the operator's
// KubeClient: the certificate Secret in the operator's own namespace (GET, merge PATCH carrying
// a resourceVersion precondition, POST to re-create it when deleted) and the cluster-scoped
// MutatingWebhookConfiguration (GET, JSON PATCH guarded by "test" operations). Errors keep
// api_error.h's mapping (404 kNotFound, 409 kAborted, 422 kInvalidArgument), which is what
// CertManager's retry logic expects.
//
// With no Secret name (certificates mounted from an existing Secret, chart value
// webhook.certificates.existingSecret) the Secret calls fail with kFailedPrecondition naming the
// flags, rather than asking the API for an object with an empty name.
//
// Thread safety: as safe as the KubeClient (HttpKubeClient: any thread).
#pragma once

#include <string>

#include "operator/kube/client.h"
#include "operator/webhook/cert_manager.h"

namespace modelswap::op {

class KubeCertApi final : public CertApi {
 public:
  // secret_name may be empty (mounted certificates only).
  KubeCertApi(KubeClient* client, std::string secret_name);

  Result<nlohmann::json> GetSecret(const std::string& ns, const std::string& name) override;
  Result<nlohmann::json> CreateSecret(const std::string& ns, const nlohmann::json& secret) override;
  Result<nlohmann::json> MergePatchSecret(const std::string& ns, const std::string& name,
                                          const nlohmann::json& patch) override;
  Result<nlohmann::json> GetWebhookConfiguration(const std::string& name) override;
  Result<nlohmann::json> JsonPatchWebhookConfiguration(const std::string& name,
                                                       const nlohmann::json& patch) override;

 private:
  Status CheckSecretName(const std::string& name) const;

  KubeClient* client_;
  std::string secret_name_;
};

}  // namespace modelswap::op
