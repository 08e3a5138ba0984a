// Conditions and the Ready summary; see conditions.h.
#include "operator/controller/conditions.h"

#include <algorithm>
#include <cstdio>

#include "operator/kube/resource.h"

namespace modelswap::op {
namespace {

std::string Bytes(int64_t b) {
  char buf[32];
  const double gib = static_cast<double>(b) / (1ll << 30), mib = static_cast<double>(b) / (1 << 20);
  if (gib >= 1) {
    std::snprintf(buf, sizeof buf, "%.1f GiB", gib);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", mib);
  }
  return buf;
}

void Summary(ModelVersionStatus& s, const ModelVersion& mv, bool ready, const std::string& reason,
             const std::string& message, int64_t now, bool stalled = false) {
  SetCondition(s, mv, "Ready", ready, reason, message, now);
  if (ready) {
    RemoveCondition(s, "Reconciling");
    RemoveCondition(s, "Stalled");
  } else if ((s.phase == Phase::kFailed || stalled) && !mv.deleting) {
    RemoveCondition(s, "Reconciling");
    SetCondition(s, mv, "Stalled", true, reason, message, now);
  } else {
    RemoveCondition(s, "Stalled");
    SetCondition(s, mv, "Reconciling", true, reason, message, now);
  }
}

}  // namespace

void SetCondition(ModelVersionStatus& s, const ModelVersion& mv, const std::string& type,
                  bool value, const std::string& reason, const std::string& message, int64_t now) {
  std::string status = value ? "True" : "False";
  std::string since = FormatTime(now);
  if (const Condition* old = mv.status.FindCondition(type); old && old->status == status) {
    since = old->last_transition_time;
  }
  Condition c{type, status, reason, message, mv.generation, since};
  for (auto& existing : s.conditions) {
    if (existing.type == type) {
      existing = c;
      return;
    }
  }
  s.conditions.push_back(c);
}

void RemoveCondition(ModelVersionStatus& s, const std::string& type) {
  std::erase_if(s.conditions, [&](const Condition& c) { return c.type == type; });
}

std::string DescribeProgress(const WriteProgress& p) {
  if (p.bytes_total <= 0) return Bytes(p.bytes_written) + " written";
  return Bytes(p.bytes_written) + " of " + Bytes(p.bytes_total) + " (" + p.percent + ")";
}

void SetAgentsReachable(ModelVersionStatus& s, const ModelVersion& mv, bool is_active,
                        int unreachable, const std::string& example, int64_t now) {
  if (!is_active || s.pods_total <= 0) {
    RemoveCondition(s, "AgentsReachable");
    return;
  }
  const std::string of = std::to_string(s.pods_total);
  if (unreachable > 0) {
    SetCondition(s, mv, "AgentsReachable", false, "AgentsUnreachable",
                 std::to_string(unreachable) + " of " + of + " agents did not answer" +
                     (example.empty() ? "" : " (e.g. " + example + ")") +
                     ": rollout status incomplete, retention paused",
                 now);
  } else {
    SetCondition(s, mv, "AgentsReachable", true, "AgentsAnswered",
                 "no agent failed its latest probe (" + of + " pods serve the model)", now);
  }
}

void SetSummaryConditions(ModelVersionStatus& s, const ModelVersion& mv, const SummaryFacts& f,
                          int64_t now) {
  if (mv.deleting) {
    const Condition* d = s.FindCondition("Deleting");
    Summary(s, mv, false, "Deleting",
            d != nullptr ? d->message : "the version's file and finalizer are being released", now);
    return;
  }
  const Condition* written = s.FindCondition("Written");
  const std::string model = "model " + mv.model;
  switch (s.phase) {
    case Phase::kFailed:
      Summary(
          s, mv, false, written != nullptr ? written->reason : "WriteFailed",
          s.message.empty() ? "the write failed; recreate the ModelVersion to retry" : s.message,
          now);
      return;
    case Phase::kPending:
    case Phase::kNone:
      if (!f.base_wait_reason.empty()) {
        Summary(s, mv, false, f.base_wait_reason, f.base_wait_message, now, f.base_stalled);
        return;
      }
      Summary(s, mv, false, "Pending",
              "waiting for its turn: " + model + " runs one task at a time" +
                  (f.waiting_for.empty() ? "" : " and " + f.waiting_for + " runs now"),
              now);
      return;
    case Phase::kWriting: {
      std::string what = f.own_task.empty() ? "the write task is starting" : f.own_task + " runs";
      if (s.progress) what += ": " + DescribeProgress(*s.progress);
      Summary(s, mv, false, "Writing", what, now);
      return;
    }
    default:
      break;
  }
  if (f.own_task_is_publish) {
    Summary(s, mv, false, "Publishing", f.own_task + " makes this the active version", now);
    return;
  }
  const std::string pods = std::to_string(s.pods_loaded) + "/" + std::to_string(s.pods_total) +
                           " pods report this version active";
  if (s.phase == Phase::kActive) {
    // Unreachable agents keep Ready False (Reconciling: a pod restarting answers again; a
    // NetworkPolicy needs a fix, which Stalled would claim is not coming). Their pods are counted
    // in pods_total but not in pods_loaded, so Ready would be False anyway ("Loading"); saying
    // why matters: Argo CD and Flux read Ready, and showing Healthy while what some pods serve is
    // unknown (and retention waits on them) would hide a broken rollout behind a green light.
    const Condition* reach = s.FindCondition("AgentsReachable");
    if (reach != nullptr && reach->status == "False") {
      Summary(s, mv, false, reach->reason, "published; " + reach->message, now);
    } else if (s.pods_total > 0 && s.pods_loaded < s.pods_total) {
      Summary(s, mv, false, "Loading", "published; " + pods, now);
    } else {
      Summary(s, mv, true, "Active",
              s.pods_total == 0 ? "published; no injected pod serves " + model + " yet"
                                : "published; " + pods,
              now);
    }
  } else if (s.phase == Phase::kReady) {
    Summary(
        s, mv, true, "Written",
        mv.activate ? "written, not published" : "written; not published (spec.activate is false)",
        now);
  } else {
    Summary(s, mv, true, "Superseded",
            s.file_removed      ? "a newer version is active; this one's file was retired"
            : f.base_of.empty() ? "a newer version is active; this one's file is kept for rollback"
                                : "a newer version is active; this one's file is kept: it is the "
                                  "base of delta " +
                                      f.base_of,
            now);
  }
}

}  // namespace modelswap::op
