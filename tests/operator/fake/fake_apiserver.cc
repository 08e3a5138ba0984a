// Fake kube-apiserver; see fake_apiserver.h.
#include "tests/operator/fake/fake_apiserver.h"

#include "tests/operator/fake/fake_apiserver_util.h"

#include "operator/api/well_known.h"
#include "operator/webhook/namespace_policy.h"

#include <algorithm>
#include <chrono>
#include <sstream>

namespace modelswap::fake {
namespace {

const std::vector<ResourceRef>& KnownResources() {
  static const std::vector<ResourceRef> all = {op::kModelVersions,
                                               op::kJobs,
                                               op::kPods,
                                               op::kEvents,
                                               op::kLeases,
                                               op::kSecrets,
                                               op::kMutatingWebhookConfigurations,
                                               op::kNamespaces};
  return all;
}

}  // namespace

using namespace internal;

FakeApiServer::FakeApiServer()
    : http_(std::make_unique<HttpServer>(
          [this](const HttpRequest& req, HttpConn& conn) { Handle(req, conn); })) {
  http_->Start(0);
}

FakeApiServer::~FakeApiServer() {
  {
    std::lock_guard lock(mu_);
    ++epoch_;
    cv_.notify_all();
  }
  http_->Stop();
}

uint64_t FakeApiServer::rv() const {
  std::lock_guard lock(mu_);
  return rv_;
}

bool FakeApiServer::HasStatusSubresource(const ResourceRef& r) const {
  return r.plural == "modelversions" || r.plural == "jobs" || r.plural == "pods";
}

std::map<std::string, Json>& FakeApiServer::Bucket(const ResourceRef& r) {
  return objects_[ResourceKey(r)];
}

FakeApiServer::Route FakeApiServer::ParsePath(const std::string& path) const {
  Route r;
  std::vector<std::string> parts;
  std::istringstream in(path);
  std::string p;
  while (std::getline(in, p, '/')) {
    if (!p.empty()) parts.push_back(p);
  }
  size_t i = 0;
  std::string group, version;
  if (parts.size() >= 2 && parts[0] == "api") {
    version = parts[1];
    i = 2;
  } else if (parts.size() >= 3 && parts[0] == "apis") {
    group = parts[1];
    version = parts[2];
    i = 3;
  } else {
    return r;
  }
  // /api/v1/namespaces/NAME is the Namespace itself (cluster-scoped; what namespace_policy.h
  // reads), not the namespace NAME of a namespaced path.
  const bool the_namespace = group.empty() && parts.size() == i + 2 && parts[i] == "namespaces";
  if (!the_namespace && i + 1 < parts.size() && parts[i] == "namespaces") {
    r.ns = parts[i + 1];
    i += 2;
  }
  if (i >= parts.size()) return r;
  for (const auto& known : KnownResources()) {
    if (known.group == group && known.version == version && known.plural == parts[i]) r.ref = known;
  }
  if (r.ref.plural.empty()) return r;
  if (i + 1 < parts.size()) r.name = parts[i + 1];
  if (i + 2 < parts.size()) r.sub = parts[i + 2];
  r.ok = r.sub.empty() || r.sub == "status";
  return r;
}

Json FakeApiServer::StatusBody(int code, const std::string& reason, const std::string& message,
                               const Route& r) const {
  Json s = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", Json::object()},
            {"status", code < 300 ? "Success" : "Failure"},
            {"message", message},
            {"reason", reason},
            {"code", code}};
  if (!r.name.empty()) {
    s["details"] = {{"name", r.name}, {"kind", r.ref.plural}};
    if (!r.ref.group.empty()) s["details"]["group"] = r.ref.group;
  }
  if (code < 300) s.erase("message");
  return s;
}

