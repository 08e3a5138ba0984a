// lb_data_plane: the C++ half of the load-balancer example (MARLLB-style, see README.md).
//
//   lb_data_plane [--shm DIR] [--period-ms 200] [--count N] [--final-wait-periods 50] [--seed S]
//
// Simulates 64 backend servers. Every period it publishes an observation (lb_messages.h) on the
// channel "lb-observations" (ring of 4) and, between observations, polls "lb-actions" for the
// agent's newest action. It applies an action only if it answers a newer observation than the one
// applied before and passes its checks (weights, and an alias table that reproduces them); new
// flows are then placed by O(1) alias sampling. With --count N it stops after N observations
// once the action for the last one arrived (or after --final-wait-periods more periods), prints a
// JSON summary and exits 0 only if that last action arrived and no action was invalid.
// Single-threaded; the channel writer never waits for the agent, whatever the agent does.
#include <time.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "common/names.h"
#include "examples/loadbalancer/lb_messages.h"
#include "sidecar/client/channel/channel.h"

namespace lb {
namespace {

// Per-server features, in order: capacity (relative), cpu, memory, rtt_ms, queue, error_rate,
// throughput, new_conns, p99_ms, health.
constexpr int kCapacity = 0, kQueue = 4;

uint64_t NowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

struct Flags {
  std::string shm = modelswap::ResolveShmDir("");
  int period_ms = 200;
  uint64_t count = 0;  // 0: run forever
  int final_wait_periods = 50;
  uint64_t seed = 1;
};

// Places flows: uniformly over servers that are up, or by the applied action's alias table.
class Policy {
 public:
  bool Apply(const lb_action& a, std::string* why);
  int Pick(std::mt19937_64& rng, uint64_t active) const;
  uint64_t applied_obs_seq() const { return action_ ? action_->obs_seq : 0; }

 private:
  std::optional<lb_action> action_;
};

bool Policy::Apply(const lb_action& a, std::string* why) {
  double sum = 0, mass[LB_SERVERS] = {};
  for (int i = 0; i < LB_SERVERS; ++i) {
    if (!std::isfinite(a.weights[i]) || a.weights[i] < 0) return *why = "bad weight", false;
    if (!(a.alias_prob[i] >= 0 && a.alias_prob[i] <= 1.0001f) || a.alias_index[i] >= LB_SERVERS) {
      return *why = "bad alias entry", false;
    }
    sum += a.weights[i];
    mass[i] += a.alias_prob[i];
    mass[a.alias_index[i]] += 1.0 - a.alias_prob[i];
  }
  if (std::fabs(sum - 1.0) > 1e-3) return *why = "weights do not sum to 1", false;
  for (int i = 0; i < LB_SERVERS; ++i) {
    if (std::fabs(mass[i] / LB_SERVERS - a.weights[i]) > 1e-3) {
      return *why = "alias table does not match weights", false;
    }
  }
  action_ = a;
  return true;
}

int Pick1(std::mt19937_64& rng, uint64_t active) {
  const int n = std::popcount(active);
  int k = int(rng() % uint64_t(n));
  for (int i = 0; i < LB_SERVERS; ++i) {
    if ((active >> i & 1) && k-- == 0) return i;
  }
  return 0;
}

int Policy::Pick(std::mt19937_64& rng, uint64_t active) const {
  if (!action_) return Pick1(rng, active);
  const int col = int(rng() % LB_SERVERS);  // O(1): one column, one biased coin
  const double coin = double(rng() >> 11) * 0x1.0p-53;
  const int i = coin < action_->alias_prob[col] ? col : int(action_->alias_index[col]);
  return (active >> i & 1) ? i : Pick1(rng, active);  // server went down since the observation
}

// 64 servers with a few outages and flows that come and go.
class Cluster {
 public:
  explicit Cluster(uint64_t seed) : rng_(seed) {
    for (int i = 0; i < LB_SERVERS; ++i)
      capacity_[i] = 0.5f + float(rng_() % 100) / 100.0f;
  }

  void Step(const Policy& policy) {
    if (rng_() % 5 == 0) {  // an outage starts or ends
      const uint64_t flip = uint64_t{1} << (rng_() % LB_SERVERS);
      if (std::popcount(active_ ^ flip) >= LB_SERVERS / 2) active_ ^= flip;
    }
    for (int i = 0; i < LB_SERVERS; ++i) {
      flows_[i] = (active_ >> i & 1) ? flows_[i] - flows_[i] * 3 / 10 : 0;  // 30% finish
    }
    for (int n = 0; n < 500; ++n)
      ++flows_[policy.Pick(rng_, active_)];
  }

  void Observe(uint64_t seq, lb_observation* o) {
    o->seq = seq;
    o->timestamp_ns = NowNs();
    o->active_bitmap = active_;
    for (int i = 0; i < LB_SERVERS; ++i) {
      o->flow_count[i] = flows_[i];
      const float load = float(flows_[i]) / (100.0f * capacity_[i]);
      const float f[LB_FEATURES] = {capacity_[i],
                                    std::min(1.0f, load),
                                    0.3f + 0.2f * load,
                                    1.0f + 5.0f * load,
                                    float(flows_[i]) * 0.1f,
                                    0.001f * load,
                                    float(flows_[i]) * 10.0f,
                                    float(rng_() % 50),
                                    5.0f + 20 * load,
                                    (active_ >> i & 1) ? 1.0f : 0.0f};
      for (int k = 0; k < LB_FEATURES; ++k)
        o->features[i][k] = f[k];
    }
  }

