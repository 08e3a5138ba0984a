// The AdmissionReview handling around the injection patch (ReviewAdmission, admission.h): parse
// and check the review, pass only pod CREATEs on to BuildInjectionPatch (injection_patch.cc), and
// answer with the patch, a denial or a 400, always echoing the request's uid.
#include "operator/webhook/admission.h"

#include "operator/kube/base64.h"
#include "operator/webhook/pod_json.h"

namespace modelswap::op {
namespace {

using Json = nlohmann::json;

// Responses may quote request text (a parser error message can hold raw invalid UTF-8), which
// dump() would throw on: replaced instead, so a bad request gets its 400, not a 500.
std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// Deeper than any Pod: a request nested further is refused while parsing, before anything
// recursive (dump, destruction) could run out of stack on it.
constexpr int kMaxJsonDepth = 64;
struct TooDeep {};

Json Envelope(Json response) {
  return {{"apiVersion", kAdmissionApiVersion},
          {"kind", "AdmissionReview"},
          {"response", std::move(response)}};
}

AdmissionOutcome BadRequest(const std::string& uid, const std::string& message) {
  Json status = {{"code", 400}, {"reason", "BadRequest"}, {"message", "modelswap: " + message}};
  return {400, Dump(Envelope({{"uid", uid}, {"allowed", false}, {"status", status}})),
          AdmissionVerdict::kBadRequest, message};
}

AdmissionOutcome Allowed(const std::string& uid, const std::vector<std::string>& warnings,
                         AdmissionVerdict verdict) {
  Json response = {{"uid", uid}, {"allowed", true}};
  if (!warnings.empty()) response["warnings"] = warnings;
  return {200, Dump(Envelope(std::move(response))), verdict, ""};
}

// Reads request.kind/resource: only pods/v1 CREATEs are ours; anything else passes untouched.
bool IsPodCreate(const Json& request) {
  auto str = [&](const char* a, const char* b) {
    auto x = request.find(a);
    if (x == request.end() || !x->is_object()) return std::string();
    auto y = x->find(b);
    return y != x->end() && y->is_string() ? y->get<std::string>() : std::string();
  };
  auto op = request.find("operation");
  return str("kind", "kind") == "Pod" && str("kind", "group").empty() &&
         str("resource", "resource") == "pods" && op != request.end() && *op == "CREATE" &&
         !request.contains("subResource");
}

}  // namespace

AdmissionOutcome ReviewAdmission(std::string_view request_body, const InjectionConfig& cfg,
                                 bool native_sidecars) {
  return ReviewAdmission(request_body, cfg, AdmissionContext{native_sidecars, nullptr});
}

AdmissionOutcome ReviewAdmission(std::string_view request_body, const InjectionConfig& cfg,
                                 const AdmissionContext& ctx) {
  Json review;
  try {
    review = Json::parse(request_body, [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxJsonDepth) throw TooDeep{};
      return true;
    });
  } catch (const Json::exception& e) {
    return BadRequest("", std::string("request body is not JSON: ") + e.what());
  } catch (const TooDeep&) {
    return BadRequest("", "request body nests deeper than " + std::to_string(kMaxJsonDepth) +
                              " levels: not an AdmissionReview");
  }
  if (!review.is_object()) return BadRequest("", "request body is not a JSON object");
  auto request = review.find("request");
  std::string uid;
  if (request != review.end() && request->is_object()) {
    if (auto u = request->find("uid"); u != request->end() && u->is_string()) uid = *u;
  }
  auto kind = review.find("kind");
  auto api = review.find("apiVersion");
  if (kind == review.end() || *kind != "AdmissionReview") {
    return BadRequest(uid, "request is not an AdmissionReview (kind)");
  }
  if (api == review.end() || *api != kAdmissionApiVersion) {
    const std::string got = api == review.end() ? "null"
                            : api->is_string() ? "\"" + api->get<std::string>().substr(0, 64) + "\""
                                               : std::string("a JSON ") + api->type_name();
    return BadRequest(uid, "AdmissionReview apiVersion " + got +
                               " is not supported: configure admissionReviewVersions [v1]");
  }
  if (request == review.end() || !request->is_object()) {
    return BadRequest(uid, "AdmissionReview has no request");
  }
  if (uid.empty()) return BadRequest(uid, "AdmissionReview request has no uid");
  if (!IsPodCreate(*request)) return Allowed(uid, {}, AdmissionVerdict::kSkipped);
  auto object = request->find("object");
  if (object == request->end() || !object->is_object()) {
    return BadRequest(uid, "AdmissionReview request has no object");
  }

  std::vector<std::string> warnings;
  // The namespace the pod is created in: the request's (a pod's metadata.namespace may be empty).
  std::string ns;
  if (auto n = request->find("namespace"); n != request->end() && n->is_string()) ns = *n;
  auto ops = BuildInjectionPatch(*object, cfg, ctx, ns, &warnings);
  if (!ops) {
    const std::string& msg = ops.error().message();
    Json status = {{"code", 400}, {"reason", "BadRequest"}, {"message", "modelswap: " + msg}};
    return {200, Dump(Envelope({{"uid", uid}, {"allowed", false}, {"status", status}})),
            AdmissionVerdict::kDenied, msg};
  }
  if (ops->empty()) {
    bool asked = WantsInjection(pod_json::StringMap(*object, "annotations"),
                                pod_json::StringMap(*object, "labels")) == InjectRequest::kInject;
    return Allowed(uid, warnings,
                   asked ? AdmissionVerdict::kUnchanged : AdmissionVerdict::kSkipped);
  }
  Json response = {{"uid", uid},
                   {"allowed", true},
                   {"patchType", "JSONPatch"},
                   {"patch", Base64Encode(Dump(*ops))}};
  if (!warnings.empty()) response["warnings"] = warnings;
  return {200, Dump(Envelope(std::move(response))), AdmissionVerdict::kPatched, ""};
}

}  // namespace modelswap::op
