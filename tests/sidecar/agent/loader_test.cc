// The load pipeline in-process: success, each rejection, and truncation during prefault on both
// prefault paths (MADV_POPULATE_READ's EFAULT, and the SIGBUS guard of the touch fallback).
#include <gtest/gtest.h>

#include <filesystem>

#include "common/names.h"
#include "sidecar/agent/loader.h"
#include "sidecar/agent/prefault.h"
#include "sidecar/agent/sigbus_guard.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"
#include "tests/testing/write_request.h"

namespace modelswap::agent {
namespace {

using modelswap::testing::MakeWriteRequest;

using modelswap::testing::TempDir;

class LoaderTest : public ::testing::Test {
 protected:
  Manifest WriteAndPublish(const std::string& version, uint64_t bytes = 256 << 10) {
    WriteRequest req = MakeWriteRequest(dir_.path(), "m", version, GenerateSource{bytes, 1, 64});
    EXPECT_TRUE(WriteVersion(DefaultEnv(), req).has_value());
    auto m = PublishVersion(DefaultEnv(), dir_.path(), "m", version);
    EXPECT_TRUE(m.has_value());
    return *m;
  }
  TempDir dir_;
};

TEST_F(LoaderTest, LoadsVerifiesAndPrefaults) {
  Manifest m = WriteAndPublish("v1");
  auto v = LoadVersion(DefaultEnv(), dir_.path(), m, {});
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ((*v)->prefault_method, "populate_read");
  EXPECT_EQ((*v)->mapping->bytes().size(), m.bytes);
  auto resident = DefaultEnv()->ResidentBytes((*v)->mapping->bytes());
  ASSERT_TRUE(resident.has_value());
  EXPECT_EQ(*resident, m.bytes);
}

TEST_F(LoaderTest, RejectsAFileWhoseChecksumIsNotTheManifests) {
  Manifest m = WriteAndPublish("v1");
  m.checksum = "xxh3:0000000000000001";
  auto v = LoadVersion(DefaultEnv(), dir_.path(), m, {});
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kCorruption);
  EXPECT_NE(v.error().message().find("differs from the manifest"), std::string::npos);
}

TEST_F(LoaderTest, RejectsAMissingFile) {
  Manifest m = WriteAndPublish("v1");
  std::filesystem::remove(VersionPath(dir_.path(), "m", "v1"));
  auto v = LoadVersion(DefaultEnv(), dir_.path(), m, {});
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kNotFound);
}

// Truncates the file being prefaulted just before the prefault touches it.
class TruncatingEnv : public EnvWrapper {
 public:
  TruncatingEnv(std::string path, bool populate_supported)
      : EnvWrapper(DefaultEnv()), path_(std::move(path)), populate_(populate_supported) {}
  Status PopulateRead(std::span<const std::byte> region) override {
    std::filesystem::resize_file(path_, 4096);
    if (!populate_) return Fail(Code::kNotSupported, "test: no MADV_POPULATE_READ");
    return target()->PopulateRead(region);
  }

 private:
  std::string path_;
  bool populate_;
};

TEST_F(LoaderTest, TruncationDuringPopulateReadIsAnErrorNotACrash) {
  Manifest m = WriteAndPublish("v1");
  TruncatingEnv env(VersionPath(dir_.path(), "m", "v1"), true);
  auto v = LoadVersion(&env, dir_.path(), m, {});
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kIOError);
  EXPECT_NE(v.error().message().find("EFAULT"), std::string::npos) << v.error().ToString();
}

TEST_F(LoaderTest, TruncationDuringTheTouchFallbackIsCaughtBySigbusGuard) {
  Manifest m = WriteAndPublish("v1");
  TruncatingEnv env(VersionPath(dir_.path(), "m", "v1"), false);
  auto v = LoadVersion(&env, dir_.path(), m, {});
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kIOError);
  EXPECT_NE(v.error().message().find("SIGBUS"), std::string::npos) << v.error().ToString();
}

class NoPopulateEnv : public EnvWrapper {
 public:
  NoPopulateEnv() : EnvWrapper(DefaultEnv()) {}
  Status PopulateRead(std::span<const std::byte>) override {
    return Fail(Code::kNotSupported, "test: no MADV_POPULATE_READ");
  }
};

TEST_F(LoaderTest, FallsBackToWillneedAndTouchWithoutPopulateRead) {
  Manifest m = WriteAndPublish("v1");
  NoPopulateEnv env;
  auto v = LoadVersion(&env, dir_.path(), m, {});
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ((*v)->prefault_method, "willneed+touch");
}

TEST_F(LoaderTest, StagesToALocalDirectoryFirst) {
  Manifest m = WriteAndPublish("v1", 20 << 20);  // several chunks for the parallel copy
  LoadOptions o;
  o.stage_dir = dir_ / "stage";
  o.stage_threads = 3;
  auto v = LoadVersion(DefaultEnv(), dir_.path(), m, o);
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ((*v)->mapped_path, dir_ / "stage/m/v1.msf");
  EXPECT_EQ(modelswap::testing::ReadFile((*v)->mapped_path),
            modelswap::testing::ReadFile(VersionPath(dir_.path(), "m", "v1")));
}

TEST_F(LoaderTest, StagingAShortSourceIsRejected) {
  Manifest m = WriteAndPublish("v1");
  std::filesystem::resize_file(VersionPath(dir_.path(), "m", "v1"), m.bytes - 4096);
  LoadOptions o;
  o.stage_dir = dir_ / "stage";
  auto v = LoadVersion(DefaultEnv(), dir_.path(), m, o);
  ASSERT_FALSE(v.has_value());
  EXPECT_EQ(v.error().code(), Code::kCorruption);
  EXPECT_NE(v.error().message().find("source ended"), std::string::npos) << v.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "stage/m/v1.msf"));
}

TEST(SigbusGuardTest, PassesThroughTheFunctionsStatus) {
  auto st = RunSigbusGuarded("t", [] { return Status(Fail(Code::kAborted, "inner")); });
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kAborted);
  EXPECT_TRUE(RunSigbusGuarded("t", [] { return Ok(); }).has_value());
}

}  // namespace
}  // namespace modelswap::agent
