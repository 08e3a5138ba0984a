// Files in the pod's memory emptyDir (channels, regions) that only ever appear complete.
//
// A creator builds the file unnamed (O_TMPFILE; where the filesystem lacks it, a dot-named temp
// file that *.chan / *.region listings never match), fills it, then gives it its name with link(),
// which never replaces: of two racing creators one wins and the other attaches to the winner's
// file. A creator killed midway leaves nothing (O_TMPFILE) or only an ignored dot file.
//
// Directories and files are group-accessible (0770 / 0660): app containers and the agent may run
// as different users that share the pod's fsGroup.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap {

// mkdir -p with mode 0770.
[[nodiscard]] Status MakeShmDirs(const std::string& dir);

struct UnnamedFile {
  int fd = -1;
  std::string temp;  // the dot-named fallback's path; empty with O_TMPFILE
};

// A new empty file in dir, read-write, not yet visible under `path` (which names its final place
// in dir). On failure nothing is left behind.
[[nodiscard]] Result<UnnamedFile> CreateUnnamedFile(const std::string& dir,
                                                    const std::string& path);
// Links the file at `path`; kAlreadyExists if something is there already. Does not close fd.
[[nodiscard]] Status LinkUnnamedFile(const UnnamedFile& file, const std::string& path);
// Removes the fallback temp name, if any (call on every path once linked or abandoned).
void ForgetUnnamedFile(const UnnamedFile& file);

// The first checks of every shm layout (control block, channel, region): the magic says what the
// file is (kCorruption if not ours), the layout version whether this library can read it
// (kFailedPrecondition: a newer agent or app wrote it). `kind` names the file in the message.
[[nodiscard]] Status CheckShmMagicAndVersion(std::string_view kind, uint64_t magic,
                                             uint64_t want_magic, uint32_t version,
                                             uint32_t want_version);

}  // namespace modelswap
