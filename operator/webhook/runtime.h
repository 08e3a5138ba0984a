// WebhookRuntime: the sidecar-injection webhook as it runs inside the operator process (cluster
// mode), on every replica, independently of leader election (standbys serve admissions too).
//
// It owns and wires the webhook's parts:
//   - the HTTPS WebhookServer (server.h) on `addr`, answering /mutate-pods with
//     ReviewAdmission (admission.h) under the operator-wide InjectionConfig and the cluster's
//     native-sidecar support;
//   - the CertManager (cert_manager.h) over KubeCertApi, for the Service's DNS names plus
//     extra_sans and the host of `url`: the certificate is loaded (or created in the Secret, with
//     the caBundle patched) on a background thread that retries with backoff
//     (1 s .. 30 s) until it succeeds, then re-reads the source every reload_interval so a
//     rotated Secret or mounted file is served from the next TLS connection on;
//   - the SidecarSupportDetector (native_sidecar.h), dry-run creating its probe pod in the
//     operator's namespace through KubeClient::Create(..., dry_run = true);
//   - with a node cache configured (injection.node_cache_host_path), the NamespaceLevelCache
//     (namespace_policy.h) reading pods' namespaces through KubeClient::Get(kNamespaces, ...), so
//     only namespaces whose Pod Security level allows hostPath get it.
// Start() binds the listener before returning, so a bad or busy address is an error at start,
// not later; until a certificate is loaded, handshakes fail and Ready() is false (the operator's
// /readyz reports not ready, so the Service sends the API server elsewhere).
//
// Metrics (on the operator's registry): modelswap_webhook_admissions_total{verdict},
// modelswap_webhook_certificate_loaded, modelswap_webhook_native_sidecars.
//
// Thread safety: Start/Stop from the owner thread; Ready/port from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/env.h"
#include "common/status.h"
#include "operator/kube/client.h"
#include "operator/metrics/metrics.h"
#include "operator/webhook/cert_manager.h"
#include "operator/webhook/injection_config.h"
#include "operator/webhook/kube_cert_api.h"
#include "operator/webhook/namespace_policy.h"
#include "operator/webhook/native_sidecar.h"
#include "operator/webhook/server.h"

namespace modelswap::op {

struct WebhookRuntimeOptions {
  std::string addr;  // "host:port" / ":port" of the HTTPS listener; "" = webhook disabled
  std::string ns;    // the operator's namespace: its Secret, Service and probe pods
  std::string service = "modelswap-webhook";  // the webhook Service (certificate DNS names)
  std::string config_name;                    // MutatingWebhookConfiguration; "" = no caBundle
  std::string secret_name;                    // Secret holding the generated certificate
  std::string cert_dir;                       // mounted tls.crt/tls.key[/ca.crt]; "" = none
  // More names for the serving certificate (DNS names or IP addresses), e.g. 127.0.0.1 for a
  // webhook run on loopback during development.
  std::vector<std::string> extra_sans;
  // https://host:port/path the API server calls instead of the Service (clientConfig.url, set
  // when config_name is); its host joins the certificate's names. "" = the Service.
  std::string url;
  RotationPolicy rotation;  // lifetimes and overlap (names are filled in from the above)
  InjectionConfig injection;
  // Namespace lookups for the node cache (cluster_default is injection.pod_security_default).
  NamespaceLevelCacheOptions namespaces;
  std::chrono::milliseconds reload_interval{60'000};
  std::chrono::milliseconds retry_initial{1'000};
  std::chrono::milliseconds retry_max{30'000};
};

// Checks the options before anything starts; the message names the flag.
[[nodiscard]] Status ValidateWebhookOptions(const WebhookRuntimeOptions& o);
// The names the serving certificate must cover: the Service's DNS names, extra_sans, the URL's
// host; each once, in that order.
std::vector<std::string> WebhookCertificateNames(const WebhookRuntimeOptions& o);

class WebhookRuntime {
 public:
  // client must outlive this; metrics may be null.
  WebhookRuntime(KubeClient* client, Env* env, OperatorMetrics* metrics, WebhookRuntimeOptions o);
  ~WebhookRuntime();
  WebhookRuntime(const WebhookRuntime&) = delete;
  WebhookRuntime& operator=(const WebhookRuntime&) = delete;

  // Validates, binds the listener and starts the certificate and detection threads.
  [[nodiscard]] Status Start();
  // Stops the listener and both threads. Idempotent.
  void Stop();
  // A certificate is loaded and served.
  bool Ready() const;
  int port() const { return server_ ? server_->port() : 0; }

 private:
  void CertLoop();
  // Waits up to d unless stopped; false when stopped.
  bool WaitFor(std::chrono::nanoseconds d);
  void Observe(const AdmissionOutcome& out);

  KubeClient* client_;
  Env* env_;
  OperatorMetrics* metrics_;
  WebhookRuntimeOptions opts_;
  std::unique_ptr<KubeCertApi> cert_api_;
  std::unique_ptr<CertManager> certs_;
  std::unique_ptr<SidecarSupportDetector> detector_;
  std::unique_ptr<NamespaceLevelCache> namespaces_;  // null without a node cache
  std::unique_ptr<WebhookServer> server_;

  std::mutex mu_;  // guards stop_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread cert_thread_;
};

}  // namespace modelswap::op
