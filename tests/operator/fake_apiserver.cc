// Fake kube-apiserver; see fake_apiserver.h.
#include "tests/operator/fake_apiserver.h"

#include <algorithm>
#include <chrono>
#include <sstream>

namespace modelswap::fake {
namespace {

const std::vector<ResourceRef>& KnownResources() {
  static const std::vector<ResourceRef> all = {op::kModelVersions, op::kJobs, op::kPods,
                                               op::kEvents, op::kLeases};
  return all;
}

std::string ResourceKey(const ResourceRef& r) {
  return r.group + "/" + r.plural;
}

std::string Now() {
  return op::FormatTime(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
}

// "modelversions.modelswap.io" / "pods": how Status messages name a resource.
std::string Qualified(const ResourceRef& r) {
  return r.group.empty() ? r.plural : r.plural + "." + r.group;
}

uint64_t ParseRv(const std::string& s) {
  return s.empty() ? 0 : std::strtoull(s.c_str(), nullptr, 10);
}

}  // namespace

Json MergePatch(Json target, const Json& patch) {
  if (!patch.is_object()) return patch;
  if (!target.is_object()) target = Json::object();
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      target.erase(k);
    } else {
      target[k] = MergePatch(target.contains(k) ? target[k] : Json(), v);
    }
  }
  return target;
}

bool ApplyJsonPatch(Json& target, const Json& ops, std::string* error) {
  if (!ops.is_array()) {
    *error = "json patch is not an array";
    return false;
  }
  for (const auto& op : ops) {
    std::string kind = op.value("op", "");
    try {
      Json::json_pointer ptr(op.value("path", ""));
      if (kind == "test") {
        if (!target.contains(ptr) || target.at(ptr) != op["value"]) {
          *error = "testing value " + op.value("path", "") + " failed";
          return false;
        }
      } else if (kind == "remove") {
        if (!target.contains(ptr)) {
          *error = "unable to remove nonexistent key: " + op.value("path", "");
          return false;
        }
        Json& parent = target.at(ptr.parent_pointer());
        if (parent.is_array()) {
          parent.erase(std::stoul(ptr.back()));
        } else {
          parent.erase(ptr.back());
        }
      } else if (kind == "add" || kind == "replace") {
        Json& parent = target[ptr.parent_pointer()];
        if (parent.is_array()) {
          if (ptr.back() == "-") {
            parent.push_back(op["value"]);
          } else {
            parent.insert(parent.begin() + std::stol(ptr.back()), op["value"]);
          }
        } else {
          target[ptr] = op["value"];
        }
      } else {
        *error = "unsupported op " + kind;
        return false;
      }
    } catch (const std::exception& e) {
      *error = e.what();
      return false;
    }
  }
  return true;
}

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
  if (i + 1 < parts.size() && parts[i] == "namespaces") {
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
                               const Json& obj) {
  history_.push_back(Event{rv_, resource, type, obj});
  if (history_.size() > 10000) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
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
    EmitLocked(ResourceKey(r.ref), "DELETED", next);
    return {200, next};
  }
  bucket[key] = next;
  EmitLocked(ResourceKey(r.ref), old_obj == nullptr ? "ADDED" : "MODIFIED", next);
  return {old_obj == nullptr ? 201 : 200, next};
}

std::pair<int, Json> FakeApiServer::DoCreate(const Route& route, Json obj) {
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
        return {422, StatusBody(422, "Invalid",
                                "the server rejected our request due to an error in our "
                                "request: " +
                                    error,
                                r)};
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

std::pair<int, Json> FakeApiServer::DoDelete(const Route& r) {
  std::lock_guard lock(mu_);
  auto& bucket = Bucket(r.ref);
  auto it = bucket.find(op::KeyOf(r.ns, r.name));
  if (it == bucket.end()) {
    return {404,
            StatusBody(404, "NotFound", Qualified(r.ref) + " \"" + r.name + "\" not found", r)};
  }
  Json obj = it->second;
  auto fin = obj["metadata"].find("finalizers");
  if (fin != obj["metadata"].end() && !fin->empty()) {
    if (op::IsBeingDeleted(obj)) return {200, obj};
    obj["metadata"]["deletionTimestamp"] = Now();
    obj["metadata"]["deletionGracePeriodSeconds"] = 0;
    obj["metadata"]["generation"] = op::GenerationOf(obj) + 1;
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    bucket[it->first] = obj;
    EmitLocked(ResourceKey(r.ref), "MODIFIED", obj);
    return {200, obj};
  }
  bucket.erase(it);
  obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
  EmitLocked(ResourceKey(r.ref), "DELETED", obj);
  Json s = StatusBody(200, "", "", r);
  s.erase("reason");
  s["details"]["uid"] = op::UidOf(obj);
  return {200, s};
}

std::pair<int, Json> FakeApiServer::DoList(const HttpRequest& req, const Route& r) {
  std::lock_guard lock(mu_);
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  uint64_t want = ParseRv(q("resourceVersion"));
  if (want != 0 && want <= compacted_rv_ &&
      (!q("limit").empty() || q("resourceVersionMatch") == "Exact")) {
    return {410, StatusBody(410, "Expired", "The resourceVersion for the provided list is too old.",
                            Route{})};
  }
  std::string selector = q("labelSelector");
  Json items = Json::array();
  for (const auto& [key, obj] : Bucket(r.ref)) {
    if (!r.ns.empty() && op::NamespaceOf(obj) != r.ns) continue;
    if (!op::MatchesLabelSelector(obj, selector)) continue;
    items.push_back(obj);
  }
  size_t limit = q("limit").empty() ? 0 : std::stoul(q("limit"));
  size_t start = q("continue").empty() ? 0 : std::stoul(q("continue"));
  Json page = Json::array();
  for (size_t i = start; i < items.size() && (limit == 0 || page.size() < limit); ++i)
    page.push_back(items[i]);
  size_t next = start + page.size();
  Json meta = {{"continue", next < items.size() ? std::to_string(next) : ""},
               {"resourceVersion", std::to_string(rv_)}};
  if (next < items.size()) meta["remainingItemCount"] = items.size() - next;
  return {200,
          {{"apiVersion", r.ref.ApiVersion()},
           {"items", page},
           {"kind", r.ref.kind + "List"},
           {"metadata", meta}}};
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
    res = DoCreate(r, body);
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
    res = DoDelete(r);
  } else {
    res = {405, StatusBody(405, "MethodNotAllowed", "method not allowed", r)};
  }
  conn.Send(res.first, res.second.dump() + "\n");
}