void FakeApiServer::EmitLocked(const std::string& resource, const std::string& type,
                               const Json& obj, const Json* prev) {
  history_.push_back(Event{rv_, resource, type, obj});
  if (history_.size() > 10000) {
    watch_floor_rv_ = history_.front().rv;
    history_.pop_front();
  }
  revisions_.push_back(Revision{rv_, resource, op::KeyOf(obj),
                                prev == nullptr ? std::nullopt : std::optional<Json>(*prev)});
  cv_.notify_all();
}

std::pair<int, Json> FakeApiServer::CommitLocked(const Route& r, const Json* old_obj, Json next,
                                                 bool status) {
  auto& bucket = Bucket(r.ref);
  std::string key = op::KeyOf(r.ns, r.name);
  if (old_obj != nullptr) {
    Json before = *old_obj;
    before["metadata"].erase("resourceVersion");
    Json after = next;
    after["metadata"].erase("resourceVersion");
    if (before == after) return {200, *old_obj};  // no change: no write, RV unchanged
    if (!status && (*old_obj).value("spec", Json()) != next.value("spec", Json())) {
      next["metadata"]["generation"] = op::GenerationOf(*old_obj) + 1;
    }
  }
  next["metadata"]["resourceVersion"] = std::to_string(++rv_);
  // The last finalizer removed from an object being deleted: it goes.
  if (op::IsBeingDeleted(next) &&
      (!next["metadata"].contains("finalizers") || next["metadata"]["finalizers"].empty())) {
    bucket.erase(key);
    EmitLocked(ResourceKey(r.ref), "DELETED", next, old_obj);
    return {200, next};
  }
  bucket[key] = next;
  EmitLocked(ResourceKey(r.ref), old_obj == nullptr ? "ADDED" : "MODIFIED", next, old_obj);
  return {old_obj == nullptr ? 201 : 200, next};
}

