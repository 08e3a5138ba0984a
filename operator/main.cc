// modelswap-operator: entry point. Parses flags and runs cluster mode (default) or standalone
// mode (--standalone DIR). SIGINT/SIGTERM stop it gracefully.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <iostream>
#include <random>
#include <thread>

#include "common/log.h"
#include "operator/controller/cluster_mode.h"
#include "operator/standalone/standalone_mode.h"
#include "operator/webhook/injection_config.h"

namespace {

std::string DefaultIdentity() {
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  return std::string(host) + "_" + std::to_string(rd() % 100000);
}

// The sidecar-injection webhook's flags (the Helm chart's deployment.yaml passes them).
void AddWebhookFlags(CLI::App& app, modelswap::op::WebhookRuntimeOptions& w,
                     std::string& poll_interval, double& cert_reload_s) {
  modelswap::op::InjectionConfig& inj = w.injection;
  app.add_option("--webhook-addr", w.addr,
                 "HTTPS address of the injection webhook, e.g. :9443 (default: no webhook)");
  app.add_option("--webhook-service", w.service,
                 "the webhook's Service in the operator's namespace (certificate DNS names)")
      ->capture_default_str();
  app.add_option(
      "--webhook-config-name", w.config_name,
      "MutatingWebhookConfiguration whose caBundle the operator patches (default: none)");
  app.add_option("--webhook-secret", w.secret_name,
                 "Secret (operator's namespace) holding the generated CA and serving certificate");
  app.add_option("--webhook-cert-dir", w.cert_dir,
                 "directory with a mounted tls.crt, tls.key and optional ca.crt (used instead of "
                 "generating one)");
  app.add_option("--webhook-extra-san", w.extra_sans,
                 "another DNS name or IP address for the serving certificate (repeatable), e.g. "
                 "127.0.0.1 to run the webhook outside the cluster");
  app.add_option("--webhook-url", w.url,
                 "https URL the API server calls instead of the Service (patched into the "
                 "configuration's clientConfig.url; its host joins the certificate), e.g. "
                 "https://192.168.1.10:9443/mutate-pods for development");
  app.add_option("--webhook-cert-reload", cert_reload_s,
                 "seconds between re-reads of the certificate (a rotated Secret or mounted file is "
                 "served from the next connection on)")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  app.add_option("--agent-image", inj.agent_image, "image of the injected agent")
      ->capture_default_str();
  app.add_option("--agent-image-pull-policy", inj.image_pull_policy,
                 "imagePullPolicy of the injected agent")
      ->capture_default_str();
  app.add_option("--models-claim", inj.claim_name,
                 "model PersistentVolumeClaim mounted read-only into injected pods")
      ->capture_default_str();
  app.add_option("--models-root", inj.model_root,
                 "mount point of the model volume (MODELSWAP_ROOT)")
      ->capture_default_str();
  app.add_option("--shm-dir", inj.shm_dir, "mount point of the memory emptyDir (MODELSWAP_SHM_DIR)")
      ->capture_default_str();
  app.add_option("--shm-size", inj.shm_size, "sizeLimit of the memory emptyDir (\"\" = none)")
      ->capture_default_str();
  app.add_option("--poll-interval", poll_interval,
                 "the agent's manifest poll interval: 500ms, 2s, 1m or bare milliseconds")
      ->capture_default_str();
  app.add_option("--agent-cpu", inj.cpu_request, "CPU request of the agent")->capture_default_str();
  app.add_option("--agent-memory", inj.memory_request, "memory request of the agent")
      ->capture_default_str();
  app.add_option("--agent-cpu-limit", inj.cpu_limit, "CPU limit of the agent (default: none)");
  app.add_option("--agent-memory-limit", inj.memory_limit,
                 "memory limit of the agent (default: none; see values.yaml before setting one)");
  // Where injected agents assemble chunked versions (operator/webhook/admission.h PlanNodeCache).
  app.add_option("--node-cache-host-path", inj.node_cache_host_path,
                 "hostPath of the node cache shared by a node's agents (the chart's DaemonSet "
                 "prepares it); only for namespaces whose Pod Security level allows hostPath "
                 "(default: none)");
  app.add_option("--node-cache-mount-path", inj.cache_dir,
                 "where agents (read-write) and apps (read-only) mount the node cache")
      ->capture_default_str();
  app.add_option("--node-cache-max-bytes", inj.node_cache_max_bytes,
                 "the agents' --cache-max-bytes on the node cache (e.g. 20Gi)")
      ->capture_default_str();
  app.add_option_function<std::string>(
         "--pod-security-default",
         [&inj](const std::string& v) {
           inj.pod_security_default = *modelswap::op::ParsePodSecurityLevel(v);
         },
         "Pod Security level enforced in namespaces without the "
         "pod-security.kubernetes.io/enforce label (the cluster's PodSecurity defaults; "
         "default: privileged)")
      ->check(CLI::IsMember({"privileged", "baseline", "restricted"}));
  app.add_option("--agent-stage-dir", inj.stage_dir,
                 "per-pod fallback: a disk emptyDir mounted here, the agent's --stage-dir "
                 "(default: none, chunked versions are assembled in the shm dir)");
  app.add_option("--agent-stage-size", inj.stage_size,
                 "sizeLimit of that emptyDir (default: none)");
  app.add_option("--per-pod-cache-max-bytes", inj.per_pod_cache_max_bytes,
                 "the agent's --cache-max-bytes in the per-pod fallback (e.g. 2Gi)")
      ->capture_default_str();
}

// The writer Jobs' pod settings (the chart's writer.* values pass them; a ModelVersion's
// spec.writer overrides each). Validated after parsing (ParseWriterPodFlags in job.h).
void AddWriterFlags(CLI::App& app, modelswap::op::WriterPodOptions& w,
                    std::vector<std::string>& node_selector, std::string& tolerations) {
  app.add_option("--writer-image-pull-policy", w.image_pull_policy,
                 "imagePullPolicy of writer pods (default: --agent-image-pull-policy: both run "
                 "the sidecar image)");
  app.add_option("--writer-service-account", w.service_account,
                 "ServiceAccount of writer pods (default: the namespace's default)");
  app.add_option("--writer-image-pull-secret", w.image_pull_secrets,
                 "Secret to pull the writer image with (repeatable)");
  app.add_option("--writer-node-selector", node_selector,
                 "KEY=VALUE node label writer pods need (repeatable)");
  app.add_option("--writer-tolerations", tolerations,
                 "tolerations of writer pods, a JSON list of corev1 Tolerations");
  app.add_option("--writer-progress-port", w.progress_port,
                 "port write pods serve their progress on, polled by the operator (0 = off)")
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  modelswap::op::ClusterOptions cluster;
  modelswap::op::StandaloneOptions standalone;
  std::string log_level;
  double lease_s = 15, renew_s = 10, retry_s = 2, probe_s = 10;
  std::string poll_interval = "1s";
  std::vector<std::string> writer_node_selector;
  std::string writer_tolerations;
  double writer_progress_s = 5;
  double probe_rollout_s = 1;
  double cert_reload_s = 60;
  CLI::App app{"modelswap-operator: rolls ModelVersions out as writer Jobs (or local processes)"};
  app.add_option("--kubeconfig", cluster.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", cluster.context, "kubeconfig context (default: current-context)");
  app.add_option("--namespace", cluster.ns, "namespace to watch (default: all)");
  app.add_option("--sidecar-image", cluster.sidecar_image, "image of the writer Jobs")
      ->capture_default_str();
  AddWriterFlags(app, cluster.writer, writer_node_selector, writer_tolerations);
  app.add_option("--writer-progress-interval", writer_progress_s,
                 "seconds between polls of write pods' progress, and the least time between two "
                 "status.progress changes of a version")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_flag("--leader-elect", cluster.leader_elect,
               "elect a leader with a Lease (for replicas > 1)");
  app.add_option("--leader-election-namespace", cluster.election.ns,
                 "namespace of the Lease (default: the pod's)");
  app.add_option("--leader-election-id", cluster.election.name, "name of the Lease")
      ->capture_default_str();
  app.add_option("--identity", cluster.election.identity,
                 "this replica's identity (default: hostname_random)");
  app.add_option("--lease-duration", lease_s, "seconds")->capture_default_str();
  app.add_option("--renew-deadline", renew_s, "seconds")->capture_default_str();
  app.add_option("--retry-period", retry_s, "seconds")->capture_default_str();
  app.add_option("--metrics-addr", cluster.metrics_addr, "address of /healthz, /readyz, /metrics")
      ->capture_default_str();
  app.add_option("--workers", cluster.workers, "concurrent model reconciles")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--watch-timeout", cluster.watch_timeout_seconds, "minimum watch timeoutSeconds")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--probe-interval", probe_s, "seconds between agent status probes")
      ->capture_default_str();
  app.add_option("--probe-max-in-flight", cluster.probe_max_in_flight,
                 "agent status probes at once (the most overdue pods first)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--probe-rollout-interval", probe_rollout_s,
                 "seconds between probes of pods not yet serving a just-published version")
      ->check(CLI::Range(0.01, 3600.0))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off (default: warn)");
  app.add_option("--standalone", standalone.dir,
                 "run without a cluster over ModelVersion YAML files in DIR");
  app.add_option("--root", standalone.root, "standalone: the model volume root");
  app.add_option("--sidecar-bin", standalone.sidecar_bin,
                 "standalone: modelswap-sidecar binary (default: next to this binary, else PATH)");
  app.add_option("--agent-url", standalone.agent_url,
                 "standalone: agent to ask which version is loaded");
  AddWebhookFlags(app, cluster.webhook, poll_interval, cert_reload_s);
  CLI11_PARSE(app, argc, argv);
  if (!modelswap::SetupLogging(log_level)) {
    std::cerr << "unknown --log-level " << log_level << "\n";
    return 2;
  }
  auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  cluster.election.lease_duration = ms(lease_s);
  cluster.election.renew_deadline = ms(renew_s);
  cluster.election.retry_period = ms(retry_s);
  cluster.probe_interval = ms(probe_s);
  cluster.probe_rollout_interval = ms(probe_rollout_s);
  cluster.writer_progress_interval = ms(writer_progress_s);
  cluster.webhook.reload_interval = ms(cert_reload_s);
  standalone.probe_interval = ms(probe_s);
  if (cluster.election.identity.empty()) cluster.election.identity = DefaultIdentity();
  // Both images are the sidecar's: by default the writer is pulled as the agent is.
  if (cluster.writer.image_pull_policy.empty())
    cluster.writer.image_pull_policy = cluster.webhook.injection.image_pull_policy;
  if (auto st = modelswap::op::ParseWriterPodFlags(writer_node_selector, writer_tolerations,
                                                   &cluster.writer);
      !st) {
    std::cerr << st.error().message() << "\n";
    return 2;
  }
  if (auto poll = modelswap::op::ParseDurationMs(poll_interval); !poll) {
    std::cerr << "--poll-interval: " << poll.error().message() << "\n";
    return 2;
  } else {
    cluster.webhook.injection.poll_interval_ms = *poll;
  }
  if (!cluster.webhook.addr.empty()) {
    if (auto st = modelswap::op::ValidateConfig(cluster.webhook.injection); !st) {
      std::cerr << "webhook injection flags: " << st.error().message() << "\n";
      return 2;
    }
  }

  // Signals are taken by one thread with sigwait, so no handler runs inside library code.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::atomic<bool> stop{false};
  std::thread([set, &stop]() mutable {
    int sig = 0;
    sigwait(&set, &sig);
    stop.store(true, std::memory_order_release);  // pairs with acquire loads in the run loops
  }).detach();

  if (!standalone.dir.empty()) {
    if (standalone.root.empty()) {
      std::cerr << "--standalone needs --root DATA (the model volume root)\n";
      return 2;
    }
    standalone.self_path = argv[0];
    return modelswap::op::RunStandalone(standalone, stop);
  }
  return modelswap::op::RunCluster(cluster, stop);
}
