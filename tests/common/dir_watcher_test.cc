// DirWatcher (common/dir_watcher.h): which events wake a Wait, Wake, pure polling, and a watched
// directory that appears or is replaced later. Every wait that expects an event has its event
// queued before it starts, and a wait that expects none has timeout 0: no timing is assumed.
#include "common/dir_watcher.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

constexpr int64_t kLong = 10'000'000'000;  // bounds a wait whose event is already queued

void Touch(const std::string& path) {
  std::ofstream(path) << "x";
}

TEST(DirWatcher, NamedFileWakesAndOtherNamesDoNot) {
  testing::TempDir dir;
  DirWatcher w(dir.path(), "manifest.json");
  ASSERT_TRUE(w.watching());
  Touch(dir / "other.json");
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);
  Touch(dir / "manifest.json");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
  std::filesystem::rename(dir / "manifest.json", dir / "moved.json");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
  // Drained: nothing left to report.
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);
}

TEST(DirWatcher, EmptyNameWatchesEveryEntry) {
  testing::TempDir dir;
  DirWatcher w(dir.path(), "");
  Touch(dir / "a.yaml");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
  std::filesystem::remove(dir / "a.yaml");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
}

TEST(DirWatcher, WakeEndsTheCurrentOrNextWait) {
  testing::TempDir dir;
  DirWatcher w(dir.path(), "manifest.json");
  w.Wake();
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kWoken);
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);
}

TEST(DirWatcher, WithoutInotifyOnlyTimesOutOrWakes) {
  testing::TempDir dir;
  DirWatcher w(dir.path(), "", /*use_inotify=*/false);
  EXPECT_FALSE(w.watching());
  Touch(dir / "a.yaml");
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);
  w.Wake();
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kWoken);
}

TEST(DirWatcher, ADirectoryThatAppearsLaterIsWatched) {
  testing::TempDir dir;
  const std::string models = dir / "ranker";
  DirWatcher w(models, "manifest.json");
  EXPECT_FALSE(w.watching());
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);
  std::filesystem::create_directory(models);
  EXPECT_EQ(w.Wait(0), DirWatcher::Reason::kTimeout);  // adds the watch
  EXPECT_TRUE(w.watching());
  Touch(models + "/manifest.json");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
}

TEST(DirWatcher, AReplacedDirectoryIsWatchedAgain) {
  testing::TempDir dir;
  const std::string models = dir / "ranker";
  std::filesystem::create_directory(models);
  DirWatcher w(models, "manifest.json");
  ASSERT_TRUE(w.watching());
  std::filesystem::remove(models);
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);  // the directory itself went away
  std::filesystem::create_directory(models);
  (void)w.Wait(0);  // watches the new directory
  ASSERT_TRUE(w.watching());
  Touch(models + "/manifest.json");
  EXPECT_EQ(w.Wait(kLong), DirWatcher::Reason::kEvent);
}

}  // namespace
}  // namespace modelswap
