// The writer: sources, fallocate refusal, never overwriting, crash safety, errors that name the
// problem.
#include "sidecar/writer/writer.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "common/names.h"
#include "sidecar/volume/manifest.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/synthetic_data.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/write_request.h"

namespace modelswap {
namespace {

using modelswap::testing::MakeWriteRequest;

class WriterTest : public ::testing::Test {
 protected:
  WriteRequest Request(const std::string& version, WriteSource source) {
    return MakeWriteRequest(dir_.path(), "ranker", version, std::move(source));
  }
  std::vector<std::string> VersionDirNames() {
    std::vector<std::string> names;
    for (auto& e : std::filesystem::directory_iterator(VersionsDir(dir_.path(), "ranker"))) {
      names.push_back(e.path().filename());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  std::string WriteTsv(const std::string& text) {
    std::string path = dir_ / "in.tsv";
    testing::WriteAll(path, std::as_bytes(std::span(text)));
    return path;
  }

  testing::TempDir dir_;
  testing::FaultEnv env_;
};

TEST_F(WriterTest, GeneratedValuesCarryModelVersionAndKey) {
  auto r = WriteVersion(&env_, Request("v3", GenerateSource{1 << 20, 9, 200}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_GE(r->entry_count, (1u << 20) / 220);
  auto file = OpenModelFile(&env_, r->path, msf::VerifyLevel::kFull);
  ASSERT_TRUE(file.has_value());
  std::string expected;
  for (uint64_t k : {uint64_t{0}, uint64_t{1}, r->entry_count - 1}) {
    SyntheticValue("ranker", "v3", k, 9, 200, &expected);
    EXPECT_EQ(file->reader.Find(std::string_view(std::to_string(k))), expected);
    EXPECT_TRUE(expected.starts_with("ranker/v3/" + std::to_string(k) + "/"));
  }
  EXPECT_EQ(file->reader.checksum(), r->checksum);
  EXPECT_EQ(VersionDirNames(), std::vector<std::string>{"v3.msf"});
}

TEST_F(WriterTest, WorksWhenFallocateIsRefused) {
  env_.refuse_fallocate = true;
  auto r = WriteVersion(&env_, Request("v1", GenerateSource{100'000, 1, 100}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(env_.fallocate_calls, 1);
  EXPECT_TRUE(VerifyVersionFile(&env_, dir_.path(), "ranker", "v1").has_value());
}

TEST_F(WriterTest, FallocateOverReservationIsTrimmed) {
  auto r = WriteVersion(&env_, Request("v1", GenerateSource{100'000, 1, 100}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(env_.Stat(r->path)->size, r->bytes);
  EXPECT_EQ(r->bytes % 4096, 0u);
}

TEST_F(WriterTest, ExistingVersionIsNeverOverwritten) {
  auto first = WriteVersion(&env_, Request("v1", GenerateSource{10'000, 1, 100}));
  ASSERT_TRUE(first.has_value());
  auto second = WriteVersion(&env_, Request("v1", GenerateSource{10'000, 2, 100}));
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), Code::kAlreadyExists);
  EXPECT_NE(second.error().message().find("never overwritten"), std::string::npos);
  EXPECT_EQ(VerifyVersionFile(&env_, dir_.path(), "ranker", "v1")->checksum, first->checksum);
  EXPECT_EQ(VersionDirNames(), std::vector<std::string>{"v1.msf"});
}

TEST_F(WriterTest, ReuseExistingReportsAVerifiedFileAndRefusesACorruptOne) {
  auto first = WriteVersion(&env_, Request("v1", GenerateSource{10'000, 1, 100}));
  ASSERT_TRUE(first.has_value());
  WriteRequest again = Request("v1", GenerateSource{10'000, 2, 100});
  again.reuse_existing = true;
  auto reused = WriteVersion(&env_, again);
  ASSERT_TRUE(reused.has_value()) << reused.error().ToString();
  EXPECT_TRUE(reused->reused);
  EXPECT_EQ(reused->checksum, first->checksum);
  EXPECT_EQ(reused->entry_count, first->entry_count);

  auto bytes = testing::ReadAll(first->path);
  bytes[4100] ^= std::byte{1};
  testing::WriteAll(first->path, bytes);
  auto corrupt = WriteVersion(&env_, again);
  ASSERT_FALSE(corrupt.has_value());
  EXPECT_EQ(corrupt.error().code(), Code::kCorruption);
  EXPECT_NE(corrupt.error().message().find("does not verify"), std::string::npos);
  EXPECT_EQ(testing::ReadAll(first->path), bytes);  // left as it was, not overwritten
}

// A writer killed mid-write (here: _exit in the middle of its writes, in a child process)
// leaves only a .tmp- file, never a visible version; the next attempt cleans it up.
TEST_F(WriterTest, CrashMidWriteLeavesOnlyATempFile) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    testing::FaultEnv crashing;
    crashing.on_pwrite = [](uint64_t n) {
      if (n == 3) _exit(42);
    };
    (void)WriteVersion(&crashing, Request("v1", GenerateSource{20 << 20, 1, 1000}));
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 42) << "the child did not crash where planned";
  auto names = VersionDirNames();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_TRUE(names[0].starts_with(".tmp-v1.msf-")) << names[0];
  EXPECT_FALSE(env_.Stat(VersionPath(dir_.path(), "ranker", "v1")).has_value());

  ASSERT_TRUE(WriteVersion(&env_, Request("v1", GenerateSource{10'000, 1, 100})).has_value());
  EXPECT_EQ(VersionDirNames(), std::vector<std::string>{"v1.msf"});
}

TEST_F(WriterTest, TsvRoundTripWithEscapesAndCrlf) {
  std::string path =
      WriteTsv("alpha\tone\r\n\nbeta\ttwo\tstill two\nbin\\x00\\t\tline\\nbreak\\\\\n");
  auto r = WriteVersion(&env_, Request("t1", TsvSource{path}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->entry_count, 3u);
  auto file = OpenModelFile(&env_, r->path, msf::VerifyLevel::kFull);
  EXPECT_EQ(file->reader.Find(std::string_view("alpha")), "one");
  EXPECT_EQ(file->reader.Find(std::string_view("beta")), "two\tstill two");
  EXPECT_EQ(file->reader.Find(std::string_view(std::string("bin\0\t", 5))), "line\nbreak\\");
}

TEST_F(WriterTest, TsvWithoutTrailingNewline) {
  auto r = WriteVersion(&env_, Request("t1", TsvSource{WriteTsv("a\t1\nb\t2")}));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->entry_count, 2u);
}

TEST_F(WriterTest, TsvErrorsNameTheLine) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"a\t1\nnotab\n", "line 2: no TAB between key and value"},
      {"a\t1\n\tx\n", "line 2: empty key"},
      {"a\t1\nb\t\\q\n", "line 2: value: unknown escape \\q"},
      {"a\\x4\t1\n", "line 1: key: \\x needs two hex digits"},
      {"a\t1\\\n", "line 1: value: backslash at end of field"},
      {"a\t1\nb\t2\n\na\t3\n", "duplicate key \"a\" at line 4 (first at line 1)"},
      // Tombstones (`key<TAB>\N`) only in a delta; \N inside a field is no escape.
      {"a\t1\nb\t\\N\n", "line 2: key<TAB>\\N deletes a key, which only a delta can do"},
      {"a\tx\\N\n", "line 1: value: \\N is only a whole value"},
  };
  int i = 0;
  for (const auto& c : cases) {
    auto r = WriteVersion(&env_, Request("bad" + std::to_string(i++), TsvSource{WriteTsv(c.text)}));
    ASSERT_FALSE(r.has_value()) << c.want;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.want), std::string::npos) << r.error().message();
  }
  // Nothing was left behind by the failed writes.
  EXPECT_TRUE(VersionDirNames().empty());
}

TEST_F(WriterTest, ReadErrorOnTheSourceIsReportedAndCleanedUp) {
  std::string path = WriteTsv(std::string(10 << 20, 'x') + "\t1\n");
  env_.fail_read_number = 2;
  auto r = WriteVersion(&env_, Request("v1", TsvSource{path}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kIOError);
  EXPECT_NE(r.error().message().find("in.tsv"), std::string::npos) << r.error().message();
  EXPECT_TRUE(VersionDirNames().empty());
}

TEST_F(WriterTest, ShortReadsStillParse) {
  std::string path = WriteTsv("alpha\tone\nbeta\ttwo\n");
  env_.max_read_bytes = 3;
  auto r = WriteVersion(&env_, Request("v1", TsvSource{path}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->entry_count, 2u);
}

TEST_F(WriterTest, MsfImportRenamesAndValidates) {
  std::string src = dir_ / "elsewhere.msf";
  testing::BuildMsfFile(src, {{"k", "v"}, {"k2", "v2"}}, "other", "x");
  auto r = WriteVersion(&env_, Request("v5", MsfSource{src}));
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  auto info = VerifyVersionFile(&env_, dir_.path(), "ranker", "v5");
  ASSERT_TRUE(info.has_value()) << info.error().ToString();
  EXPECT_EQ(info->entry_count, 2u);

  auto bytes = testing::ReadAll(src);
  bytes[5000] ^= std::byte{1};
  testing::WriteAll(src, bytes);
  auto bad = WriteVersion(&env_, Request("v6", MsfSource{src}));
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Code::kCorruption);
  EXPECT_NE(bad.error().message().find("elsewhere.msf"), std::string::npos);
}

// A file re-signed after its index was edited (a slot's fingerprint no longer its key's) is
// refused as a --from-msf source: lookups in it would miss keys that are in its data.
TEST_F(WriterTest, MsfImportRefusesAFileWhoseIndexLies) {
  testing::Entries entries;
  for (int i = 0; i < 50; ++i)
    entries.emplace_back("k" + std::to_string(i), "v" + std::to_string(i));
  std::vector<std::byte> f = testing::BuildMsfBytes(entries, "other", "x");
  uint64_t index = msf::LoadU64(f.data() + testing::SectionField(1, 8));
  for (uint64_t i = 0;; ++i) {
    uint64_t slot = msf::LoadU64(f.data() + index + i * 8);
    if (slot == 0) continue;
    testing::PutU64(f, index + i * 8, slot ^ (uint64_t{1} << 62));
    break;
  }
  testing::Reseal(f);
  std::string path = dir_ / "lying.msf";
  testing::WriteAll(path, f);
  auto r = WriteVersion(DefaultEnv(), Request("v1", MsfSource{path}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kCorruption);
  EXPECT_NE(r.error().message().find("fingerprint does not match"), std::string::npos)
      << r.error().message();
}

// A versions directory that is a symlink out of the root: nothing is written through it.
TEST_F(WriterTest, SymlinkedVersionsDirectoryIsRefused) {
  testing::TempDir outside;
  std::filesystem::create_directories(dir_ / "ranker");
  ASSERT_EQ(::symlink(outside.path().c_str(), VersionsDir(dir_.path(), "ranker").c_str()), 0);
  auto r = WriteVersion(DefaultEnv(), Request("v1", GenerateSource{10'000, 1, 100}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied) << r.error().ToString();
  EXPECT_TRUE(std::filesystem::is_empty(outside.path()));
}

// A source named inside the root is opened beneath it: a symlink there pointing at a file
// outside the volume is not read.
TEST_F(WriterTest, SourceSymlinkInsideTheRootIsRefused) {
  testing::TempDir outside;
  std::string secret = outside / "secret.tsv";
  const std::string text = "k\tsecret\n";
  testing::WriteAll(secret, std::as_bytes(std::span(text)));
  ASSERT_EQ(::symlink(secret.c_str(), (dir_ / "in.tsv").c_str()), 0);
  auto r = WriteVersion(DefaultEnv(), Request("v1", TsvSource{dir_ / "in.tsv"}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied) << r.error().ToString();
}

TEST_F(WriterTest, BadNamesNeverTouchThePath) {
  for (std::string model :
       std::vector<std::string>{"", "UPPER", "-x", "a/b", "..", std::string(64, 'a')}) {
    auto r =
        WriteVersion(&env_, MakeWriteRequest(dir_.path(), model, "v1", GenerateSource{10, 0, 10}));
    ASSERT_FALSE(r.has_value()) << model;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  }
  for (std::string version :
       std::vector<std::string>{"", ".", "..", "a/b", "v 1", std::string(64, 'a')}) {
    auto r = WriteVersion(&env_, Request(version, GenerateSource{10, 0, 10}));
    ASSERT_FALSE(r.has_value()) << version;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path()));
}

TEST_F(WriterTest, RemoveRefusesTheActiveVersion) {
  ASSERT_TRUE(WriteVersion(&env_, Request("v1", GenerateSource{10'000, 1, 100})).has_value());
  ASSERT_TRUE(WriteVersion(&env_, Request("v2", GenerateSource{10'000, 1, 100})).has_value());
  ASSERT_TRUE(PublishVersion(&env_, dir_.path(), "ranker", "v2").has_value());
  auto active = RemoveVersionFile(&env_, dir_.path(), "ranker", "v2");
  ASSERT_FALSE(active.has_value());
  EXPECT_EQ(active.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(RemoveVersionFile(&env_, dir_.path(), "ranker", "v1"), true);
  EXPECT_EQ(RemoveVersionFile(&env_, dir_.path(), "ranker", "v1"), false);
  EXPECT_EQ(VersionDirNames(), std::vector<std::string>{"v2.msf"});
}

}  // namespace
}  // namespace modelswap
