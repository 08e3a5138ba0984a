// Operator metrics; see metrics.h.
#include "operator/metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace modelswap::op {

OperatorMetrics::OperatorMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& reconciles = prometheus::BuildCounter()
                         .Name("modelswap_operator_reconciles_total")
                         .Help("Model reconciles by result")
                         .Register(*registry_);
  ok_ = &reconciles.Add({{"result", "ok"}});
  err_ = &reconciles.Add({{"result", "error"}});
  duration_ = &prometheus::BuildHistogram()
                   .Name("modelswap_operator_reconcile_duration_seconds")
                   .Help("Time to observe, decide and act for one model")
                   .Register(*registry_)
                   .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1,
                                                                    0.5, 1, 5});
}

void OperatorMetrics::ReconcileDone(bool ok, double seconds) {
  (ok ? ok_ : err_)->Increment();
  duration_->Observe(seconds);
}

prometheus::Gauge& OperatorMetrics::Gauge(const std::string& name, const std::string& help,
                                          const std::map<std::string, std::string>& labels) {
  // prometheus-cpp returns the existing family/metric for a repeated name and labels.
  return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_).Add(labels);
}

prometheus::Counter& OperatorMetrics::Counter(const std::string& name, const std::string& help,
                                              const std::map<std::string, std::string>& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(*registry_).Add(labels);
}

void OperatorMetrics::SampleCounter(const std::string& name, const std::string& help,
                                    const std::map<std::string, std::string>& labels,
                                    double total) {
  prometheus::Counter& c = Counter(name, help, labels);
  // Increment refuses negative steps; a source that restarted from zero keeps the old value
  // until it passes it, which only delays counting, never counts twice.
  if (total > c.Value()) c.Increment(total - c.Value());
}

void OperatorMetrics::AddSampler(std::function<void(OperatorMetrics&)> sampler) {
  std::lock_guard lock(mu_);
  samplers_.push_back(std::move(sampler));
}

std::string OperatorMetrics::Render() {
  {
    std::lock_guard lock(mu_);
    for (auto& s : samplers_)
      s(*this);
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace modelswap::op
