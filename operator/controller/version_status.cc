// Phase, conditions and progress of a live version; see version_status.h.
#include "operator/controller/version_status.h"

#include <algorithm>
#include <optional>

#include "operator/controller/conditions.h"

namespace modelswap::op {

using State = TaskObservation::State;

void SetProgress(VersionView& v, int64_t interval_ns, int64_t now, int64_t* hold_ns) {
  ModelVersionStatus& s = v.next;
  const TaskObservation* t = v.Find(TaskKind::kWrite);
  if (s.phase != Phase::kWriting || t == nullptr || t->state != State::kRunning || !t->progress) {
    s.progress.reset();
    return;
  }
  WriteProgress p{t->progress->written, t->progress->total, "", FormatTime(now)};
  // Never 100% before the write task has finished: the file is still synced and renamed.
  int64_t pct =
      p.bytes_total > 0 ? std::min<int64_t>(99, p.bytes_written * 100 / p.bytes_total) : 0;
  p.percent = p.bytes_total > 0 ? std::to_string(pct) + "%" : "";
  const std::optional<WriteProgress>& old = v.mv->status.progress;
  if (old && old->bytes_written == p.bytes_written && old->bytes_total == p.bytes_total) {
    s.progress = old;  // unchanged: keep the time it was last written
    return;
  }
  const int64_t since = old ? now - ParseTime(old->last_update_time) : interval_ns;
  if (old && since >= 0 && since < interval_ns) {
    s.progress = old;
    *hold_ns = std::min(*hold_ns, interval_ns - since);
    return;
  }
  s.progress = p;
}

void SetPhaseAndConditions(VersionView& v, bool is_active, bool scheduled_write,
                           const ModelLoad& load, int64_t now) {
  const ModelVersion& mv = *v.mv;
  ModelVersionStatus& s = v.next;
  s.observed_generation = mv.generation;
  if (!v.duplicate_of.empty()) {
    s.phase = Phase::kFailed;
    SetCondition(s, mv, "Written", false, "DuplicateVersion", s.message, now);
    SetCondition(s, mv, "Active", false, "DuplicateVersion", "", now);
    return;
  }
  if (s.written()) {
    s.phase = s.file_removed              ? Phase::kSuperseded
              : is_active                 ? Phase::kActive
              : s.manifest_generation > 0 ? Phase::kSuperseded
                                          : Phase::kReady;
  } else if (v.write_failed) {
    s.phase = Phase::kFailed;
  } else if (v.write_running || scheduled_write || mv.status.phase == Phase::kWriting) {
    s.phase = Phase::kWriting;
  } else {
    s.phase = Phase::kPending;
  }
  if (s.written()) {
    SetCondition(s, mv, "Written", !s.file_removed, s.file_removed ? "FileRemoved" : "Written",
                 s.file_removed ? "version file retired" : "version file written", now);
  } else if (s.phase == Phase::kPending && !v.base_wait_reason.empty()) {
    SetCondition(s, mv, "Written", false, v.base_wait_reason, v.base_wait_message, now);
  } else {
    std::string reason = std::string(PhaseName(s.phase));
    SetCondition(s, mv, "Written", false, reason == "Failed" ? "WriteFailed" : reason,
                 s.phase == Phase::kFailed ? s.message : "", now);
  }
  if (is_active) {
    SetCondition(s, mv, "Active", true, "Published", "the manifest points at this version", now);
  } else if (!mv.activate) {
    SetCondition(s, mv, "Active", false, "ActivationNotRequested", "spec.activate is false", now);
  } else {
    SetCondition(s, mv, "Active", false, s.manifest_generation > 0 ? "Superseded" : "NotPublished",
                 "", now);
  }
  if (load.complete || load.total > 0) {
    auto it = load.loaded.find(mv.version);
    s.pods_loaded = it == load.loaded.end() ? 0 : it->second;
    s.pods_total = load.total;
    s.pods_per_pod_staging = load.per_pod_staging;
  }
  bool loaded = s.pods_total > 0 && s.pods_loaded == s.pods_total;
  SetCondition(s, mv, "Loaded", loaded,
               s.pods_total == 0 ? "NoPods"
               : loaded          ? "AllPodsLoaded"
                                 : "Loading",
               std::to_string(s.pods_loaded) + "/" + std::to_string(s.pods_total) +
                   " pods report this version active",
               now);
}

std::string EventReason(Phase p) {
  switch (p) {
    case Phase::kWriting:
      return "WriterStarted";
    case Phase::kReady:
      return "Written";
    case Phase::kActive:
      return "Activated";
    case Phase::kSuperseded:
      return "Superseded";
    case Phase::kFailed:
      return "WriteFailed";
    default:
      return std::string(PhaseName(p));
  }
}

}  // namespace modelswap::op
