// CertApi over KubeClient; see kube_cert_api.h.
#include "operator/webhook/kube_cert_api.h"

#include "operator/kube/resource.h"

namespace modelswap::op {

KubeCertApi::KubeCertApi(KubeClient* client, std::string secret_name)
    : client_(client), secret_name_(std::move(secret_name)) {}

Status KubeCertApi::CheckSecretName(const std::string& name) const {
  if (name.empty() || secret_name_.empty()) {
    return Fail(Code::kFailedPrecondition,
                "webhook certificate: no tls.crt in --webhook-cert-dir and no --webhook-secret "
                "to keep a generated one in");
  }
  // Least privilege: RBAC grants this one Secret only; never touch another.
  if (name != secret_name_) {
    return Fail(Code::kPermissionDenied,
                "webhook certificate: secret " + name + " is not --webhook-secret " + secret_name_);
  }
  return Ok();
}

Result<Json> KubeCertApi::GetSecret(const std::string& ns, const std::string& name) {
  MS_RETURN_IF_ERROR(CheckSecretName(name));
  return client_->Get(kSecrets, ns, name);
}

Result<Json> KubeCertApi::CreateSecret(const std::string& ns, const Json& secret) {
  std::string name;
  if (secret.contains("metadata")) name = secret["metadata"].value("name", "");
  MS_RETURN_IF_ERROR(CheckSecretName(name));
  return client_->Create(kSecrets, ns, secret, /*dry_run=*/false);
}

Result<Json> KubeCertApi::MergePatchSecret(const std::string& ns, const std::string& name,
                                           const Json& patch) {
  MS_RETURN_IF_ERROR(CheckSecretName(name));
  return client_->Patch(kSecrets, ns, name, PatchType::kMerge, patch, false);
}

Result<Json> KubeCertApi::GetWebhookConfiguration(const std::string& name) {
  return client_->Get(kMutatingWebhookConfigurations, "", name);
}

Result<Json> KubeCertApi::JsonPatchWebhookConfiguration(const std::string& name,
                                                        const Json& patch) {
  return client_->Patch(kMutatingWebhookConfigurations, "", name, PatchType::kJson, patch, false);
}

}  // namespace modelswap::op