 private:
  std::mt19937_64 rng_;
  float capacity_[LB_SERVERS];
  uint32_t flows_[LB_SERVERS] = {};
  uint64_t active_ = ~uint64_t{0};
};

struct Stats {
  uint64_t observations = 0, applied = 0, stale = 0, invalid = 0, max_lag = 0;
};

// Reads the newest action (if it is a message not seen before) and applies it if it is newer.
void PollActions(std::optional<modelswap::ChannelReader>& actions, const Flags& f,
                 uint64_t last_obs_seq, uint64_t* last_action_msg, Policy* policy, Stats* st) {
  if (!actions) {  // the agent creates the channel; until then there is nothing to apply
    auto r = modelswap::ChannelReader::Open(f.shm, "lb-actions", sizeof(lb_action));
    if (!r) return;
    actions.emplace(std::move(*r));
  }
  lb_action a;
  const modelswap::ReadResult r = actions->ReadLatest(std::as_writable_bytes(std::span(&a, 1)));
  if (r.status != modelswap::ReadStatus::kMessage || r.seq == *last_action_msg) return;
  *last_action_msg = r.seq;
  std::string why;
  if (a.obs_seq <= policy->applied_obs_seq()) {
    ++st->stale;  // answers an observation older than the one already applied
  } else if (a.obs_seq > last_obs_seq) {
    ++st->invalid;
    std::fprintf(stderr, "action for observation %llu, not yet published\n",
                 (unsigned long long)a.obs_seq);
  } else if (!policy->Apply(a, &why)) {
    ++st->invalid;
    std::fprintf(stderr, "action for observation %llu rejected: %s\n",
                 (unsigned long long)a.obs_seq, why.c_str());
  } else {
    ++st->applied;
    st->max_lag = std::max(st->max_lag, last_obs_seq - a.obs_seq);
  }
}

int Run(const Flags& f) {
  auto obs_writer = modelswap::ChannelWriter::Open(
      f.shm, "lb-observations", {.slot_count = 4, .message_bytes = sizeof(lb_observation)});
  if (!obs_writer) {
    std::fprintf(stderr, "lb_data_plane: %s\n", obs_writer.error().ToString().c_str());
    return 1;
  }
  std::optional<modelswap::ChannelReader> actions;
  Cluster cluster(f.seed);
  Policy policy;
  Stats st;
  uint64_t last_obs_seq = 0, last_action_msg = 0;
  int waited = 0;
  const auto period = std::chrono::milliseconds(f.period_ms);
  for (auto next = std::chrono::steady_clock::now();; next += period) {
    const bool publishing = f.count == 0 || st.observations < f.count;
    if (publishing) {
      cluster.Step(policy);
      lb_observation o;
      cluster.Observe(obs_writer->last_published() + 1, &o);
      last_obs_seq = obs_writer->Publish(std::as_bytes(std::span(&o, 1)));
      ++st.observations;
    } else if (policy.applied_obs_seq() == last_obs_seq || ++waited > f.final_wait_periods) {
      break;
    }
    // Between observations, pick up actions within ~1 ms of their arrival.
    while (std::chrono::steady_clock::now() < next + period) {
      PollActions(actions, f, last_obs_seq, &last_action_msg, &policy, &st);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  const bool answered = policy.applied_obs_seq() == last_obs_seq;
  std::printf(
      "{\"observations\": %llu, \"last_obs_seq\": %llu, \"actions_applied\": %llu, "
      "\"stale_ignored\": %llu, \"invalid\": %llu, \"max_lag\": %llu, \"final_answered\": %s}\n",
      (unsigned long long)st.observations, (unsigned long long)last_obs_seq,
      (unsigned long long)st.applied, (unsigned long long)st.stale, (unsigned long long)st.invalid,
      (unsigned long long)st.max_lag, answered ? "true" : "false");
  return answered && st.invalid == 0 ? 0 : 2;
}

}  // namespace
}  // namespace lb

int main(int argc, char** argv) {
  lb::Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shm")
      f.shm = v;
    else if (k == "--period-ms")
      f.period_ms = std::atoi(v.c_str());
    else if (k == "--count")
      f.count = std::strtoull(v.c_str(), nullptr, 10);
    else if (k == "--final-wait-periods")
      f.final_wait_periods = std::atoi(v.c_str());
    else if (k == "--seed")
      f.seed = std::strtoull(v.c_str(), nullptr, 10);
    else
      return std::fprintf(stderr, "lb_data_plane: unknown flag %s\n", k.c_str()), 1;
  }
  if (f.period_ms <= 0) return std::fprintf(stderr, "lb_data_plane: --period-ms must be > 0\n"), 1;
  return lb::Run(f);
}
