// Test helpers for the admission webhook: load the recorded AdmissionReview requests, decode a
// response's base64 JSONPatch and apply it (nlohmann's RFC 6902 implementation) like the API
// server does. Header-only; used by webhook_test and webhook_server_test.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace modelswap::op::testing {

using Json = nlohmann::json;

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A recorded request from testdata/ (copied verbatim from the recordings in
// tests/operator/testdata).
inline Json Fixture(const std::string& name) {
  return Json::parse(ReadFile(std::string(MODELSWAP_WEBHOOK_TESTDATA) + "/" + name));
}

// Decodes with OpenSSL's decoder, independent of the operator's own (kubeconfig.cc), so a bug
// there cannot hide one in the patches.
inline std::string Base64Decode(const std::string& in) {
  std::string out(in.size() / 4 * 3 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  EXPECT_GE(n, 0) << "bad base64: " << in.substr(0, 40);
  if (n < 0) return {};
  // EVP_DecodeBlock counts the bytes that '=' padding stands for: drop them.
  size_t pad = in.size() >= 2 && in.substr(in.size() - 2) == "==" ? 2
               : !in.empty() && in.back() == '='                  ? 1
                                                                  : 0;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// The JSONPatch of a response (an empty array when it has none).
inline Json PatchOf(const Json& review) {
  const Json& r = review.at("response");
  if (!r.contains("patch")) return Json::array();
  EXPECT_EQ(r.value("patchType", ""), "JSONPatch");
  return Json::parse(Base64Decode(r.at("patch").get<std::string>()));
}

// Wraps `pod` into a copy of the recorded request (same uid, kinds, userInfo).
inline Json RequestWithPod(const Json& pod) {
  Json review = Fixture("admission-request-pod-create.json");
  review["request"]["object"] = pod;
  return review;
}

}  // namespace modelswap::op::testing
