// The registry of guarded ranges and the SIGBUS handler (see mapping_guard.h).
#include "common/mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "common/sigbus_reraise.h"

namespace modelswap {
namespace {

// One registered range. `state` publishes the other fields: Register fills them, then stores
// kLive with release; the handler loads `state` with acquire before reading them. The range
// cannot be unregistered under a fault inside it: the faulting thread reads it through a handle
// that keeps it registered (reading a released handle's memory is a bug of its own).
struct Slot {
  static constexpr uint32_t kFree = 0, kClaimed = 1, kLive = 2;
  std::atomic<uint32_t> state{kFree};
  // Set by the handler (seq_cst, before the remap) and read after the reads it covers (an
  // acquire fence first, GuardedRange::damaged).
  std::atomic<uint32_t> damaged{0};
  std::atomic<uintptr_t> start{0}, end{0};  // [start, end), page-aligned
  std::atomic<uintptr_t> fault{0};          // first faulting address (diagnostics only: relaxed)
  std::atomic<int> prot{PROT_READ};         // of the replacement pages; published by `state`
};
static_assert(std::atomic<uintptr_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<int>::is_always_lock_free,
              "the handler may only touch lock-free atomics");

Slot g_slots[GuardedRange::kCapacity];
// One past the highest slot ever claimed: the handler scans no further. Raised with release
// after the slot is live, read with acquire by the handler.
std::atomic<int> g_high{0};
uintptr_t g_page = 4096;      // written once before the handler is installed
struct sigaction g_previous;  // the disposition before ours; written once before installing

Slot* Find(uintptr_t addr) {
  const int high = g_high.load(std::memory_order_acquire);
  for (int i = 0; i < high; ++i) {
    Slot& s = g_slots[i];
    if (s.state.load(std::memory_order_acquire) != Slot::kLive) continue;
    if (addr >= s.start.load(std::memory_order_relaxed) &&
        addr < s.end.load(std::memory_order_relaxed)) {
      return &s;
    }
  }
  return nullptr;
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // si_code > 0: raised by the kernel for a fault (BUS_ADRERR past the end of the file,
  // BUS_OBJERR or BUS_MCEERR_* for a page that cannot be read), not sent by a process.
  if (info != nullptr && info->si_code > 0) {
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    if (Slot* s = Find(addr)) {
      uintptr_t none = 0;
      s->fault.compare_exchange_strong(none, addr, std::memory_order_relaxed);
      // Before the remap: a thread that reads a zero page installed below can only do so after
      // this store (the remap is a system call issued after it, and the kernel changes the page
      // tables under its locks and shoots down other CPUs' TLB entries, serialising them).
      s->damaged.store(1, std::memory_order_seq_cst);
      const uintptr_t page = addr & ~(g_page - 1);
      const uintptr_t end = s->end.load(std::memory_order_relaxed);
      const int prot = s->prot.load(std::memory_order_relaxed);  // published by state (Find)
      void* p = ::mmap(reinterpret_cast<void*>(page), end - page, prot,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (p != MAP_FAILED) {
        errno = saved_errno;
        return;  // the faulting load runs again and reads zeros
      }
    }
  }
  PassSigbusOn(g_previous, sig, info, context);  // not ours (common/sigbus_reraise.h)
  errno = saved_errno;
}

void InstallOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    struct sigaction sa = {};
    sa.sa_sigaction = OnSigbus;
    // SA_ONSTACK: an app that runs handlers on an alternate stack (stack-overflow reporting)
    // keeps doing so; without one the handler runs on the faulting thread's stack.
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

Result<GuardedRange> GuardedRange::Register(std::span<const std::byte> mapping,
                                            GuardAccess access) {
  InstallOnce();
  const auto addr = reinterpret_cast<uintptr_t>(mapping.data());
  const uintptr_t start = addr & ~(g_page - 1);
  const uintptr_t end = (addr + mapping.size() + g_page - 1) & ~(g_page - 1);
  for (size_t i = 0; i < kCapacity; ++i) {
    Slot& s = g_slots[i];
    uint32_t expected = Slot::kFree;
    // acquire: pairs with Unregister's release, so the previous user is done with the slot.
    if (!s.state.compare_exchange_strong(expected, Slot::kClaimed, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
      continue;
    }
    s.start.store(start, std::memory_order_relaxed);
    s.end.store(end, std::memory_order_relaxed);
    s.damaged.store(0, std::memory_order_relaxed);
    s.fault.store(0, std::memory_order_relaxed);
    s.prot.store(access == GuardAccess::kReadWrite ? PROT_READ | PROT_WRITE : PROT_READ,
                 std::memory_order_relaxed);
    s.state.store(Slot::kLive, std::memory_order_release);  // publishes the fields above
    int high = g_high.load(std::memory_order_relaxed);
    while (high <= static_cast<int>(i) &&
           !g_high.compare_exchange_weak(high, static_cast<int>(i) + 1, std::memory_order_release,
                                         std::memory_order_relaxed)) {
    }
    return GuardedRange(static_cast<int>(i));
  }
  return Fail(Code::kUnavailable,
              "more than " + std::to_string(kCapacity) + " guarded mappings open in this process");
}

GuardedRange& GuardedRange::operator=(GuardedRange&& other) noexcept {
  if (this != &other) {
    Unregister();
    index_ = other.index_;
    other.index_ = -1;
  }
  return *this;
}

void GuardedRange::Unregister() {
  if (index_ < 0) return;
  // release: the next claimer (acquire CAS) sees this user done. The handler may still be
  // scanning past it; a fault can no longer be inside it (mapping_guard.h: the range is
  // unregistered before its mapping is unmapped, and only when nobody reads it).
  g_slots[index_].state.store(Slot::kFree, std::memory_order_release);
  index_ = -1;
}

bool GuardedRange::damaged() const {
  // Orders this thread's earlier loads from the mapping before the flag load (a fault on this
  // thread ran the handler before the load that faulted completed).
  std::atomic_thread_fence(std::memory_order_acquire);
  return index_ >= 0 && g_slots[index_].damaged.load(std::memory_order_relaxed) != 0;
}

uintptr_t GuardedRange::fault_address() const {
  return index_ < 0 ? 0 : g_slots[index_].fault.load(std::memory_order_relaxed);
}

}  // namespace modelswap
