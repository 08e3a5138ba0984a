// The C ABI (modelswap_region.h) over the C++ Region: a handle is a heap object owning a Region;
// errors become negative codes plus a thread-local message. Every entry point that can allocate
// catches everything, so no exception crosses into C.
#include "sidecar/client/modelswap_region.h"

#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "common/names.h"
#include "sidecar/client/region.h"

struct ms_region {
  modelswap::Region region;
};

namespace {

using modelswap::Code;

thread_local std::string last_error;

ms_region_status ToStatus(Code code) {
  static_assert(static_cast<int>(Code::kInternal) == 12, "C codes mirror modelswap::Code");
  return static_cast<ms_region_status>(-static_cast<int>(code));
}

ms_region_status Report(const modelswap::Error& error) {
  last_error = error.ToString();
  return ToStatus(error.code());
}

ms_region_status ReportException() {
  try {
    last_error = "internal error: out of memory or an unexpected exception";
  } catch (...) {  // keep the old message rather than throw into C
  }
  return MS_REGION_INTERNAL;
}

}  // namespace

extern "C" {

ms_region_status ms_region_open(const char* shm_dir, const char* name, uint64_t bytes,
                                uint32_t block_bytes, ms_region** out,
                                ms_region_attach_info* info) {
  try {
    if (name == nullptr || out == nullptr) {
      last_error = "ms_region_open: name and out must not be NULL";
      return MS_REGION_INVALID_ARGUMENT;
    }
    *out = nullptr;
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
    last_error.clear();
    return MS_REGION_OK;
  } catch (...) {
    return ReportException();
  }
}

void* ms_region_data(const ms_region* region) {
  return region->region.bytes().data();
}

uint64_t ms_region_size(const ms_region* region) {
  return region->region.size();
}

ms_region_status ms_region_mark_dirty(ms_region* region, uint64_t offset, uint64_t length) {
  try {
    if (modelswap::Status s = region->region.MarkDirty(offset, length); !s)
      return Report(s.error());
    return MS_REGION_OK;
  } catch (...) {
    return ReportException();
  }
}

ms_region_status ms_region_write(ms_region* region, uint64_t offset, const void* data,
                                 uint64_t length) {
  try {
    if (data == nullptr && length != 0) {
      last_error = "ms_region_write: data is NULL";
      return MS_REGION_INVALID_ARGUMENT;
    }
    if (modelswap::Status s = region->region.Write(
            offset, {static_cast<const std::byte*>(data), static_cast<size_t>(length)});
        !s) {
      return Report(s.error());
    }
    return MS_REGION_OK;
  } catch (...) {
    return ReportException();
  }
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

const char* ms_region_last_error(void) {
  return last_error.c_str();
}

}  // extern "C"
