// Webhook certificates with OpenSSL 3; see certs.h.
#include "operator/webhook/certs.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

// The OpenSSL error queue as text (and cleared), for messages naming the failed step.
std::string SslError(std::string_view step) {
  std::string out(step);
  unsigned long e = 0;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof(buf));
    out += std::string(": ") + buf;
  }
  return out;
}

Result<X509Ptr> ParseCert(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return Fail(Code::kInvalidArgument, SslError("certificate PEM does not parse"));
  return cert;
}

Result<KeyPtr> ParseKey(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return Fail(Code::kInvalidArgument, SslError("private key PEM does not parse"));
  return key;
}

std::string ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string ToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

struct CertSpec {
  std::string cn;
  std::vector<std::pair<int, std::string>> extensions;
};

// Builds and signs one certificate for `key`, issued by (issuer, issuer_key) or self-signed.
Result<X509Ptr> MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                         int64_t now_unix, std::chrono::hours validity) {
  X509Ptr cert(X509_new());
  if (!cert) return Fail(Code::kInternal, SslError("X509_new"));
  X509_set_version(cert.get(), 2);  // v3
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return Fail(Code::kInternal, SslError("certificate serial number"));
  }
  time_t from = static_cast<time_t>(now_unix - 3600);  // tolerate clock skew between nodes
  time_t to = static_cast<time_t>(now_unix + std::chrono::seconds(validity).count());
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), from);
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), to);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  X509_set_pubkey(cert.get(), key);
  for (const auto& [nid, value] : spec.extensions) {
    if (!AddExt(cert.get(), signer, nid, value)) {
      return Fail(Code::kInternal, SslError("certificate extension " + value));
    }
  }
  if (X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256()) == 0) {
    return Fail(Code::kInternal, SslError("X509_sign"));
  }
  return cert;
}

Result<KeyPtr> NewKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Fail(Code::kInternal, SslError("generate P-256 key"));
  return key;
}

int64_t ToUnix(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::vector<std::string> ServiceDnsNames(const std::string& service, const std::string& ns) {
  return {service, service + "." + ns, service + "." + ns + ".svc",
          service + "." + ns + ".svc.cluster.local"};
}

Result<CertBundle> GenerateCertBundle(const std::vector<std::string>& dns_names, int64_t now_unix,
                                      std::chrono::hours validity) {
  if (dns_names.empty()) return Fail(Code::kInvalidArgument, "certificate needs a DNS name");
  MS_ASSIGN_OR_RETURN(KeyPtr ca_key, NewKey());
  CertSpec ca_spec{"modelswap-webhook-ca",
                   {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                    {NID_key_usage, "critical,keyCertSign,cRLSign"},
                    {NID_subject_key_identifier, "hash"}}};
  MS_ASSIGN_OR_RETURN(X509Ptr ca, MakeCert(ca_spec, ca_key.get(), nullptr, nullptr, now_unix,
                                           validity + std::chrono::hours(24)));
  MS_ASSIGN_OR_RETURN(KeyPtr key, NewKey());
  std::string san;
  for (const auto& n : dns_names)
    san += (san.empty() ? "DNS:" : ",DNS:") + n;
  CertSpec leaf_spec{dns_names.front(),
                     {{NID_basic_constraints, "critical,CA:FALSE"},
                      {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                      {NID_ext_key_usage, "serverAuth"},
                      {NID_subject_alt_name, san},
                      {NID_authority_key_identifier, "keyid"}}};
  MS_ASSIGN_OR_RETURN(X509Ptr leaf,
                      MakeCert(leaf_spec, key.get(), ca.get(), ca_key.get(), now_unix, validity));
  return CertBundle{ToPem(ca.get()), ToPem(leaf.get()), ToPem(key.get())};
}

Result<CertInfo> InspectCertificate(std::string_view pem) {
  MS_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(pem));
  CertInfo info;
  info.not_before_unix = ToUnix(X509_get0_notBefore(cert.get()));
  info.not_after_unix = ToUnix(X509_get0_notAfter(cert.get()));
  info.is_ca = X509_check_ca(cert.get()) != 0;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s)));
  }
  GENERAL_NAMES_free(names);
  return info;
}

