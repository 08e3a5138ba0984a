// operator_bench: how fast and how frugal modelswap-operator is, against the fake API server or
// a real one.
//
// Usage: operator_bench [--models 100] [--versions 10] [--steady-seconds 30]
//        operator_bench --kubeconfig PATH [--namespace NS] [--models 100]
//        [--operator-bin PATH]  (default: the modelswap-operator built beside it)
//
// With --kubeconfig only phase 1 runs, against that cluster's API server (its job controller
// runs the writer Jobs for real, so the ModelVersions are tiny, activate false, and deleted at
// the end): the Job's arrival is seen through a watch on Jobs, the same way for every sample.
//
// Runs the real modelswap-operator binary as a child process (so its RSS is its own) against
// an in-process FakeApiServer that completes every writer Job as soon as it is created (a
// background "job controller" thread). Phases:
//  1. latency: the first version of each model is created one at a time; the time from the
//     create to the operator's Job create (as seen by the server) is recorded -> p50/p99.
//  2. scale: the remaining versions (models x versions in total, default 1,000 across 100
//     models) are created at once; the operator rolls them (one at a time per model). The time
//     until every version has its final phase, and the operator's VmRSS, are reported.
//  3. steady state: for --steady-seconds nothing changes; API requests other than watches are
//     counted, side by side with a naive polling controller (LIST ModelVersions + LIST Jobs
//     every 10 s) measured over the same window: requests/min for both and their ratio.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <thread>

#include "common/subprocess.h"
#include "operator/api/well_known.h"
#include "operator/kube/http_client.h"
#include "operator/kube/kubeconfig.h"
#include "tests/operator/fake/fake_apiserver.h"

using namespace modelswap;
using namespace modelswap::op;
using Clock = std::chrono::steady_clock;

