// Workers running the reconciler; see controller.h.
#include "operator/controller/controller.h"

#include <spdlog/spdlog.h>

#include "operator/kube/api_error.h"

namespace modelswap::op {

Controller::Controller(Backend* backend, Env* env, OperatorMetrics* metrics, ControllerOptions opts)
    : backend_(backend), env_(env), metrics_(metrics), opts_(opts), queue_(env, opts.queue) {}

Controller::~Controller() {
  Stop();
}

void Controller::Enqueue(const std::string& model_key) {
  queue_.Add(model_key);
}

void Controller::Start() {
  for (int i = 0; i < opts_.workers; ++i)
    workers_.emplace_back([this] { Worker(); });
}

void Controller::Stop() {
  stop_.store(true, std::memory_order_relaxed);
  queue_.ShutDown();
  for (auto& t : workers_)
    t.join();
  workers_.clear();
}

Status Controller::ReconcileOnce(const std::string& key) {
  passes_.fetch_add(1, std::memory_order_relaxed);
  MS_ASSIGN_OR_RETURN(ModelInputs inputs, backend_->Observe(key));
  Decision d = Decide(inputs);
  bool existed = false;  // the last StartTask found its task already there
  for (const Action& a : d.actions) {
    // A task that existed was announced when it was started: no second TaskStarted Event.
    if (existed && a.type == Action::Type::kEvent && a.reason == "TaskStarted") continue;
    existed = false;
    auto st = backend_->Execute(a);
    if (!st && a.type == Action::Type::kStartTask && st.error().code() == Code::kAlreadyExists) {
      existed = true;  // deterministic names: it is this task, started by an earlier pass
      continue;
    }
    if (!st) {
      return Fail(st.error().Context(std::string(ActionTypeName(a.type)) + " " + a.mv.name));
    }
    if (a.type == Action::Type::kWriteStatus && a.status.phase == Phase::kActive &&
        a.mv.status.phase != Phase::kActive) {
      backend_->VersionActivated(key, a.mv.version);
    }
  }
  if (d.requeue_after) queue_.AddAfter(key, *d.requeue_after);
  return Ok();
}

void Controller::Worker() {
  while (!stop_.load(std::memory_order_relaxed)) {
    auto key = queue_.Get(std::chrono::milliseconds(500));
    if (!key) continue;
    int64_t start = env_->NowMonotonicNanos();
    auto st = ReconcileOnce(*key);
    double secs = static_cast<double>(env_->NowMonotonicNanos() - start) / 1e9;
    if (metrics_ != nullptr) metrics_->ReconcileDone(st.has_value(), secs);
    if (st) {
      queue_.Forget(*key);
    } else {
      auto delay =
          queue_.AddRateLimited(*key, RetryAfter(st.error()).value_or(std::chrono::seconds(0)));
      auto level = IsConflict(st.error()) ? spdlog::level::debug : spdlog::level::warn;
      spdlog::log(level, "reconcile failed model={} err=\"{}\" retry_in_ms={}", *key,
                  st.error().ToString(), delay.count() / 1'000'000);
    }
    queue_.Done(*key);
  }
}

}  // namespace modelswap::op