std::pair<int, Json> FakeApiServer::DoCreate(const Route& route, Json obj, bool dry_run) {
  std::lock_guard lock(mu_);
  Route r = route;
  if (!obj.contains("metadata")) obj["metadata"] = Json::object();
  Json& meta = obj["metadata"];
  r.name = meta.value("name", "");
  if (r.name.empty() && meta.contains("generateName")) {
    static const char* kChars = "bcdfghjklmnpqrstvwxz2456789";
    std::string suffix;
    uint64_t n = ++uid_counter_ * 2654435761u;
    for (int i = 0; i < 5; ++i, n /= 27)
      suffix.push_back(kChars[n % 27]);
    r.name = meta["generateName"].get<std::string>() + suffix;
  }
  if (r.name.empty())
    return {422, StatusBody(422, "Invalid", "name or generateName is required", r)};
  if (Bucket(r.ref).count(op::KeyOf(r.ns, r.name)) != 0) {
    return {409, StatusBody(409, "AlreadyExists",
                            Qualified(r.ref) + " \"" + r.name + "\" already exists", r)};
  }
  meta["name"] = r.name;
  if (!r.ns.empty()) meta["namespace"] = r.ns;
  meta["uid"] = "00000000-0000-4000-8000-" + std::to_string(100000000000 + ++uid_counter_);
  meta["generation"] = 1;
  meta["creationTimestamp"] = Now();
  if (HasStatusSubresource(r.ref)) obj.erase("status");  // status is set via the subresource
  if (r.ref.plural == "jobs") {
    std::string uid = meta["uid"];
    auto& labels = obj["spec"]["template"]["metadata"]["labels"];
    labels["batch.kubernetes.io/controller-uid"] = uid;
    labels["controller-uid"] = uid;
    labels["batch.kubernetes.io/job-name"] = r.name;
    labels["job-name"] = r.name;
    obj["spec"]["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}};
    obj["spec"]["completions"] = 1;
    obj["spec"]["parallelism"] = 1;
    obj["status"] = Json::object();
  }
  if (r.ref.plural == "namespaces") {
    // What kube-apiserver adds to every Namespace (since 1.21: the immutable name label that
    // NamespaceSelectors match on) and the namespace controller's finalizer.
    meta["labels"]["kubernetes.io/metadata.name"] = r.name;
    obj["spec"]["finalizers"] = Json::array({"kubernetes"});
    obj["status"] = {{"phase", "Active"}};
  }
  if (r.ref.plural == "pods" && !native_sidecars_ && obj["spec"].contains("initContainers")) {
    // A 1.28 server with the SidecarContainers gate off drops the field silently
    // (k8s-fixtures/native-sidecar-*.http).
    for (auto& c : obj["spec"]["initContainers"])
      c.erase("restartPolicy");
  }
  // ?dryRun=All: the answer is what would be stored, and nothing is.
  if (dry_run) return {201, obj};
  return CommitLocked(r, nullptr, std::move(obj), false);
}

std::pair<int, Json> FakeApiServer::DoUpdate(const Route& r, Json obj, bool status, bool check_rv) {
  std::lock_guard lock(mu_);
  auto& bucket = Bucket(r.ref);
  auto it = bucket.find(op::KeyOf(r.ns, r.name));
  if (it == bucket.end()) {
    return {404,
            StatusBody(404, "NotFound", Qualified(r.ref) + " \"" + r.name + "\" not found", r)};
  }
  const Json old_obj = it->second;
  std::string want = op::ResourceVersionOf(obj);
  bool stale = check_rv && !want.empty() && want != op::ResourceVersionOf(old_obj);
  if (!stale && status && r.ref.plural == "modelversions" && fail_status_updates_ > 0) {
    --fail_status_updates_;
    stale = true;
  }
  if (stale) {
    return {409,
            StatusBody(409, "Conflict",
                       "Operation cannot be fulfilled on " + Qualified(r.ref) + " \"" + r.name +
                           "\": the object has been modified; please apply your "
                           "changes to the latest version and try again",
                       r)};
  }
  Json next = old_obj;
  if (status) {
    next["status"] = obj.value("status", Json::object());
  } else {
    for (const auto& [k, v] : obj.items()) {
      if (k == "status" && HasStatusSubresource(r.ref)) continue;  // silently ignored
      if (k == "metadata") {
        for (const char* f : {"labels", "annotations", "finalizers", "ownerReferences"}) {
          if (v.contains(f)) {
            next["metadata"][f] = v[f];
          } else {
            next["metadata"].erase(f);
          }
        }
        continue;
      }
      next[k] = v;
    }
  }
  next["metadata"]["resourceVersion"] = old_obj["metadata"]["resourceVersion"];
  return CommitLocked(r, &old_obj, std::move(next), status);
}

std::pair<int, Json> FakeApiServer::DoPatch(const Route& r, const std::string& content_type,
                                            const Json& patch) {
  // Like the real server, a patch without a resourceVersion precondition is retried internally
  // when it races another write; one with a precondition gets the 409.
  for (int attempt = 0;; ++attempt) {
    Json current;
    {
      std::lock_guard lock(mu_);
      auto& bucket = Bucket(r.ref);
      auto it = bucket.find(op::KeyOf(r.ns, r.name));
      if (it == bucket.end()) {
        return {404,
                StatusBody(404, "NotFound", Qualified(r.ref) + " \"" + r.name + "\" not found", r)};
      }
      current = it->second;
    }
    Json next = current;
    bool check_rv = false;
    if (content_type.find("merge-patch") != std::string::npos) {
      next = MergePatch(current, patch);
      check_rv = patch.contains("metadata") && patch["metadata"].contains("resourceVersion");
    } else if (content_type.find("json-patch") != std::string::npos) {
      std::string error;
      if (!ApplyJsonPatch(next, patch, &error)) {
        // A failed `test` (a stale resourceVersion, say) is a 422 with a generic message and
        // empty details, not a 409 (v1.32/create-conflicts-409.http).
        Json body =
            StatusBody(422, "Invalid",
                       "the server rejected our request due to an error in our request", Route{});
        body["details"] = Json::object();
        if (error.rfind("testing value", 0) != 0)
          body["message"] = body["message"].get<std::string>() + ": " + error;
        return {422, body};
      }
    } else {
      return {415,
              StatusBody(415, "UnsupportedMediaType", "unsupported patch type " + content_type, r)};
    }
    if (!check_rv) next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"];
    auto res = DoUpdate(r, next, r.sub == "status", true);
    if (res.first != 409 || check_rv || attempt >= 5) return res;
  }
}

std::pair<int, Json> FakeApiServer::DoDelete(const Route& r, const std::string& propagation) {
  std::lock_guard lock(mu_);
  auto& bucket = Bucket(r.ref);
  auto it = bucket.find(op::KeyOf(r.ns, r.name));
  if (it == bucket.end()) {
    return {404,
            StatusBody(404, "NotFound", Qualified(r.ref) + " \"" + r.name + "\" not found", r)};
  }
  Json obj = it->second;
  const Json before = obj;
  auto fin = obj["metadata"].find("finalizers");
  if (fin != obj["metadata"].end() && !fin->empty()) {
    if (op::IsBeingDeleted(obj)) return {200, obj};
    obj["metadata"]["deletionTimestamp"] = Now();
    obj["metadata"]["deletionGracePeriodSeconds"] = 0;
    obj["metadata"]["generation"] = op::GenerationOf(obj) + 1;
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    bucket[it->first] = obj;
    EmitLocked(ResourceKey(r.ref), "MODIFIED", obj, &before);
    return {200, obj};
  }
  bucket.erase(it);
  obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
  EmitLocked(ResourceKey(r.ref), "DELETED", obj, &before);
  if (r.ref.plural == "jobs" && propagation == "Background") {
    auto& pods = Bucket(op::kPods);
    for (auto p = pods.begin(); p != pods.end();) {
      if (op::NamespaceOf(p->second) != r.ns || op::LabelOf(p->second, "job-name") != r.name) {
        ++p;
        continue;
      }
      const Json pod_before = p->second;
      Json pod = p->second;
      pod["metadata"]["resourceVersion"] = std::to_string(++rv_);
      p = pods.erase(p);
      EmitLocked(ResourceKey(op::kPods), "DELETED", pod, &pod_before);
    }
  }
  Json s = StatusBody(200, "", "", r);
  s.erase("reason");
  s["details"]["uid"] = op::UidOf(obj);
  return {200, s};
}

void FakeApiServer::Handle(const HttpRequest& req, HttpConn& conn) {
  Route r = ParsePath(req.path);
  std::string verb = req.method;
  if (verb == "GET" && r.name.empty()) verb = req.query.count("watch") ? "WATCH" : "LIST";
  {
    std::lock_guard lock(mu_);
    ++requests_[verb + " " + r.ref.plural];
  }
  if (!r.ok) {
    conn.Send(404, StatusBody(404, "NotFound", "the server could not find the requested resource",
                              Route{})
                           .dump() +
                       "\n");
    return;
  }
  if (verb == "WATCH") return Watch(req, r, conn);
  std::pair<int, Json> res;
  Json body;
  if (!req.body.empty()) {
    body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      conn.Send(400, StatusBody(400, "BadRequest", "body is not JSON", r).dump() + "\n");
      return;
    }
  }
  if (verb == "LIST") {
    res = DoList(req, r);
  } else if (verb == "GET") {
    std::lock_guard lock(mu_);
    auto& bucket = Bucket(r.ref);
    auto it = bucket.find(op::KeyOf(r.ns, r.name));
    res =
        it == bucket.end()
            ? std::pair<int, Json>{404, StatusBody(
                                            404, "NotFound",
                                            Qualified(r.ref) + " \"" + r.name + "\" not found", r)}
            : std::pair<int, Json>{200, it->second};
  } else if (verb == "POST") {
    auto dry = req.query.find("dryRun");
    res = DoCreate(r, body, dry != req.query.end() && dry->second == "All");
    if (res.first == 201 && r.ref.plural == "jobs") {
      std::function<void(const Json&)> hook;
      {
        std::lock_guard lock(mu_);
        hook = job_hook_;
      }
      if (hook) hook(res.second);
    }
  } else if (verb == "PUT") {
    res = DoUpdate(r, body, r.sub == "status", true);
  } else if (verb == "PATCH") {
    auto ct = req.headers.find("content-type");
    res = DoPatch(r, ct == req.headers.end() ? "" : ct->second, body);
  } else if (verb == "DELETE") {
    auto policy = req.query.find("propagationPolicy");
    res = DoDelete(r, policy == req.query.end() ? "" : policy->second);
  } else {
    res = {405, StatusBody(405, "MethodNotAllowed", "method not allowed", r)};
  }
  {
    std::lock_guard lock(mu_);
    ++responses_[res.first];
  }
  std::map<std::string, std::string> headers;
  // The recorded 504 for a too large resourceVersion carries Retry-After (rv-too-large.http).
  if (auto d = res.second.find("details");
      d != res.second.end() && d->contains("retryAfterSeconds"))
    headers["Retry-After"] = std::to_string((*d)["retryAfterSeconds"].get<int>());
  conn.Send(res.first, res.second.dump() + "\n", "application/json", headers);
}

