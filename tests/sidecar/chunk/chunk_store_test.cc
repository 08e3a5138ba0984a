// The chunk store on the volume: put/get/has, idempotent put, and every damaged or planted chunk
// file refused with an error naming the chunk.
#include "sidecar/chunk/chunk_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <filesystem>
#include <set>

#include "tests/sidecar/chunk/chunk_test_util.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/temp_dir.h"

namespace modelswap::chunk {
namespace {

using testing::RandomBytes;

class ChunkStoreTest : public ::testing::Test {
 protected:
  // Half random, half repeated: compressible, like real model files.
  std::vector<std::byte> Content(size_t n, uint64_t seed) {
    auto out = RandomBytes(n, seed);
    for (size_t i = n / 2; i < n; ++i)
      out[i] = out[i % 64];
    return out;
  }
  std::string ChunkPath(const ChunkHash& h) { return dir_ / ChunkRel(h); }
  void Overwrite(const ChunkHash& h, std::string_view bytes) {
    std::filesystem::remove(ChunkPath(h));
    ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), ChunkPath(h), bytes).has_value());
  }
  std::string FileText(const ChunkHash& h) {
    return ReadFileToString(DefaultEnv(), ChunkPath(h), 64 << 20).value();
  }
  void ExpectCorrupt(const ChunkHash& h, size_t length, const std::string& words) {
    std::vector<std::byte> out(length);
    auto st = store_.Get(h, out);
    ASSERT_FALSE(st.has_value()) << "accepted; expected: " << words;
    EXPECT_EQ(st.error().code(), Code::kCorruption) << st.error().ToString();
    EXPECT_NE(st.error().message().find(ToHex(h)), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find(words), std::string::npos) << st.error().message();
  }

  modelswap::testing::TempDir dir_;
  ChunkStore store_{DefaultEnv(), dir_.path()};
};

TEST_F(ChunkStoreTest, PutGetHas) {
  auto content = Content(100'000, 1);
  ChunkHash h = Sha256(content);
  EXPECT_FALSE(store_.Has(h).value());
  auto put = store_.Put(h, content, 3);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_TRUE(put->stored);
  EXPECT_LT(put->stored_length, content.size());  // compressible content shrank
  EXPECT_EQ(std::filesystem::file_size(ChunkPath(h)), put->stored_length);
  EXPECT_EQ(ChunkRel(h), ".chunks/" + ToHex(h).substr(0, 2) + "/" + ToHex(h));
  EXPECT_TRUE(store_.Has(h).value());
  std::vector<std::byte> out(content.size());
  auto st = store_.Get(h, out);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(out, content);
  // No temp left behind.
  for (const auto& e : std::filesystem::directory_iterator(DirName(ChunkPath(h)))) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
  }
}

