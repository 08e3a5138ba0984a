// A region file truncated by another process of the pod (ftruncate to 0, here by coreutils
// truncate in a child process): the app's stores and commits and the snapshot host's reads
// survive the SIGBUS (common/mapping_guard.h) and the damage is reported, never taken as data.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "sidecar/client/region/region.h"
#include "sidecar/client/region/region_view.h"

namespace modelswap {
namespace {

void TruncateByAnotherProcess(const std::string& path) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl("/usr/bin/truncate", "truncate", "-s", "0", path.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

class RegionTruncationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/dev/shm/ms-region-trunc-XXXXXX";
    if (!std::filesystem::exists("/dev/shm")) tmpl = "/tmp/ms-region-trunc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(RegionTruncationTest, AppAndHostSurviveAndReportTruncation) {
  auto region = Region::Open(dir_, "state", {.bytes = 64 << 10, .block_bytes = 4096});
  ASSERT_TRUE(region.has_value()) << region.error().ToString();
  std::vector<std::byte> data(8192, std::byte{7});
  ASSERT_TRUE(region->Write(0, data));
  EXPECT_EQ(region->Commit(), 1u);
  auto view = snapshot::RegionView::Open(dir_, "state");
  ASSERT_TRUE(view.has_value()) << view.error().ToString();
  EXPECT_FALSE(region->damaged());

  TruncateByAnotherProcess(region->path());

  // The app keeps writing and committing: its stores fault, land in private pages, and the
  // region says so.
  ASSERT_TRUE(region->Write(4096, data));
  (void)region->Commit();
  EXPECT_TRUE(region->damaged());
  // The host's reads fault too and read zeros; the view reports it.
  EXPECT_EQ(view->committed_gen(), 0u);
  EXPECT_TRUE(view->file().damaged());
  // A new attach finds a file too short to be a region.
  EXPECT_FALSE(Region::Open(dir_, "state", {.bytes = 64 << 10, .block_bytes = 4096}));
}

}  // namespace
}  // namespace modelswap
