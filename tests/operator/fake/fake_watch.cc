// The fake API server's watch streams, its stand-in job controller and its fault injection;
// see fake_apiserver.h.
#include <algorithm>

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

}  // namespace modelswap::fake
