// Waiting for bases and keeping them; see delta_chain.h.
#include "operator/controller/delta_chain.h"

#include <algorithm>
#include <optional>
#include <string>

#include "operator/controller/reconcile_actions.h"

namespace modelswap::op {
namespace {

// The view that owns `version` (duplicates never count), or -1.
int FindOwner(const std::vector<VersionView>& views, const std::string& version) {
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    if (views[i].duplicate_of.empty() && views[i].mv->version == version) return i;
  }
  return -1;
}

bool IsDelta(const VersionView& v) {
  return v.mv->source.kind == SourceSpec::Kind::kDelta;
}

struct BaseWait {
  std::string reason, message;
  bool stalled = false;
};

// Why views[i] (an unwritten delta) cannot be written yet, or nullopt when its base is written.
// `path` holds the versions followed so far (a loop of deltas is reported, not followed).
std::optional<BaseWait> BaseState(const std::vector<VersionView>& views, int i,
                                  std::vector<std::string>& path) {
  const VersionView& v = views[i];
  const std::string& on = v.mv->source.delta_base;
  path.push_back(v.mv->version);
  const int b = FindOwner(views, on);
  if (b < 0) {
    return BaseWait{"BaseMissing",
                    "its base version " + on + " of model " + v.mv->model +
                        " has no ModelVersion in this namespace: create it (a delta is written "
                        "only on a written base)",
                    true};
  }
  const VersionView& base = views[b];
  const std::string who = "its base " + on + " (ModelVersion " + base.mv->name + ")";
  if (base.next.written()) {
    if (!base.next.file_removed) return std::nullopt;
    return BaseWait{"BaseRetired", who + " had its file removed; a delta needs its base's file",
                    true};
  }
  if (base.mv->deleting) return BaseWait{"BaseMissing", who + " is being deleted", true};
  if (base.write_failed) {
    return BaseWait{"BaseFailed",
                    who + " failed" + (base.next.message.empty() ? "" : ": " + base.next.message),
                    true};
  }
  if (IsDelta(base)) {
    if (std::find(path.begin(), path.end(), on) != path.end()) {
      std::string loop;
      for (const auto& p : path)
        loop += p + " -> ";
      return BaseWait{"DeltaCycle", "deltas name each other as bases: " + loop + on, true};
    }
    auto up = BaseState(views, b, path);
    if (up && up->stalled) {
      return BaseWait{up->reason, who + " cannot be written: " + up->message, true};
    }
  }
  return BaseWait{"WaitingForBase", "waits for " + who + " to be written first", false};
}

// The versions whose files views[i]'s chain reads below its own, newest first, at most the
// format's limit (a longer walk can only come from a loop of unwritten deltas).
std::vector<std::string> LowerLayers(const std::vector<VersionView>& views, int i) {
  std::vector<std::string> out;
  while (i >= 0 && out.size() < static_cast<size_t>(kMaxChainDeltas)) {
    const ModelVersionStatus& s = views[i].next;
    if (s.chain_compacted) break;
    if (s.chain_layers.size() >= 2) {  // the writer said: no need to follow the spec further
      for (size_t l = 1;
           l < s.chain_layers.size() && out.size() < static_cast<size_t>(kMaxChainDeltas); ++l)
        out.push_back(s.chain_layers[l].version);
      break;
    }
    if (!IsDelta(views[i]) || (s.written() && !s.chain_layers.empty())) break;
    const std::string& on = views[i].mv->source.delta_base;
    if (std::find(out.begin(), out.end(), on) != out.end()) break;
    out.push_back(on);
    i = FindOwner(views, on);
  }
  return out;
}

// Whether views[i]'s file is on the volume or still to be written there.
bool HoldsBases(const VersionView& v) {
  if (!v.duplicate_of.empty()) return false;
  if (v.next.written()) return !v.next.file_removed;
  return !v.write_failed && !v.mv->deleting;
}

}  // namespace