Json FakeApiServer::Create(const ResourceRef& r, const std::string& ns, Json obj) {
  return DoCreate(Route{r, ns, "", "", true}, std::move(obj), false).second;
}

std::optional<Json> FakeApiServer::Get(const ResourceRef& r, const std::string& ns,
                                       const std::string& name) {
  std::lock_guard lock(mu_);
  auto& bucket = Bucket(r);
  auto it = bucket.find(op::KeyOf(ns, name));
  if (it == bucket.end()) return std::nullopt;
  return it->second;
}

std::vector<Json> FakeApiServer::List(const ResourceRef& r, const std::string& ns) {
  std::lock_guard lock(mu_);
  std::vector<Json> out;
  for (const auto& [k, obj] : Bucket(r)) {
    if (ns.empty() || op::NamespaceOf(obj) == ns) out.push_back(obj);
  }
  return out;
}

std::optional<Json> FakeApiServer::PatchSpec(const ResourceRef& r, const std::string& ns,
                                             const std::string& name, const Json& merge_patch) {
  auto res = DoPatch(Route{r, ns, name, "", true}, "application/merge-patch+json", merge_patch);
  if (res.first != 200) return std::nullopt;
  return res.second;
}

std::pair<int, std::string> FakeApiServer::RawList(const std::string& path_query) {
  HttpRequest req;
  req.method = "GET";
  size_t q = path_query.find('?');
  req.path = path_query.substr(0, q);
  std::istringstream in(q == std::string::npos ? "" : path_query.substr(q + 1));
  std::string kv;
  while (std::getline(in, kv, '&')) {
    size_t eq = kv.find('=');
    req.query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  auto res = DoList(req, ParsePath(req.path));
  return {res.first, res.second.dump()};
}

int FakeApiServer::Delete(const ResourceRef& r, const std::string& ns, const std::string& name) {
  return DoDelete(Route{r, ns, name, "", true}).first;
}

std::map<std::string, int> FakeApiServer::RequestCounts() const {
  std::lock_guard lock(mu_);
  return requests_;
}

int FakeApiServer::CountRequests(const std::string& verb, const std::string& plural) const {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [k, v] : requests_) {
    if (k.rfind(verb + " ", 0) == 0 && (plural.empty() || k == verb + " " + plural)) n += v;
  }
  return n;
}

int FakeApiServer::CountResponses(int code) const {
  std::lock_guard lock(mu_);
  auto it = responses_.find(code);
  return it == responses_.end() ? 0 : it->second;
}

void FakeApiServer::SetNativeSidecars(bool supported) {
  std::lock_guard lock(mu_);
  native_sidecars_ = supported;
}

int FakeApiServer::open_watches() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(watch_fds_.size());
}

}  // namespace modelswap::fake
