// Prometheus metrics of the operator (prometheus-cpp core; /metrics renders them with
// TextSerializer): reconcile counts by result, reconcile durations, work queue depth, watch
// restarts and API requests. Names follow Prometheus' conventions
// (prometheus.io/docs/practices/naming): a modelswap_ prefix, base units in the name (_seconds,
// _bytes), counters and only counters ending in _total.
//
// Values owned elsewhere (queue depth, reflector counters) are sampled at scrape time through
// samplers registered with AddSampler, so hot paths never touch a metric they do not own.
// Thread safety: all methods are safe from any thread (prometheus-cpp metrics are atomic;
// samplers are guarded by a mutex).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace modelswap::op {

class OperatorMetrics {
 public:
  OperatorMetrics();

  void ReconcileDone(bool ok, double seconds);
  prometheus::Gauge& Gauge(const std::string& name, const std::string& help,
                           const std::map<std::string, std::string>& labels = {});
  prometheus::Counter& Counter(const std::string& name, const std::string& help,
                               const std::map<std::string, std::string>& labels = {});
  // A counter whose count is kept elsewhere (a reflector's relists, the client's requests) and
  // sampled at scrape time: raised to `total`, never lowered. Exported as a counter, so rate()
  // works; a cumulative count exported as a gauge would not survive a restart in rate().
  void SampleCounter(const std::string& name, const std::string& help,
                     const std::map<std::string, std::string>& labels, double total);
  // Runs before every Render (sets gauges from live objects).
  void AddSampler(std::function<void(OperatorMetrics&)> sampler);
  std::string Render();

  double reconciles_ok() const { return ok_->Value(); }
  double reconciles_error() const { return err_->Value(); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* ok_;
  prometheus::Counter* err_;
  prometheus::Histogram* duration_;
  std::mutex mu_;
  std::vector<std::function<void(OperatorMetrics&)>> samplers_;
};

}  // namespace modelswap::op
