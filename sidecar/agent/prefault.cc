// MADV_POPULATE_READ in parallel chunks, with the WILLNEED + touch fallback.
#include "sidecar/agent/prefault.h"

#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "sidecar/agent/sigbus_guard.h"

namespace modelswap::agent {
namespace {

constexpr uint64_t kChunk = 64ull << 20;  // populate granularity per worker

uint64_t PageSize() {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

// Populates chunks i, i + stride, ... of region; first error wins.
Status PopulateChunks(Env* env, std::span<const std::byte> region, size_t first, size_t stride) {
  for (uint64_t off = first * kChunk; off < region.size(); off += stride * kChunk) {
    MS_RETURN_IF_ERROR(
        env->PopulateRead(region.subspan(off, std::min<uint64_t>(kChunk, region.size() - off))));
  }
  return Ok();
}

Status PopulateParallel(Env* env, std::span<const std::byte> region, int threads) {
  size_t n = static_cast<size_t>(std::max(1, threads));
  n = std::min<size_t>(n, (region.size() + kChunk - 1) / kChunk);
  if (n <= 1) return PopulateChunks(env, region, 0, 1);
  std::vector<Status> results(n);
  std::vector<std::thread> workers;
  for (size_t i = 1; i < n; ++i) {
    workers.emplace_back([&, i] { results[i] = PopulateChunks(env, region, i, n); });
  }
  results[0] = PopulateChunks(env, region, 0, n);
  for (auto& w : workers)
    w.join();
  for (auto& r : results)
    MS_RETURN_IF_ERROR(r);
  return Ok();
}

}  // namespace

Status TouchPages(Env* env, std::span<const std::byte> region) {
  // Read-ahead is only a hint: a failure here just makes the touch below slower.
  (void)env->AdviseWillNeed(region);
  return RunSigbusGuarded("prefault touch", [&]() -> Status {
    const volatile std::byte* p = region.data();
    uint64_t sum = 0;
    for (uint64_t off = 0; off < region.size(); off += PageSize()) {
      sum += static_cast<uint8_t>(p[off]);
    }
    if (!region.empty()) sum += static_cast<uint8_t>(p[region.size() - 1]);
    asm volatile("" : : "r"(sum));  // keep the loads
    return Ok();
  });
}

Result<PrefaultResult> Prefault(Env* env, std::span<const std::byte> region, int threads) {
  int64_t start = env->NowMonotonicNanos();
  PrefaultResult out;
  out.method = "populate_read";
  Status st = PopulateParallel(env, region, threads);
  if (!st && st.error().code() == Code::kNotSupported) {
    out.method = "willneed+touch";
    st = TouchPages(env, region);
  }
  if (!st) return Fail(st.error().Context("prefault"));
  out.seconds = static_cast<double>(env->NowMonotonicNanos() - start) / 1e9;
  return out;
}

}  // namespace modelswap::agent
