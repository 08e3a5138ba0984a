// The webhook's wiring in the operator process; see runtime.h.
#include "operator/webhook/runtime.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "operator/kube/backoff.h"
#include "operator/kube/resource.h"
#include "operator/webhook/webhook_config.h"

namespace modelswap::op {
namespace {

const char* VerdictName(AdmissionVerdict v) {
  switch (v) {
    case AdmissionVerdict::kSkipped:
      return "skipped";
    case AdmissionVerdict::kUnchanged:
      return "unchanged";
    case AdmissionVerdict::kPatched:
      return "patched";
    case AdmissionVerdict::kDenied:
      return "denied";
    case AdmissionVerdict::kBadRequest:
      return "bad_request";
  }
  return "unknown";
}

}  // namespace

Status ValidateWebhookOptions(const WebhookRuntimeOptions& o) {
  if (o.ns.empty()) {
    return Fail(Code::kInvalidArgument,
                "webhook: the operator's namespace is unknown (set POD_NAMESPACE)");
  }
  if (auto st = ValidateDnsSubdomain(o.service); !st || o.service.find('.') != std::string::npos) {
    return Fail(Code::kInvalidArgument,
                "--webhook-service \"" + o.service + "\" is not a Service name (DNS-1123 label)");
  }
  if (!o.config_name.empty()) {
    if (auto st = ValidateDnsSubdomain(o.config_name); !st) {
      return Fail(st.error().Context("--webhook-config-name"));
    }
  }
  if (o.secret_name.empty() && o.cert_dir.empty()) {
    return Fail(Code::kInvalidArgument,
                "webhook: pass --webhook-secret (generated certificate kept in a Secret) or "
                "--webhook-cert-dir (mounted certificate)");
  }
  if (!o.secret_name.empty()) {
    if (auto st = ValidateDnsSubdomain(o.secret_name); !st) {
      return Fail(st.error().Context("--webhook-secret"));
    }
  }
  for (const std::string& san : o.extra_sans) {
    if (auto st = ValidateSubjectAltName(san); !st) {
      return Fail(st.error().Context("--webhook-extra-san"));
    }
  }
  if (!o.url.empty()) {
    if (auto host = ValidateWebhookUrl(o.url); !host) return Fail(host.error());
    if (o.config_name.empty()) {
      return Fail(Code::kInvalidArgument,
                  "--webhook-url needs --webhook-config-name (the configuration to point at it)");
    }
  }
  if (auto st = ValidateConfig(o.injection); !st) {
    return Fail(st.error().Context("webhook injection settings"));
  }
  if (o.reload_interval.count() <= 0 || o.retry_initial.count() <= 0 ||
      o.retry_max < o.retry_initial) {
    return Fail(Code::kInvalidArgument, "webhook: reload/retry intervals must be positive");
  }
  return Ok();
}

std::vector<std::string> WebhookCertificateNames(const WebhookRuntimeOptions& o) {
  std::vector<std::string> names = ServiceDnsNames(o.service, o.ns);
  std::vector<std::string> more = o.extra_sans;
  if (auto host = ValidateWebhookUrl(o.url); !o.url.empty() && host) more.push_back(*host);
  for (const std::string& n : more) {
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

WebhookRuntime::WebhookRuntime(KubeClient* client, Env* env, OperatorMetrics* metrics,
                               WebhookRuntimeOptions o)
    : client_(client), env_(env), metrics_(metrics), opts_(std::move(o)) {}

WebhookRuntime::~WebhookRuntime() {
  Stop();
}

Status WebhookRuntime::Start() {
  MS_RETURN_IF_ERROR(ValidateWebhookOptions(opts_));
  cert_api_ = std::make_unique<KubeCertApi>(client_, opts_.secret_name);
  RotationPolicy rotation = opts_.rotation;
  rotation.names = WebhookCertificateNames(opts_);
  certs_ =
      std::make_unique<CertManager>(cert_api_.get(), env_,
                                    CertManagerOptions{.ns = opts_.ns,
                                                       .secret_name = opts_.secret_name,
                                                       .webhook_config_name = opts_.config_name,
                                                       .webhook_url = opts_.url,
                                                       .cert_dir = opts_.cert_dir,
                                                       .rotation = rotation});
  KubeClient* client = client_;
  detector_ = std::make_unique<SidecarSupportDetector>(
      [client](const std::string& ns, const Json& pod) {
        return client->Create(kPods, ns, pod, /*dry_run=*/true);
      },
      env_, SidecarSupportOptions{.ns = opts_.ns});
  if (!opts_.injection.node_cache_host_path.empty()) {
    NamespaceLevelCacheOptions ns_opts = opts_.namespaces;
    ns_opts.cluster_default = opts_.injection.pod_security_default;
    namespaces_ = std::make_unique<NamespaceLevelCache>(
        env_, [client](const std::string& name) { return client->Get(kNamespaces, "", name); },
        ns_opts);
  }
  CertManager* certs = certs_.get();
  SidecarSupportDetector* detector = detector_.get();
  NamespaceLevelCache* namespaces = namespaces_.get();
  const InjectionConfig* cfg = &opts_.injection;
  server_ = std::make_unique<WebhookServer>(WebhookServerOptions{
      .addr = opts_.addr,
      .certificate = [certs] { return certs->Current(); },
      .review =
          [cfg, detector, namespaces](std::string_view body) {
            AdmissionContext ctx;
            ctx.native_sidecars = detector->Native();
            if (namespaces != nullptr) {
              ctx.namespace_level = [namespaces](const std::string& ns) {
                auto level = namespaces->Level(ns);
                if (!level) {
                  spdlog::warn("webhook: no node cache for a pod in namespace {}: {}", ns,
                               level.error().message());
                }
                return level;
              };
            }
            return ReviewAdmission(body, *cfg, ctx);
          },
      .observe = [this](const AdmissionOutcome& out, std::chrono::nanoseconds) { Observe(out); }});
  MS_RETURN_IF_ERROR(server_->Start());
  if (metrics_ != nullptr) {
    metrics_->AddSampler([certs, detector](OperatorMetrics& m) {
      m.Gauge("modelswap_webhook_certificate_loaded", "1 once the webhook serves a certificate")
          .Set(certs->Current() ? 1 : 0);
      m.Gauge("modelswap_webhook_native_sidecars",
              "1 when a dry run proved native sidecars work, else 0 (plain-container fallback)")
          .Set(detector->Native() ? 1 : 0);
    });
  }
  detector_->Start();
  cert_thread_ = std::thread([this] { CertLoop(); });
  return Ok();
}

void WebhookRuntime::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (cert_thread_.joinable()) cert_thread_.join();
  if (detector_) detector_->Stop();
  if (server_) server_->Stop();
  namespaces_.reset();  // after the server: no admission uses it any more
}

bool WebhookRuntime::Ready() const {
  return certs_ && certs_->Current() != nullptr;
}

bool WebhookRuntime::WaitFor(std::chrono::nanoseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

void WebhookRuntime::CertLoop() {
  // Start: retry until a certificate is loaded (the API server may be unreachable, the Secret
  // not created yet, RBAC not bound yet). Then reload periodically; errors keep the old one.
  Backoff backoff(opts_.retry_initial, opts_.retry_max);
  for (;;) {
    if (auto st = certs_->Start(); st)
      break;
    else {
      auto wait = backoff.Next();
      spdlog::warn("webhook certificate not loaded err=\"{}\" retry_in_ms={}", st.error().message(),
                   std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
      if (!WaitFor(wait)) return;
    }
  }
  spdlog::info("webhook ready: certificate loaded");
  while (WaitFor(opts_.reload_interval)) {
    auto changed = certs_->Reload();
    if (!changed) {
      spdlog::warn("webhook certificate reload failed, serving the current one err=\"{}\"",
                   changed.error().message());
    } else if (*changed) {
      spdlog::info("webhook certificate rotated");
    }
  }
}

void WebhookRuntime::Observe(const AdmissionOutcome& out) {
  if (metrics_ == nullptr) return;
  metrics_
      ->Counter("modelswap_webhook_admissions_total", "Admission reviews answered, by verdict",
                {{"verdict", VerdictName(out.verdict)}})
      .Increment();
}

}  // namespace modelswap::op
