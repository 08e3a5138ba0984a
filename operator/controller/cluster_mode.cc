// Cluster mode wiring; see cluster_mode.h.
#include "operator/controller/cluster_mode.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "common/env.h"
#include "common/http_server.h"
#include "operator/controller/kube_backend.h"
#include "operator/kube/http_client.h"
#include "operator/webhook/missing_agent.h"

namespace modelswap::op {
namespace {

Result<ClusterConfig> LoadConfig(const ClusterOptions& o) {
  Env* env = DefaultEnv();
  if (!o.kubeconfig.empty()) return LoadKubeconfig(env, o.kubeconfig, o.context);
  if (const char* kc = std::getenv("KUBECONFIG"); kc != nullptr && *kc != '\0') {
    std::string first(kc);
    first = first.substr(0, first.find(':'));  // merging several files is not supported
    return LoadKubeconfig(env, first, o.context);
  }
  if (std::getenv("KUBERNETES_SERVICE_HOST") != nullptr) return InClusterConfigFromEnvironment(env);
  if (const char* home = std::getenv("HOME"); home != nullptr) {
    return LoadKubeconfig(env, std::string(home) + "/.kube/config", o.context);
  }
  return Fail(Code::kFailedPrecondition,
              "no cluster configuration: pass --kubeconfig, set KUBECONFIG, or run in a pod");
}

bool WaitUntil(const std::atomic<bool>& stop, const std::function<bool()>& cond) {
  while (!stop.load(std::memory_order_acquire)) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The operator's own namespace (its Secret, Service, probe pods).
std::string OwnNamespace(const ClusterConfig& cfg) {
  if (const char* ns = std::getenv("POD_NAMESPACE"); ns != nullptr && *ns != '\0') return ns;
  return cfg.default_namespace.empty() ? "default" : cfg.default_namespace;
}

}  // namespace

int RunCluster(ClusterOptions o, const std::atomic<bool>& stop) {
  // main.cc range-checks the flags; a caller building options in code gets the same refusal
  // rather than a prober that never probes (0 in flight) or spins (a 0 ms period).
  if (o.probe_max_in_flight <= 0 || o.probe_interval.count() <= 0 ||
      o.probe_rollout_interval.count() <= 0) {
    spdlog::error("probe options must be > 0: max_in_flight={} interval={}ms rollout={}ms",
                  o.probe_max_in_flight, o.probe_interval.count(),
                  o.probe_rollout_interval.count());
    return 2;
  }
  auto cfg = LoadConfig(o);
  if (!cfg) {
    spdlog::error("config: {}", cfg.error().ToString());
    return 2;
  }
  auto client = HttpKubeClient::Create(DefaultEnv(), *cfg);
  if (!client) {
    spdlog::error("client: {}", client.error().ToString());
    return 2;
  }
  OperatorMetrics metrics;
  KubeBackendOptions bo{.ns = o.ns,
                        .sidecar_image = o.sidecar_image,
                        .writer = o.writer,
                        .instance = o.election.identity,
                        .min_watch_timeout_seconds = o.watch_timeout_seconds,
                        .probe_interval = o.probe_interval,
                        .progress_interval = o.writer_progress_interval,
                        .probe_max_in_flight = o.probe_max_in_flight,
                        .probe_rollout_interval = o.probe_rollout_interval};
  KubeBackend backend(client->get(), DefaultEnv(), bo);
  Controller controller(&backend, DefaultEnv(), &metrics,
                        ControllerOptions{.workers = o.workers, .queue = {}});
  backend.RegisterMetrics(&metrics);
  RequestCounters* counters = const_cast<RequestCounters*>(&(*client)->counters());
  metrics.AddSampler([&controller, counters](OperatorMetrics& m) {
    m.Gauge("modelswap_operator_queue_depth", "Model keys ready to reconcile")
        .Set(static_cast<double>(controller.queue().Len()));
    // Cumulative counts kept by the client: counters, so rate() works across restarts.
    const char* help = "API requests made, by kind";
    m.SampleCounter("modelswap_operator_api_requests_total", help, {{"kind", "read"}},
                    static_cast<double>(counters->reads.load(std::memory_order_relaxed)));
    m.SampleCounter("modelswap_operator_api_requests_total", help, {{"kind", "write"}},
                    static_cast<double>(counters->writes.load(std::memory_order_relaxed)));
    m.SampleCounter("modelswap_operator_api_requests_total", help, {{"kind", "watch"}},
                    static_cast<double>(counters->watches.load(std::memory_order_relaxed)));
  });

  MissingAgentCheck missing_agent(
      client->get(), DefaultEnv(),
      MissingAgentOptions{.ns = o.ns,
                          .instance = o.election.identity,
                          .min_watch_timeout_seconds = o.watch_timeout_seconds});
  missing_agent.RegisterMetrics(&metrics);

  // Before leader election: every replica serves admissions. Declared before the health server
  // so it outlives the /readyz and /metrics handlers that read it.
  std::unique_ptr<WebhookRuntime> webhook;
  if (!o.webhook.addr.empty()) {
    if (o.webhook.ns.empty()) o.webhook.ns = OwnNamespace(*cfg);
    webhook = std::make_unique<WebhookRuntime>(client->get(), DefaultEnv(), &metrics, o.webhook);
    if (auto st = webhook->Start(); !st) {
      spdlog::error("webhook: {}", st.error().ToString());
      return 2;
    }
  }

  std::atomic<bool> leading{!o.leader_elect};  // release/acquire: read by health handlers
  std::atomic<bool> started{false};
  HttpServer health(HttpServerOptions{.addr = o.metrics_addr, .name = "health"});
  health.Route("/healthz", {"GET"}, [](const HttpRequest&) {
    return HttpReply{200, "text/plain", "ok\n"};
  });
  health.Route("/readyz", {"GET"}, [&](const HttpRequest&) {
    // Every replica serves the webhook: not ready until it has a certificate. A standby is
    // then ready; a leader once its caches are synced.
    if (webhook && !webhook->Ready()) {
      return HttpReply{503, "text/plain", "webhook certificate not loaded\n"};
    }
    bool ready = !leading.load(std::memory_order_acquire) ||
                 (started.load(std::memory_order_acquire) && backend.HasSynced());
    return ready ? HttpReply{200, "text/plain", "ok\n"}
                 : HttpReply{503, "text/plain", "informer caches not synced\n"};
  });
  health.Route("/metrics", {"GET"}, [&](const HttpRequest&) {
    return HttpReply{200, "text/plain; version=0.0.4", metrics.Render()};
  });
  if (auto st = health.Start(); !st) {
    spdlog::error("health server: {}", st.error().ToString());
    return 2;
  }
  spdlog::info("health listening addr={} port={}", o.metrics_addr, health.port());

  std::unique_ptr<LeaderElector> elector;
  if (o.leader_elect) {
    if (o.election.ns.empty())
      o.election.ns = cfg->default_namespace.empty() ? "default" : cfg->default_namespace;
    auto le = LeaderElector::Create(client->get(), DefaultEnv(), o.election);
    if (!le) {
      spdlog::error("leader election: {}", le.error().ToString());
      return 2;
    }
    elector = std::move(*le);
    if (!elector->Acquire(stop)) return 0;
    leading.store(true, std::memory_order_release);
  }
  backend.Start(&controller);
  missing_agent.Start();
  started.store(true, std::memory_order_release);
  if (WaitUntil(stop, [&] { return backend.HasSynced(); })) {
    spdlog::info("caches synced modelversions={}", backend.modelversions().size());
    controller.Start();
  }
  if (elector) {
    if (!elector->RunRenewals(stop)) {
      spdlog::error("leader election lost: exiting now");
      std::_Exit(1);  // no graceful stop: a non-leader must not write anything more
    }
  } else {
    WaitUntil(stop, [] { return false; });
  }
  controller.Stop();
  missing_agent.Stop();
  backend.Stop();
  if (elector) elector->Release();
  health.Stop();
  if (webhook) webhook->Stop();
  return 0;
}

}  // namespace modelswap::op