void KeepBase(const VersionView& v, std::vector<Action>* out, std::string* waiting,
              std::string* why) {
  const bool live = std::any_of(v.needed_by.begin(), v.needed_by.end(),
                                [](const VersionView::Dependent& d) { return !d.deleting; });
  if (live) {
    out->push_back(MakeEvent(
        *v.mv, "Warning", "FileKept",
        "its file is the base of delta " + DescribeDependents(v) + " and is kept: " + v.next.file));
    return;
  }
  *waiting = "WaitingForDeltas";
  *why = "its file is the base of delta " + DescribeDependents(v) + ": removed after them";
}

void RetentionFailed(const VersionView& v, std::vector<Action>* out) {
  const TaskObservation* t = v.remove_task;
  if (t == nullptr || t->state != TaskObservation::State::kFailed ||
      v.next.message == v.mv->status.message)
    return;
  auto r = ParseTaskResult(t->result);
  const bool refused = r && r->code == "FailedPrecondition";
  out->push_back(MakeEvent(*v.mv, "Warning", refused ? "RetentionRefused" : "FileNotRemoved",
                           v.next.message + "; the file is kept, retried later"));
}

void BaseWaitEvent(const VersionView& v, std::vector<Action>* out) {
  if (v.base_wait_reason.empty() || v.next.phase != Phase::kPending) return;
  const Condition* old = v.mv->status.FindCondition("Written");
  if (old != nullptr && old->reason == v.base_wait_reason) return;
  out->push_back(MakeEvent(*v.mv, v.base_stalled ? "Warning" : "Normal", v.base_wait_reason,
                           v.base_wait_message));
}

// Why views[i] (an unwritten full version with spec.source.base) should not be written yet:
// its layout base has a ModelVersion here that is still to write it. The writer reads that
// version (`write --base`), so a Job started first would fail until its retries ran out when
// both are applied at once. A base with no ModelVersion here, failed or being deleted is not
// waited for: the writer then finds it on the volume or fails naming it.
std::optional<BaseWait> LayoutBaseState(const std::vector<VersionView>& views, int i) {
  const std::string& on = views[i].mv->source.layout_base;
  if (on.empty()) return std::nullopt;
  const int b = FindOwner(views, on);
  if (b < 0 || b == i) return std::nullopt;
  const VersionView& base = views[b];
  if (base.next.written() || base.write_failed || base.mv->deleting) return std::nullopt;
  return BaseWait{"WaitingForBase",
                  "waits for its layout base " + on + " (ModelVersion " + base.mv->name +
                      ") to be written first",
                  false};
}

void CheckDeltaBases(std::vector<VersionView>& views) {
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    VersionView& v = views[i];
    if (!v.duplicate_of.empty() || v.mv->deleting || v.next.written() || v.write_failed ||
        v.write_running) {
      continue;
    }
    if (!IsDelta(v)) {
      if (auto wait = LayoutBaseState(views, i)) {
        v.base_wait_reason = wait->reason;
        v.base_wait_message = wait->message;
        v.base_stalled = wait->stalled;
      }
      continue;
    }
    std::vector<std::string> path;
    if (auto wait = BaseState(views, i, path)) {
      v.base_wait_reason = wait->reason;
      v.base_wait_message = wait->message;
      v.base_stalled = wait->stalled;
    }
  }
}

void MarkChainBases(std::vector<VersionView>& views) {
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    if (!HoldsBases(views[i])) continue;
    for (const std::string& lower : LowerLayers(views, i)) {
      const int b = FindOwner(views, lower);
      if (b >= 0 && b != i)
        views[b].needed_by.push_back({views[i].mv->version, views[i].mv->deleting});
    }
  }
}

std::string DescribeDependents(const VersionView& v) {
  std::string out;
  for (const auto& d : v.needed_by) {
    if (!out.empty()) out += ", ";
    out += d.version + (d.deleting ? " (being deleted)" : "");
  }
  return out;
}

}  // namespace modelswap::op
