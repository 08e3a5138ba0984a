// FakeApiServer: an in-process Kubernetes API server for the operator's tests and benchmarks.
//
// It behaves like kube-apiserver v1.28/v1.32 for what the operator uses (grounded in
// tests/operator/testdata (recorded from real API servers), whose READMEs list the wire facts; the
// Status bodies copy the recorded ones): one global resourceVersion counter for every write; list +
// watch (chunked NDJSON, one event per chunk, ADDED/MODIFIED/DELETED/BOOKMARK; a watch from an RV
// older than the watch cache is an HTTP 200 with one ERROR event carrying a 410 Status); lists
// follow the resourceVersion semantics of v1.32/list-*.http (see DoList in fake_watch.cc: RV unset
// = most recent, RV "0" = cache without paging, RV with a limit or resourceVersionMatch=Exact = the
// exact snapshot at that RV (HTTP 410 once compacted), otherwise NotOlderThan = current data; a
// future RV is a 504 "Too large resource version"); 409 Conflict on a stale resourceVersion (PUT,
// or a merge patch that carries one); the status subresource (status sent to the main endpoint is
// silently ignored, and a write that changes nothing is no write); generation bumps on spec changes
// only; DELETE without finalizers returns a Status, with finalizers it sets deletionTimestamp;
// label selectors (equality); generateName; dryRun=All creates (answered, not stored); Secrets and
// cluster-scoped MutatingWebhookConfigurations as plain objects; Namespaces (GET
// /api/v1/namespaces/NAME, a 404 Status for a missing one, with the name label, finalizer and phase
// the real server adds); JSON merge patch and JSON patch
// (test/add/remove/replace). Jobs get the server-side defaults the job controller relies on
// (template labels job-name, controller-uid). There is no job controller: tests finish Jobs with
// CompleteJob/FailJob, which write what the real one writes (Complete condition without a reason;
// Failed with BackoffLimitExceeded/DeadlineExceeded) plus a pod with the termination message.
//
// Fault injection: DropWatches (cut streams mid-flight), Compact (etcd compaction: old RVs expire
// for lists and watches), Restart (listener and connections gone, the new watch cache starts at the
// current RV so every older RV is too old for a watch, while etcd still serves exact lists at them,
// as v1.32/reconnect-while-apiserver-starting.http and list-rv-exact-with-limit.http show),
// FailStatusUpdates (409s), HangWatches (headers then silence).
//
// Thread safety: all public methods are safe from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "operator/kube/object.h"
#include "operator/kube/resource.h"
#include "tests/operator/fake/fake_http.h"

