// WriterProgressProber: how far each running write task has got, from its pod.
//
// A write task's pod serves GET /v1/progress on its pod IP (`write --progress-addr`, port named
// "progress" in job.h); every `interval` this reads the writer-pod cache (pods of the operator's
// Jobs, already watched) and asks each Running write pod. The writer thereby needs no access to
// the API server at all (its pod mounts no token), the operator needs no RBAC beyond what it has,
// and the chart's NetworkPolicy lets the operator reach that one port of writer pods. Like the
// agent prober, the API server is not called. A change is reported through on_change (the
// model's key), so status.progress follows without the reconciler polling; the reconciler then
// rate-limits the status writes (reconciler.h). Writers are few (one per model at a time), so
// one blocking GET each, with a short timeout, on the prober's thread is enough.
//
// Thread safety: For from any thread; Start/Stop from the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "operator/controller/task.h"
#include "operator/kube/store.h"

namespace modelswap::op {

// {"bytes_written": N, "bytes_total": M, ...} (sidecar/commands/file_commands.cc).
Result<TaskProgress> ParseWriterProgress(const std::string& body);
// http://<podIP>:<port "progress"> of a Running write-task pod, else "".
std::string WriterProgressUrl(const Json& pod);

class WriterProgressProber {
 public:
  using OnChange = std::function<void(const std::string& model_key)>;
  // GETs <base_url>/v1/progress; replaceable for tests.
  using Fetch = std::function<Result<std::string>(const std::string& base_url)>;
  WriterProgressProber(Store* writer_pods, OnChange on_change, std::chrono::milliseconds interval,
                       Fetch fetch = nullptr);
  ~WriterProgressProber();

  void Start();
  void Stop();
  void ProbeOnce();
  // The progress last reported by the write task `job_key` ("ns/job"), if any.
  std::optional<TaskProgress> For(const std::string& job_key) const;

 private:
  void Loop();

  Store* pods_;
  OnChange on_change_;
  std::chrono::milliseconds interval_;
  Fetch fetch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, TaskProgress> progress_;  // by job key; guarded by mu_
  std::thread thread_;
};

}  // namespace modelswap::op
