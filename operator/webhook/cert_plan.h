// The rotation policy of the webhook's self-managed certificates, as one pure function from what
// the Secret holds (and the time) to what it should hold. CertManager (cert_manager.h) reads the
// Secret, asks PlanCertificates, writes the answer back with a resourceVersion precondition and
// serves it.
//
// Two lifetimes, like cert-manager's CA issuer and controller-runtime's cert-controller:
//   - a long-lived CA (10 years), the only thing the API server trusts (the caBundle);
//   - a short-lived serving certificate (1 year) it signs, renewed at 2/3 of its life, or at once
//     when it is unusable (garbage, wrong key, expired, not signed by a CA of ca.crt, or no
//     longer naming every required SAN). Renewal replaces tls.crt/tls.key only: ca.crt and
//     so the caBundle stay byte-for-byte the same, so there is no window at all.
// The CA is rotated at 2/3 of its life in three steps, each a separate write, so that no
// replica ever serves a certificate the caBundle does not cover (replicas re-read the Secret
// every reload interval; the API server picks up the caBundle within seconds):
//   1. a new CA is appended to ca.crt and its key becomes ca.key; tls.crt stays (old CA);
//   2. once the new CA is `overlap` old AND the caller confirms the caBundle holds it, tls.crt
//      is re-issued by the new CA;
//   3. once that tls.crt is `overlap` old (every replica has re-read it), the old CA leaves
//      ca.crt.
// A Secret without a usable ca.key (a bundle from before ca.key was kept) goes through the same
// steps: its CA can no longer sign, so a new one is added. Expired CAs are dropped.
// A Secret whose ca.crt is garbage, or that is empty or gone, starts over with a new CA; the CAs
// this replica serves from are carried over into the new ca.crt (public certificates only), so
// replicas still serving the old certificate stay trusted until step 3 drops them.
//
// Thread safety: pure (apart from key generation's randomness).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/webhook/certs.h"

namespace modelswap::op {

struct RotationPolicy {
  std::vector<std::string> names;  // SANs the serving certificate must cover (DNS or IP)
  std::chrono::seconds ca_validity{std::chrono::hours(24 * 3650)};
  std::chrono::seconds validity{std::chrono::hours(24 * 365)};  // serving certificate
  // A certificate is renewed once this fraction of its lifetime has passed.
  double renew_fraction = 2.0 / 3.0;
  // How long a new CA is trusted before a certificate it signed is served, and how long the old
  // CA stays trusted after the serving certificate left it: well above the replicas' reload
  // interval plus the API server's caBundle propagation.
  std::chrono::seconds overlap{std::chrono::hours(1)};
};

struct CertDecision {
  CertBundle bundle;                 // what the Secret should hold and replicas serve
  bool write = false;                // differs from what the Secret holds
  bool replaced = false;             // started over because the stored material was unusable
  std::vector<std::string> reasons;  // what changed and why, for the log line
};

// stored: BundleFromSecret's answer (kNotFound for an empty or deleted Secret).
// served: what this replica serves now (null before the first load).
// ca_published(ca_pem): whether the caBundle the API server uses already trusts that CA (asked
// only before a serving certificate moves to a new CA).
[[nodiscard]] Result<CertDecision> PlanCertificates(
    const Result<CertBundle>& stored, const CertBundle* served, const RotationPolicy& policy,
    int64_t now_unix, const std::function<bool(const std::string& ca_pem)>& ca_published);

}  // namespace modelswap::op