Status ValidateCertBundle(const CertBundle& b, const std::vector<std::string>& names,
                          int64_t now_unix, std::chrono::seconds renew_before) {
  MS_ASSIGN_OR_RETURN(X509Ptr cert, ParseCert(b.cert_pem));
  MS_ASSIGN_OR_RETURN(KeyPtr key, ParseKey(b.key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Fail(Code::kInvalidArgument, "certificate check: tls.key does not match tls.crt");
  }
  if (!b.ca_pem.empty()) {
    auto ca = ParseCert(b.ca_pem);
    if (!ca) return Fail(ca.error().Context("ca.crt"));
    EVP_PKEY* ca_pub = X509_get0_pubkey(ca->get());
    if (ca_pub == nullptr || X509_verify(cert.get(), ca_pub) != 1) {
      ERR_clear_error();
      return Fail(Code::kInvalidArgument, "certificate check: tls.crt is not signed by ca.crt");
    }
  }
  for (const auto& n : names) {
    if (X509_check_host(cert.get(), n.data(), n.size(), 0, nullptr) != 1) {
      return Fail(Code::kInvalidArgument, "certificate check: tls.crt does not cover " + n);
    }
  }
  int64_t not_before = ToUnix(X509_get0_notBefore(cert.get()));
  int64_t not_after = ToUnix(X509_get0_notAfter(cert.get()));
  if (now_unix < not_before) {
    return Fail(Code::kInvalidArgument, "certificate check: tls.crt is not valid yet");
  }
  if (now_unix + renew_before.count() >= not_after) {
    return Fail(Code::kInvalidArgument,
                "certificate check: tls.crt expires within the renewal "
                "window (or has expired)");
  }
  return Ok();
}

Result<CertBundle> BundleFromSecret(const Json& secret) {
  auto data = secret.find("data");
  if (data == secret.end() || !data->is_object() || !data->contains(kSecretCertKey) ||
      !data->contains(kSecretKeyKey)) {
    return Fail(Code::kNotFound, "secret has no tls.crt/tls.key yet");
  }
  CertBundle b;
  for (auto [key, out] : {std::pair{kSecretCaKey, &b.ca_pem},
                          {kSecretCertKey, &b.cert_pem},
                          {kSecretKeyKey, &b.key_pem}}) {
    auto it = data->find(key);
    if (it == data->end()) continue;
    if (!it->is_string())
      return Fail(Code::kInvalidArgument, std::string("secret data ") + key + " is not a string");
    auto decoded = Base64Decode(it->get<std::string>());
    if (!decoded) return Fail(decoded.error().Context(std::string("secret data ") + key));
    *out = std::move(*decoded);
  }
  return b;
}

Json SecretPatch(const CertBundle& b, const std::string& resource_version) {
  Json patch = {{"data",
                 {{kSecretCaKey, Base64Encode(b.ca_pem)},
                  {kSecretCertKey, Base64Encode(b.cert_pem)},
                  {kSecretKeyKey, Base64Encode(b.key_pem)}}}};
  if (!resource_version.empty()) patch["metadata"]["resourceVersion"] = resource_version;
  return patch;
}

Json CaBundlePatch(const Json& mwc, const std::string& ca_pem,
                   const std::vector<std::string>& webhooks) {
  Json ops = Json::array();
  auto list = mwc.find("webhooks");
  if (list == mwc.end() || !list->is_array()) return ops;
  std::string bundle = Base64Encode(ca_pem);
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& w = (*list)[i];
    std::string name = w.value("name", "");
    if (!webhooks.empty() && std::find(webhooks.begin(), webhooks.end(), name) == webhooks.end())
      continue;
    const Json* cc = w.contains("clientConfig") ? &w["clientConfig"] : nullptr;
    if (cc != nullptr && cc->value("caBundle", "") == bundle) continue;
    std::string at = "/webhooks/" + std::to_string(i);
    ops.push_back({{"op", "test"}, {"path", at + "/name"}, {"value", name}});
    if (cc == nullptr) {
      ops.push_back(
          {{"op", "add"}, {"path", at + "/clientConfig"}, {"value", {{"caBundle", bundle}}}});
    } else {
      ops.push_back({{"op", "add"}, {"path", at + "/clientConfig/caBundle"}, {"value", bundle}});
    }
  }
  return ops;
}

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

Result<CertBundle> CertManager::FromSecret() {
  if (api_ == nullptr) return Fail(Code::kFailedPrecondition, "no API to read the webhook Secret");
  for (int attempt = 0; attempt < 3; ++attempt) {
    MS_ASSIGN_OR_RETURN(Json secret, api_->GetSecret(opts_.ns, opts_.secret_name));
    int64_t now = env_->NowUnixNanos() / 1'000'000'000;
    auto have = BundleFromSecret(secret);
    Status usable = have ? ValidateCertBundle(*have, opts_.dns_names, now, opts_.renew_before)
                         : Status(Fail(have.error()));
    if (usable) return *have;
    spdlog::info("webhook certificate renew secret={}/{} reason=\"{}\"", opts_.ns,
                 opts_.secret_name, usable.error().message());
    MS_ASSIGN_OR_RETURN(CertBundle fresh, GenerateCertBundle(opts_.dns_names, now, opts_.validity));
    std::string rv;
    if (secret.contains("metadata")) rv = secret["metadata"].value("resourceVersion", "");
    auto written = api_->MergePatchSecret(opts_.ns, opts_.secret_name, SecretPatch(fresh, rv));
    if (written) return fresh;
    // 409: another replica wrote its bundle first; serve that one.
    if (written.error().code() != Code::kAborted)
      return Fail(written.error().Context("write webhook secret"));
  }
  return Fail(Code::kAborted, "webhook secret " + opts_.secret_name + " kept changing under us");
}

Status CertManager::PublishCaBundle(const std::string& ca_pem) {
  if (opts_.webhook_config_name.empty() || ca_pem.empty() || api_ == nullptr) return Ok();
  for (int attempt = 0; attempt < 2; ++attempt) {
    MS_ASSIGN_OR_RETURN(Json mwc, api_->GetWebhookConfiguration(opts_.webhook_config_name));
    Json ops = CaBundlePatch(mwc, ca_pem);
    if (ops.empty()) return Ok();
    auto r = api_->JsonPatchWebhookConfiguration(opts_.webhook_config_name, ops);
    if (r) {
      spdlog::info("webhook caBundle patched config={}", opts_.webhook_config_name);
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
  MS_ASSIGN_OR_RETURN(CertBundle b, Mounted() ? FromFiles() : FromSecret());
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    if (!current_ || *current_ != b) {
      current_ = std::make_shared<const CertBundle>(b);
      changed = true;
    }
  }
  if (changed) spdlog::info("webhook certificate loaded source={}", Mounted() ? "files" : "secret");
  // Every time, not only on change: a helm upgrade may have re-applied the configuration
  // without the caBundle. A no-op costs one GET.
  MS_RETURN_IF_ERROR(PublishCaBundle(b.ca_pem));
  return changed;
}

std::shared_ptr<const CertBundle> CertManager::Current() const {
  std::lock_guard lock(mu_);
  return current_;
}

}  // namespace modelswap::op
