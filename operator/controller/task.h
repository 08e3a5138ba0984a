// Tasks: the writer-side work the reconciler asks for (write, publish, remove a version file),
// run as Kubernetes Jobs in a cluster and as child processes in standalone mode.
//
// Names are deterministic (<mv>-write, <mv>-publish-<generation>, <mv>-publish-<generation>-r<hash
// of the activate request and its number> for a publish asked for by annotation, <mv>-remove;
// shortened with a
// hash when over 63 characters, the label-value limit job-name must fit): creating a task twice
// is an AlreadyExists, never a second Job. Arguments follow the modelswap-sidecar CLI contract
// (docs/design.md): `write --root R --model M --version V <source> [--base B] [--publish]` (a
// delta source: `--delta-on B --from-tsv R/path --auto-compact --max-chain N --compact-ratio X`;
// `--base B` for spec.source.base, the layout base of a full version), `publish ...`,
// `remove ...`. The result is the one JSON line the sidecar prints and writes to the
// termination log. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/api/model_version.h"

namespace modelswap::op {

enum class TaskKind { kWrite, kPublish, kRemove };

// The activate request (annotation modelswap.io/activate-requested-at) a publish task serves: the
// value, and the number of requests its version had handled before (status
// activateRequestsHandled), so that the same value asked again later (a revert) is a new request
// with its own task, never mistaken for an old task that is still around. Empty: no request.
struct ActivateRequest {
  std::string value;
  int64_t number = 0;
  bool empty() const { return value.empty(); }
  bool operator==(const ActivateRequest&) const = default;
};
std::string_view TaskKindName(TaskKind k);  // write | publish | remove
std::optional<TaskKind> TaskKindFromName(std::string_view name);

// `request`: the activate request a publish serves (empty for one asked by the spec).
std::string TaskName(const std::string& mv_name, TaskKind kind, int64_t generation,
                     const ActivateRequest& request = {});

// The sidecar arguments (after the program name) for a task over `root`.
std::vector<std::string> TaskArgs(const ModelVersion& mv, TaskKind kind, const std::string& root);

// Bytes a running write task reports written of its source's total (writer_progress.h).
struct TaskProgress {
  int64_t written = 0;
  int64_t total = 0;  // 0 = unknown
};

// What the reconciler sees of a task, whatever runs it.
struct TaskObservation {
  enum class State { kRunning, kSucceeded, kFailed };
  std::string name;
  TaskKind kind = TaskKind::kWrite;
  std::string owner;        // ModelVersion name
  int64_t generation = 0;   // the ModelVersion generation the task was created for
  ActivateRequest request;  // publish: the activate request it serves (empty: none)
  State state = State::kRunning;
  std::string reason;   // Job condition reason (BackoffLimitExceeded, DeadlineExceeded) or ExitCode
  std::string message;  // Job condition message
  std::string result;   // the sidecar's JSON (termination message or stdout); "" if not known
  int64_t finished_unix_ns = 0;          // when it finished (0: unknown or running)
  std::optional<TaskProgress> progress;  // a running write task's, when its pod reported one
};

// The sidecar's result JSON, success or error form; without JSON, its error line on stderr
// ("modelswap-sidecar: <Code>: message") as the error form.
struct TaskResult {
  std::string path;
  int64_t bytes = 0;
  std::string checksum;
  int64_t manifest_generation = 0;
  bool removed = false;
  std::string layout;  // write: "chunked" | "whole-file" ("" from an older writer)
  int64_t chunks_total = 0, chunks_new = 0, bytes_new = 0, bytes_reused = 0;
  // write, chunks.chunks_delta and chunks.stored_bytes_new: new chunks stored as delta chunks
  // against the --base version's, and the compressed bytes all new chunks took (0 from an older
  // writer).
  int64_t chunks_delta = 0, stored_bytes_new = 0;
  // write: "delta": {"base", "chainDepth"} of a delta ("" / 0 for a full version), "compacted"
  // when --auto-compact wrote a full version instead, "chain": the layers newest first (the
  // version itself first; one layer for a full version; empty from an older writer).
  std::string delta_base;
  int chain_depth = 0;
  bool compacted = false;
  std::vector<ChainLayerStatus> chain;
  std::string error;  // error form: message
  std::string code;   // error form: Code name
};
Result<TaskResult> ParseTaskResult(const std::string& text);

}  // namespace modelswap::op
