// Status conditions of a ModelVersion: setting one (lastTransitionTime kept while the status
// does not change, observedGeneration the spec generation decided on), and the summary
// conditions that health checks read.
//
// Ready sums the others up, with the meaning Flux and kstatus give it (fluxcd/pkg runtime/
// conditions; sigs.k8s.io/cli-utils pkg/kstatus): True when the object is where its spec asks
// (written and published and loaded by every pod that serves the model, or written and left
// unpublished by spec.activate false, or superseded), False while something is still to happen
// (reason and message say what: Pending behind another task, Writing with bytes written,
// Publishing, Loading with pods loaded, Deleting) or cannot happen (Failed). Argo CD's health
// checks for custom resources and Flux's kstatus-based ones read Ready; kstatus also reads the
// "abnormal-true" conditions, so these are set too: Reconciling=True while Ready is False and
// progress is expected, Stalled=True when it never will be without a change elsewhere (a failed
// write: the source is immutable; a delta whose base is missing or failed). Both are removed
// otherwise (absent means False). Thread safety: pure functions.
#pragma once

#include <string>

#include "operator/api/model_version.h"

namespace modelswap::op {

// Sets condition `type` on `s` for `mv` (observedGeneration = mv.generation). The transition
// time is kept from mv's current status when the status (True/False) does not change.
void SetCondition(ModelVersionStatus& s, const ModelVersion& mv, const std::string& type,
                  bool value, const std::string& reason, const std::string& message, int64_t now);
void RemoveCondition(ModelVersionStatus& s, const std::string& type);

// What the summary needs beyond the status itself.
struct SummaryFacts {
  bool is_active = false;
  std::string own_task;  // "<kind> task <name>" of this version's running task, "" = none
  bool own_task_is_publish = false;
  std::string waiting_for;  // what a Pending version waits for ("write task x-write"), or ""
  // A Pending delta whose base is not written (delta_chain.h): reason (WaitingForBase,
  // BaseMissing, BaseFailed, BaseRetired, DeltaCycle) and message; `base_stalled` when only a
  // change elsewhere (creating or fixing the base) lets it go on: Stalled, not Reconciling.
  std::string base_wait_reason, base_wait_message;
  bool base_stalled = false;
  // Versions of deltas whose chains read through this version's file, "v8, v9" ("" = none):
  // said in the message of a Superseded version that retention keeps for them.
  std::string base_of;
};

// AgentsReachable on the active version of a model that injected pods serve (s.pods_total > 0):
// False (reason AgentsUnreachable, "N of M agents did not answer (e.g. ns/pod: error) ...") while
// `unreachable` running pods' agents did not answer their latest probe, True otherwise. Removed
// from other versions and when no pod serves the model: only the active version's status counts
// pods, and setting it on every kept version would multiply the status writes a flapping agent
// causes by the number of versions. Call after pods_total is set and before the summary.
void SetAgentsReachable(ModelVersionStatus& s, const ModelVersion& mv, bool is_active,
                        int unreachable, const std::string& example, int64_t now);

// Sets Ready, Reconciling and Stalled on `s` from its phase and other conditions; call after
// them. An active version with AgentsReachable False is not Ready (see conditions.cc). A version
// being deleted is not Ready whatever its phase (Deleting says what it waits for).
void SetSummaryConditions(ModelVersionStatus& s, const ModelVersion& mv, const SummaryFacts& f,
                          int64_t now);

// "1.5 GiB of 4.0 GiB (37%)": a write's progress as Ready's message says it.
std::string DescribeProgress(const WriteProgress& p);

}  // namespace modelswap::op
