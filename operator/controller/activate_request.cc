// Picking and settling activate requests; see activate_request.h.
#include "operator/controller/activate_request.h"

#include <string>

#include "operator/api/well_known.h"
#include "operator/controller/reconcile_actions.h"

namespace modelswap::op {

bool RequestEligible(const VersionView& v) {
  return v.duplicate_of.empty() && !v.mv->deleting && v.RequestPending() && v.mv->activate &&
         v.next.written() && !v.next.file_removed;
}

int PickRequest(const std::vector<VersionView>& views) {
  bool all_times = true;
  for (const VersionView& v : views) {
    if (RequestEligible(v) && ParseTime(v.mv->activate_request) < 0) all_times = false;
  }
  int pick = -1;
  for (int i = 0; i < static_cast<int>(views.size()); ++i) {
    if (!RequestEligible(views[i])) continue;
    if (pick < 0 || !all_times ||
        ParseTime(views[i].mv->activate_request) >= ParseTime(views[pick].mv->activate_request)) {
      pick = i;
    }
  }
  return pick;
}

void SettleRequest(VersionView& v, const VersionView* picked, bool picked_acted,
                   bool picked_publishing, std::vector<Action>* out) {
  const ModelVersion& mv = *v.mv;
  if (mv.deleting || !v.RequestPending()) return;
  const std::string what = std::string(kAnnotationActivateRequest) + "=" + mv.activate_request;
  std::string refused;
  if (!mv.activate) {
    refused = "spec.activate is false";
  } else if (v.next.file_removed) {
    refused = "its file was retired (spec.retain of the active version)";
  } else if (v.write_failed) {
    refused = "it was never written";
  }
  if (!refused.empty()) {
    MarkRequestHandled(v.next, mv.activate_request);
    out->push_back(
        MakeEvent(mv, "Warning", "ActivateRequestRefused", what + " not acted on: " + refused));
  } else if (!picked_acted || !RequestEligible(v)) {
    return;
  } else if (&v == picked) {
    if (!picked_publishing) MarkRequestHandled(v.next, mv.activate_request);
  } else {
    MarkRequestHandled(v.next, mv.activate_request);
    out->push_back(MakeEvent(mv, "Normal", "ActivateRequestSuperseded",
                             what + " not acted on: the newer request " +
                                 picked->mv->activate_request + " on " + picked->mv->name +
                                 " was"));
  }
}

}  // namespace modelswap::op
