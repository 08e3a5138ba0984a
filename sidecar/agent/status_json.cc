// Rendering ModelStatus as JSON and as Prometheus metrics.
#include "sidecar/agent/status_json.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <tuple>

#include "common/checksum.h"
#include "sidecar/volume/manifest.h"

namespace modelswap::agent {

using nlohmann::json;

namespace {

json LayerJson(const LoadedVersion& l) {
  return json{{"version", l.manifest.version},
              {"bytes", l.manifest.bytes},
              {"checksum", FormatChecksum(l.checksum)},
              {"delta", l.header.delta},
              {"layout", l.chunked ? "chunked" : "whole"},
              {"entries", l.entry_count},
              {"file", l.mapped_path}};
}

json ActiveJson(const LoadedVersion& v) {
  json j{{"version", v.manifest.version},
         {"layout", v.chunked ? "chunked" : "whole"},
         {"generation", v.manifest.generation},
         {"bytes", v.manifest.bytes},
         {"checksum", FormatChecksum(v.checksum)},
         {"file", v.mapped_path},
         {"source_file", v.source_path},
         {"entries", v.entry_count},
         {"published_at", v.manifest.published_at},
         {"prefault_method", v.prefault_method},
         {"load_seconds",
          {{"stage", v.timings.stage_seconds},
           {"map", v.timings.map_seconds},
           {"prefault", v.timings.prefault_seconds},
           {"verify", v.timings.verify_seconds}}}};
  if (v.chunked) {
    j["load_seconds"]["assemble"] = v.timings.assemble_seconds;
    j["assemble"] = AssembleStatsJson(v.assemble);
  }
  // The chain, newest layer first (the version itself first; one entry for a whole version).
  json layers = json::array({LayerJson(v)});
  for (const auto& l : v.lower)
    layers.push_back(LayerJson(*l));
  j["chain"] = json{{"length", v.layer_count()},
                    {"layers", layers},
                    {"layers_loaded", v.layers_loaded},
                    {"layers_shared", v.layers_shared}};
  return j;
}

}  // namespace

json ModelStatusJson(const ModelStatus& s) {
  json j{{"state", s.state},
         {"active", s.active ? ActiveJson(*s.active) : json(nullptr)},
         {"resident_bytes", s.resident_bytes},
         {"swaps", s.swaps},
         {"rejections", s.rejections},
         {"reclaimed", s.reclaimed},
         {"truncations", s.truncations},
         {"live_readers", s.live_readers},
         {"held_generations", s.held_generations},
         {"inotify", s.inotify},
         {"agent_incarnation", s.agent_incarnation},
         {"manifest_error", s.manifest_error.empty() ? json(nullptr) : json(s.manifest_error)}};
  if (s.last_rejected) {
    const Rejection& r = *s.last_rejected;
    j["last_rejected"] = json{{"version", r.version},
                              {"generation", r.generation},
                              {"reason", r.reason},
                              {"at", FormatRfc3339(r.at_unix_ns)}};
  } else {
    j["last_rejected"] = nullptr;
  }
  if (s.next_retry_in_ns > 0)
    j["next_retry_seconds"] = static_cast<double>(s.next_retry_in_ns) / 1e9;
  json retired = json::array();
  for (const auto& r : s.retired) {
    retired.push_back(json{{"version", r.version},
                           {"generation", r.generation},
                           {"holders", r.holders},
                           {"retired_seconds", r.retired_seconds},
                           {"chain_length", r.layer_count}});
  }
  j["retired"] = retired;
  j["manifest_errors"] = s.manifest_errors;
  j["layer_loads"] = s.layer_loads;
  j["layer_shares"] = s.layer_shares;
  j["generation_conflict"] =
      s.generation_conflict.empty() ? json(nullptr) : json(s.generation_conflict);
  j["generation_conflicts"] = s.generation_conflicts;
  j["degraded"] = s.degraded.empty() ? json(nullptr) : json(s.degraded);
  j["volume"] = s.volume_step.empty() ? json(nullptr)
                                      : json{{"step", s.volume_step},
                                             {"seconds", s.volume_seconds},
                                             {"blocked", s.volume_blocked}};
  return j;
}

bool AllReady(const std::vector<ModelStatus>& models) {
  for (const auto& m : models) {
    if (!m.active) return false;
  }
  return true;
}

json StatusJson(const std::vector<ModelStatus>& models) {
  json out{{"models", json::object()}, {"ready", AllReady(models)}};
  for (const auto& m : models)
    out["models"][m.model] = ModelStatusJson(m);
  return out;
}

std::string MetricsText(const std::vector<ModelStatus>& models) {
  // A fresh registry per scrape: our counters are kept in ModelStatus, so rendering needs no
  // shared mutable metric objects.
  prometheus::Registry registry;
  auto& generation = prometheus::BuildGauge()
                         .Name("modelswap_agent_active_generation")
                         .Help("Manifest generation of the active version (0: none)")
                         .Register(registry);
  auto& resident = prometheus::BuildGauge()
                       .Name("modelswap_agent_resident_bytes")
                       .Help("Bytes of the active version resident in memory (mincore)")
                       .Register(registry);
  auto& bytes = prometheus::BuildGauge()
                    .Name("modelswap_agent_active_bytes")
                    .Help("Size of the active version file")
                    .Register(registry);
  auto& readers = prometheus::BuildGauge()
                      .Name("modelswap_agent_live_readers")
                      .Help("App processes with a live reader slot")
                      .Register(registry);
  auto& retired = prometheus::BuildGauge()
                      .Name("modelswap_agent_retired_versions")
                      .Help("Superseded versions still mapped")
                      .Register(registry);
  auto& load = prometheus::BuildGauge()
                   .Name("modelswap_agent_load_seconds")
                   .Help("Duration of each load phase of the active version")
                   .Register(registry);
  auto& swaps = prometheus::BuildCounter()
                    .Name("modelswap_agent_swaps_total")
                    .Help("Versions made active")
                    .Register(registry);
  auto& rejections = prometheus::BuildCounter()
                         .Name("modelswap_agent_rejections_total")
                         .Help("Versions rejected or dropped (bad checksum, short, truncated...)")
                         .Register(registry);
  auto& reclaimed = prometheus::BuildCounter()
                        .Name("modelswap_agent_reclaimed_total")
                        .Help("Superseded versions unmapped")
                        .Register(registry);
  auto& truncations = prometheus::BuildCounter()
                          .Name("modelswap_agent_truncations_total")
                          .Help("Active versions dropped because their file shrank under them")
                          .Register(registry);
  auto& manifest_errors = prometheus::BuildCounter()
                              .Name("modelswap_agent_manifest_errors_total")
                              .Help("Manifest reads ignored (missing, torn, stale, not a file...)")
                              .Register(registry);
  auto& conflicts = prometheus::BuildCounter()
                        .Name("modelswap_agent_generation_conflicts_total")
                        .Help("Manifests naming a known generation with other content")
                        .Register(registry);
  auto& degraded = prometheus::BuildGauge()
                       .Name("modelswap_agent_degraded")
                       .Help(
                           "1 while the active version is not the newest one activated "
                           "(its file was damaged), or none serves because of it")
                       .Register(registry);
  auto& blocked = prometheus::BuildGauge()
                      .Name("modelswap_agent_volume_blocked")
                      .Help("1 while a volume read has run past --volume-timeout")
                      .Register(registry);
  auto& busy = prometheus::BuildGauge()
                   .Name("modelswap_agent_volume_job_seconds")
                   .Help("How long the running volume job (poll or load) has run; 0 when idle")
                   .Register(registry);
  auto& layout = prometheus::BuildGauge()
                     .Name("modelswap_agent_active_layout")
                     .Help(
                         "1 for the active version's layout (whole: a .msf on the volume; "
                         "chunked: assembled in the node cache)")
                     .Register(registry);
  auto& chunks = prometheus::BuildGauge()
                     .Name("modelswap_agent_active_assemble_chunks")
                     .Help(
                         "Chunks of the active chunked version by where they came from "
                         "(fetched: the volume; cache: the node's chunk cache; previous: the "
                         "previous assembled version; hole: zero runs)")
                     .Register(registry);
  auto& chunk_bytes = prometheus::BuildGauge()
                          .Name("modelswap_agent_active_assemble_bytes")
                          .Help("Bytes of the active chunked version by where they came from")
                          .Register(registry);
  auto& already = prometheus::BuildGauge()
                      .Name("modelswap_agent_active_already_assembled")
                      .Help(
                          "1 if another process of the node had assembled the active "
                          "chunked version (this agent read no chunk)")
                      .Register(registry);
  auto& chain_length = prometheus::BuildGauge()
                           .Name("modelswap_agent_active_chain_length")
                           .Help(
                               "Layers of the active version's chain: 1 for a whole version, "
                               "2..8 for a delta (its full base and the deltas up to it)")
                           .Register(registry);
  auto& layer_bytes = prometheus::BuildGauge()
                          .Name("modelswap_agent_active_layer_bytes")
                          .Help("Size of each layer of the active version (depth 0: the newest)")
                          .Register(registry);
  auto& layer_loads = prometheus::BuildCounter()
                          .Name("modelswap_agent_layer_loads_total")
                          .Help("Layers mapped and verified by loads that became active")
                          .Register(registry);
  auto& layer_shares = prometheus::BuildCounter()
                           .Name("modelswap_agent_layer_shares_total")
                           .Help("Layers such loads shared with versions already loaded")
                           .Register(registry);
  auto& ready = prometheus::BuildGauge()
                    .Name("modelswap_agent_ready")
                    .Help("1 when every model has an active version")
                    .Register(registry);
  for (const auto& m : models) {
    prometheus::Labels l{{"model", m.model}};
    generation.Add(l).Set(m.active ? static_cast<double>(m.active->manifest.generation) : 0);
    bytes.Add(l).Set(m.active ? static_cast<double>(m.active->manifest.bytes) : 0);
    resident.Add(l).Set(static_cast<double>(m.resident_bytes));
    readers.Add(l).Set(m.live_readers);
    retired.Add(l).Set(static_cast<double>(m.retired.size()));
    swaps.Add(l).Increment(static_cast<double>(m.swaps));
    rejections.Add(l).Increment(static_cast<double>(m.rejections));
    reclaimed.Add(l).Increment(static_cast<double>(m.reclaimed));
    truncations.Add(l).Increment(static_cast<double>(m.truncations));
    manifest_errors.Add(l).Increment(static_cast<double>(m.manifest_errors));
    conflicts.Add(l).Increment(static_cast<double>(m.generation_conflicts));
    degraded.Add(l).Set(m.degraded.empty() ? 0 : 1);
    blocked.Add(l).Set(m.volume_blocked ? 1 : 0);
    busy.Add(l).Set(m.volume_seconds);
    layer_loads.Add(l).Increment(static_cast<double>(m.layer_loads));
    layer_shares.Add(l).Increment(static_cast<double>(m.layer_shares));
    chain_length.Add(l).Set(m.active ? static_cast<double>(m.active->layer_count()) : 0);
    if (m.active) {
      for (size_t d = 0; d < m.active->layer_count(); ++d) {
        const LoadedVersion& layer = d == 0 ? *m.active : *m.active->lower[d - 1];
        layer_bytes.Add({{"model", m.model}, {"depth", std::to_string(d)}})
            .Set(static_cast<double>(layer.manifest.bytes));
      }
      const LoadTimings& t = m.active->timings;
      for (auto [phase, sec] : {std::pair{"stage", t.stage_seconds},
                                {"map", t.map_seconds},
                                {"prefault", t.prefault_seconds},
                                {"verify", t.verify_seconds}}) {
        load.Add({{"model", m.model}, {"phase", phase}}).Set(sec);
      }
      const LoadedVersion& v = *m.active;
      layout.Add({{"model", m.model}, {"layout", "whole"}}).Set(v.chunked ? 0 : 1);
      layout.Add({{"model", m.model}, {"layout", "chunked"}}).Set(v.chunked ? 1 : 0);
      if (v.chunked) {
        load.Add({{"model", m.model}, {"phase", "assemble"}}).Set(t.assemble_seconds);
        const cache::AssembleStats& a = v.assemble;
        for (auto [source, n, b] : {std::tuple{"fetched", a.chunks_fetched, a.bytes_fetched},
                                    {"cache", a.chunks_from_cache, a.bytes_from_cache},
                                    {"previous", a.chunks_from_previous, a.bytes_from_previous},
                                    {"hole", a.holes, a.hole_bytes}}) {
          chunks.Add({{"model", m.model}, {"source", source}}).Set(static_cast<double>(n));
          chunk_bytes.Add({{"model", m.model}, {"source", source}}).Set(static_cast<double>(b));
        }
        already.Add(l).Set(a.already_assembled ? 1 : 0);
      }
    }
  }
  ready.Add({}).Set(AllReady(models) ? 1 : 0);
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace modelswap::agent
