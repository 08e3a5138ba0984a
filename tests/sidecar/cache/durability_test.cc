// Boot-id marks (sidecar/cache/durability.h): a version assembled this boot is published unsynced
// and marked; one marked by another boot (the node went down since: its bytes may never have
// reached the disk) is verified in full again before use, then synced and unmarked, and rebuilt
// if it fails; without a boot id the file is fsynced and left unmarked. The boot id is faked
// through the Env.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>

#include "sidecar/cache/durability.h"
#include "tests/sidecar/cache/cache_fixture.h"

namespace modelswap::cache::testing {
namespace {

class BootEnv : public EnvWrapper {
 public:
  explicit BootEnv(std::string boot) : EnvWrapper(DefaultEnv()), boot_(std::move(boot)) {}
  Result<std::string> BootId() override {
    if (boot_.empty()) return Fail(Code::kUnavailable, "no boot id in this test");
    return boot_;
  }
  Status Fsync(int fd) override {
    ++fsyncs_;
    return EnvWrapper::Fsync(fd);
  }
  int fsyncs_ = 0;

 private:
  std::string boot_;
};

// The mark on path: "" if none, "?" if the file system has no user xattrs.
std::string MarkOf(const std::string& path) {
  char buf[128];
  ssize_t n = ::getxattr(path.c_str(), kBootMarkXattr, buf, sizeof(buf));
  if (n < 0) return errno == ENOTSUP ? "?" : "";
  return std::string(buf, static_cast<size_t>(n));
}

// What a crash can do to unsynced data: a range of the file reads as zeros after the reboot.
void ZeroMiddle(const std::string& path, size_t size) {
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<char> zeros(4096, 0);
  ASSERT_EQ(::pwrite(fd, zeros.data(), zeros.size(), static_cast<off_t>(size / 2)), 4096);
  ::close(fd);
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
}

TEST_F(CacheTest, AVersionAssembledThisBootIsMarkedAndUsedWithoutARecheck) {
  Version v = Make({});
  BootEnv boot_a("boot-a");
  auto got = Assemble(&boot_a, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  if (MarkOf(got->path) == "?") GTEST_SKIP() << "no user xattrs on " << cache_dir();
  EXPECT_TRUE(got->stats.fsync_deferred);
  EXPECT_EQ(MarkOf(got->path), "boot-a");
  EXPECT_EQ(boot_a.fsyncs_, 0);

  auto again = Assemble(&boot_a, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_TRUE(again->stats.already_assembled);
  EXPECT_FALSE(again->stats.reverified);
  EXPECT_EQ(MarkOf(got->path), "boot-a");
}

TEST_F(CacheTest, AVersionAssembledDuringAnotherBootIsVerifiedAgainThenSynced) {
  Version v = Make({});
  BootEnv boot_a("boot-a");
  auto got = Assemble(&boot_a, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  if (MarkOf(got->path) == "?") GTEST_SKIP() << "no user xattrs on " << cache_dir();
  got->hold = Hold();
  int fetched = fetches_.load();

  BootEnv boot_b("boot-b");
  auto after = Assemble(&boot_b, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_TRUE(after->stats.already_assembled);
  EXPECT_TRUE(after->stats.reverified);
  EXPECT_EQ(fetches_.load(), fetched);
  EXPECT_EQ(boot_b.fsyncs_, 1);
  EXPECT_EQ(MarkOf(after->path), "");
  struct stat st;
  ASSERT_EQ(::stat(after->path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);

  // Synced and unmarked: a third boot uses it as it is.
  BootEnv boot_c("boot-c");
  auto third = Assemble(&boot_c, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(third.has_value()) << third.error().ToString();
  EXPECT_FALSE(third->stats.reverified);
  EXPECT_EQ(boot_c.fsyncs_, 0);
}

TEST_F(CacheTest, AVersionTornDuringAnotherBootIsRebuilt) {
  Version v = Make({});
  BootEnv boot_a("boot-a");
  auto got = Assemble(&boot_a, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  if (MarkOf(got->path) == "?") GTEST_SKIP() << "no user xattrs on " << cache_dir();
  got->hold = Hold();
  ZeroMiddle(got->path, v.bytes.size());
  EXPECT_EQ(MarkOf(got->path), "boot-a");

  BootEnv boot_b("boot-b");
  auto after = Assemble(&boot_b, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_FALSE(after->stats.already_assembled);
  EXPECT_FALSE(after->stats.reverified);
  EXPECT_EQ(ReadWhole(after->path), v.bytes);
  EXPECT_EQ(MarkOf(after->path), "boot-b");
  EXPECT_FALSE(HasTemp("ranker"));
}

TEST_F(CacheTest, WithoutABootIdTheVersionIsFsyncedAndUnmarked) {
  Version v = Make({});
  BootEnv no_boot("");
  auto got = Assemble(&no_boot, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(got.has_value()) << got.error().ToString();
  EXPECT_FALSE(got->stats.fsync_deferred);
  EXPECT_GE(no_boot.fsyncs_, 1);
  std::string mark = MarkOf(got->path);
  EXPECT_TRUE(mark.empty() || mark == "?") << mark;

  // An unmarked file is never verified again, whatever the boot.
  BootEnv boot_b("boot-b");
  auto again = Assemble(&boot_b, Options(), v.recipe, CountingFetch());
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  EXPECT_FALSE(again->stats.reverified);
}

TEST(BootIdTest, TheRealEnvReadsThisBootsId) {
  auto id = DefaultEnv()->BootId();
  ASSERT_TRUE(id.has_value()) << id.error().ToString();
  EXPECT_EQ(id->size(), 36u) << *id;  // a UUID, its newline stripped
  EXPECT_EQ(*DefaultEnv()->BootId(), *id);
}

}  // namespace
}  // namespace modelswap::cache::testing
