// The C ABI (modelswap.h) over ModelClient: status codes instead of Result, no exceptions out.
#include <new>
#include <string>

#include "sidecar/client/c_abi.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/modelswap.h"

struct ms_model {
  std::unique_ptr<modelswap::client::ModelClient> client;
};
struct ms_handle {
  modelswap::client::Handle handle;
};

namespace {

ms_status StatusOf(const modelswap::Error& e) {
  return modelswap::c_abi::Report<ms_status>(e);
}

ms_status Invalid(const char* what) {
  return modelswap::c_abi::Report<ms_status>(modelswap::Code::kInvalidArgument, what);
}

// Everything below may allocate; bad_alloc (or anything else) must not unwind into C.
template <class F>
ms_status Guard(F&& f) noexcept {
  return modelswap::c_abi::Guard<ms_status>(std::forward<F>(f));
}

}  // namespace

static_assert(static_cast<int>(modelswap::Code::kInternal) == -MS_INTERNAL, "codes mirror Code");
static_assert(static_cast<int>(modelswap::Code::kUnavailable) == -MS_UNAVAILABLE,
              "codes mirror Code");

extern "C" {

ms_status ms_model_attach(const char* shm_dir, const char* model, ms_model** out) {
  if (model == nullptr || out == nullptr) return Invalid("model and out must not be NULL");
  return Guard([&] {
    modelswap::client::Options opts;
    if (shm_dir != nullptr) opts.shm_dir = shm_dir;
    auto client = modelswap::client::ModelClient::Attach(model, opts);
    if (!client) return StatusOf(client.error());
    *out = new ms_model{std::move(*client)};
    return MS_OK;
  });
}

void ms_model_detach(ms_model* model) {
  delete model;
}

ms_status ms_acquire(ms_model* model, ms_handle** out) {
  if (model == nullptr || out == nullptr) return Invalid("model and out must not be NULL");
  return Guard([&] {
    auto h = model->client->Acquire();
    if (!h) return StatusOf(h.error());
    *out = new ms_handle{std::move(*h)};
    return MS_OK;
  });
}

void ms_handle_release(ms_handle* handle) {
  delete handle;
}

ms_status ms_get(const ms_handle* handle, const void* key, size_t key_len, const void** value,
                 size_t* value_len) {
  if (handle == nullptr || value == nullptr || value_len == nullptr ||
      (key == nullptr && key_len)) {
    return Invalid("handle, value and value_len must not be NULL");
  }
  auto v = handle->handle.Lookup(
      std::span<const std::byte>(static_cast<const std::byte*>(key), key_len));
  if (!v) return StatusOf(v.error());  // MS_ABORTED: the version is damaged (client.h)
  if (!*v) return MS_KEY_NOT_FOUND;
  *value = (*v)->data();
  *value_len = (*v)->size();
  return MS_OK;
}

int ms_handle_damaged(const ms_handle* handle) {
  return handle != nullptr && handle->handle.damaged() ? 1 : 0;
}

uint64_t ms_handle_generation(const ms_handle* handle) {
  return handle == nullptr ? 0 : handle->handle.generation();
}

const char* ms_handle_version(const ms_handle* handle) {
  return handle == nullptr ? "" : handle->handle.version().c_str();
}

uint32_t ms_handle_layer_count(const ms_handle* handle) {
  return handle == nullptr ? 0 : static_cast<uint32_t>(handle->handle.layer_count());
}

const char* ms_last_error(void) {
  return modelswap::c_abi::LastError().c_str();
}

}  // extern "C"
