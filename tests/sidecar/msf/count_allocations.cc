// Replaces the global operator new/delete of msf_test to count allocations, so a test can show
// that msf::ChainFind allocates nothing (msf_chain_test.cc). In its own file: inlined into the
// tests, GCC 12 warns that free() is "mismatched" with the replaced new.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {
// Relaxed is enough: tests read the count on the thread that made the calls they compare.
std::atomic<uint64_t> g_allocations{0};
}  // namespace

uint64_t AllocationCount() {
  return g_allocations.load(std::memory_order_relaxed);
}

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
