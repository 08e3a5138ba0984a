// Model and version names are validated before they touch a path.
#include "common/names.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace modelswap {
namespace {

TEST(Names, ModelNames) {
  for (const char* ok : {"a", "ranker", "ranker-2", "0abc", "a-b-c"}) {
    EXPECT_TRUE(ValidateModelName(ok).has_value()) << ok;
  }
  for (std::string bad : std::vector<std::string>{"", "-a", "a-", "A", "a_b", "a.b", "a/b", "..",
                                                  "a b", std::string(64, 'a')}) {
    auto st = ValidateModelName(bad);
    ASSERT_FALSE(st.has_value()) << bad;
    EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
    EXPECT_NE(st.error().message().find("model name"), std::string::npos);
  }
  EXPECT_TRUE(ValidateModelName(std::string(63, 'a')).has_value());
}

TEST(Names, VersionNames) {
  for (const char* ok : {"v7", "V7", "2026.11.21", "a_b-c.d", "...", ".hidden"}) {
    EXPECT_TRUE(ValidateVersionName(ok).has_value()) << ok;
  }
  for (std::string bad :
       std::vector<std::string>{"", ".", "..", "a/b", "a b", "v\n", std::string(64, 'v')}) {
    auto st = ValidateVersionName(bad);
    ASSERT_FALSE(st.has_value()) << bad;
    EXPECT_NE(st.error().message().find("version"), std::string::npos);
  }
}

TEST(Names, ErrorsQuoteUnprintableBytesSafely) {
  auto st = ValidateModelName(std::string("bad\x01\n", 5));
  ASSERT_FALSE(st.has_value());
  EXPECT_NE(st.error().message().find("\"bad??\""), std::string::npos) << st.error().message();
}

TEST(Names, Layout) {
  EXPECT_EQ(ManifestPath("/models", "ranker"), "/models/ranker/manifest.json");
  EXPECT_EQ(VersionPath("/models/", "ranker", "v7"), "/models/ranker/versions/v7.msf");
  EXPECT_EQ(VersionTempPrefix("v7"), ".tmp-v7.msf-");
}

TEST(Names, ResolveShmDir) {
  EXPECT_EQ(ResolveShmDir("/given"), "/given");
  ::setenv("MODELSWAP_SHM_DIR", "/from-env", 1);
  EXPECT_EQ(ResolveShmDir(""), "/from-env");
  ::setenv("MODELSWAP_SHM_DIR", "", 1);
  EXPECT_EQ(ResolveShmDir(""), "/dev/shm/modelswap");
  ::unsetenv("MODELSWAP_SHM_DIR");
  EXPECT_EQ(ResolveShmDir(""), "/dev/shm/modelswap");
}

}  // namespace
}  // namespace modelswap
