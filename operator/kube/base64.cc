// Strict standard base64 over OpenSSL; see base64.h.
#include "operator/kube/base64.h"

#include <openssl/evp.h>
#include <spdlog/fmt/fmt.h>

#include <climits>

namespace modelswap::op {
namespace {

bool InAlphabet(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  if (bytes.empty()) return out;
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Fail(Code::kInvalidArgument,
                fmt::format("base64: length {} is not a multiple of 4", text.size()));
  }
  if (text.size() > INT_MAX) {
    return Fail(Code::kInvalidArgument, fmt::format("base64: {} bytes is too long", text.size()));
  }
  size_t pad = 0;
  while (pad < text.size() && text[text.size() - 1 - pad] == '=')
    ++pad;
  if (pad > 2) return Fail(Code::kInvalidArgument, "base64: more than two '=' of padding");
  for (size_t i = 0; i < text.size() - pad; ++i) {
    if (!InAlphabet(text[i])) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("base64: byte {:#04x} at offset {} is not in the alphabet{}",
                              static_cast<unsigned char>(text[i]), i,
                              text[i] == '=' ? " (padding before the end)" : ""));
    }
  }
  std::string out(text.size() / 4 * 3, '\0');
  if (text.empty()) return out;
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return Fail(Code::kInvalidArgument, "base64: does not decode");
  // EVP_DecodeBlock keeps the zero bytes the '=' padding stands for: drop them.
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

Result<std::string> Base64DecodeIgnoringLineBreaks(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ') compact.push_back(c);
  }
  return Base64Decode(compact);
}

}  // namespace modelswap::op
