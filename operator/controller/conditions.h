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
// progress is expected, Stalled=True when it never will be (a failed write: the source is
// immutable). Both are removed otherwise (absent means False). Thread safety: pure functions.
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
};

// Sets Ready, Reconciling and Stalled on `s` from its phase and other conditions; call after
// them. A version being deleted is not Ready whatever its phase (Deleting says what it waits for).
void SetSummaryConditions(ModelVersionStatus& s, const ModelVersion& mv, const SummaryFacts& f,
                          int64_t now);

// "1.5 GiB of 4.0 GiB (37%)": a write's progress as Ready's message says it.
std::string DescribeProgress(const WriteProgress& p);

}  // namespace modelswap::op
