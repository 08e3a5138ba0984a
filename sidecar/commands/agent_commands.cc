// Subcommands of the injected sidecar: `agent` (the long-running loop) and `get` (one lookup
// through the C++ client, for scripts and smoke tests).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "common/log.h"
#include "common/names.h"
#include "sidecar/agent/agent.h"
#include "sidecar/client/model/client.h"
#include "sidecar/commands/cli.h"

namespace modelswap {
namespace {

// 20 GiB: eviction keeps a bounded node disk use by default. The newest assembled version of each
// model and every held one are never evicted, so a budget smaller than the models in use only
// means nothing else is kept (chunks, older versions), never a failed load.
constexpr uint64_t kDefaultCacheMaxBytes = uint64_t{20} << 30;

struct AgentArgs {
  std::string root, models, shm_dir, listen = "0.0.0.0:8471", stage_dir, snapshot_dir;
  int64_t snapshot_interval_ms = 1000;
  int snapshot_keep = 3;
  int64_t poll_ms = 1000, grace_ms = 300000, heartbeat_ms = 1000, reader_timeout_ms = 5000;
  int64_t retry_ms = 1000, volume_timeout_ms = 10000;
  int stage_threads = 4, prefault_threads = 2;
  bool no_inotify = false;
  std::string cache_dir;
  uint64_t cache_max_bytes = kDefaultCacheMaxBytes;
  int cache_fetch_threads = 4;
  int64_t cache_evict_interval_ms = 300'000;
};

Result<std::vector<std::string>> SplitModels(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream in(csv);
  for (std::string name; std::getline(in, name, ',');) {
    if (name.empty()) continue;
    MS_RETURN_IF_ERROR(ValidateModelName(name));
    out.push_back(name);
  }
  if (out.empty()) return Fail(Code::kInvalidArgument, "--models: no model names given");
  return out;
}

// Blocks SIGTERM/SIGINT in every thread (call before any thread starts), then waits for one.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Where chunked versions are assembled. Apps map the file the control block names, so the
// directory must be visible to the app containers at the same path:
//   --cache-dir: the node cache (a hostPath the chart mounts into the agent and, read-only, into
//     the apps): each version is fetched and assembled once per node.
//   else --stage-dir/chunk-cache: a per-pod cache on the pod's own disk (the stage dir is an
//     emptyDir the apps already mount, since staged copies are mapped from it).
//   else <shm-dir>/chunk-cache: a per-pod cache in the shared memory dir (the one directory
//     every app mounts), memory-backed: the assembled file is the pages the apps map (no second
//     copy), but cached chunks take memory too, so --cache-max-bytes should be small there.
// The fallbacks are what pods get where hostPath is forbidden (Pod Security "baseline").
agent::CacheConfig CacheConfigFor(const AgentArgs& a, const std::string& shm_dir,
                                  const std::string& stage_dir) {
  agent::CacheConfig c;
  c.options.max_bytes = a.cache_max_bytes;
  c.options.fetch_threads = a.cache_fetch_threads;
  c.interval_ns = a.cache_evict_interval_ms * 1'000'000;
  if (!a.cache_dir.empty()) {
    c.options.dir = std::filesystem::absolute(a.cache_dir).lexically_normal().string();
    c.node_cache = true;
    c.why = "--cache-dir: the node cache, shared by the node's agents";
  } else if (!stage_dir.empty()) {
    c.options.dir = stage_dir + "/chunk-cache";
    c.why = "no --cache-dir: a per-pod cache in --stage-dir (each pod assembles on its own)";
  } else {
    c.options.dir = shm_dir + "/chunk-cache";
    c.why =
        "no --cache-dir or --stage-dir: a per-pod cache in the shm dir (memory-backed; each "
        "pod assembles on its own)";
  }
  return c;
}

int RunAgent(const AgentArgs& a) {
  auto models = SplitModels(a.models);
  if (!models) {
    std::fprintf(stderr, "modelswap-sidecar agent: %s\n", models.error().ToString().c_str());
    return kExitUsage;
  }
  agent::AgentOptions o;
  o.models = *models;
  o.listen = a.listen;
  // Absolute: the control block hands these paths to apps running in other directories.
  o.model.root = std::filesystem::absolute(a.root).lexically_normal().string();
  o.model.shm_dir = client::ShmDir(a.shm_dir);
  o.model.poll_interval_ns = a.poll_ms * 1'000'000;
  o.model.grace_ns = a.grace_ms * 1'000'000;
  o.model.heartbeat_interval_ns = a.heartbeat_ms * 1'000'000;
  o.model.reader_timeout_ns = a.reader_timeout_ms * 1'000'000;
  o.model.retry_initial_ns = a.retry_ms * 1'000'000;
  o.model.use_inotify = !a.no_inotify;
  o.model.volume_timeout_ns = a.volume_timeout_ms * 1'000'000;
  if (!a.stage_dir.empty()) {
    o.model.load.stage_dir = std::filesystem::absolute(a.stage_dir).lexically_normal().string();
  }
  o.model.load.stage_threads = a.stage_threads;
  if (!a.snapshot_dir.empty()) {
    o.snapshot.snapshot_dir = std::filesystem::absolute(a.snapshot_dir).lexically_normal().string();
    o.snapshot.interval_ms = a.snapshot_interval_ms;
    o.snapshot.keep = a.snapshot_keep;
  }
  o.model.load.prefault_threads = a.prefault_threads;
  o.cache = CacheConfigFor(a, o.model.shm_dir, o.model.load.stage_dir);
  sigset_t stop_signals = BlockStopSignals();
  auto agent = agent::Agent::Start(DefaultEnv(), o);
  if (!agent) {
    std::fprintf(stderr, "modelswap-sidecar agent: %s\n", agent.error().ToString().c_str());
    return kExitError;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("agent stopping signal={}", sig);
  (*agent)->Stop();
  return kExitOk;
}

void AddAgent(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<AgentArgs>();
  CLI::App* cmd = app.add_subcommand("agent", "the injected sidecar: load, swap and serve models");
  cmd->add_option("--root", a->root, "the model volume's mount point")
      ->envname("MODELSWAP_ROOT")
      ->required();
  cmd->add_option("--models", a->models, "comma-separated model names")
      ->envname("MODELSWAP_MODELS")
      ->required();
  cmd->add_option("--shm-dir", a->shm_dir,
                  "control block directory (default $MODELSWAP_SHM_DIR, else /dev/shm/modelswap)");
  cmd->add_option("--listen", a->listen, "HTTP HOST:PORT, empty to disable (default 0.0.0.0:8471)");
  cmd->add_option("--poll-interval", a->poll_ms, "manifest poll interval, ms (default 1000)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}));
  cmd->add_flag("--no-inotify", a->no_inotify,
                "poll only (filesystems whose inotify events mislead, benchmarks)");
  cmd->add_option("--stage-dir", a->stage_dir, "copy versions to this local directory first");
  cmd->add_option("--snapshot-dir", a->snapshot_dir,
                  "persist app regions (<shm-dir>/regions) here and restore them at start "
                  "(per-pod durable storage; empty: off)");
  cmd->add_option("--snapshot-interval", a->snapshot_interval_ms,
                  "snapshot pass interval, ms (default 1000)")
      ->check(CLI::Range(int64_t{1}, int64_t{86'400'000}));
  cmd->add_option("--snapshot-keep", a->snapshot_keep,
                  "restore points kept per region, plus the older files their delta chains "
                  "need (default 3)")
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--stage-threads", a->stage_threads, "parallel readers when staging (default 4)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--prefault-threads", a->prefault_threads, "prefault threads (default 2)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--grace-period", a->grace_ms,
                  "unmap a superseded version after this long even if readers hold it, ms "
                  "(default 300000)")
      ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}));
  cmd->add_option("--heartbeat-interval", a->heartbeat_ms,
                  "how often apps refresh their reader slot, ms (default 1000)")
      ->check(CLI::Range(int64_t{10}, int64_t{600'000}));
  cmd->add_option("--reader-timeout", a->reader_timeout_ms,
                  "a reader slot without heartbeat for this long is dead, ms (default 5000)")
      ->check(CLI::Range(int64_t{20}, int64_t{3'600'000}));
  cmd->add_option("--retry-backoff", a->retry_ms,
                  "first retry delay of a rejected version, doubling to 60 s, ms (default 1000)")
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}));
  cmd->add_option("--volume-timeout", a->volume_timeout_ms,
                  "report a read of the model volume as blocked after this long, ms "
                  "(default 10000; it keeps running off the model loop)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}));
  // Every agent of a node must pass the same --cache-dir, --cache-max-bytes and
  // --cache-fetch-threads (the chart sets them once): eviction by one agent applies its budget
  // to everyone's files.
  cmd->add_option("--cache-dir", a->cache_dir,
                  "node cache directory for chunked versions, shared by every agent of the node "
                  "(a hostPath; default: a per-pod cache in --stage-dir, else in --shm-dir)")
      ->envname("MODELSWAP_CACHE_DIR");
  cmd->add_option("--cache-max-bytes", a->cache_max_bytes,
                  "cache budget, bytes or with a unit (20GiB); eviction keeps the cache under "
                  "it, never removing a version in use; 0: no budget (default 20GiB)")
      ->transform(CLI::AsSizeValue(false))
      ->envname("MODELSWAP_CACHE_MAX_BYTES");
  cmd->add_option("--cache-fetch-threads", a->cache_fetch_threads,
                  "threads reading chunks while assembling a version (default 4)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--cache-evict-interval", a->cache_evict_interval_ms,
                  "eviction pass interval, ms, besides one after each chunked load "
                  "(default 300000)")
      ->check(CLI::Range(int64_t{1000}, int64_t{86'400'000}));
  cmd->callback([a, &ctx] {
    SetupLogging(ctx.log_level);
    if (a->reader_timeout_ms < 2 * a->heartbeat_ms) {
      throw CLI::ValidationError("--reader-timeout", "must be at least twice --heartbeat-interval");
    }
    ctx.exit_code = RunAgent(*a);
  });
}

struct GetArgs {
  std::string shm_dir, model, key;
  bool raw = false;
};

int RunGet(const GetArgs& a) {
  client::Options opts;
  opts.shm_dir = a.shm_dir;
  opts.heartbeat_thread = false;  // one lookup: the slot lives for milliseconds
  auto model = client::ModelClient::Attach(a.model, opts);
  if (!model) {
    std::fprintf(stderr, "modelswap-sidecar get: %s\n", model.error().ToString().c_str());
    return kExitError;
  }
  auto handle = (*model)->Acquire();
  if (!handle) {
    std::fprintf(stderr, "modelswap-sidecar get: %s\n", handle.error().ToString().c_str());
    return kExitError;
  }
  auto value = handle->Get(a.key);
  if (!value) {
    std::fprintf(stderr, "modelswap-sidecar get: NotFound: key \"%s\" not in %s version %s\n",
                 a.key.c_str(), a.model.c_str(), handle->version().c_str());
    return kExitError;
  }
  std::fwrite(value->data(), 1, value->size(), stdout);
  if (!a.raw) std::fputc('\n', stdout);
  std::fflush(stdout);
  return kExitOk;
}

void AddGet(CLI::App& app, CommandContext& ctx) {
  auto a = std::make_shared<GetArgs>();
  CLI::App* cmd = app.add_subcommand("get", "print one value of the active version");
  cmd->add_option("--shm-dir", a->shm_dir, "control block directory (default $MODELSWAP_SHM_DIR)");
  cmd->add_option("--model", a->model, "model name")->required();
  cmd->add_option("KEY", a->key, "the key")->required();
  cmd->add_flag("--raw", a->raw, "print the value bytes only, without a newline");
  cmd->callback([a, &ctx] {
    SetupLogging(ctx.log_level);
    ctx.exit_code = RunGet(*a);
  });
}

}  // namespace

void AddAgentCommands(CLI::App& app, CommandContext& ctx) {
  AddAgent(app, ctx);
  AddGet(app, ctx);
}

}  // namespace modelswap
