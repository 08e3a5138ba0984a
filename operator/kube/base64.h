// Standard base64 (RFC 4648 section 4, padded), the one codec of the operator: Secret data and
// caBundle fields (Kubernetes []byte JSON fields), kubeconfig *-data fields, admission patches.
//
// Encoding and decoding run through OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock. Decoding is
// strict, like Go's base64.StdEncoding that the API server and kubectl use: a byte outside the
// alphabet, padding anywhere but the end (or more than two '='), or a length that is not a
// multiple of 4 is kInvalidArgument naming the check. (EVP_DecodeBlock alone would take '=' in
// the middle as zero bits and trim surrounding whitespace, hence the checks before it.)
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace modelswap::op {

std::string Base64Encode(std::string_view bytes);

[[nodiscard]] Result<std::string> Base64Decode(std::string_view text);

// Base64Decode after dropping line breaks and spaces, which kubeconfig files written by hand or
// by tools wrapping long lines contain.
[[nodiscard]] Result<std::string> Base64DecodeIgnoringLineBreaks(std::string_view text);

}  // namespace modelswap::op
