// The C ABI (modelswap_region.h) over the C++ Region: a handle is a heap object owning a Region;
// errors and exceptions become C statuses and the thread's last error (c_abi.h).
#include "sidecar/client/region/modelswap_region.h"

#include <string>
#include <utility>

#include "common/names.h"
#include "sidecar/client/c_abi.h"
#include "sidecar/client/region/region.h"

struct ms_region {
  modelswap::Region region;
};

namespace {

ms_region_status Report(const modelswap::Error& error) {
  return modelswap::c_abi::Report<ms_region_status>(error);
}

ms_region_status Invalid(const char* message) {
  return modelswap::c_abi::Report<ms_region_status>(modelswap::Code::kInvalidArgument, message);
}

template <class F>
ms_region_status Guard(F&& f) noexcept {
  return modelswap::c_abi::Guard<ms_region_status>(std::forward<F>(f));
}

}  // namespace

extern "C" {

ms_region_status ms_region_open(const char* shm_dir, const char* name, uint64_t bytes,
                                uint32_t block_bytes, ms_region** out,
                                ms_region_attach_info* info) {
  if (name == nullptr || out == nullptr) return Invalid("ms_region_open: name and out are NULL");
  *out = nullptr;
  return Guard([&] {
    modelswap::RegionOptions options{.bytes = bytes};
    if (block_bytes != 0) options.block_bytes = block_bytes;
    modelswap::Result<modelswap::Region> region = modelswap::Region::Open(
        modelswap::ResolveShmDir(shm_dir != nullptr ? shm_dir : ""), name, options);
    if (!region) return Report(region.error());
    if (info != nullptr) {
      const modelswap::RegionAttachInfo& a = region->attach_info();
      *info = {.generation = a.generation,
               .restored_gen = a.restored_gen,
               .rolled_back_blocks = a.rolled_back_blocks,
               .created = a.created ? uint8_t{1} : uint8_t{0},
               .rolled_forward = a.rolled_forward ? uint8_t{1} : uint8_t{0},
               .reserved = {}};
    }
    *out = new ms_region{std::move(*region)};
    return MS_REGION_OK;
  });
}

void* ms_region_data(const ms_region* region) {
  return region->region.bytes().data();
}

uint64_t ms_region_size(const ms_region* region) {
  return region->region.size();
}

ms_region_status ms_region_mark_dirty(ms_region* region, uint64_t offset, uint64_t length) {
  return Guard([&] {
    modelswap::Status s = region->region.MarkDirty(offset, length);
    return s ? MS_REGION_OK : Report(s.error());
  });
}

ms_region_status ms_region_write(ms_region* region, uint64_t offset, const void* data,
                                 uint64_t length) {
  if (data == nullptr && length != 0) return Invalid("ms_region_write: data is NULL");
  return Guard([&] {
    modelswap::Status s = region->region.Write(
        offset, {static_cast<const std::byte*>(data), static_cast<size_t>(length)});
    return s ? MS_REGION_OK : Report(s.error());
  });
}

uint64_t ms_region_commit(ms_region* region) {
  return region->region.Commit();
}

uint64_t ms_region_generation(const ms_region* region) {
  return region->region.generation();
}

uint64_t ms_region_durable_generation(const ms_region* region) {
  return region->region.durable_generation();
}

void ms_region_close(ms_region* region) {
  delete region;
}

void ms_region_abandon_after_fork(ms_region* region) {
  region->region.AbandonAfterFork();
}

const char* ms_region_last_error(void) {
  return modelswap::c_abi::LastError().c_str();
}

}  // extern "C"
