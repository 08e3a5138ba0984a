// ShmMapping and OpenShmMapping (common/shm_file.h): the one holder of a shared-memory file's
// descriptor and mapping, and the checks every channel, region and control block open makes.
#include "common/shm_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

void WriteFile(const std::string& path, size_t bytes) {
  std::ofstream(path, std::ios::binary) << std::string(bytes, 'x');
}

bool FdOpen(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

ShmOpenOptions Options(uint64_t header_bytes) {
  ShmOpenOptions o;
  o.kind = "thing";
  o.header_bytes = header_bytes;
  return o;
}

TEST(ShmMapping, OpensAndMapsTheWholeFileShared) {
  testing::TempDir dir;
  WriteFile(dir / "f", 8192);
  Result<ShmMapping> m = OpenShmMapping(dir / "f", Options(64));
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(m->size(), 8192u);
  EXPECT_EQ(m->path(), dir / "f");
  struct stat st {};
  ASSERT_EQ(::stat((dir / "f").c_str(), &st), 0);
  EXPECT_EQ(m->inode(), static_cast<uint64_t>(st.st_ino));
  // MAP_SHARED: a store through the mapping is in the file.
  m->base()[0] = std::byte{'y'};
  std::ifstream in(dir / "f", std::ios::binary);
  EXPECT_EQ(in.get(), 'y');
}

TEST(ShmMapping, MissingFileIsNotFound) {
  testing::TempDir dir;
  Result<ShmMapping> m = OpenShmMapping(dir / "absent", Options(64));
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kNotFound);
  EXPECT_NE(m.error().message().find("open " + (dir / "absent")), std::string::npos);
}

TEST(ShmMapping, DirectoryIsNotARegularFile) {
  testing::TempDir dir;
  ShmOpenOptions o = Options(64);
  o.access = MapAccess::kReadOnly;  // a directory opens read-only; only the type check refuses it
  Result<ShmMapping> m = OpenShmMapping(dir.path(), o);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kCorruption);
  EXPECT_NE(m.error().message().find("not a regular file"), std::string::npos);
}

TEST(ShmMapping, FileShorterThanTheHeaderIsCorrupt) {
  testing::TempDir dir;
  WriteFile(dir / "f", 10);
  Result<ShmMapping> m = OpenShmMapping(dir / "f", Options(256));
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kCorruption);
  EXPECT_NE(m.error().message().find("thing " + (dir / "f") +
                                     ": file is 10 bytes, smaller than the 256-byte header"),
            std::string::npos)
      << m.error().message();
}

TEST(ShmMapping, SymlinksAreRefusedUnlessFollowed) {
  testing::TempDir dir;
  WriteFile(dir / "target", 4096);
  ASSERT_EQ(::symlink((dir / "target").c_str(), (dir / "link").c_str()), 0);
  EXPECT_FALSE(OpenShmMapping(dir / "link", Options(64)).has_value());
  ShmOpenOptions o = Options(64);
  o.follow_symlinks = true;
  EXPECT_TRUE(OpenShmMapping(dir / "link", o).has_value());
}

TEST(ShmMapping, HeldLockIsFailedPreconditionWithTheCallersMessage) {
  testing::TempDir dir;
  WriteFile(dir / "f", 4096);
  ShmOpenOptions o = Options(64);
  o.held_message = "thing is busy";
  Result<ShmMapping> first = OpenShmMapping(dir / "f", o);
  ASSERT_TRUE(first.has_value());
  // flock belongs to the open file description, so a second open conflicts even in-process.
  Result<ShmMapping> second = OpenShmMapping(dir / "f", o);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(second.error().message(), "thing is busy");
  // Without a lock request nothing is taken or checked.
  EXPECT_TRUE(OpenShmMapping(dir / "f", Options(64)).has_value());
  // Released with the mapping: the next locker gets it.
  *first = ShmMapping();
  EXPECT_TRUE(OpenShmMapping(dir / "f", o).has_value());
}

TEST(ShmMapping, MoveAssignmentReleasesTheOldFile) {
  testing::TempDir dir;
  WriteFile(dir / "a", 4096);
  WriteFile(dir / "b", 4096);
  Result<ShmMapping> a = OpenShmMapping(dir / "a", Options(64));
  Result<ShmMapping> b = OpenShmMapping(dir / "b", Options(64));
  ASSERT_TRUE(a && b);
  const int a_fd = a->fd();
  const int b_fd = b->fd();
  *a = std::move(*b);
  EXPECT_FALSE(FdOpen(a_fd));
  EXPECT_TRUE(FdOpen(b_fd));
  EXPECT_EQ(a->fd(), b_fd);
  EXPECT_EQ(a->path(), dir / "b");
  EXPECT_EQ(b->fd(), -1);
  EXPECT_EQ(b->base(), nullptr);
}

TEST(ShmMapping, ReplacedSeesRemovalAndReplacement) {
  testing::TempDir dir;
  WriteFile(dir / "f", 4096);
  Result<ShmMapping> m = OpenShmMapping(dir / "f", Options(64));
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(m->Replaced().value());
  WriteFile(dir / "g", 4096);
  ASSERT_EQ(::rename((dir / "g").c_str(), (dir / "f").c_str()), 0);
  EXPECT_TRUE(m->Replaced().value());
  ASSERT_EQ(::unlink((dir / "f").c_str()), 0);
  EXPECT_TRUE(m->Replaced().value());
}

TEST(ShmMapping, SizeAndMapNewFileZeroFills) {
  testing::TempDir dir;
  const int fd = ::open((dir / "new").c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  Result<ShmMapping> m = SizeAndMapNewFile(fd, 12288, dir / "new");
  ASSERT_TRUE(m.has_value()) << m.error().ToString();
  EXPECT_EQ(m->fd(), fd);
  EXPECT_EQ(m->size(), 12288u);
  EXPECT_EQ(m->base()[12287], std::byte{0});
  struct stat st {};
  ASSERT_EQ(::stat((dir / "new").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 12288);
}

TEST(ShmMapping, MapFailureClosesTheDescriptor) {
  testing::TempDir dir;
  WriteFile(dir / "f", 4096);
  const int fd = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // A writable shared mapping of a read-only descriptor is EACCES.
  Result<ShmMapping> m = ShmMapping::Map(fd, 4096, MapAccess::kReadWrite, dir / "f");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kPermissionDenied);
  EXPECT_NE(m.error().message().find("mmap " + (dir / "f")), std::string::npos);
  EXPECT_FALSE(FdOpen(fd));
}

TEST(ShmMapping, LockExclusiveNamesOnlyARealHolder) {
  testing::TempDir dir;
  WriteFile(dir / "f", 1);
  const int a = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  const int b = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_TRUE(a >= 0 && b >= 0);
  EXPECT_TRUE(LockExclusive(a, dir / "f", "held").has_value());
  Status s = LockExclusive(b, dir / "f", "held");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(s.error().message(), "held");
  ::close(a);
  ::close(b);
  // A bad descriptor is the errno's error, not "held".
  Status bad = LockExclusive(-1, dir / "f", "held");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("flock"), std::string::npos);
}

}  // namespace
}  // namespace modelswap
