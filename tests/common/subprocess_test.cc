// Child-process helpers (common/subprocess.h): errno failures become Errors through
// common/posix_error.h, so their codes say what failed (a missing directory is kNotFound).
#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

TEST(LifetimeLock, HeldByAnotherDescriptionIsFailedPrecondition) {
  testing::TempDir dir;
  Result<int> first = AcquireLifetimeLock(dir / "task.lock");
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  Result<int> second = AcquireLifetimeLock(dir / "task.lock");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  ::close(*first);
  Result<int> third = AcquireLifetimeLock(dir / "task.lock");
  ASSERT_TRUE(third.has_value());
  ::close(*third);
}

TEST(LifetimeLock, MissingDirectoryIsNotFoundNamingThePath) {
  testing::TempDir dir;
  const std::string path = dir / "absent/task.lock";
  Result<int> lock = AcquireLifetimeLock(path);
  ASSERT_FALSE(lock.has_value());
  EXPECT_EQ(lock.error().code(), Code::kNotFound);
  EXPECT_NE(lock.error().message().find("open " + path + ": "), std::string::npos)
      << lock.error().message();
}

}  // namespace
}  // namespace modelswap
