// The fake API server's reads that depend on resourceVersion (lists and watch streams), its
// stand-in job controller and its fault injection; see fake_apiserver.h.
#include <algorithm>
#include <thread>

#include "tests/operator/fake/fake_apiserver.h"
#include "tests/operator/fake/fake_apiserver_util.h"

namespace modelswap::fake {

using namespace internal;

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
  if (from != 0 && from < watch_floor_rv_) {
    Json err = {{"type", "ERROR"},
                {"object",
                 {{"kind", "Status"},
                  {"apiVersion", "v1"},
                  {"metadata", Json::object()},
                  {"status", "Failure"},
                  {"message", "too old resource version: " + std::to_string(from) + " (" +
                                  std::to_string(watch_floor_rv_ + 1) + ")"},
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

namespace {

std::string Base64Url(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;  // unpadded, as the real tokens are
}

std::string UnBase64Url(const std::string& in) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-' || c == '+' ? 62
            : c == '_' || c == '/' ? 63
                                   : -1;
    if (v < 0) continue;  // padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 255));
    }
  }
  return out;
}

// The continue token as the recordings show it: base64url of {"v","rv","start"}, start being
// the key after which the next page begins plus "\u0000"; tokens from the watch cache
// (NotOlderThan + limit) start with "/" (v1.32/README.md).
// Keys are relative to the namespace listed, as etcd's are to its prefix.
std::string ContinueToken(int64_t rv, const std::string& last_key, bool cache) {
  nlohmann::ordered_json t = {
      {"v", "meta.k8s.io/v1"}, {"rv", rv}, {"start", (cache ? "/" : "") + last_key + '\0'}};
  return Base64Url(t.dump());
}

std::string Relative(const std::string& ns, const std::string& key) {
  return ns.empty() ? key : key.substr(ns.size() + 1);
}

const char* kListTooOld = "The resourceVersion for the provided list is too old.";
const char* kContinueTooOld =
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this response "
    "to retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the "
    "first chunk was returned and now may show up in the list.";

}  // namespace

std::map<std::string, Json> FakeApiServer::SnapshotLocked(const ResourceRef& r, uint64_t rv) {
  std::map<std::string, Json> objects = Bucket(r);
  const std::string resource = ResourceKey(r);
  for (auto it = revisions_.rbegin(); it != revisions_.rend() && it->rv > rv; ++it) {
    if (it->resource != resource) continue;
    if (it->prev) {
      objects[it->key] = *it->prev;
    } else {
      objects.erase(it->key);
    }
  }
  return objects;
}

std::pair<int, Json> FakeApiServer::ListPage(const HttpRequest& req, const Route& r,
                                             const std::map<std::string, Json>& objects,
                                             uint64_t list_rv, size_t limit,
                                             const std::string& after, bool cache_token) {
  auto sel = req.query.find("labelSelector");
  std::string selector = sel == req.query.end() ? "" : sel->second;
  std::vector<std::pair<std::string, const Json*>> items;
  for (const auto& [key, obj] : objects) {
    if (!after.empty() && key <= after) continue;
    if (!r.ns.empty() && op::NamespaceOf(obj) != r.ns) continue;
    if (!op::MatchesLabelSelector(obj, selector)) continue;
    items.emplace_back(key, &obj);
  }
  size_t n = limit == 0 ? items.size() : std::min(limit, items.size());
  Json page = Json::array();
  for (size_t i = 0; i < n; ++i)
    page.push_back(*items[i].second);
  Json meta = {{"continue", ""}, {"resourceVersion", std::to_string(list_rv)}};
  if (n < items.size()) {
    meta["continue"] = ContinueToken(static_cast<int64_t>(list_rv),
                                     Relative(r.ns, items[n - 1].first), cache_token);
    meta["remainingItemCount"] = items.size() - n;
  }
  return {200,
          {{"apiVersion", r.ref.ApiVersion()},
           {"items", page},
           {"kind", r.ref.kind + "List"},
           {"metadata", meta}}};
}

// The resourceVersion semantics of a v1.32 list (v1.32/list-*.http, rv-too-large.http):
//  - continue=T: the snapshot T was cut from (410 with a fresh rv -1 token once compacted);
//  - RV unset: a consistent read of the most recent state, paged by limit;
//  - RV "0": the watch cache's current state, limit ignored (no continue);
//  - RV=N with limit (no resourceVersionMatch) or resourceVersionMatch=Exact: exactly the
//    snapshot at N, paged (410 once N is compacted);
//  - RV=N otherwise (NotOlderThan): the current state, paged by the watch cache;
//  - N newer than the current RV: 504 "Too large resource version" after waiting for it.
std::pair<int, Json> FakeApiServer::DoList(const HttpRequest& req, const Route& r) {
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  const std::string rv_param = q("resourceVersion"), match = q("resourceVersionMatch");
  const size_t limit = q("limit").empty() ? 0 : std::stoul(q("limit"));
  std::unique_lock lock(mu_);
  if (!q("continue").empty()) {
    Json t = Json::parse(UnBase64Url(q("continue")), nullptr, false);
    if (!t.is_object() || !t.contains("rv") || !t.contains("start")) {
      return {400, StatusBody(400, "BadRequest", "continue key is not valid", Route{})};
    }
    int64_t rv = t["rv"].get<int64_t>();
    std::string start = t["start"].get<std::string>();
    bool cache = !start.empty() && start.front() == '/';
    std::string after = start.substr(cache ? 1 : 0);
    if (!after.empty() && after.back() == '\0') after.pop_back();
    if (rv < static_cast<int64_t>(etcd_floor_rv_)) {
      Json s = StatusBody(410, "Expired", kContinueTooOld, Route{});
      s["metadata"]["continue"] = ContinueToken(-1, after, false);
      return {410, s};
    }
    if (!r.ns.empty()) after = r.ns + "/" + after;
    return ListPage(req, r, SnapshotLocked(r.ref, rv), rv, limit, after, cache);
  }
  if (rv_param.empty()) return ListPage(req, r, Bucket(r.ref), rv_, limit, "", false);
  if (rv_param == "0") return ListPage(req, r, Bucket(r.ref), rv_, 0, "", true);
  const uint64_t want = ParseRv(rv_param);
  if (want > rv_) {
    // The real server waits for its watch cache to catch up, then gives up.
    cv_.wait_for(lock, too_large_wait_, [&] { return rv_ >= want; });
    if (want > rv_) {
      Json s = StatusBody(504, "Timeout",
                          "Timeout: Too large resource version: " + std::to_string(want) +
                              ", current: " + std::to_string(rv_),
                          Route{});
      s["details"] = {
          {"causes",
           {{{"reason", "ResourceVersionTooLarge"}, {"message", "Too large resource version"}}}},
          {"retryAfterSeconds", 1}};
      return {504, s};
    }
  }
  const bool exact = match == "Exact" || (match.empty() && limit > 0);
  if (!exact) return ListPage(req, r, Bucket(r.ref), rv_, limit, "", true);
  if (want < etcd_floor_rv_) return {410, StatusBody(410, "Expired", kListTooOld, Route{})};
  return ListPage(req, r, SnapshotLocked(r.ref, want), want, limit, "", false);
}

namespace {
// The pod the job controller would have created for a Job (kubelet's status is written after).
Json JobPod(const std::string& ns, const std::string& job, const Json& j) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata",
           {{"generateName", job + "-"},
            {"namespace", ns},
            {"labels", j["spec"]["template"]["metadata"]["labels"]}}},
          {"spec", j["spec"]["template"]["spec"]}};
}
}  // namespace

void FakeApiServer::CompleteJob(const std::string& ns, const std::string& job,
                                const std::string& message) {
  auto j = Get(op::kJobs, ns, job);
  if (!j) return;
  Json created = Create(op::kPods, ns, JobPod(ns, job, *j));
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
  Json created = Create(op::kPods, ns, JobPod(ns, job, *j));
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
  watch_floor_rv_ = rv_;
  etcd_floor_rv_ = rv_;
  history_.clear();
  revisions_.clear();
}

void FakeApiServer::SetTooLargeWait(std::chrono::milliseconds d) {
  std::lock_guard lock(mu_);
  too_large_wait_ = d;
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
    rv_ += rv_jump;  // revisions the old watches never saw
    // The new watch cache starts empty at the current revision: every older RV is too old for a
    // watch. etcd is not compacted by a restart, so exact lists at old RVs still work.
    watch_floor_rv_ = rv_;
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

}  // namespace modelswap::fake
