// A sample serving app for the demo: looks keys up continuously through the modelswap C++
// client and checks every value it reads, while versions are hot-swapped under it.
//
// Models written with `write --generate-bytes` have values "<model>/<version>/<key>/..." (see
// sidecar/writer/synthetic_data.h), so the app can tell a torn or mixed read (a value from a
// version other than its handle's) from a good one. It prints a line whenever it moves to a new
// version, a progress line every second with --progress, and a JSON summary at the end.
//
//   sample-app --model ranker [--shm-dir DIR] [--duration-ms N] [--until-version V[,V...]] [--keys
//   N]
//
// Exit code 0 if every lookup succeeded and no read was torn; 1 otherwise; 2 on usage errors.
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sidecar/client/model/client.h"
#include "sidecar/writer/synthetic_data.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;

struct Stats {
  uint64_t lookups = 0, missing = 0, torn = 0, acquire_errors = 0;
  std::vector<std::string> versions_seen;
};

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One request: acquire a handle, read a batch of keys through it, check each value's prefix.
void ServeOneRequest(const modelswap::client::Handle& h, const std::string& model, uint64_t keys,
                     std::mt19937_64& rng, Stats& s) {
  for (int i = 0; i < 16; ++i) {
    uint64_t k = rng() % keys;
    auto value = h.Get(std::to_string(k));
    ++s.lookups;
    if (!value) {
      ++s.missing;
      continue;
    }
    if (!value->starts_with(modelswap::SyntheticPrefix(model, h.version(), k))) ++s.torn;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, shm_dir;
  std::vector<std::string> until_versions;
  uint64_t duration_ms = 0, keys = 1000;
  bool progress = false;
  CLI::App app{"modelswap sample app: continuous lookups across hot swaps"};
  app.add_option("--model", model, "model to read")->required();
  app.add_option("--shm-dir", shm_dir, "control block directory (default $MODELSWAP_SHM_DIR)");
  app.add_option("--duration-ms", duration_ms, "stop after this long (0 = until signalled)");
  app.add_option("--until-version", until_versions,
                 "stop 1 s after these versions were served in this order (e.g. v2,v1: a "
                 "rollout, then a rollback)")
      ->delimiter(',');
  app.add_option("--keys", keys, "look up keys 0..N-1 (must exist in every version)");
  app.add_flag("--progress", progress, "print a progress line every second");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGTERM, [](int) { g_stop = 1; });
  std::signal(SIGINT, [](int) { g_stop = 1; });

  modelswap::client::Options options;
  options.shm_dir = shm_dir;
  auto start = Clock::now();
  std::unique_ptr<modelswap::client::ModelClient> client;
  while (!client && !g_stop) {  // the agent may still be starting: retry for up to 30 s
    auto attached = modelswap::client::ModelClient::Attach(model, options);
    if (attached)
      client = std::move(*attached);
    else if (Since(start) > 30) {
      std::fprintf(stderr, "sample-app: cannot attach: %s\n", attached.error().ToString().c_str());
      return 1;
    } else
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  Stats s;
  std::mt19937_64 rng(std::random_device{}());
  auto last_progress = Clock::now();
  Clock::time_point until_seen{};
  size_t until_next = 0;  // index in until_versions of the next version to wait for
  while (!g_stop) {
    if (duration_ms > 0 && Since(start) * 1000 >= static_cast<double>(duration_ms)) break;
    if (until_seen != Clock::time_point{} && Since(until_seen) >= 1.0) break;
    auto h = client->Acquire();
    if (!h) {
      ++s.acquire_errors;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (s.versions_seen.empty() || s.versions_seen.back() != h->version()) {
      s.versions_seen.push_back(h->version());
      std::printf("sample-app: serving %s %s (generation %llu) after %llu lookups, %llu failed\n",
                  model.c_str(), h->version().c_str(),
                  static_cast<unsigned long long>(h->generation()),
                  static_cast<unsigned long long>(s.lookups),
                  static_cast<unsigned long long>(s.missing + s.torn));
      std::fflush(stdout);
      // Versions served before the sequence starts (the first one, usually) do not count.
      if (until_next < until_versions.size() && h->version() == until_versions[until_next] &&
          ++until_next == until_versions.size()) {
        until_seen = Clock::now();
      }
    }
    ServeOneRequest(*h, model, keys, rng, s);
    if (progress && Since(last_progress) >= 1.0) {
      last_progress = Clock::now();
      std::printf("sample-app: %llu lookups on %s, %llu failed\n",
                  static_cast<unsigned long long>(s.lookups), h->version().c_str(),
                  static_cast<unsigned long long>(s.missing + s.torn));
      std::fflush(stdout);
    }
  }
  nlohmann::json summary{{"model", model},
                         {"lookups", s.lookups},
                         {"missing", s.missing},
                         {"torn", s.torn},
                         {"acquire_errors", s.acquire_errors},
                         {"versions_seen", s.versions_seen},
                         {"seconds", Since(start)}};
  std::printf("%s\n", summary.dump().c_str());
  return s.missing == 0 && s.torn == 0 && s.lookups > 0 ? 0 : 1;
}
