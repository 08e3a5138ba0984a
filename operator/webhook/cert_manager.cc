// Loading, writing and publishing the webhook's certificates; see cert_manager.h.
#include "operator/webhook/cert_manager.h"

#include <spdlog/spdlog.h>

#include "operator/webhook/webhook_config.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

std::string JoinReasons(const std::vector<std::string>& reasons) {
  std::string out;
  for (const auto& r : reasons)
    out += (out.empty() ? "" : "; ") + r;
  return out;
}

}  // namespace

CertManager::CertManager(CertApi* api, Env* env, CertManagerOptions opts)
    : api_(api), env_(env), opts_(std::move(opts)) {}

bool CertManager::Mounted() {
  return !opts_.cert_dir.empty() &&
         env_->Stat(JoinPath(opts_.cert_dir, kSecretCertKey)).has_value();
}

Result<CertBundle> CertManager::FromFiles() {
  CertBundle b;
  MS_ASSIGN_OR_RETURN(b.cert_pem, ReadFileToString(env_, JoinPath(opts_.cert_dir, kSecretCertKey)));
  MS_ASSIGN_OR_RETURN(b.key_pem, ReadFileToString(env_, JoinPath(opts_.cert_dir, kSecretKeyKey)));
  auto ca = ReadFileToString(env_, JoinPath(opts_.cert_dir, kSecretCaKey));
  if (ca)
    b.ca_pem = std::move(*ca);
  else if (ca.error().code() != Code::kNotFound)
    return Fail(ca.error());
  // Mounted certificates are someone else's (cert-manager): check they are usable, not their
  // names or lifetime, which their issuer manages.
  if (auto st =
          ValidateCertBundle(b, {}, env_->NowUnixNanos() / 1'000'000'000, std::chrono::seconds(0));
      !st) {
    return Fail(st.error().Context("mounted certificate in " + opts_.cert_dir));
  }
  return b;
}

bool CertManager::CaPublished(const std::string& ca_pem) {
  if (opts_.webhook_config_name.empty()) return true;  // someone else publishes; time alone
  auto mwc = api_->GetWebhookConfiguration(opts_.webhook_config_name);
  return mwc && CaBundlesTrust(*mwc, ca_pem);
}

Result<CertBundle> CertManager::WriteSecret(const CertDecision& d, bool exists,
                                            const Json& secret) {
  std::string changes = JoinReasons(d.reasons);
  if (!exists) {
    spdlog::warn("webhook certificate secret {}/{} is missing: re-creating it ({})", opts_.ns,
                 opts_.secret_name, changes);
  } else if (d.replaced) {
    spdlog::warn("webhook certificate secret {}/{} holds unusable data: replacing it ({})",
                 opts_.ns, opts_.secret_name, changes);
  } else {
    spdlog::info("webhook certificate secret {}/{} updated: {}", opts_.ns, opts_.secret_name,
                 changes);
  }
  if (exists) {
    std::string rv;
    if (secret.contains("metadata")) rv = secret["metadata"].value("resourceVersion", "");
    MS_ASSIGN_OR_RETURN(Json written, api_->MergePatchSecret(opts_.ns, opts_.secret_name,
                                                             SecretPatch(d.bundle, rv)));
    last_seen_ = std::move(written);
    return d.bundle;
  }
  auto created =
      api_->CreateSecret(opts_.ns, SecretObject(opts_.ns, opts_.secret_name, d.bundle, last_seen_));
  if (!created && created.error().code() == Code::kPermissionDenied) {
    return Fail(created.error().Context(
        "re-create the webhook secret (RBAC must allow create on secrets in " + opts_.ns + ")"));
  }
  if (!created) return Fail(created.error());
  last_seen_ = std::move(*created);
  return d.bundle;
}

Result<CertBundle> CertManager::FromSecret() {
  if (api_ == nullptr) return Fail(Code::kFailedPrecondition, "no API to read the webhook Secret");
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto got = api_->GetSecret(opts_.ns, opts_.secret_name);
    if (!got && got.error().code() != Code::kNotFound) return Fail(got.error());
    bool exists = got.has_value();
    Json secret = exists ? *got : Json::object();
    if (exists) last_seen_ = secret;
    Result<CertBundle> stored =
        exists ? BundleFromSecret(secret) : Result<CertBundle>(Fail(Code::kNotFound, "no secret"));
    std::shared_ptr<const CertBundle> served = Current();
    MS_ASSIGN_OR_RETURN(
        CertDecision d,
        PlanCertificates(stored, served.get(), opts_.rotation, env_->NowUnixNanos() / 1'000'000'000,
                         [this](const std::string& ca) { return CaPublished(ca); }));
    if (!d.write) return d.bundle;
    auto written = WriteSecret(d, exists, secret);
    if (written) return written;
    // 409 Conflict (another replica wrote first) or AlreadyExists (another replica re-created
    // it): re-read and adopt the winner's bundle.
    Code c = written.error().code();
    if (c != Code::kAborted && c != Code::kAlreadyExists) {
      return Fail(written.error().Context("write webhook secret"));
    }
    spdlog::info("webhook certificate secret {}/{} written by another replica first; re-reading",
                 opts_.ns, opts_.secret_name);
  }
  return Fail(Code::kAborted, "webhook secret " + opts_.secret_name + " kept changing under us");
}

Status CertManager::PublishCaBundle(const std::string& ca_pem) {
  if (opts_.webhook_config_name.empty() || ca_pem.empty() || api_ == nullptr) return Ok();
  for (int attempt = 0; attempt < 2; ++attempt) {
    MS_ASSIGN_OR_RETURN(Json mwc, api_->GetWebhookConfiguration(opts_.webhook_config_name));
    Json ops = WebhookConfigPatch(mwc, ca_pem, opts_.webhook_url);
    if (ops.empty()) return Ok();
    auto r = api_->JsonPatchWebhookConfiguration(opts_.webhook_config_name, ops);
    if (r) {
      spdlog::info("webhook configuration patched config={} url={}", opts_.webhook_config_name,
                   opts_.webhook_url.empty() ? "(service)" : opts_.webhook_url);
      return Ok();
    }
    // A failed "test" (422) means the list changed between GET and PATCH: read it again.
    if (r.error().code() != Code::kInvalidArgument)
      return Fail(r.error().Context("patch caBundle"));
  }
  return Fail(Code::kAborted, "caBundle patch kept failing its name test");
}

Status CertManager::Start() {
  MS_ASSIGN_OR_RETURN(bool changed, Reload());
  (void)changed;
  return Ok();
}

Result<bool> CertManager::Reload() {
  bool mounted = Mounted();
  MS_ASSIGN_OR_RETURN(CertBundle b, mounted ? FromFiles() : FromSecret());
  std::shared_ptr<const CertBundle> served = Current();
  bool changed = !served || *served != b;
  // Publish before serving: a replica never serves a certificate from a bundle the caBundle has
  // not been patched to trust. Every time, not only on change: a helm upgrade may have re-applied
  // the configuration without the caBundle. A no-op costs one GET.
  Status published = PublishCaBundle(b.ca_pem);
  if (!published && served) return Fail(published.error());
  // Nothing served yet: serving is no worse than not (the API server cannot call us until the
  // caBundle is in place anyway), and the caller retries the publish.
  if (changed) {
    {
      std::lock_guard lock(mu_);
      current_ = std::make_shared<const CertBundle>(b);
    }
    spdlog::info("webhook certificate loaded source={}", mounted ? "files" : "secret");
  }
  if (!published) return Fail(published.error());
  return changed;
}

std::shared_ptr<const CertBundle> CertManager::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

}  // namespace modelswap::op
