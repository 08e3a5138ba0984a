// libFuzzer target for the admission webhook's pure function (operator/webhook/admission.h): any
// request body in, an AdmissionReview response out (allowed with a patch, allowed without one, or
// a 400 naming the problem); never a crash, whatever the nesting, types or encoding. The bytes
// are the body the API server would POST, so the corpus holds recorded AdmissionReviews.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "operator/webhook/admission.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const modelswap::op::InjectionConfig config;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  for (bool native : {true, false}) {
    (void)modelswap::op::ReviewAdmission(body, config, native);
  }
  return 0;
}
