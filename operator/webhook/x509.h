// X.509 for the webhook with OpenSSL 3, on PEM text only: a self-signed CA, a serving
// certificate it signs for DNS names and IP addresses, and the checks the rotation policy
// (cert_plan.h) needs: parse, key match, issuer, subjectAltName coverage, validity.
//
// Keys are ECDSA P-256 (what cert-manager and controller-runtime's cert-controller default to,
// and small). Every certificate is backdated by kBackdateSeconds for clock skew between nodes,
// so a certificate's issue time is not_before + kBackdateSeconds.
//
// Thread safety: pure functions (OpenSSL 3 is thread-safe without set-up).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace modelswap::op {

inline constexpr int64_t kBackdateSeconds = 3600;

// A certificate and its private key (PKCS#8), PEM.
struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

struct CertInfo {
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries, as text
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
  bool is_ca = false;
};

// True for a literal IPv4 or IPv6 address (no brackets, no zone).
bool IsIpAddress(std::string_view s);
// A subjectAltName this webhook may put in its certificate: an IP address or a DNS-1123
// subdomain (lower case, no wildcard). The message says which rule failed.
[[nodiscard]] Status ValidateSubjectAltName(std::string_view name);

// A new self-signed CA (CA:TRUE, pathlen 0) valid from now - kBackdateSeconds for `validity`.
[[nodiscard]] Result<CertAndKey> GenerateCa(int64_t now_unix, std::chrono::seconds validity);
// A serving certificate (serverAuth) for `names` (DNS names and IP addresses, checked with
// ValidateSubjectAltName) signed by `ca`; never valid beyond the CA.
[[nodiscard]] Result<CertAndKey> IssueServingCert(const CertAndKey& ca,
                                                  const std::vector<std::string>& names,
                                                  int64_t now_unix, std::chrono::seconds validity);

// Parses the first certificate of a PEM text.
[[nodiscard]] Result<CertInfo> InspectCertificate(std::string_view pem);
// Every certificate of a PEM bundle, each re-encoded by OpenSSL (so two bundles compare by
// content, not by line breaks). kInvalidArgument if one does not parse or there is none.
[[nodiscard]] Result<std::vector<std::string>> SplitCertificates(std::string_view pem);
// The private key matches the certificate.
[[nodiscard]] Status CheckKeyMatches(std::string_view cert_pem, std::string_view key_pem);
// The certificate's signature verifies with the CA's public key (and names it as issuer).
bool IsSignedBy(std::string_view cert_pem, std::string_view ca_pem);
// The certificate covers every name (DNS by RFC 6125 host matching, IPs exactly).
[[nodiscard]] Status CheckCovers(std::string_view cert_pem, const std::vector<std::string>& names);

}  // namespace modelswap::op
