// Folding task observations into a version's status; see version_view.h.
#include "operator/controller/version_view.h"

#include <algorithm>

namespace modelswap::op {
namespace {

using State = TaskObservation::State;

std::string FailureMessage(const TaskObservation& t) {
  std::string msg = t.reason.empty() ? "task failed" : t.reason;
  if (!t.message.empty()) msg += ": " + t.message;
  if (auto r = ParseTaskResult(t.result); r && !r->error.empty()) {
    msg += " (" + (r->code.empty() ? "" : r->code + ": ") + r->error + ")";
  }
  return msg;
}

}  // namespace

void FoldTasks(VersionView& v) {
  ModelVersionStatus& s = v.next;
  for (const TaskObservation* t : v.tasks) {
    if (t->state == State::kRunning) {
      v.any_running = true;
      if (t->kind == TaskKind::kWrite) v.write_running = true;
      s.job_name = t->name;
      continue;
    }
    auto result = ParseTaskResult(t->result);
    switch (t->kind) {
      case TaskKind::kWrite:
        s.job_name = t->name;
        if (t->state == State::kFailed) {
          if (!s.written()) {
            v.write_failed = true;
            s.message = FailureMessage(*t);
          }
        } else if (!s.written()) {
          s.file = result && !result->path.empty()
                       ? result->path
                       : v.mv->root + "/" + v.mv->model + "/versions/" + v.mv->version + ".msf";
          s.bytes = result ? result->bytes : 0;
          s.checksum = result ? result->checksum : "";
          if (result) {
            s.layout = result->layout;
            s.chunks_total = result->chunks_total;
            s.chunks_new = result->chunks_new;
            s.bytes_new = result->bytes_new;
            s.bytes_reused = result->bytes_reused;
            s.chunks_delta = result->chunks_delta;
            s.stored_bytes_new = result->stored_bytes_new;
            s.chain_layers = result->chain;
            s.chain_compacted = result->compacted;
            // An older writer reports no layers; a delta then still says its depth.
            s.chain_length = !result->chain.empty()    ? static_cast<int>(result->chain.size())
                             : result->chain_depth > 0 ? result->chain_depth + 1
                                                       : 0;
          }
          s.message = result ? "" : "writer succeeded but its result was not readable";
          if (result && result->manifest_generation > 0) {
            s.manifest_generation = result->manifest_generation;
            s.published_generation = t->generation;
          }
        }
        break;
      case TaskKind::kPublish: {
        // A publish for an activate request is folded once, while its request is the current,
        // unhandled one; a task for an older request (its Job lingers until its TTL) only
        // contributes its manifest generation, which max() keeps idempotent. A publish for a
        // spec change is folded once its generation is newer than the last published one.
        const bool for_request = !t->request.value.empty();
        const bool current = for_request ? v.RequestPending() && t->request == v.CurrentRequest()
                                         : t->generation > s.published_generation;
        if (t->state == State::kSucceeded && result && result->manifest_generation > 0) {
          s.manifest_generation = std::max(s.manifest_generation, result->manifest_generation);
          if (!current) break;
          s.published_generation = std::max(s.published_generation, t->generation);
          s.job_name = t->name;
          s.message.clear();
        } else if (t->state == State::kFailed && current) {
          s.message = "publish failed: " + FailureMessage(*t);
          v.request_failed = for_request;
        } else {
          break;
        }
        // Handled either way: a failed request is not retried by itself (the Job already had
        // its retries); a new annotation value asks again.
        if (for_request) MarkRequestHandled(s, t->request.value);
        break;
      }
      case TaskKind::kRemove:
        v.remove_task = t;
        if (t->state == State::kSucceeded) {
          s.file_removed = true;
        } else {
          s.message = "remove failed: " + FailureMessage(*t);
        }
        break;
    }
  }
  if (!s.written() && !v.write_running && v.mv->status.phase == Phase::kFailed) {
    v.write_failed = true;  // the failed Job is gone (TTL); the status remembers
  }
}

}  // namespace modelswap::op
