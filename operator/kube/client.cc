// Cancellation and ListAll; see client.h.
#include "operator/kube/client.h"

namespace modelswap::op {

void Cancellation::Cancel() {
  std::vector<std::pair<int, std::function<void()>>> run;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    run.swap(callbacks_);
  }
  for (auto& [id, fn] : run)
    fn();
}

bool Cancellation::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

int Cancellation::OnCancel(std::function<void()> fn) {
  std::unique_lock lock(mu_);
  if (cancelled_) {
    lock.unlock();
    fn();
    return -1;
  }
  int id = next_id_++;
  callbacks_.emplace_back(id, std::move(fn));
  return id;
}

void Cancellation::Unregister(int id) {
  std::lock_guard lock(mu_);
  std::erase_if(callbacks_, [id](const auto& p) { return p.first == id; });
}

Result<Json> ListAll(KubeClient* client, const ResourceRef& r, const std::string& ns,
                     ListOptions opts) {
  MS_ASSIGN_OR_RETURN(Json first, client->List(r, ns, opts));
  if (!first.contains("items") || !first["items"].is_array()) first["items"] = Json::array();
  std::string cont = Field<std::string>(first, {"metadata", "continue"});
  while (!cont.empty()) {
    ListOptions next = opts;
    next.continue_token = cont;
    next.resource_version.clear();  // the continue token pins the snapshot
    MS_ASSIGN_OR_RETURN(Json page, client->List(r, ns, next));
    if (page.contains("items") && page["items"].is_array()) {
      for (auto& item : page["items"])
        first["items"].push_back(std::move(item));
    }
    cont = Field<std::string>(page, {"metadata", "continue"});
  }
  if (first.contains("metadata")) first["metadata"]["continue"] = "";
  return first;
}

}  // namespace modelswap::op
