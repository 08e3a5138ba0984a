// Patches of the MutatingWebhookConfiguration; see webhook_config.h.
#include "operator/webhook/webhook_config.h"

#include <algorithm>

#include "operator/kube/base64.h"
#include "operator/webhook/x509.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

bool Selected(const Json& w, const std::vector<std::string>& webhooks) {
  return webhooks.empty() ||
         std::find(webhooks.begin(), webhooks.end(), w.value("name", "")) != webhooks.end();
}

}  // namespace

Result<std::string> ValidateWebhookUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Fail(Code::kInvalidArgument, "--webhook-url \"" + url + "\": " + why);
  };
  constexpr std::string_view kScheme = "https://";
  if (!url.starts_with(kScheme)) return bad("must start with https://");
  if (url.find_first_of("?#") != std::string::npos) {
    return bad("query and fragment are not allowed in a webhook URL");
  }
  std::string rest = url.substr(kScheme.size());
  std::string authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos) return bad("user info is not allowed");
  std::string host, after;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string::npos) return bad("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    after = authority.substr(close + 1);
    if (!IsIpAddress(host)) return bad("\"" + host + "\" is not an IPv6 address");
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string::npos) after = authority.substr(colon);
  }
  if (host.empty()) return bad("no host");
  if (!after.empty()) {
    std::string port = after.substr(1);
    bool digits =
        after[0] == ':' && !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) return bad("bad port");
  }
  if (auto st = ValidateSubjectAltName(host); !st) return Fail(st.error().Context("--webhook-url"));
  return host;
}

Json WebhookConfigPatch(const Json& mwc, const std::string& ca_pem, const std::string& url,
                        const std::vector<std::string>& webhooks) {
  Json ops = Json::array();
  auto list = mwc.find("webhooks");
  if (list == mwc.end() || !list->is_array()) return ops;
  std::string bundle = Base64Encode(ca_pem);
  for (size_t i = 0; i < list->size(); ++i) {
    const Json& w = (*list)[i];
    if (!Selected(w, webhooks)) continue;
    std::string at = "/webhooks/" + std::to_string(i);
    Json mine = Json::array();
    const Json* cc =
        w.contains("clientConfig") && w["clientConfig"].is_object() ? &w["clientConfig"] : nullptr;
    if (cc == nullptr) {
      Json value = {{"caBundle", bundle}};
      if (!url.empty()) value["url"] = url;
      mine.push_back({{"op", "add"}, {"path", at + "/clientConfig"}, {"value", value}});
    } else {
      if (cc->value("caBundle", "") != bundle) {
        mine.push_back({{"op", "add"}, {"path", at + "/clientConfig/caBundle"}, {"value", bundle}});
      }
      if (!url.empty() && cc->value("url", "") != url) {
        mine.push_back({{"op", "add"}, {"path", at + "/clientConfig/url"}, {"value", url}});
      }
      if (!url.empty() && cc->contains("service")) {
        mine.push_back({{"op", "remove"}, {"path", at + "/clientConfig/service"}});
      }
    }
    if (mine.empty()) continue;
    ops.push_back({{"op", "test"}, {"path", at + "/name"}, {"value", w.value("name", "")}});
    for (auto& op : mine)
      ops.push_back(std::move(op));
  }
  return ops;
}

bool CaBundlesTrust(const Json& mwc, const std::string& ca_cert_pem,
                    const std::vector<std::string>& webhooks) {
  auto want = SplitCertificates(ca_cert_pem);
  auto list = mwc.find("webhooks");
  if (!want || list == mwc.end() || !list->is_array()) return false;
  bool any = false;
  for (const Json& w : *list) {
    if (!Selected(w, webhooks)) continue;
    any = true;
    std::string b64 = w.contains("clientConfig") && w["clientConfig"].is_object()
                          ? w["clientConfig"].value("caBundle", "")
                          : "";
    auto pem = Base64Decode(b64);
    if (!pem) return false;
    auto have = SplitCertificates(*pem);
    if (!have || std::find(have->begin(), have->end(), want->front()) == have->end()) return false;
  }
  return any;
}

}  // namespace modelswap::op
