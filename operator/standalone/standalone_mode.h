// Standalone mode: the same reconciler without a cluster.
//
// `modelswap-operator --standalone DIR --root DATA` treats every *.yaml / *.yml / *.json file in
// DIR as ModelVersion objects (several per file with ---). Files added, changed and removed are
// noticed through inotify and, because some filesystems have none, also by polling every
// second. Tasks run as child processes of the modelswap-sidecar binary (--sidecar-bin, else the
// one next to this binary, else PATH) with --root DATA; their stdout JSON is the result. Status
// is written atomically to DIR/.status/NAME.json (with the object's generation, creation time
// and finalizers, so a restart continues where it stopped), and each task's record to
// DIR/.status/tasks/TASK.json (a restarted operator adopts a task still running and never starts
// it twice; a stopped operator kills its tasks and forgets them, so they run again); Events are
// appended to
// DIR/.status/events.log; a file that does not parse gets DIR/.status/FILE.error naming the
// problem (and is otherwise ignored, never deleted); objects it defined before keep their last
// good state until it is fixed.
//
// One operator per DIR: it holds DIR/.status/operator.lock (flock) while it runs, and a second
// one refuses to start.
//
// A removed file is a deletion once it has stayed away for two seconds (so a file briefly
// missing or truncated while an editor or a copy rewrites it deletes nothing): the finalizer
// logic removes the version's file from DATA like a cluster would, then the status file goes.
//
// Creation time: an object's is its file's mtime when the operator first sees it, so files
// present together roll out in the order they appeared; an object that appears after others are
// known is created after all of them, whatever its mtime (a file copied with its old mtime does
// not jump the queue). It is kept in the status file, so it never changes afterwards. As in a
// cluster, the oldest object naming a (model, version) owns it (ties by uid, here
// "standalone-" + name); any other is Failed (DuplicateVersion) and touches nothing.
//
// Task records: a failed remove's record expires after its owner's
// spec.writer.ttlSecondsAfterFinished, as its Job would, and retention then tries again.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

namespace modelswap::op {

struct StandaloneOptions {
  std::string dir;
  std::string root;
  std::string sidecar_bin;  // "" = next to self_path, else PATH
  std::string self_path;    // argv[0]
  std::string agent_url;    // optional: ask this agent which version is loaded
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds probe_interval{2000};
  int workers = 1;
};

// Resolves the sidecar binary as described above.
std::string ResolveSidecarBin(const StandaloneOptions& o);

int RunStandalone(const StandaloneOptions& opts, const std::atomic<bool>& stop);

}  // namespace modelswap::op
