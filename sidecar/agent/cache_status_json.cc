// Rendering the cache's state (CacheStatus, AssembleStats) as JSON for /v1/status and as
// Prometheus metrics (see status_json.h).
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "sidecar/agent/status_json.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

using nlohmann::json;

json AssembleStatsJson(const cache::AssembleStats& a) {
  return json{
      {"chunks_total", a.chunks_total},
      {"chunks_fetched", a.chunks_fetched},
      {"chunks_from_cache", a.chunks_from_cache},
      {"chunks_from_previous", a.chunks_from_previous},
      {"holes", a.holes},
      {"bytes_total", a.bytes_total},
      {"bytes_fetched", a.bytes_fetched},
      {"bytes_from_cache", a.bytes_from_cache},
      {"bytes_from_previous", a.bytes_from_previous},
      {"hole_bytes", a.hole_bytes},
      {"bytes_reflinked", a.bytes_reflinked},
      {"refetches", a.refetches},
      {"delta_chunks_fetched", a.delta_chunks_fetched},
      {"bases_from_cache", a.bases_from_cache},
      {"bases_from_previous", a.bases_from_previous},
      {"bases_fetched", a.bases_fetched},
      {"base_bytes_fetched", a.base_bytes_fetched},
      {"reflink_used", a.reflink_used},
      {"already_assembled", a.already_assembled},
      {"waited_for_builder", a.waited_for_builder},
      {"previous_version", a.previous_version.empty() ? json(nullptr) : json(a.previous_version)},
      {"evictions_for_space", a.evictions_for_space}};
}

json CacheStatusJson(const CacheStatus& c) {
  const CacheConfig& cfg = c.config;
  json j{{"dir", cfg.options.dir},
         {"kind", cfg.node_cache ? "node" : "per-pod"},
         {"why", cfg.why},
         {"max_bytes", cfg.options.max_bytes},
         {"fetch_threads", cfg.options.fetch_threads},
         {"allocated_bytes", c.allocated_bytes},
         {"eviction_passes", c.passes},
         {"eviction_errors", c.pass_errors},
         {"last_error", c.last_error.empty() ? json(nullptr) : json(c.last_error)}};
  if (c.last) {
    const cache::EvictStats& e = *c.last;
    j["last_eviction"] =
        json{{"at", FormatRfc3339(c.last_at_unix_ns)}, {"ran", e.ran},
             {"bytes_before", e.bytes_before},         {"bytes_after", e.bytes_after},
             {"target_bytes", e.target_bytes},         {"chunks_evicted", e.chunks_evicted},
             {"versions_evicted", e.versions_evicted}, {"temps_removed", e.temps_removed},
             {"skipped_filling", e.skipped_filling},   {"skipped_held", e.skipped_held},
             {"skipped_newest", e.skipped_newest}};
  } else {
    j["last_eviction"] = nullptr;
  }
  return j;
}

std::string CacheMetricsText(const CacheStatus& c) {
  prometheus::Registry registry;
  const prometheus::Labels l{{"dir", c.config.options.dir},
                             {"kind", c.config.node_cache ? "node" : "per-pod"}};
  prometheus::BuildGauge()
      .Name("modelswap_agent_cache_info")
      .Help(
          "1, labelled with the cache directory and kind (node: shared by the node's agents; "
          "per-pod: a fallback without hostPath)")
      .Register(registry)
      .Add(l)
      .Set(1);
  prometheus::BuildGauge()
      .Name("modelswap_agent_cache_allocated_bytes")
      .Help("Bytes the cache directory occupies on disk, at the last eviction pass")
      .Register(registry)
      .Add({})
      .Set(static_cast<double>(c.allocated_bytes));
  prometheus::BuildGauge()
      .Name("modelswap_agent_cache_max_bytes")
      .Help("The cache's budget (--cache-max-bytes; 0: no budget)")
      .Register(registry)
      .Add({})
      .Set(static_cast<double>(c.config.options.max_bytes));
  prometheus::BuildCounter()
      .Name("modelswap_agent_cache_eviction_passes_total")
      .Help("Eviction passes this agent ran over the cache")
      .Register(registry)
      .Add({})
      .Increment(static_cast<double>(c.passes));
  prometheus::BuildCounter()
      .Name("modelswap_agent_cache_eviction_errors_total")
      .Help("Eviction passes that failed")
      .Register(registry)
      .Add({})
      .Increment(static_cast<double>(c.pass_errors));
  auto& evicted = prometheus::BuildCounter()
                      .Name("modelswap_agent_cache_evicted_total")
                      .Help("Entries this agent's passes removed, by kind")
                      .Register(registry);
  evicted.Add({{"kind", "chunk"}}).Increment(static_cast<double>(c.chunks_evicted));
  evicted.Add({{"kind", "version"}}).Increment(static_cast<double>(c.versions_evicted));
  evicted.Add({{"kind", "temp"}}).Increment(static_cast<double>(c.temps_removed));
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace modelswap::agent
