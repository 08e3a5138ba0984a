// Delta versions in the reconciler: a ModelVersion whose spec.source.delta names a base version
// of the same model is written only once that base is written, and a version whose file is a
// lower layer of another version's chain is never removed from under it.
//
// Waiting (CheckDeltaBases): an unwritten delta whose base is
//  - written, file present: may be written (the writer resolves the rest of the chain);
//  - pending or being written: waits, Pending with reason WaitingForBase (Reconciling);
//  - missing (no ModelVersion owns that version), being deleted, failed, retired, or itself
//    blocked for one of these reasons: Pending with reason BaseMissing, BaseFailed, BaseRetired
//    (Stalled: only a change elsewhere, such as creating the base, lets it go on; the delta is
//    not Failed, so it goes on by itself once that happens);
//  - part of a loop of deltas naming each other: DeltaCycle (Stalled).
// A waiting delta does not hold up later versions' writes (a delta applied before its base, as
// GitOps tools may do, is written after it).
//
// Keeping bases (MarkChainBases): the lower layers of a version are the writer's
// status.chain.layers after the first (none once compacted: a compacted version is full); a
// delta whose writer did not report layers, or that is not written yet, follows
// spec.source.delta.base through the model's versions. Every version whose file is present or
// still to be written marks its lower layers as needed by it. The sidecar's `remove` refuses a
// needed base anyway ("v7 is the base of delta v8"); computing it here avoids the failing Job.
//
// Thread safety: pure functions over the views.
#pragma once

#include <vector>

#include "operator/controller/reconciler.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {

// Sets base_wait_* on every unwritten, live delta view, and on a full one whose layout base
// (spec.source.base) has a ModelVersion here still to be written (after FoldTasks and
// MarkDuplicates).
void CheckDeltaBases(std::vector<VersionView>& views);

// Fills needed_by of every view (after FoldTasks and MarkDuplicates).
void MarkChainBases(std::vector<VersionView>& views);

// A deleted version whose file is a lower layer of other versions' chains (needed_by not empty):
// while only deleting versions need it, its removal waits for theirs (*waiting and *why say so,
// for the Deleting condition); a version that stays needs it, so the file is kept (removing it
// would break that version; an Event says so) and the object goes.
void KeepBase(const VersionView& v, std::vector<Action>* out, std::string* waiting,
              std::string* why);

// A version retention could not remove: the sidecar's `remove` refused (a delta the operator
// does not know reads through it, "v7 is the base of delta v8") or failed. A Warning Event, once:
// when the failure is first folded into status. Retried after the failed task is gone (its Job's
// TTL), when retention finds the version again.
void RetentionFailed(const VersionView& v, std::vector<Action>* out);

// An Event when a delta starts waiting for its base, or waits for another reason than before.
void BaseWaitEvent(const VersionView& v, std::vector<Action>* out);

// "v8, v9 (being deleted)": the dependents of a view, for messages.
std::string DescribeDependents(const VersionView& v);

}  // namespace modelswap::op
