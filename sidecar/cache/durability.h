// Durability of assembled versions without a data fsync before they are served.
//
// A SIGKILLed process loses nothing that reached the page cache: only a node crash or power
// loss can leave a published name over bytes that never reached the disk (zeros or stale blocks
// after the reboot). So the builder does not fsync the assembled temp (the fsync was the largest
// step of a delta assembly after the fetches, bench/cache/cache_bench.cc): it records the
// current boot id (Env::BootId) in the file's extended attribute `user.modelswap.boot` before
// publishing, and the file is served at once. An xattr, not a name part: cache_scan, eviction
// and the agent's janitor parse names and need no change; file systems journal the xattr with
// the inode, ahead of the later rename, so a name that survived a crash has its mark too.
//
// A user that finds the mark naming another boot (assembler.cc, UseExisting) takes the
// version's build lock, verifies the file in full again (version_builder.h, VerifyAssembled),
// then fsyncs it and removes the mark; a file that fails is rebuilt like a damaged one. No mark:
// the file was fsynced before publishing (MakeDurableOrMark fell back: no user xattrs, as on
// tmpfs before Linux 6.6, or no boot id) or after such a re-verification.
//
// Thread safety: stateless; callers serialise MarkDurable on one file with the build lock.
#pragma once

#include <string>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::cache {

inline constexpr char kBootMarkXattr[] = "user.modelswap.boot";

// On the temp, before it is made read-only: marks it with this boot's id (*deferred = true), or,
// when the mark cannot be set, fsyncs it (*deferred = false).
[[nodiscard]] Status MakeDurableOrMark(Env* env, int fd, const std::string& path, bool* deferred);

// Whether the file at fd carries a mark of a boot other than this one (or this boot's id cannot
// be read): its bytes must be verified in full before use.
[[nodiscard]] Result<bool> MarkedByAnotherBoot(Env* env, int fd, const std::string& path);

// After a successful re-verification: fsync, then remove the mark (the file is 0444, so its mode
// is made 0644 around the removal, which needs write permission for user xattrs).
[[nodiscard]] Status MarkDurable(Env* env, int fd, const std::string& path);

}  // namespace modelswap::cache
