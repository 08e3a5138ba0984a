// snapshot-host-test-bin: a SnapshotHost running standalone, for the multi-process crash test
// (the agent hosts it in production).
//
//   snapshot-host-test-bin SHM_DIR SNAPSHOT_DIR INTERVAL_MS KEEP
//
// Restores every region first, then prints one line "ready <error or ok>" and starts the pass
// thread. After every durable snapshot it prints "durable <region> <generation>" (flushed, so a
// line the parent reads means the file was fsynced and renamed before it). Runs until SIGTERM
// (then stops cleanly, with a final pass) or until it is killed.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "sidecar/snapshot/snapshot_host.h"

namespace {

void PrintLine(const std::string& line) {
  const std::string out = line + "\n";
  // write(2) straight to the pipe: nothing sits in a stdio buffer when SIGKILL arrives.
  (void)!::write(1, out.data(), out.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s SHM_DIR SNAPSHOT_DIR INTERVAL_MS KEEP\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::err);  // fallbacks are expected here; the test reads stdout
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);  // before any thread starts

  modelswap::snapshot::SnapshotHostOptions o;
  o.shm_dir = argv[1];
  o.snapshot_dir = argv[2];
  o.interval_ms = std::atoll(argv[3]);
  o.keep = std::atoi(argv[4]);
  o.on_durable = [](const std::string& region, uint64_t gen) {
    PrintLine("durable " + region + " " + std::to_string(gen));
  };
  if (modelswap::Status s = modelswap::snapshot::SnapshotHost::ValidateOptions(o); !s) {
    std::fprintf(stderr, "%s\n", s.error().ToString().c_str());
    return 2;
  }
  modelswap::snapshot::SnapshotHost host(modelswap::DefaultEnv(), o);
  modelswap::Status restored = host.RestoreAll();
  PrintLine(restored ? "ready ok" : "ready " + restored.error().ToString());
  if (modelswap::Status s = host.Start(); !s) {
    std::fprintf(stderr, "%s\n", s.error().ToString().c_str());
    return 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  host.Stop();
  return 0;
}