void FakeApiServer::Watch(const HttpRequest& req, const Route& r, HttpConn& conn) {
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  uint64_t from = ParseRv(q("resourceVersion"));
  std::string selector = q("labelSelector");
  bool bookmarks = q("allowWatchBookmarks") == "true";
  int timeout_s = q("timeoutSeconds").empty() ? 1800 : std::stoi(q("timeoutSeconds"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  std::string resource = ResourceKey(r.ref);
  auto matches = [&](const Json& obj) {
    return (r.ns.empty() || op::NamespaceOf(obj) == r.ns) &&
           op::MatchesLabelSelector(obj, selector);
  };
  if (!conn.BeginStream(200)) return;  // headers flushed at once, before any event
  std::unique_lock lock(mu_);
  uint64_t epoch = epoch_;
  watch_fds_.insert(conn.fd());
  struct Untrack {
    FakeApiServer* s;
    std::unique_lock<std::mutex>& l;
    int fd;
    ~Untrack() {
      if (!l.owns_lock()) l.lock();
      s->watch_fds_.erase(fd);
    }
  } untrack{this, lock, conn.fd()};
  if (hang_watches_) {
    cv_.wait_until(lock, deadline, [&] { return epoch_ != epoch; });
    return;
  }
  if (from != 0 && from < compacted_rv_) {
    Json err = {{"type", "ERROR"},
                {"object",
                 {{"kind", "Status"},
                  {"apiVersion", "v1"},
                  {"metadata", Json::object()},
                  {"status", "Failure"},
                  {"message", "too old resource version: " + std::to_string(from) + " (" +
                                  std::to_string(compacted_rv_ + 1) + ")"},
                  {"reason", "Expired"},
                  {"code", 410}}}};
    lock.unlock();
    conn.Chunk(err.dump() + "\n");
    conn.EndStream();
    return;
  }
  if (from == 0) {  // RV "" or "0": the current state as ADDED events, then changes
    std::vector<Json> initial;
    for (const auto& [k, obj] : Bucket(r.ref)) {
      if (matches(obj)) initial.push_back(obj);
    }
    from = rv_;
    lock.unlock();
    for (const auto& obj : initial) {
      if (!conn.Chunk(Json{{"type", "ADDED"}, {"object", obj}}.dump() + "\n")) return;
    }
    lock.lock();
  }
  uint64_t sent_rv = from;
  while (epoch_ == epoch) {
    std::vector<std::string> out;
    for (const auto& ev : history_) {
      if (ev.rv <= sent_rv || ev.resource != resource) continue;
      if (matches(ev.object))
        out.push_back(Json{{"type", ev.type}, {"object", ev.object}}.dump() + "\n");
    }
    if (!history_.empty()) sent_rv = std::max(sent_rv, history_.back().rv);
    if (out.empty()) {
      auto wake = std::min(deadline, std::chrono::steady_clock::now() + bookmark_interval_);
      bool woke = cv_.wait_until(lock, wake, [&] {
        return epoch_ != epoch || (!history_.empty() && history_.back().rv > sent_rv);
      });
      if (epoch_ != epoch) return;  // dropped: no terminating chunk, as a cut connection
      if (std::chrono::steady_clock::now() >= deadline) break;
      if (!woke && bookmarks) {
        Json bm = {{"type", "BOOKMARK"},
                   {"object",
                    {{"apiVersion", r.ref.ApiVersion()},
                     {"kind", r.ref.kind},
                     {"metadata", {{"resourceVersion", std::to_string(sent_rv)}}}}}};
        lock.unlock();
        bool ok = conn.Chunk(bm.dump() + "\n");
        lock.lock();
        if (!ok) return;
      }
      continue;
    }
    lock.unlock();
    for (const auto& line : out) {
      if (!conn.Chunk(line)) return;
    }
    lock.lock();
  }
  lock.unlock();
  conn.EndStream();  // timeoutSeconds reached: a clean end, no ERROR event
}

Json FakeApiServer::Create(const ResourceRef& r, const std::string& ns, Json obj) {
  return DoCreate(Route{r, ns, "", "", true}, std::move(obj)).second;
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

int FakeApiServer::Delete(const ResourceRef& r, const std::string& ns, const std::string& name) {
  return DoDelete(Route{r, ns, name, "", true}).first;
}

void FakeApiServer::CompleteJob(const std::string& ns, const std::string& job,
                                const std::string& message) {
  auto j = Get(op::kJobs, ns, job);
  if (!j) return;
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"generateName", job + "-"},
                {"namespace", ns},
                {"labels", (*j)["spec"]["template"]["metadata"]["labels"]}}},
              {"spec", (*j)["spec"]["template"]["spec"]}};
  Json created = Create(op::kPods, ns, pod);
  Json status = {
      {"phase", "Succeeded"},
      {"containerStatuses",
       {{{"name", "writer"},
         {"ready", false},
         {"restartCount", 0},
         {"lastState", Json::object()},
         {"state",
          {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}, {"message", message}}}}}}}}};
  DoUpdate(Route{op::kPods, ns, op::NameOf(created), "status", true}, {{"status", status}}, true,
           false);
  // The job controller's condition: type Complete, no reason or message (1.28).
  Json js = {{"conditions",
              {{{"type", "Complete"},
                {"status", "True"},
                {"lastProbeTime", Now()},
                {"lastTransitionTime", Now()}}}},
             {"startTime", Now()},
             {"completionTime", Now()},
             {"succeeded", 1}};
  DoUpdate(Route{op::kJobs, ns, job, "status", true}, {{"status", js}}, true, false);
}