namespace {

long RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

Json Mv(int model, int version) {
  std::string m = "model-" + std::to_string(model), v = "v" + std::to_string(version);
  return {{"apiVersion", "modelswap.io/v1alpha1"},
          {"kind", "ModelVersion"},
          {"metadata", {{"name", m + "-" + v}}},
          {"spec",
           {{"model", m},
            {"version", v},
            {"storage", {{"claimName", "models"}}},
            {"source", {{"generate", {{"bytes", 1 << 20}}}}},
            {"retain", 20}}}};
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

int Arg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

std::string StrArg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return fallback;
}

void PrintLatency(const std::vector<double>& lat_ms) {
  std::printf(
      "reconcile latency (CR created -> Job created), %zu samples: p50 %.2f ms  p99 %.2f ms  max "
      "%.2f ms\n",
      lat_ms.size(), Percentile(lat_ms, 0.5), Percentile(lat_ms, 0.99), Percentile(lat_ms, 1.0));
}

// Phase 1 against a real API server: the operator runs as a child with the same kubeconfig; a
// watch on the operator's Jobs timestamps each Job's ADDED event.
std::string g_operator_bin = MODELSWAP_OPERATOR_BIN;

int RunReal(const std::string& kubeconfig, const std::string& ns, int models) {
  auto cfg = LoadKubeconfig(DefaultEnv(), kubeconfig, "");
  if (!cfg) {
    std::fprintf(stderr, "kubeconfig: %s\n", cfg.error().ToString().c_str());
    return 1;
  }
  auto client = HttpKubeClient::Create(DefaultEnv(), *cfg);
  if (!client) {
    std::fprintf(stderr, "client: %s\n", client.error().ToString().c_str());
    return 1;
  }
  KubeClient* c = client->get();
  std::mutex mu;
  std::map<std::string, Clock::time_point> job_seen;  // by owner ModelVersion
  Cancellation cancel;
  std::thread watcher([&] {
    while (!cancel.cancelled()) {
      WatchOptions wo;
      wo.label_selector = std::string(kLabelManagedBy) + "=" + kManagedBy;
      wo.timeout_seconds = 300;
      (void)c->Watch(
          kJobs, ns, wo,
          [&](WatchEvent&& e) {
            if (e.type != EventType::kAdded && e.type != EventType::kModified) return true;
            auto refs = Field<Json>(e.object, {"metadata", "ownerReferences"}, Json::array());
            if (refs.empty()) return true;
            std::lock_guard lock(mu);
            job_seen.emplace(Field<std::string>(refs[0], {"name"}), Clock::now());
            return true;
          },
          &cancel);
    }
  });
  char dir[] = "/tmp/operator-bench-XXXXXX";
  std::string tmp = ::mkdtemp(dir);
  auto pid = SpawnProcess({g_operator_bin, "--kubeconfig", kubeconfig, "--namespace", ns,
                           "--metrics-addr", "127.0.0.1:0", "--workers", "2"},
                          tmp + "/operator.out", tmp + "/operator.err");
  if (!pid) {
    std::fprintf(stderr, "spawn: %s\n", pid.error().ToString().c_str());
    return 1;
  }
  auto wait_job = [&](const std::string& name, Clock::time_point t0) -> std::optional<double> {
    while (Clock::now() - t0 < std::chrono::seconds(60)) {
      {
        std::lock_guard lock(mu);
        if (auto it = job_seen.find(name); it != job_seen.end())
          return std::chrono::duration<double, std::milli>(it->second - t0).count();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return std::nullopt;
  };
  std::vector<std::string> created;
  auto create = [&](Json mv) {
    mv["spec"]["activate"] = false;
    mv["spec"]["source"]["generate"]["bytes"] = 4096;
    auto r = c->Create(kModelVersions, ns, mv);
    if (!r) std::fprintf(stderr, "create: %s\n", r.error().ToString().c_str());
    if (r) created.push_back(NameOf(mv));
    return r.has_value();
  };
  // Warm-up: the operator has listed and watches once its first Job appears.
  Json warm = Mv(9999, 1);
  std::vector<double> lat_ms;
  if (create(warm) && wait_job(NameOf(warm), Clock::now())) {
    for (int m = 0; m < models; ++m) {
      Json mv = Mv(m, 1);
      auto t0 = Clock::now();
      if (!create(mv)) break;
      if (auto ms = wait_job(NameOf(mv), t0)) lat_ms.push_back(*ms);
    }
  }
  for (const auto& name : created)
    (void)c->Delete(kModelVersions, ns, name);
  auto gone = Clock::now();
  while (Clock::now() - gone < std::chrono::seconds(120)) {  // the operator releases finalizers
    auto left = c->List(kModelVersions, ns, {});
    if (left && (*left)["items"].empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ::kill(*pid, SIGTERM);
  ::waitpid(*pid, nullptr, 0);
  cancel.Cancel();
  watcher.join();
  std::printf("modelswap-operator vs %s (namespace %s): %d ModelVersions\n", cfg->server.c_str(),
              ns.c_str(), models);
  PrintLatency(lat_ms);
  std::filesystem::remove_all(tmp);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  g_operator_bin = StrArg(argc, argv, "--operator-bin", g_operator_bin);
  const std::string kubeconfig = StrArg(argc, argv, "--kubeconfig", "");
  if (!kubeconfig.empty()) {
    return RunReal(kubeconfig, StrArg(argc, argv, "--namespace", "default"),
                   Arg(argc, argv, "--models", 100));
  }
  const int models = Arg(argc, argv, "--models", 100);
  const int versions = Arg(argc, argv, "--versions", 10);
  const int steady_s = Arg(argc, argv, "--steady-seconds", 30);
  fake::FakeApiServer server;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> to_complete;
  std::map<std::string, Clock::time_point> job_created;  // by owner ModelVersion
  bool done = false;
  server.SetJobCreatedHook([&](const Json& job) {
    std::lock_guard lock(mu);
    job_created[Field<std::string>(job["metadata"]["ownerReferences"][0], {"name"})] = Clock::now();
    to_complete.push_back(NameOf(job));
    cv.notify_one();
  });
  std::atomic<int> gen{0};
  std::thread job_controller([&] {
    std::unique_lock lock(mu);
    while (!done) {
      cv.wait(lock, [&] { return done || !to_complete.empty(); });
      while (!to_complete.empty()) {
        std::string job = to_complete.front();
        to_complete.pop_front();
        lock.unlock();
        server.CompleteJob(
            "default", job,
            R"({"bytes":1048576,"checksum":"xxh3:00000000000000aa","manifest_generation":)" +
                std::to_string(++gen) + "}");
        lock.lock();
      }
    }
  });
  char dir[] = "/tmp/operator-bench-XXXXXX";
  std::string tmp = ::mkdtemp(dir);
  std::ofstream(tmp + "/kubeconfig")
      << "apiVersion: v1\ncurrent-context: b\ncontexts: [{name: b, context: {cluster: f}}]\n"
         "clusters: [{name: f, cluster: {server: \""
      << server.url() << "\"}}]\n";
  auto pid = SpawnProcess({g_operator_bin, "--kubeconfig", tmp + "/kubeconfig", "--namespace",
                           "default", "--metrics-addr", "127.0.0.1:0", "--workers", "2"},
                          tmp + "/operator.out", tmp + "/operator.err");
  if (!pid) {
    std::fprintf(stderr, "spawn: %s\n", pid.error().ToString().c_str());
    return 1;
  }
  // Ready once it watches ModelVersions (it lists first).
  while (server.CountRequests("WATCH", "modelversions") == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  // 1. latency, one create at a time.
  std::vector<double> lat_ms;
  for (int m = 0; m < models; ++m) {
    Json mv = Mv(m, 1);
    auto t0 = Clock::now();
    server.Create(kModelVersions, "default", mv);
    std::string name = NameOf(mv);
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (auto it = job_created.find(name); it != job_created.end()) {
          lat_ms.push_back(std::chrono::duration<double, std::milli>(it->second - t0).count());
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  // 2. scale: the rest at once.
  auto t_bulk = Clock::now();
  for (int v = 2; v <= versions; ++v) {
    for (int m = 0; m < models; ++m)
      server.Create(kModelVersions, "default", Mv(m, v));
  }
  auto all_final = [&] {
    int n = 0;
    for (const auto& o : server.List(kModelVersions, "default")) {
      std::string p = Field<std::string>(o, {"status", "phase"});
      n += p == "Active" || p == "Superseded";
    }
    return n == models * versions;
  };
  while (!all_final())
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  double bulk_s = std::chrono::duration<double>(Clock::now() - t_bulk).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // let the last status writes settle
  long rss = RssKb(*pid);
  int writes = 0;
  for (const auto& [k, v] : server.RequestCounts()) {
    if (k.rfind("POST", 0) == 0 || k.rfind("PUT", 0) == 0 || k.rfind("PATCH", 0) == 0 ||
        k.rfind("DELETE", 0) == 0)
      writes += v;
  }
  const int conflicts = server.CountResponses(409);
  if (std::getenv("BENCH_REQUESTS") != nullptr) {
    for (const auto& [k, v] : server.RequestCounts())
      std::printf("  %s: %d\n", k.c_str(), v);
  }

  // 3. steady state, operator vs a naive polling controller over the same window.
  auto before = server.RequestCounts();
  ClusterConfig cfg;
  cfg.server = server.url();
  auto poller = *HttpKubeClient::Create(DefaultEnv(), cfg);
  int poll_requests = 0;
  auto t_steady = Clock::now();
  while (Clock::now() - t_steady < std::chrono::seconds(steady_s)) {
    (void)poller->List(kModelVersions, "default", {});
    (void)poller->List(kJobs, "default", {});
    poll_requests += 2;
    std::this_thread::sleep_for(std::min<Clock::duration>(
        std::chrono::seconds(10), std::chrono::seconds(steady_s) - (Clock::now() - t_steady)));
  }
  auto after = server.RequestCounts();
  int op_requests = 0;
  for (const auto& [k, v] : after) {
    if (k.rfind("WATCH", 0) == 0) continue;
    op_requests += v - before[k];
  }
  op_requests -= poll_requests;  // the poller's LISTs went to the same server
  double minutes = steady_s / 60.0;

  ::kill(*pid, SIGTERM);
  ::waitpid(*pid, nullptr, 0);
  {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  }
  job_controller.join();
  std::printf("modelswap-operator vs fake API server: %d models x %d versions = %d ModelVersions\n",
              models, versions, models * versions);
  PrintLatency(lat_ms);
  std::printf(
      "rollout of %d more versions (writer Jobs completed instantly): %.2f s (%.1f versions/s)\n",
      models * (versions - 1), bulk_s, models * (versions - 1) / bulk_s);
  std::printf("API writes by the operator: %d for %d ModelVersions (%.2f each); 409 answers: %d\n",
              writes, models * versions, static_cast<double>(writes) / (models * versions),
              conflicts);
  std::printf("operator RSS with %d ModelVersions cached: %.1f MiB\n", models * versions,
              rss / 1024.0);
  std::printf(
      "steady state over %d s: operator %.1f requests/min beyond watches; polling baseline "
      "(LIST mv + LIST jobs / 10 s) %.1f requests/min; ratio %.3f\n",
      steady_s, op_requests / minutes, poll_requests / minutes,
      poll_requests > 0 ? static_cast<double>(op_requests) / poll_requests : 0.0);
  std::filesystem::remove_all(tmp);
  return 0;
}
