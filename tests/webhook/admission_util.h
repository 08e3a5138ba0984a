// Test helpers for the admission webhook: load the recorded AdmissionReview requests, decode a
// response's base64 JSONPatch and apply it (nlohmann's RFC 6902 implementation) like the API
// server does. Header-only; used by webhook_test and webhook_server_test.
#pragma once

#include <gtest/gtest.h>

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

// A recorded request from testdata/ (copied verbatim from ../shared/k8s-fixtures).
inline Json Fixture(const std::string& name) {
  return Json::parse(ReadFile(std::string(MODELSWAP_WEBHOOK_TESTDATA) + "/" + name));
}

inline std::string Base64Decode(const std::string& in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int bits = 0, acc = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = val(c);
    EXPECT_GE(v, 0) << "bad base64 byte " << c;
    if (v < 0) return out;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
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
