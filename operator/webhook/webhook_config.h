// The operator's edits to its MutatingWebhookConfiguration, as pure functions over the object:
// the caBundle (the Secret's ca.crt, i.e. every CA a replica may serve a certificate from) and,
// for a webhook running outside the cluster, clientConfig.url in place of clientConfig.service.
//
// The patches are RFC 6902 JSON patches with a "test" of each entry's name before touching it,
// so a concurrent reorder of the list fails (422) instead of patching the wrong webhook; the
// caller re-reads and retries.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace modelswap::op {

// Checks a --webhook-url as the API server will (admissionregistration/v1 WebhookClientConfig:
// https, a host, no user info, query or fragment) and returns its host (without brackets), which
// the serving certificate must then name.
[[nodiscard]] Result<std::string> ValidateWebhookUrl(const std::string& url);

// A JSON patch making every webhook of `mwc` whose name is in `webhooks` (all when empty) carry
// clientConfig.caBundle = base64(ca_pem) and, when `url` is set, clientConfig.url = url without
// clientConfig.service (the API accepts exactly one). Empty when nothing changes.
nlohmann::json WebhookConfigPatch(const nlohmann::json& mwc, const std::string& ca_pem,
                                  const std::string& url = "",
                                  const std::vector<std::string>& webhooks = {});

// Whether every selected webhook's caBundle holds `ca_cert_pem` (compared by content); false if
// none is selected or a caBundle does not parse.
bool CaBundlesTrust(const nlohmann::json& mwc, const std::string& ca_cert_pem,
                    const std::vector<std::string>& webhooks = {});

}  // namespace modelswap::op
