// Standalone mode loop: inotify + polling over DIR, reaping tasks; see standalone_mode.h.
#include "operator/standalone/standalone_mode.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "common/dir_watcher.h"
#include "common/env.h"
#include "common/subprocess.h"
#include "operator/standalone/backend.h"

namespace modelswap::op {

std::string ResolveSidecarBin(const StandaloneOptions& o) {
  if (!o.sidecar_bin.empty()) return o.sidecar_bin;
  if (!o.self_path.empty() && o.self_path.find('/') != std::string::npos) {
    std::string sibling = JoinPath(DirName(o.self_path), "modelswap-sidecar");
    if (FindProgram(sibling)) return sibling;
  }
  return "modelswap-sidecar";  // searched in PATH when a task starts
}

int RunStandalone(const StandaloneOptions& o, const std::atomic<bool>& stop) {
  Env* env = DefaultEnv();
  auto info = env->Stat(o.dir);
  if (!info || !info->is_dir) {
    spdlog::error("--standalone {}: not a directory", o.dir);
    return 2;
  }
  if (auto st = env->CreateDirs(JoinPath(o.dir, ".status")); !st) {
    spdlog::error("standalone: {}", st.error().ToString());
    return 2;
  }
  if (auto st = env->CreateDirs(o.root); !st) {
    spdlog::error("--root: {}", st.error().ToString());
    return 2;
  }
  // One operator per directory: a second would write the same status files and race the first
  // for every decision. Held (close-on-exec, so no task inherits it) until this function returns.
  const std::string lock_path = JoinPath(JoinPath(o.dir, ".status"), "operator.lock");
  auto dir_lock = AcquireLifetimeLock(lock_path);
  if (!dir_lock) {
    spdlog::error("--standalone {}: {}", o.dir,
                  dir_lock.error().code() == Code::kFailedPrecondition
                      ? "another modelswap-operator is running on this directory (it holds " +
                            lock_path + "); stop it first"
                      : dir_lock.error().ToString());
    return 2;
  }
  struct CloseAtExit {
    int fd;
    ~CloseAtExit() { ::close(fd); }
  } close_lock{*dir_lock};
  std::string bin = ResolveSidecarBin(o);
  if (auto found = FindProgram(bin); !found) {
    spdlog::warn("standalone: {} (tasks will fail until it exists)", found.error().message());
  }
  Controller* controller_ptr = nullptr;
  StandaloneBackend backend(
      env, o, bin, [&controller_ptr](const std::string& key) { controller_ptr->Enqueue(key); });
  Controller controller(&backend, env, nullptr,
                        ControllerOptions{.workers = o.workers, .queue = {}});
  controller_ptr = &controller;
  controller.Start();

  // Any entry of DIR; without inotify (or where it fails) each Wait is a 100 ms sleep and the
  // poll interval alone finds changes.
  DirWatcher watcher(o.dir, /*file_name=*/"", /*use_inotify=*/true);
  int64_t last_scan = 0, last_probe = 0;
  backend.Scan();
  last_scan = env->NowMonotonicNanos();
  while (!stop.load(std::memory_order_acquire)) {
    const bool changed = watcher.Wait(100'000'000) == DirWatcher::Reason::kEvent;
    int64_t now = env->NowMonotonicNanos();
    if (changed || now - last_scan >= o.poll_interval.count() * 1'000'000) {
      backend.Scan();
      last_scan = now;
    }
    backend.Reap();
    if (now - last_probe >= o.probe_interval.count() * 1'000'000) {
      backend.ProbeAgent();
      last_probe = now;
    }
  }
  controller.Stop();
  backend.KillTasks();
  return 0;
}

}  // namespace modelswap::op