namespace modelswap::fake {

using op::Json;
using op::ResourceRef;

class FakeApiServer {
 public:
  FakeApiServer();
  ~FakeApiServer();

  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_->port()); }
  uint64_t rv() const;

  // Direct access, as another client of the API would have.
  Json Create(const ResourceRef& r, const std::string& ns, Json obj);
  std::optional<Json> Get(const ResourceRef& r, const std::string& ns, const std::string& name);
  std::vector<Json> List(const ResourceRef& r, const std::string& ns = "");
  // Merge-patches the main object (spec/metadata) as a user would (kubectl patch).
  std::optional<Json> PatchSpec(const ResourceRef& r, const std::string& ns,
                                const std::string& name, const Json& merge_patch);
  // A list as the wire answers it (path?query, values not percent-encoded): code and body.
  std::pair<int, std::string> RawList(const std::string& path_query);
  // DELETE as a user would; returns the HTTP code.
  int Delete(const ResourceRef& r, const std::string& ns, const std::string& name);

  // The job controller's reaction to a finished pod.
  void CompleteJob(const std::string& ns, const std::string& job, const std::string& message);
  void FailJob(const std::string& ns, const std::string& job, const std::string& reason,
               const std::string& message, const std::string& termination_message);
  // Called (outside locks) for every Job created through HTTP.
  void SetJobCreatedHook(std::function<void(const Json& job)> hook);

  // Fault injection.
  void DropWatches();
  void Compact();  // etcd compaction and watch history lost: every RV below now is too old
  // rv_jump: revisions the old watches never saw (a real restart moves the RV by a few).
  void Restart(uint64_t rv_jump = 1000);
  // How long a list with a future resourceVersion waits before its 504 (recorded: 3 s).
  void SetTooLargeWait(std::chrono::milliseconds d);
  void FailStatusUpdates(int n);  // the next n status writes answer 409
  void HangWatches(bool hang);    // new watches send headers, then nothing
  void SetBookmarkInterval(std::chrono::milliseconds d);
  // false: pods lose initContainers[].restartPolicy like a server with the SidecarContainers
  // gate off (default true).
  void SetNativeSidecars(bool supported);

  // Requests served, by "VERB plural" (VERB: GET LIST WATCH POST PUT PATCH DELETE).
  std::map<std::string, int> RequestCounts() const;
  int CountRequests(const std::string& verb, const std::string& plural = "") const;
  // Answers sent with HTTP status `code` (watches not counted).
  int CountResponses(int code) const;
  int open_watches() const;

 private:
  struct Key {
    std::string resource;  // group/plural
    bool operator<(const Key& o) const { return resource < o.resource; }
  };
  struct Event {
    uint64_t rv;
    std::string resource, type;
    Json object;
  };
  // One write as etcd keeps it until compaction: enough to rebuild any older snapshot.
  struct Revision {
    uint64_t rv;
    std::string resource, key;
    std::optional<Json> prev;  // the object before the write (nullopt: it did not exist)
  };
  struct Route {
    ResourceRef ref;
    std::string ns, name, sub;
    bool ok = false;
  };

  void Handle(const HttpRequest& req, HttpConn& conn);
  Route ParsePath(const std::string& path) const;
  void Watch(const HttpRequest& req, const Route& r, HttpConn& conn);
  // The write path shared by HTTP and direct calls; returns (code, body).
  std::pair<int, Json> DoCreate(const Route& r, Json obj, bool dry_run);
  std::pair<int, Json> DoUpdate(const Route& r, Json obj, bool status, bool check_rv);
  std::pair<int, Json> DoPatch(const Route& r, const std::string& content_type, const Json& patch);
  // propagation: ?propagationPolicy; a Job deleted in the background takes its pods with it
  // (v1.32/job-delete-background.http: there 4 s later, here at once).
  std::pair<int, Json> DoDelete(const Route& r, const std::string& propagation = "");
  std::pair<int, Json> DoList(const HttpRequest& req, const Route& r);
  std::pair<int, Json> CommitLocked(const Route& r, const Json* old_obj, Json next, bool status);
  void EmitLocked(const std::string& resource, const std::string& type, const Json& obj,
                  const Json* prev);
  // The resource's objects (key -> object) as they were at `rv` (>= etcd_floor_rv_).
  std::map<std::string, Json> SnapshotLocked(const ResourceRef& r, uint64_t rv);
  std::pair<int, Json> ListPage(const HttpRequest& req, const Route& r,
                                const std::map<std::string, Json>& objects, uint64_t list_rv,
                                size_t limit, const std::string& after, bool cache_token);
  Json StatusBody(int code, const std::string& reason, const std::string& message,
                  const Route& r) const;
  bool HasStatusSubresource(const ResourceRef& r) const;
  std::map<std::string, Json>& Bucket(const ResourceRef& r);

  std::unique_ptr<HttpServer> http_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t rv_ = 100;
  uint64_t watch_floor_rv_ = 0;  // a watch may start at this RV or later (else 410)
  uint64_t etcd_floor_rv_ = 0;   // exact lists may read this RV or later (else 410)
  uint64_t uid_counter_ = 0;
  uint64_t epoch_ = 0;  // bumped by DropWatches/Restart: open streams end
  std::map<std::string, std::map<std::string, Json>> objects_;  // resource -> ns/name -> obj
  std::deque<Event> history_;                                   // the watch cache
  std::deque<Revision> revisions_;  // etcd's history since etcd_floor_rv_
  std::chrono::milliseconds too_large_wait_{3000};
  std::map<std::string, int> requests_;
  std::map<int, int> responses_;  // by HTTP status
  std::set<int> watch_fds_;
  int fail_status_updates_ = 0;
  bool hang_watches_ = false;
  bool native_sidecars_ = true;
  std::chrono::milliseconds bookmark_interval_{1000};
  std::function<void(const Json&)> job_hook_;
};

// RFC 7386 merge patch and RFC 6902 JSON patch (test/add/remove/replace); false on failure.
Json MergePatch(Json target, const Json& patch);
bool ApplyJsonPatch(Json& target, const Json& ops, std::string* error);

}  // namespace modelswap::fake
