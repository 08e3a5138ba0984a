// The webhook's TLS material as stored and served: the bundle (trust bundle, CA key, serving
// certificate and key), its Secret representation, and the checks for certificates mounted from
// elsewhere (cert-manager).
//
// The Secret (kubernetes.io/tls keys plus the CA, as cert-manager's CA issuer and
// controller-runtime's cert-controller lay it out):
//   ca.crt   the trust bundle: the CA that signs, and during a CA rotation also the previous
//            one (PEM, concatenated). This is exactly the MutatingWebhookConfiguration's caBundle.
//   ca.key   the private key of the signing CA (the one in ca.crt it matches).
//   tls.crt  the serving certificate, signed by a CA of ca.crt.
//   tls.key  its private key.
// How the bundle evolves (renewal, CA rotation, repair) is cert_plan.h; who writes it is
// cert_manager.h.
//
// Thread safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
// Secret data and caBundle values are base64: Base64Encode / Base64Decode come with this header.
#include "operator/kube/base64.h"
#include "operator/webhook/x509.h"

namespace modelswap::op {

struct CertBundle {
  std::string ca_pem;      // the trust bundle (caBundle); may be empty for mounted certs
  std::string ca_key_pem;  // the signing CA's key; empty for mounted certs
  std::string cert_pem;    // the serving certificate (leaf first, then intermediates)
  std::string key_pem;     // its private key (PKCS#8 PEM)
  bool operator==(const CertBundle&) const = default;
};

// The Service's names the API server may use: name, name.ns, name.ns.svc,
// name.ns.svc.cluster.local.
std::vector<std::string> ServiceDnsNames(const std::string& service, const std::string& ns);

// A fresh CA (valid for ca_validity, default `validity` + 1 day) and a serving certificate for
// `names` (DNS names or IPs) valid for `validity`: the starting point of a Secret.
[[nodiscard]] Result<CertBundle> GenerateCertBundle(const std::vector<std::string>& names,
                                                    int64_t now_unix, std::chrono::seconds validity,
                                                    std::chrono::seconds ca_validity = {});

// Checks that the key matches the certificate, the certificate is signed by a CA of ca_pem
// (when set), covers every name, and is valid at now_unix + renew_before. The message names the
// failed check.
[[nodiscard]] Status ValidateCertBundle(const CertBundle& b, const std::vector<std::string>& names,
                                        int64_t now_unix, std::chrono::seconds renew_before);

// Secret data keys.
inline constexpr const char* kSecretCaKey = "ca.crt";
inline constexpr const char* kSecretCaPrivateKey = "ca.key";
inline constexpr const char* kSecretCertKey = "tls.crt";
inline constexpr const char* kSecretKeyKey = "tls.key";

// Reads the bundle out of a Secret object (absent keys stay empty); kNotFound when it holds none
// of the four keys (the chart's empty Secret), kInvalidArgument naming the key that is not
// base64.
[[nodiscard]] Result<CertBundle> BundleFromSecret(const nlohmann::json& secret);
// A merge patch writing `b` into the Secret, with metadata.resourceVersion as the precondition
// (omitted when empty).
nlohmann::json SecretPatch(const CertBundle& b, const std::string& resource_version);
// A whole Secret holding `b`, to re-create one that was deleted. `last_seen` is that Secret as
// last read (or null): its labels and annotations are kept, so the re-created object still
// carries Helm's ownership metadata and `helm upgrade` keeps managing it.
nlohmann::json SecretObject(const std::string& ns, const std::string& name, const CertBundle& b,
                            const nlohmann::json& last_seen);

}  // namespace modelswap::op
