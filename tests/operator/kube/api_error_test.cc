// API Status -> Error mapping, checked against the recorded kube-apiserver responses.
#include "operator/kube/api_error.h"

#include <gtest/gtest.h>

#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

using testing::Fixture;
using testing::ParseHttpFixture;

Error FromFixture(const std::string& file, size_t exchange = 0) {
  auto ex = ParseHttpFixture(Fixture(file));
  EXPECT_GT(ex.size(), exchange) << file;
  std::optional<int> retry;
  for (const auto& h : ex[exchange].response_headers) {
    if (h.rfind("Retry-After: ", 0) == 0) retry = std::stoi(h.substr(13));
  }
  return ApiError(ex[exchange].request_line, ex[exchange].status, ex[exchange].response_body,
                  retry);
}

TEST(ApiErrorTest, NotFoundFromFixture) {
  Error e = FromFixture("get-404.http");
  EXPECT_EQ(e.code(), Code::kNotFound);
  EXPECT_NE(e.message().find("modelversions.modelswap.io \"ranker-v99\" not found"),
            std::string::npos);
}

TEST(ApiErrorTest, StaleUpdateIsAborted) {
  EXPECT_EQ(FromFixture("update-stale-409.http").code(), Code::kAborted);
  EXPECT_EQ(FromFixture("patch-stale-409.http").code(), Code::kAborted);
  EXPECT_TRUE(IsConflict(FromFixture("lease-update-409.http")));
}

TEST(ApiErrorTest, InvalidIsInvalidArgumentWithCauses) {
  Error e = FromFixture("create-invalid-422.http");
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_NE(e.message().find("spec.model"), std::string::npos);
}

TEST(ApiErrorTest, ListTooOldIsExpired) {
  Error e = FromFixture("list-410.http");
  EXPECT_TRUE(IsExpired(e));
  EXPECT_NE(e.message().find("too old"), std::string::npos);
}

TEST(ApiErrorTest, TimeoutKeepsRetryAfter) {
  Error e = FromFixture("rv-too-large.http");
  EXPECT_EQ(e.code(), Code::kDeadlineExceeded);
  ASSERT_TRUE(RetryAfter(e).has_value());
  EXPECT_EQ(RetryAfter(e)->count(), 1);
}

TEST(ApiErrorTest, ForbiddenAndUnauthorized) {
  EXPECT_EQ(FromFixture("forbidden-403.http").code(), Code::kPermissionDenied);
  EXPECT_EQ(FromFixture("unauthorized-401.http").code(), Code::kPermissionDenied);
}

TEST(ApiErrorTest, TooManyRequestsIsUnavailableWithRetryAfter) {
  Error e =
      ApiError("GET /x", 429, R"({"kind":"Status","code":429,"reason":"TooManyRequests"})", 3);
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_EQ(RetryAfter(e)->count(), 3);
}

TEST(ApiErrorTest, AlreadyExistsIsNotAConflict) {
  Error e = ApiError("POST /jobs", 409, R"({"kind":"Status","code":409,"reason":"AlreadyExists"})");
  EXPECT_EQ(e.code(), Code::kAlreadyExists);
}

TEST(ApiErrorTest, NonStatusBodyKeepsHttpCode) {
  Error e = ApiError("GET /x", 503, "<html>bad gateway</html>");
  EXPECT_EQ(e.code(), Code::kUnavailable);
  EXPECT_NE(e.message().find("bad gateway"), std::string::npos);
  EXPECT_FALSE(RetryAfter(e).has_value());
}

TEST(ApiErrorTest, DeleteReturnsSuccessStatus) {
  auto ex = ParseHttpFixture(Fixture("delete.http"));
  auto st = ParseApiStatus(ex[0].response_body);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->status, "Success");
  EXPECT_EQ(ex[1].status, 404);
}

}  // namespace
}  // namespace modelswap::op
