// The agent's /v1/status document and /metrics text, built from ModelStatus snapshots.
//
// /v1/status (docs/design.md, "The agent's HTTP endpoints"): {"models": {"<model>": {"active":
// {...} | null, "state", "resident_bytes", "swaps", "last_rejected": {...} | null, ...}}, "ready":
// bool}. Extra fields per model: load timings, prefault method, live readers and the generations
// they hold, retired versions still mapped, the last ignored manifest and why, a generation
// conflict, why the active version is a fallback ("degraded"), the running volume job and whether
// it is blocked ("volume"), inotify in use, counters. A delta version's chain: active.chain
// {length, layers: [{version, bytes, checksum, delta, layout, entries, file}] newest first,
// layers_loaded, layers_shared}, each retired version's chain_length, and the model's
// layer_loads/layer_shares (a base shared by its deltas is loaded once).
//
// Thread safety: plain functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sidecar/agent/cache_janitor.h"
#include "sidecar/agent/model_agent.h"

namespace modelswap::agent {

nlohmann::json ModelStatusJson(const ModelStatus& s);
// ready: every model has an active version.
bool AllReady(const std::vector<ModelStatus>& models);
nlohmann::json StatusJson(const std::vector<ModelStatus>& models);
// Prometheus text exposition (prometheus-cpp TextSerializer).
std::string MetricsText(const std::vector<ModelStatus>& models);

// The cache section of /v1/status and its /metrics (cache_status_json.cc).
nlohmann::json AssembleStatsJson(const cache::AssembleStats& a);
nlohmann::json CacheStatusJson(const CacheStatus& c);
std::string CacheMetricsText(const CacheStatus& c);

}  // namespace modelswap::agent
