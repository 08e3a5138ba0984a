// webhook_bench: how fast the sidecar-injection webhook answers, on loopback.
//
//   webhook_bench [--seconds S] [--clients N]
//
// Four measurements, one after the other in the same run, each for S seconds (default 3) with N
// client threads (default 2), every request a recorded AdmissionReview
// (tests/operator/webhook/testdata/admission-request-pod-create.json, which gets a full injection
// patch):
//   pure      ReviewAdmission() called in-process: the decision alone
//   healthz   GET /healthz over kept-alive TLS: the transport baseline (Boost.Beast + OpenSSL)
//   mutate    POST /mutate-pods over kept-alive TLS: what the API server sees
//   handshake POST /mutate-pods on a fresh TLS connection each time (no keep-alive)
// Prints p50/p99 latency and requests/s for each, and mutate's ratios to the baselines.
// Target: mutate p99 <= 5 ms.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "operator/webhook/server.h"
#include "tests/operator/webhook/tls_client.h"

namespace {

using modelswap::op::testing::TlsClient;
using Clock = std::chrono::steady_clock;

constexpr const char* kHost = "modelswap-webhook.modelswap-system.svc";

struct Stats {
  double p50_us = 0, p99_us = 0, rps = 0;
  size_t n = 0, errors = 0;
};

Stats Summarise(std::vector<std::vector<double>>& per_thread, double seconds, size_t errors) {
  std::vector<double> all;
  for (auto& v : per_thread)
    all.insert(all.end(), v.begin(), v.end());
  Stats s;
  s.n = all.size();
  s.errors = errors;
  if (all.empty()) return s;
  std::sort(all.begin(), all.end());
  s.p50_us = all[all.size() / 2];
  s.p99_us = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  s.rps = static_cast<double>(all.size()) / seconds;
  return s;
}

// Runs `one` (returns false on error) on `clients` threads for `seconds`.
template <class MakeOne>
Stats Run(int clients, double seconds, MakeOne make_one) {
  std::vector<std::vector<double>> lat(clients);
  std::atomic<size_t> errors{0};
  std::vector<std::thread> threads;
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      auto one = make_one();
      while (Clock::now() < deadline) {
        auto t0 = Clock::now();
        bool ok = one();
        auto us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
        if (ok)
          lat[t].push_back(us);
        else
          errors.fetch_add(1, std::memory_order_relaxed);  // a counter, read after join
      }
    });
  }
  for (auto& th : threads)
    th.join();
  double took = std::chrono::duration<double>(Clock::now() - start).count();
  return Summarise(lat, took, errors.load(std::memory_order_relaxed));
}

void Print(const char* name, const Stats& s) {
  std::printf("%-10s p50 %8.1f us   p99 %8.1f us   %9.0f req/s   (%zu requests, %zu errors)\n",
              name, s.p50_us, s.p99_us, s.rps, s.n, s.errors);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  int clients = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--seconds") == 0)
      seconds = std::atof(argv[i + 1]);
    else if (std::strcmp(argv[i], "--clients") == 0)
      clients = std::atoi(argv[i + 1]);
  }
  using namespace modelswap::op;
  std::string body = testing::ReadFileForBench(std::string(MODELSWAP_WEBHOOK_TESTDATA) +
                                               "/admission-request-pod-create.json");
  auto bundle = GenerateCertBundle(ServiceDnsNames("modelswap-webhook", "modelswap-system"),
                                   std::time(nullptr), std::chrono::hours(24));
  if (!bundle) {
    std::fprintf(stderr, "certs: %s\n", bundle.error().ToString().c_str());
    return 1;
  }
  auto served = std::make_shared<const CertBundle>(*bundle);
  InjectionConfig cfg;
  WebhookServerOptions o;
  o.addr = "127.0.0.1:0";
  o.certificate = [served] { return served; };
  o.review = [&cfg](std::string_view b) { return ReviewAdmission(b, cfg, true); };
  WebhookServer server(o);
  if (auto st = server.Start(); !st) {
    std::fprintf(stderr, "server: %s\n", st.error().ToString().c_str());
    return 1;
  }
  int port = server.port();
  const std::string ca = bundle->ca_pem;
  std::printf("webhook_bench: %d clients, %.1f s each, body %zu bytes, %u cores\n", clients,
              seconds, body.size(), std::thread::hardware_concurrency());

  Stats pure = Run(clients, seconds, [&] {
    return [&] { return ReviewAdmission(body, cfg, true).verdict == AdmissionVerdict::kPatched; };
  });
  auto over_tls = [&](const char* method, const char* path, const std::string& payload) {
    return [&, method, path, payload] {
      auto c = std::make_shared<TlsClient>();
      bool connected = c->Connect(port, ca, kHost).has_value();
      return [c, connected, method, path, payload] {
        if (!connected) return false;
        auto r = c->Request(method, path, payload);
        return r.has_value() && r->status == 200;
      };
    };
  };
  Stats healthz = Run(clients, seconds, over_tls("GET", "/healthz", ""));
  Stats mutate = Run(clients, seconds, over_tls("POST", "/mutate-pods?timeout=10s", body));
  Stats handshake = Run(clients, seconds, [&] {
    return [&] {
      TlsClient c;
      if (!c.Connect(port, ca, kHost)) return false;
      auto r = c.Request("POST", "/mutate-pods?timeout=10s", body);
      return r.has_value() && r->status == 200;
    };
  });
  server.Stop();

  Print("pure", pure);
  Print("healthz", healthz);
  Print("mutate", mutate);
  Print("handshake", handshake);
  std::printf(
      "mutate/healthz p50 x%.2f, p99 x%.2f; mutate/pure p50 x%.1f; target p99 <= 5000 us: %s\n",
      mutate.p50_us / healthz.p50_us, mutate.p99_us / healthz.p99_us, mutate.p50_us / pure.p50_us,
      mutate.p99_us <= 5000 ? "met" : "NOT met");
  return 0;
}
