// The zstd contexts the chunk store reuses, one of each per thread (chunk_store.cc): shared by
// whole chunks (chunk_store.cc) and delta chunks (chunk_store_delta.cc). Every user resets the
// context (ZSTD_reset_session_and_parameters) before setting its own parameters, so a prefix or
// window setting of one use never leaks into the next.
#pragma once

#include <zstd.h>

namespace modelswap::chunk {

[[nodiscard]] ZSTD_CCtx* ThreadCCtx();
[[nodiscard]] ZSTD_DCtx* ThreadDCtx();

}  // namespace modelswap::chunk
