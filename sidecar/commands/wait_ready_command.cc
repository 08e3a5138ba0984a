// `modelswap-sidecar wait-ready`: blocks until the agent's /readyz answers 200.
//
// Where a cluster lacks native sidecars, the webhook injects the agent as the first plain
// container with this command as its postStart hook: the kubelet starts the next containers only
// after the hook returns, so apps start once their models are loaded, as with a native sidecar's
// startup probe. Exit 0 when ready, 1 on timeout (the kubelet then kills and restarts the agent).
#include <cpprest/http_client.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "common/log.h"
#include "sidecar/commands/cli.h"

namespace modelswap {
namespace {

struct WaitArgs {
  std::string url = "http://127.0.0.1:8471/readyz";
  double timeout_s = 1800;
  double interval_s = 0.5;
};

// One GET; true on 200. Connection refused (agent still starting) and errors are "not yet".
bool ReadyOnce(const std::string& url, double interval_s) {
  try {
    web::http::client::http_client_config config;
    config.set_timeout(std::chrono::milliseconds(static_cast<int64_t>(interval_s * 4000) + 1000));
    web::http::client::http_client client(url, config);
    web::http::http_response response = client.request(web::http::methods::GET).get();
    // Drain the body before returning: cpprest closes the response stream in a continuation, and
    // a process that exits with it pending leaves its buffers behind (LeakSanitizer saw them).
    response.content_ready().wait();
    return response.status_code() == 200;
  } catch (const std::exception&) {
    return false;
  }
}

int RunWaitReady(const WaitArgs& a) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(a.timeout_s);
  auto last_note = start;
  while (!ReadyOnce(a.url, a.interval_s)) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      std::fprintf(stderr, "modelswap-sidecar wait-ready: %s not ready after %.0f s\n",
                   a.url.c_str(), a.timeout_s);
      return kExitError;
    }
    if (now - last_note >= std::chrono::seconds(10)) {
      last_note = now;
      std::fprintf(stderr, "wait-ready: still waiting for %s (%.0f s)\n", a.url.c_str(),
                   std::chrono::duration<double>(now - start).count());
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(a.interval_s));
  }
  return kExitOk;
}

}  // namespace

void AddWaitReadyCommand(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<WaitArgs>();
  CLI::App* cmd =
      app.add_subcommand("wait-ready", "wait until the agent's /readyz answers 200 (postStart)");
  cmd->add_option("--url", a->url, "readiness URL (default http://127.0.0.1:8471/readyz)");
  cmd->add_option("--timeout", a->timeout_s, "give up after this many seconds (default 1800)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--interval", a->interval_s, "seconds between attempts (default 0.5)")
      ->check(CLI::PositiveNumber);
  cmd->callback([a, &ctx] {
    SetupLogging(ctx.log_level);
    ctx.exit_code = RunWaitReady(*a);
  });
}

}  // namespace modelswap
