// KubeClient: the operator's view of the Kubernetes API (the REST verbs it uses).
//
// Objects are JSON; errors are Errors mapped from the server's Status (api_error.h). Watch
// blocks the calling thread and hands events to a callback until the server ends the stream,
// the callback returns false, or another thread calls Cancel() on the Cancellation it was given.
// HttpKubeClient (http_client.h) is the real implementation; the reconciler only sees this
// interface, so its decisions are testable without HTTP.
//
// Thread safety: implementations are safe to call from any number of threads.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/kube/object.h"
#include "operator/kube/resource.h"
#include "operator/kube/watch.h"

namespace modelswap::op {

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  // "" = most recent (a consistent read). With a limit and no match, a real server reads the
  // exact snapshot at that RV (v1.32/list-rv-exact-with-limit.http), not the current state.
  std::string resource_version;
  std::string resource_version_match;  // "" | NotOlderThan | Exact
  int limit = 0;                       // 0 = no paging
  std::string continue_token;
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;
  bool allow_bookmarks = true;
  int timeout_seconds = 300;  // the server ends the watch after this long
};

enum class PatchType { kMerge, kJson };

// Lets one thread abort another thread's blocking call (a watch). Cancel() is sticky.
class Cancellation {
 public:
  void Cancel();
  bool cancelled() const;
  // Runs `fn` on Cancel() (at once if already cancelled). Returns an id for Unregister.
  int OnCancel(std::function<void()> fn);
  void Unregister(int id);

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  int next_id_ = 0;
  std::vector<std::pair<int, std::function<void()>>> callbacks_;
};

class KubeClient {
 public:
  virtual ~KubeClient() = default;

  virtual Result<Json> Get(const ResourceRef& r, const std::string& ns,
                           const std::string& name) = 0;
  // One page; follow metadata.continue for more (ListAll does).
  virtual Result<Json> List(const ResourceRef& r, const std::string& ns,
                            const ListOptions& opts) = 0;
  // dry_run: ?dryRun=All, admission and validation run and the server answers with the object it
  // would store, but nothing is stored.
  virtual Result<Json> Create(const ResourceRef& r, const std::string& ns, const Json& obj,
                              bool dry_run = false) = 0;
  // PUT; obj carries metadata.resourceVersion as the precondition (409 -> kAborted).
  virtual Result<Json> Update(const ResourceRef& r, const std::string& ns, const Json& obj,
                              bool status_subresource = false) = 0;
  virtual Result<Json> Patch(const ResourceRef& r, const std::string& ns, const std::string& name,
                             PatchType type, const Json& patch,
                             bool status_subresource = false) = 0;
  // Returns what the server returns: a Status (object gone) or the object (finalizers pending).
  // propagation_policy: "" (the resource's default), Background, Foreground or Orphan
  // (v1.32/job-delete-background.http: Background answers a Status and the Job is gone at once,
  // its pods follow).
  virtual Result<Json> Delete(const ResourceRef& r, const std::string& ns, const std::string& name,
                              const std::string& propagation_policy = "") = 0;
  // Blocks; OK when the server closed the stream or the handler stopped it; kCancelled-like
  // kAborted when cancelled; an Error for ERROR events (410 -> IsExpired) and broken streams.
  virtual Status Watch(const ResourceRef& r, const std::string& ns, const WatchOptions& opts,
                       const WatchHandler& on_event, Cancellation* cancel) = 0;
};

// Lists every page; the result's metadata.resourceVersion is the first page's (the snapshot
// all pages belong to).
Result<Json> ListAll(KubeClient* client, const ResourceRef& r, const std::string& ns,
                     ListOptions opts);

}  // namespace modelswap::op