void FakeApiServer::FailJob(const std::string& ns, const std::string& job,
                            const std::string& reason, const std::string& message,
                            const std::string& termination_message) {
  auto j = Get(op::kJobs, ns, job);
  if (!j) return;
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"generateName", job + "-"},
                {"namespace", ns},
                {"labels", (*j)["spec"]["template"]["metadata"]["labels"]}}},
              {"spec", (*j)["spec"]["template"]["spec"]}};
  Json created = Create(op::kPods, ns, pod);
  Json status = {
      {"phase", "Failed"},
      {"containerStatuses",
       {{{"name", "writer"},
         {"state",
          {{"terminated",
            {{"exitCode", 1}, {"reason", "Error"}, {"message", termination_message}}}}}}}}};
  DoUpdate(Route{op::kPods, ns, op::NameOf(created), "status", true}, {{"status", status}}, true,
           false);
  Json js = {{"conditions",
              {{{"type", "Failed"},
                {"status", "True"},
                {"reason", reason},
                {"message", message},
                {"lastProbeTime", Now()},
                {"lastTransitionTime", Now()}}}},
             {"startTime", Now()},
             {"failed", 1}};
  DoUpdate(Route{op::kJobs, ns, job, "status", true}, {{"status", js}}, true, false);
}

void FakeApiServer::SetJobCreatedHook(std::function<void(const Json& job)> hook) {
  std::lock_guard lock(mu_);
  job_hook_ = std::move(hook);
}

void FakeApiServer::DropWatches() {
  std::set<int> fds;
  {
    std::lock_guard lock(mu_);
    ++epoch_;
    fds = watch_fds_;
    cv_.notify_all();
  }
  http_->Cut(fds);
}

void FakeApiServer::Compact() {
  std::lock_guard lock(mu_);
  compacted_rv_ = rv_;
  history_.clear();
}

void FakeApiServer::Restart(uint64_t rv_jump) {
  int port = http_->port();
  {
    std::lock_guard lock(mu_);
    ++epoch_;
    cv_.notify_all();
  }
  http_->Stop();
  {
    std::lock_guard lock(mu_);
    rv_ += rv_jump;  // a restored etcd: revisions the old watches never saw
    compacted_rv_ = rv_;
    history_.clear();
  }
  http_ = std::make_unique<HttpServer>(
      [this](const HttpRequest& req, HttpConn& conn) { Handle(req, conn); });
  http_->Start(port);
}

void FakeApiServer::FailStatusUpdates(int n) {
  std::lock_guard lock(mu_);
  fail_status_updates_ = n;
}

void FakeApiServer::HangWatches(bool hang) {
  std::lock_guard lock(mu_);
  hang_watches_ = hang;
}

void FakeApiServer::SetBookmarkInterval(std::chrono::milliseconds d) {
  std::lock_guard lock(mu_);
  bookmark_interval_ = d;
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

int FakeApiServer::open_watches() const {
  std::lock_guard lock(mu_);
  return static_cast<int>(watch_fds_.size());
}

}  // namespace modelswap::fake
