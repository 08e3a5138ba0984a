// Files in the pod's memory emptyDir (channels, regions) that only ever appear complete.
//
// A creator builds the file unnamed (O_TMPFILE; where the filesystem lacks it, a dot-named temp
// file that *.chan / *.region listings never match), fills it, then gives it its name with link(),
// which never replaces: of two racing creators one wins and the other attaches to the winner's
// file. A creator killed midway leaves nothing (O_TMPFILE) or only an ignored dot file.
//
// Directories and files are group-accessible (0770 / 0660): app containers and the agent may run
// as different users that share the pod's fsGroup.
//
// ShmMapping is the one holder of such a file's descriptor and shared mapping (channels, regions,
// control blocks); the layouts and protocols stay with their owners. These files use POSIX
// directly rather than Env: they live in the pod's memory emptyDir (tmpfs) and need read-write
// shared mappings, flock and linkat, none of which Env has.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

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

enum class MapAccess { kReadOnly, kReadWrite };

// A descriptor and a MAP_SHARED mapping of the file's first size() bytes, released together:
// unmapped, then closed, which drops the flock and OFD locks this process took through the
// descriptor. Move-only. Accessors may be called from any thread; the bytes follow the protocol
// of the layout that owns them.
class ShmMapping {
 public:
  ShmMapping() = default;
  ShmMapping(ShmMapping&& other) noexcept { *this = std::move(other); }
  ShmMapping& operator=(ShmMapping&& other) noexcept;
  ShmMapping(const ShmMapping&) = delete;
  ShmMapping& operator=(const ShmMapping&) = delete;
  ~ShmMapping();

  // Maps [0, size) of fd, shared, and takes fd: it is closed with the mapping, or before this
  // returns an error. `path` names the file in messages and in Replaced().
  [[nodiscard]] static Result<ShmMapping> Map(int fd, uint64_t size, MapAccess access,
                                              std::string path);

  int fd() const { return fd_; }
  std::byte* base() const { return base_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  uint64_t inode() const { return inode_; }
  // The mapping's start as the layout's header (callers checked the size against it).
  template <class Header>
  Header* As() const {
    return reinterpret_cast<Header*>(base_);
  }

  // True when path() no longer names the mapped file (removed or replaced by another file).
  [[nodiscard]] Result<bool> Replaced() const;

  // For a child after fork(): lets go of the file without unmapping the address range (stale
  // pointers into it stay valid, reading zeros). The mapping, not only the descriptor, holds the
  // file open, and with it the parent's flock; both are dropped here.
  void AbandonAfterFork();

 private:
  void Release();  // unmaps and closes; leaves it empty

  int fd_ = -1;
  std::byte* base_ = nullptr;
  size_t size_ = 0;
  std::string path_;
  uint64_t inode_ = 0;
  uint64_t device_ = 0;
};

// Takes a non-blocking exclusive flock on fd, held until the descriptor closes (the kernel drops
// it when the process dies, however it dies, so a restart never finds a stale lock).
// kFailedPrecondition with `held` as its message while another open file description holds it.
[[nodiscard]] Status LockExclusive(int fd, const std::string& path, std::string_view held);

struct ShmOpenOptions {
  MapAccess access = MapAccess::kReadWrite;
  // Names the file in messages ("channel", "region", "control block").
  std::string_view kind;
  // Non-empty: LockExclusive before mapping, with this message when the lock is held.
  std::string held_message;
  // A smaller file is kCorruption ("<kind> <path>: file is N bytes, smaller than the M-byte
  // header") before anything is mapped.
  uint64_t header_bytes = 0;
  // O_NOFOLLOW unless set: channels and regions refuse a symlink in their place.
  bool follow_symlinks = false;
};

// Opens an existing file (kNotFound if there is none), checks it is a regular file (kCorruption
// if not) and at least header_bytes long, optionally locks it, and maps all of it.
[[nodiscard]] Result<ShmMapping> OpenShmMapping(const std::string& path,
                                                const ShmOpenOptions& options);

// Sizes a new, empty file (ftruncate; tmpfs zero-fills and allocates pages only when written)
// and maps it read-write. Takes fd, as ShmMapping::Map does.
[[nodiscard]] Result<ShmMapping> SizeAndMapNewFile(int fd, uint64_t size, std::string path);

}  // namespace modelswap
