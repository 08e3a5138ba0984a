// What the C ABIs (modelswap.h, modelswap_channel.h, modelswap_region.h) share: each status enum
// is a modelswap::Code negated; the message of the last error is kept per thread (one for all
// three ABIs: "the last modelswap call on this thread"); and no C++ exception unwinds into C.
//
// Header-only and inline, so the static libraries that each carry one ABI can be linked
// together without clashing; the thread-local message has one instance per process.
#pragma once

#include <exception>
#include <string>

#include "common/status.h"

namespace modelswap::c_abi {

static_assert(static_cast<int>(Code::kInternal) == 12, "the C enums mirror modelswap::Code");

inline std::string& LastError() {
  thread_local std::string message;
  return message;
}

template <class S>
S StatusOf(Code code) {
  return static_cast<S>(-static_cast<int>(code));
}

// Records the error as this thread's last one and returns its C status.
template <class S>
S Report(const Error& error) noexcept {
  try {
    LastError() = error.ToString();
  } catch (...) {  // out of memory: keep the old message rather than throw into C
  }
  return StatusOf<S>(error.code());
}

template <class S>
S Report(Code code, const char* message) noexcept {
  try {
    return Report<S>(Error(code, message));
  } catch (...) {
    return StatusOf<S>(code);
  }
}

// Runs f (which returns S); an exception becomes kInternal with its message.
template <class S, class F>
S Guard(F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    return Report<S>(Code::kInternal, e.what());
  } catch (...) {
    return Report<S>(Code::kInternal, "unknown exception");
  }
}

}  // namespace modelswap::c_abi