TEST_F(ChunkStoreTest, PutIsIdempotentAndNeverRewrites) {
  auto content = Content(50'000, 2);
  ChunkHash h = Sha256(content);
  auto first = store_.Put(h, content, 1);
  ASSERT_TRUE(first.has_value());
  struct stat before {};
  ASSERT_EQ(::stat(ChunkPath(h).c_str(), &before), 0);
  auto second = store_.Put(h, content, 19);
  ASSERT_TRUE(second.has_value());
  EXPECT_FALSE(second->stored);
  EXPECT_EQ(second->stored_length, first->stored_length);
  struct stat after {};
  ASSERT_EQ(::stat(ChunkPath(h).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
}

TEST_F(ChunkStoreTest, PutRefusesWrongHashAndBadArguments) {
  auto content = Content(1000, 3);
  ChunkHash wrong = Sha256(Content(1000, 4));
  auto r = store_.Put(wrong, content, 3);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_FALSE(store_.Has(wrong).value());
  EXPECT_FALSE(store_.Put(Sha256(content), content, 0).has_value());
  EXPECT_FALSE(store_.Put(Sha256({}), {}, 3).has_value());
}

TEST_F(ChunkStoreTest, GetMissingIsNotFound) {
  std::vector<std::byte> out(10);
  auto st = store_.Get(Sha256(Content(10, 5)), out);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kNotFound);
}

TEST_F(ChunkStoreTest, CorruptChunkFileDetected) {
  auto content = Content(80'000, 6);
  ChunkHash h = Sha256(content);
  ASSERT_TRUE(store_.Put(h, content, 3).has_value());
  std::string good = FileText(h);
  // A flipped byte in the compressed payload: zstd or the SHA-256 check catches it.
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x40;
  Overwrite(h, bad);
  ExpectCorrupt(h, content.size(), "");
  // Another chunk's (valid) frame under this name: only the SHA-256 can tell.
  auto other = Content(80'000, 7);
  std::string frame(ZSTD_compressBound(other.size()), '\0');
  frame.resize(ZSTD_compress(frame.data(), frame.size(), other.data(), other.size(), 1));
  Overwrite(h, frame);
  ExpectCorrupt(h, content.size(), "does not match its SHA-256");
  // Asking for the wrong length.
  Overwrite(h, good);
  ExpectCorrupt(h, content.size() - 1, "frame holds");
}

TEST_F(ChunkStoreTest, PartialChunkUnderFinalNameDetected) {
  // blobfuse renames by copy + delete: a reader can see a prefix of the file under its name.
  auto content = RandomBytes(200'000, 8);
  ChunkHash h = Sha256(content);
  ASSERT_TRUE(store_.Put(h, content, 3).has_value());
  std::string good = FileText(h);
  for (size_t n : {size_t{1}, size_t{4}, size_t{17}, good.size() / 2, good.size() - 1}) {
    Overwrite(h, good.substr(0, n));
    ExpectCorrupt(h, content.size(), "");
  }
  Overwrite(h, "");
  ExpectCorrupt(h, content.size(), "0 bytes");
  Overwrite(h, good + "trailing");
  ExpectCorrupt(h, content.size(), "not exactly one zstd frame");
}

TEST_F(ChunkStoreTest, HostileFrameHeaderDoesNotAllocate) {
  // A frame header claiming 4 GiB of content, under the name of a 1000-byte chunk.
  auto content = Content(1000, 9);
  ChunkHash h = Sha256(content);
  ASSERT_TRUE(store_.Put(h, content, 3).has_value());
  // zstd frame format (RFC 8878, 3.1.1): magic, a descriptor with an 8-byte content size and the
  // single-segment flag, the size, then one empty raw block marked last.
  std::string frame("\x28\xb5\x2f\xfd\xe0", 5);
  uint64_t declared = 4ull << 30;
  frame.append(reinterpret_cast<const char*>(&declared), 8);
  frame.append("\x01\x00\x00", 3);
  Overwrite(h, frame);
  ExpectCorrupt(h, content.size(), "frame holds 4294967296 bytes");
  // And a file far larger than any frame of this chunk could be: refused before reading.
  std::filesystem::resize_file(ChunkPath(h), 1ull << 30);
  ExpectCorrupt(h, content.size(), "impossible for a chunk");
}

TEST_F(ChunkStoreTest, SymlinksRefused) {
  auto content = Content(5000, 10);
  ChunkHash h = Sha256(content);
  // A symlink planted at the chunk's name, pointing at a valid chunk file elsewhere.
  modelswap::testing::TempDir elsewhere;
  ChunkStore other(DefaultEnv(), elsewhere.path());
  ASSERT_TRUE(other.Put(h, content, 3).has_value());
  ASSERT_TRUE(DefaultEnv()->CreateDirs(DirName(ChunkPath(h))).has_value());
  ASSERT_EQ(::symlink((elsewhere / ChunkRel(h)).c_str(), ChunkPath(h).c_str()), 0);
  std::vector<std::byte> out(content.size());
  auto st = store_.Get(h, out);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kPermissionDenied);
  EXPECT_FALSE(store_.Has(h).has_value());
  EXPECT_FALSE(store_.Remove(h).has_value());
  EXPECT_TRUE(std::filesystem::exists(elsewhere / ChunkRel(h)));
  // A symlinked .chunks directory: Put refuses rather than writing through it.
  modelswap::testing::TempDir root2;
  ASSERT_EQ(::symlink(elsewhere.path().c_str(), (root2 / ".chunks").c_str()), 0);
  ChunkStore through(DefaultEnv(), root2.path());
  auto content2 = Content(5000, 11);
  auto put = through.Put(Sha256(content2), content2, 3);
  ASSERT_FALSE(put.has_value());
  EXPECT_EQ(put.error().code(), Code::kPermissionDenied);
}

TEST_F(ChunkStoreTest, ListAndRemove) {
  std::vector<ChunkHash> hashes;
  for (int i = 0; i < 20; ++i) {
    auto c = Content(3000 + i, 100 + i);
    hashes.push_back(Sha256(c));
    ASSERT_TRUE(store_.Put(hashes.back(), c, 1).has_value());
  }
  // Things in .chunks that are not chunks are skipped.
  ASSERT_TRUE(DefaultEnv()->CreateDirs(dir_ / ".chunks/.writers").has_value());
  ASSERT_TRUE(DefaultEnv()->CreateDirs(dir_ / ".chunks/ab").has_value());
  ASSERT_TRUE(WriteFileAtomic(DefaultEnv(), dir_ / ".chunks/ab/notachunk", "x").has_value());
  auto listed = store_.List();
  ASSERT_TRUE(listed.has_value()) << listed.error().ToString();
  EXPECT_EQ(listed->size(), hashes.size());
  for (const ChunkInfo& info : *listed) {
    EXPECT_NE(std::find(hashes.begin(), hashes.end(), info.hash), hashes.end());
    EXPECT_GT(info.stored_bytes, 0u);
    EXPECT_GT(info.mtime_ns, 0);
  }
  ASSERT_TRUE(store_.Remove(hashes[0]).has_value());
  EXPECT_FALSE(store_.Has(hashes[0]).value());
  auto again = store_.Remove(hashes[0]);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kNotFound);
  EXPECT_EQ(store_.List()->size(), hashes.size() - 1);
}

TEST_F(ChunkStoreTest, ShortReadsStillGetTheChunk) {
  modelswap::testing::FaultEnv env;
  env.max_read_bytes = 7;
  ChunkStore store(&env, dir_.path());
  auto content = RandomBytes(30'000, 12);
  ChunkHash h = Sha256(content);
  ASSERT_TRUE(store.Put(h, content, 3).has_value());
  std::vector<std::byte> out(content.size());
  ASSERT_TRUE(store.Get(h, out).has_value());
  EXPECT_EQ(out, content);
  env.max_read_bytes = 0;
  env.fail_read_number = env.reads + 1;
  auto st = store.Get(h, out);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kIOError);
}

// An Env that counts fsyncs, to see when deferred puts become durable. Its SyncFilesystem does
// what `syncfs` says (by default: not supported, as on blobfuse), counting calls.
class CountingEnv : public EnvWrapper {
 public:
  enum class SyncFs { kUnsupported, kOk, kFail };
  CountingEnv() : EnvWrapper(DefaultEnv()) {}
  Status SyncFilesystem(const std::string& path) override {
    ++syncfs_calls;
    if (syncfs == SyncFs::kOk) return EnvWrapper::SyncFilesystem(path);
    if (syncfs == SyncFs::kFail) return Fail(Code::kIOError, "syncfs " + path + ": EIO");
    return Fail(Code::kNotSupported, "syncfs " + path + ": not here");
  }
  Status Fsync(int fd) override {
    ++fsyncs;
    return EnvWrapper::Fsync(fd);
  }
  Status FsyncDir(const std::string& d) override {
    ++dir_fsyncs;
    return EnvWrapper::FsyncDir(d);
  }
  int fsyncs = 0, dir_fsyncs = 0, syncfs_calls = 0;
  SyncFs syncfs = SyncFs::kUnsupported;
};

TEST_F(ChunkStoreTest, DeferredSyncFsyncsEverythingOnSync) {
  CountingEnv env;
  ChunkStore eager(&env, dir_.path());
  auto first = Content(2000, 20);
  ASSERT_TRUE(eager.Put(Sha256(first), first, 1).has_value());
  EXPECT_EQ(env.fsyncs, 1);
  EXPECT_EQ(env.dir_fsyncs, 1);

  env.fsyncs = env.dir_fsyncs = 0;
  ChunkStore store(&env, dir_.path(), ChunkStore::Options{.defer_sync = true});
  std::vector<std::vector<std::byte>> contents;
  std::set<std::string> dirs;
  for (int i = 0; i < 10; ++i) {
    contents.push_back(Content(2000 + i, 30 + i));
    ChunkHash h = Sha256(contents.back());
    dirs.insert(DirName(ChunkRel(h)));
    ASSERT_TRUE(store.Put(h, contents.back(), 1).has_value());
  }
  EXPECT_EQ(env.fsyncs, 0);
  EXPECT_EQ(env.dir_fsyncs, 0);
  ASSERT_TRUE(store.Sync().has_value());
  EXPECT_EQ(env.fsyncs, 10);
  EXPECT_EQ(env.dir_fsyncs, static_cast<int>(dirs.size()));
  ASSERT_TRUE(store.Sync().has_value());  // nothing left
  EXPECT_EQ(env.fsyncs, 10);
  // The chunks read back like any other.
  for (const auto& c : contents) {
    std::vector<std::byte> out(c.size());
    ASSERT_TRUE(store.Get(Sha256(c), out).has_value());
    EXPECT_EQ(out, c);
  }
}

// Where one syncfs commits the whole file system, Sync makes one call instead of a fsync per
// chunk and per directory; when it fails, nothing is forgotten: the next Sync covers them all.
TEST_F(ChunkStoreTest, DeferredSyncUsesOneSyncfsWhereTheFileSystemAllowsIt) {
  if (!DefaultEnv()->SyncFilesystem(dir_.path())) {
    GTEST_SKIP() << "the test directory's file system is synced file by file";
  }
  CountingEnv env;
  env.syncfs = CountingEnv::SyncFs::kFail;
  ChunkStore store(&env, dir_.path(), ChunkStore::Options{.defer_sync = true});
  for (int i = 0; i < 10; ++i) {
    auto c = Content(3000 + i, 40 + i);
    ASSERT_TRUE(store.Put(Sha256(c), c, 1).has_value());
  }
  auto failed = store.Sync();
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), Code::kIOError);
  EXPECT_NE(failed.error().message().find("chunk store sync"), std::string::npos);
  EXPECT_EQ(env.fsyncs, 0);

  env.syncfs = CountingEnv::SyncFs::kOk;
  ASSERT_TRUE(store.Sync().has_value());
  EXPECT_EQ(env.syncfs_calls, 2);
  EXPECT_EQ(env.fsyncs, 0);
  EXPECT_EQ(env.dir_fsyncs, 0);
  ASSERT_TRUE(store.Sync().has_value());  // nothing left: no call at all
  EXPECT_EQ(env.syncfs_calls, 2);

  // Unsupported (FUSE): back to one fsync per chunk file.
  env.syncfs = CountingEnv::SyncFs::kUnsupported;
  auto c = Content(5000, 99);
  ASSERT_TRUE(store.Put(Sha256(c), c, 1).has_value());
  ASSERT_TRUE(store.Sync().has_value());
  EXPECT_EQ(env.syncfs_calls, 3);
  EXPECT_EQ(env.fsyncs, 1);
  EXPECT_EQ(env.dir_fsyncs, 1);
}

// The real Env: syncfs on a local file system, kNotSupported naming the type elsewhere (procfs).
TEST(SyncFilesystemTest, LocalFileSystemsSyncOthersSayNotSupported) {
  auto proc = DefaultEnv()->SyncFilesystem("/proc/self");
  ASSERT_FALSE(proc.has_value());
  EXPECT_EQ(proc.error().code(), Code::kNotSupported);
  EXPECT_NE(proc.error().message().find("0x9fa0"), std::string::npos) << proc.error().ToString();
  auto missing = DefaultEnv()->SyncFilesystem("/nonexistent/modelswap");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace modelswap::chunk
