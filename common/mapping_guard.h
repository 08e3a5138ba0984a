// Surviving a mapped file that shrinks (or fails to read) under a process's mapping.
//
// Used for version files (sidecar/client/model/client.h), channels (sidecar/client/channel) and
// state regions (sidecar/client/region); the version-file case is described below.
//
// Why: a lookup reads the version file through a MAP_SHARED mapping. When the file is truncated
// (by hand, by a broken sync tool, by a storage driver), the kernel removes the pages past the new
// end from every mapping, and the next load from one of them raises SIGBUS (BUS_ADRERR); an I/O
// error reading a page (a failing disk, a blobfuse read error) does the same. By default that
// kills the app in the middle of a lookup. The agent notices the shorter file within a poll and
// falls back to an earlier intact version (sidecar/agent/model_agent.h), but a handle the app
// already holds keeps pointing into the damaged mapping.
//
// How: every mapping the client reads versions through is registered here as a range. A SIGBUS
// handler, installed once per process, looks the faulting address up: inside a registered range,
// it marks the range damaged and maps anonymous zero pages (MAP_FIXED) from the faulting page to
// the end of the range, so the faulting load resumes and reads zeros (a range registered
// read-write gets writable private pages, so a faulting store resumes too and lands there), and so
// does every later load past the fault (after a truncation every page beyond it is gone too: one
// remap, instead of one per page and a mapping count that grows without bound). Readers check the
// damaged flag after reading: a lookup that touched a replaced page is reported as an error, never
// as data (client.h, Handle::Lookup). A SIGBUS outside every range, or one sent with kill(2), is
// passed on to the handler that was installed before ours, or gets the default disposition (the
// process dies as it would have).
//
// Others do the same: the JVM's SIGBUS handler turns a fault in an Unsafe/MappedByteBuffer access
// into an InternalError instead of a crash; Go has debug.SetPanicOnFault. Alternatives weighed:
// siglongjmp out of the lookup (what the agent does around its verification, where a fault ends
// the whole operation) needs a sigsetjmp per lookup and cannot help code that reads a returned
// value after the lookup; copying every value (pread) costs a system call per lookup and the
// zero-copy API (the Python client does that, where an interpreter cannot run a handler like
// this one); file leases (F_SETLEASE) need the file's owner or CAP_LEASE and do not exist on FUSE.
//
// Limits: a handler installed after ours that does not chain to it disables this (document it
// for apps that install SIGBUS handlers); a file truncated and extended again before anyone reads
// the gap reads zeros without a fault, which no mapping-based reader can see.
//
// Async-signal safety: the handler reads the registry (a fixed array of atomics, no locks, no
// allocation), stores one flag and calls mmap(2) and, when passing the signal on, sigaction(2)
// and raise(3). mmap is not on POSIX's async-signal-safe list, but glibc's is a bare system call
// wrapper (no locks, no allocation), which is what matters here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"

namespace modelswap {

// How the range is mapped, and so how its replacement pages are: a store into a read-only
// replacement would fault again (SIGSEGV), so a writer's range gets writable private pages.
enum class GuardAccess { kReadOnly, kReadWrite };

// A registered range; unregistered when destroyed. Move-only.
class GuardedRange {
 public:
  // Registers the mapping (rounded out to whole pages) and installs the handler if this is the
  // first range of the process. kUnavailable if the registry is full (kCapacity ranges).
  [[nodiscard]] static Result<GuardedRange> Register(std::span<const std::byte> mapping,
                                                     GuardAccess access = GuardAccess::kReadOnly);
  static constexpr size_t kCapacity = 1024;

  GuardedRange() = default;
  GuardedRange(GuardedRange&& other) noexcept : index_(other.index_) { other.index_ = -1; }
  GuardedRange& operator=(GuardedRange&& other) noexcept;
  GuardedRange(const GuardedRange&) = delete;
  GuardedRange& operator=(const GuardedRange&) = delete;
  ~GuardedRange() { Unregister(); }

  // Whether a SIGBUS hit the range. Call it after reading: it is ordered after every load this
  // thread made before it (an acquire fence), so reads it follows were either of intact pages or
  // are reported.
  bool damaged() const;
  // The first faulting address (0 if none), for error messages.
  uintptr_t fault_address() const;

 private:
  explicit GuardedRange(int index) : index_(index) {}
  void Unregister();
  int index_ = -1;
};

}  // namespace modelswap
