// Activate requests (the annotation modelswap.io/activate-requested-at): which one the model acts
// on, and recording the others as handled (refused or superseded). Internal to the reconciler
// (reconciler.h has the rules). Thread safety: pure functions.
#pragma once

#include <vector>

#include "operator/controller/reconciler.h"
#include "operator/controller/version_view.h"

namespace modelswap::op {

// A pending activate request that could be honoured now: the version is written, its file
// still there, and spec.activate true.
bool RequestEligible(const VersionView& v);

// Of the versions with eligible requests, the one to act on: the newest request when every value
// is a UTC RFC 3339 time (as `date -u +%FT%TZ` prints), else the newest-created version. Acting on
// each in turn instead would swap every pod through versions nobody wants any more. -1: none.
int PickRequest(const std::vector<VersionView>& views);

// Activate requests that need no publish of their own are recorded here as handled:
//  - refused (Warning) when the version cannot be published: activate false, file retired,
//    write failed;
//  - once the picked request is acted on (`picked_acted`): the picked one itself if its version
//    is already active (`picked_publishing` false: no publish for it started, so nothing runs or
//    starts that could change that; else FoldTasks records it when its publish ends), and every
//    other eligible one as superseded by it (Normal event).
// A request whose version is not written yet stays pending: the write publishes it (if
// spec.activate); so does every request while the model is busy, to be picked once it is not.
void SettleRequest(VersionView& v, const VersionView* picked, bool picked_acted,
                   bool picked_publishing, std::vector<Action>* out);

}  // namespace modelswap::op
