// The manifest reader rejects torn, missing, bad and stale manifests; publishing raises the
// generation every time, rollbacks included.
#include "sidecar/volume/manifest.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/checksum.h"
#include "common/names.h"
#include "sidecar/volume/version_file.h"
#include "sidecar/writer/writer.h"
#include "tests/testing/fault_env.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/write_request.h"

namespace modelswap {
namespace {

using modelswap::testing::MakeWriteRequest;

class ManifestTest : public ::testing::Test {
 protected:
  void Write(const std::string& version) {
    WriteRequest req =
        MakeWriteRequest(dir_.path(), "ranker", version, GenerateSource{20'000, 1, 100});
    auto r = WriteVersion(&env_, req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
  }
  Manifest Publish(const std::string& version) {
    auto m = PublishVersion(&env_, dir_.path(), "ranker", version);
    EXPECT_TRUE(m.has_value()) << m.error().ToString();
    return m.value_or(Manifest{});
  }
  std::string ManifestText() {
    return ReadFileToString(DefaultEnv(), ManifestPath(dir_.path(), "ranker")).value();
  }
  void SetManifestText(const std::string& text) {
    ASSERT_TRUE(
        WriteFileAtomic(DefaultEnv(), ManifestPath(dir_.path(), "ranker"), text).has_value());
  }

  testing::TempDir dir_;
  testing::FaultEnv env_;
};

TEST_F(ManifestTest, MissingIsNotFound) {
  auto m = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kNotFound);
}

TEST_F(ManifestTest, PublishWritesAVerifiableManifest) {
  Write("v1");
  Manifest m = Publish("v1");
  EXPECT_EQ(m.generation, 1u);
  auto read = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(read->version, "v1");
  EXPECT_EQ(read->file, "versions/v1.msf");
  EXPECT_EQ(read->checksum, m.checksum);
  EXPECT_EQ(read->bytes, env_.Stat(VersionPath(dir_.path(), "ranker", "v1"))->size);
}

TEST_F(ManifestTest, GenerationIncreasesAcrossRepublishAndRollback) {
  Write("v1");
  Write("v2");
  EXPECT_EQ(Publish("v1").generation, 1u);
  EXPECT_EQ(Publish("v2").generation, 2u);
  EXPECT_EQ(Publish("v1").generation, 3u);  // rollback
  EXPECT_EQ(Publish("v1").generation, 4u);  // republish of the same version
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker")->version, "v1");
}

TEST_F(ManifestTest, EveryTornPrefixIsRejected) {
  Write("v1");
  Publish("v1");
  std::string full = ManifestText();
  for (size_t n = 0; n < full.size(); ++n) {
    std::string prefix = full.substr(0, n);
    // Trailing whitespace is not content: a prefix that drops only the final newline is whole.
    if (full.substr(n).find_first_not_of(" \n") == std::string::npos) continue;
    auto m = DecodeManifest(prefix);
    ASSERT_FALSE(m.has_value()) << "accepted a manifest torn at byte " << n;
    EXPECT_EQ(m.error().code(), Code::kCorruption);
  }
}

TEST_F(ManifestTest, BadChecksumIsRejected) {
  Write("v1");
  Publish("v1");
  std::string text = ManifestText();
  text.replace(text.find("\"v1\""), 4, "\"v9\"");
  SetManifestText(text);
  auto m = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("manifest_checksum mismatch"), std::string::npos)
      << m.error().message();
}

TEST_F(ManifestTest, OlderGenerationIsRejectedEqualIsAccepted) {
  Write("v1");
  Publish("v1");
  Publish("v1");  // generation 2
  auto older = ReadManifest(&env_, dir_.path(), "ranker", 3);
  ASSERT_FALSE(older.has_value());
  EXPECT_EQ(older.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(older.error().message().find("older than the held generation 3"), std::string::npos);
  EXPECT_TRUE(ReadManifest(&env_, dir_.path(), "ranker", 2).has_value());
}

TEST_F(ManifestTest, FieldChecks) {
  Manifest good{
      "ranker", "v1", "versions/v1.msf", 10, "xxh3:0123456789abcdef", 5, "2026-11-21T00:00:00Z"};
  ASSERT_TRUE(DecodeManifest(EncodeManifest(good)).has_value());
  auto expect_bad = [](Manifest m, const std::string& what) {
    auto r = DecodeManifest(EncodeManifest(m));
    ASSERT_FALSE(r.has_value()) << what;
    EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
  };
  Manifest m = good;
  m.file = "../../etc/passwd";
  expect_bad(m, "is not versions/<version>.msf");
  m = good;
  m.version = "..";
  m.file = "versions/...msf";
  expect_bad(m, "not a valid name");
  m = good;
  m.checksum = "md5:abc";
  expect_bad(m, "checksum is not xxh3");
  m = good;
  m.generation = 0;
  expect_bad(m, "generation must be at least 1");
  EXPECT_FALSE(DecodeManifest("[1,2]").has_value());
  EXPECT_FALSE(DecodeManifest("{\"manifest_checksum\": 5}").has_value());
}

TEST_F(ManifestTest, RecipeFieldIsOptionalAndChecked) {
  Manifest whole{
      "ranker", "v1", "versions/v1.msf", 10, "xxh3:0123456789abcdef", 5, "2026-11-21T00:00:00Z"};
  // Without the field the text (and so manifest_checksum) is what it was before the field
  // existed: this manifest was encoded by the code before the field was added.
  const std::string before =
      "{\n  \"bytes\": 10,\n  \"checksum\": \"xxh3:0123456789abcdef\",\n  \"file\": "
      "\"versions/v1.msf\",\n  \"generation\": 5,\n  \"manifest_checksum\": \"" +
      FormatChecksum(Xxh3(std::string_view(
          "{\"bytes\":10,\"checksum\":\"xxh3:0123456789abcdef\",\"file\":\"versions/v1.msf\","
          "\"generation\":5,\"model\":\"ranker\",\"published_at\":\"2026-11-21T00:00:00Z\","
          "\"version\":\"v1\"}"))) +
      "\",\n  \"model\": \"ranker\",\n  \"published_at\": \"2026-11-21T00:00:00Z\",\n  "
      "\"version\": \"v1\"\n}\n";
  EXPECT_EQ(EncodeManifest(whole), before);
  auto old = DecodeManifest(before);
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_TRUE(old->recipe.empty());

  Manifest chunked = whole;
  chunked.recipe = RecipeFieldFor("v1");
  EXPECT_EQ(chunked.recipe, "versions/v1.recipe");
  std::string text = EncodeManifest(chunked);
  auto back = DecodeManifest(text);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->recipe, "versions/v1.recipe");
  EXPECT_EQ(back->file, "versions/v1.msf");  // the logical name stays
  // The field is covered by the checksum: dropping or editing it is detected.
  std::string edited = text;
  edited.replace(edited.find("v1.recipe"), 9, "v2.recipe");
  EXPECT_FALSE(DecodeManifest(edited).has_value());
  for (std::string bad : {std::string("versions/v2.recipe"), std::string("../v1.recipe"),
                          std::string("versions/v1.msf"), std::string("v1.recipe")}) {
    Manifest m = chunked;
    m.recipe = bad;
    auto r = DecodeManifest(EncodeManifest(m));
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message().find("is not versions/<version>.recipe"), std::string::npos)
        << r.error().message();
  }
  // A recipe field that is not a string.
  nlohmann::json j = nlohmann::json::parse(EncodeManifest(whole));
  j.erase("manifest_checksum");
  j["recipe"] = 5;
  j["manifest_checksum"] = FormatChecksum(Xxh3(j.dump()));
  auto r = DecodeManifest(j.dump());
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("recipe is not a string"), std::string::npos);
}

TEST_F(ManifestTest, PublishManifestPublishesAChunkedVersion) {
  Write("v1");
  Publish("v1");
  // A chunked v2: no .msf on the volume, the caller vouches for bytes and checksum.
  Manifest m{"ranker", "v2", "versions/v2.msf", 1234, "xxh3:00000000000000aa", 0, ""};
  m.recipe = RecipeFieldFor("v2");
  auto published = PublishManifest(&env_, dir_.path(), m);
  ASSERT_TRUE(published.has_value()) << published.error().ToString();
  EXPECT_EQ(published->generation, 2u);
  auto read = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->recipe, "versions/v2.recipe");
  EXPECT_EQ(read->bytes, 1234u);
  // Nothing a reader would refuse is published.
  m.recipe = "versions/v3.recipe";
  auto bad = PublishManifest(&env_, dir_.path(), m);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker")->generation, 2u);
}

// Claims and the manifest's temp file are created beneath the root: a symlinked model directory
// cannot send the new manifest (or a claim, or a directory) outside the volume.
TEST_F(ManifestTest, PublishThroughASymlinkedModelDirIsRefused) {
  Write("v1");
  modelswap::testing::TempDir outside;
  std::string model_dir = ModelDir(dir_.path(), "ranker");
  ASSERT_EQ(::rename(model_dir.c_str(), (outside / "ranker").c_str()), 0);
  ASSERT_EQ(::symlink((outside / "ranker").c_str(), model_dir.c_str()), 0);
  Manifest m{"ranker", "v1", "versions/v1.msf", 1, "xxh3:00000000000000aa", 0, ""};
  auto r = PublishManifest(&env_, dir_.path(), m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied) << r.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(outside / "ranker/manifest.json"));
  EXPECT_FALSE(std::filesystem::exists(outside / "ranker/generations"));  // nothing created there
  for (const auto& e : std::filesystem::directory_iterator(outside / "ranker")) {
    EXPECT_FALSE(e.path().filename().string().starts_with(".tmp-")) << e.path();
  }
}

TEST_F(ManifestTest, ManifestOfAnotherModelIsRejected) {
  Write("v1");
  Publish("v1");
  ASSERT_TRUE(env_.CreateDirs(ModelDir(dir_.path(), "other")).has_value());
  ASSERT_TRUE(
      WriteFileAtomic(&env_, ManifestPath(dir_.path(), "other"), ManifestText()).has_value());
  auto m = ReadManifest(&env_, dir_.path(), "other");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("names model \"ranker\""), std::string::npos);
}

TEST_F(ManifestTest, PublishOverATornManifestStillIncreasesGeneration) {
  Write("v1");
  Publish("v1");
  SetManifestText(ManifestText().substr(0, 20));
  env_.fake_clock = true;
  env_.fake_now_ns = int64_t{1'800'000'000} * 1'000'000'000;
  Manifest m = Publish("v1");
  EXPECT_EQ(m.generation, 1'800'000'000u);
  EXPECT_EQ(Publish("v1").generation, 1'800'000'001u);
}

TEST_F(ManifestTest, PublishRefusesACorruptVersionFile) {
  Write("v1");
  std::string path = VersionPath(dir_.path(), "ranker", "v1");
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XXXX", 4, 8192), 4);
  ::close(fd);
  auto m = PublishVersion(&env_, dir_.path(), "ranker", "v1");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), Code::kCorruption);
  EXPECT_NE(m.error().message().find("checksum mismatch"), std::string::npos)
      << m.error().message();
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker").error().code(), Code::kNotFound);
}

TEST_F(ManifestTest, PublishRefusesAFileNamedForAnotherVersion) {
  Write("v1");
  ASSERT_EQ(::rename(VersionPath(dir_.path(), "ranker", "v1").c_str(),
                     VersionPath(dir_.path(), "ranker", "v2").c_str()),
            0);
  auto m = PublishVersion(&env_, dir_.path(), "ranker", "v2");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message().find("not its file name"), std::string::npos);
}

// Blob storage may serve an older copy of manifest.json: publishing on top of it must not hand
// out a generation the agents already hold (they would ignore the new version for ever).
TEST_F(ManifestTest, StaleManifestNeverMakesAGenerationRepeat) {
  for (const char* v : {"v1", "v2", "v3", "v4"})
    Write(v);
  Publish("v1");
  std::string stale = ManifestText();  // generation 1
  Publish("v2");
  Publish("v3");
  SetManifestText(stale);  // rolled back to generation 1 under the agents, who hold 3
  Manifest m = Publish("v4");
  EXPECT_EQ(m.generation, 4u);
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker", 3)->version, "v4");
}

TEST_F(ManifestTest, GenerationClaimsArePrunedButTheHighestStays) {
  Write("v1");
  for (int i = 1; i <= kKeptGenerationClaims + 4; ++i)
    EXPECT_EQ(Publish("v1").generation, static_cast<uint64_t>(i));
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "ranker/generations")) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, static_cast<size_t>(kKeptGenerationClaims));
  EXPECT_EQ(HighestClaimedGeneration(&env_, dir_.path(), "ranker").value(),
            static_cast<uint64_t>(kKeptGenerationClaims + 4));
}

// Over the reader's 1 MiB cap a manifest is unreadable; publishing must replace it rather than
// fail for ever, and still above every generation published before.
TEST_F(ManifestTest, PublishOverAnOversizedManifestKeepsTheGenerationFloor) {
  Write("v1");
  Write("v2");
  Publish("v1");
  Publish("v1");
  Publish("v1");                                                // generation 3
  SetManifestText(ManifestText() + std::string(2 << 20, ' '));  // valid JSON, 2 MiB of blanks
  auto read = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), Code::kInvalidArgument);
  env_.fake_clock = true;
  env_.fake_now_ns = 1'000'000'000;  // a clock at 1 s: only the claims keep the floor
  Manifest m = Publish("v2");
  EXPECT_EQ(m.generation, 4u);
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker")->version, "v2");
}

// A FIFO in the manifest's place must not block a reader (open would wait for a writer).
TEST_F(ManifestTest, FifoManifestIsRefusedWithoutBlockingAndPublishedOver) {
  Write("v1");
  ASSERT_EQ(::mkdir((dir_ / "ranker").c_str(), 0755) == 0 || errno == EEXIST, true);
  ASSERT_EQ(::mkfifo(ManifestPath(dir_.path(), "ranker").c_str(), 0644), 0);
  auto read = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), Code::kInvalidArgument);
  EXPECT_NE(read.error().message().find("not a regular file"), std::string::npos);
  Manifest m = Publish("v1");
  EXPECT_GE(m.generation, 1u);
  EXPECT_EQ(ReadManifest(&env_, dir_.path(), "ranker")->version, "v1");
}

// Nothing on the volume may lead outside it: a version file or manifest that is a symlink is
// refused, even when it points at a valid file.
TEST_F(ManifestTest, SymlinkedVersionFileIsRefused) {
  testing::TempDir outside;
  WriteRequest req =
      MakeWriteRequest(outside.path(), "ranker", "v2", GenerateSource{20'000, 1, 100});
  ASSERT_TRUE(WriteVersion(&env_, req).has_value());
  Write("v1");
  ASSERT_EQ(::symlink(VersionPath(outside.path(), "ranker", "v2").c_str(),
                      VersionPath(dir_.path(), "ranker", "v2").c_str()),
            0);
  auto info = VerifyVersionFile(&env_, dir_.path(), "ranker", "v2");
  ASSERT_FALSE(info.has_value());
  EXPECT_EQ(info.error().code(), Code::kPermissionDenied) << info.error().ToString();
  EXPECT_FALSE(PublishVersion(&env_, dir_.path(), "ranker", "v2").has_value());
}

TEST_F(ManifestTest, SymlinkedManifestIsRefused) {
  testing::TempDir outside;
  Write("v1");
  Publish("v1");
  std::string path = ManifestPath(dir_.path(), "ranker");
  ASSERT_EQ(::rename(path.c_str(), (outside / "manifest.json").c_str()), 0);
  ASSERT_EQ(::symlink((outside / "manifest.json").c_str(), path.c_str()), 0);
  auto read = ReadManifest(&env_, dir_.path(), "ranker");
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code(), Code::kPermissionDenied);
}

// Blobfuse renames by copying then deleting: a reader in between sees a torn manifest, which it
// must reject, and afterwards the complete new one.
TEST_F(ManifestTest, RenameAsCopyThenDeleteShowsTornThenComplete) {
  Write("v1");
  Write("v2");
  Publish("v1");
  env_.rename_as_copy = true;
  bool saw_torn = false;
  env_.between_copy_and_delete = [&](const std::string&, const std::string&) {
    auto m = ReadManifest(DefaultEnv(), dir_.path(), "ranker");
    saw_torn = !m.has_value() && m.error().code() == Code::kCorruption;
  };
  Publish("v2");
  EXPECT_TRUE(saw_torn);
  auto m = ReadManifest(DefaultEnv(), dir_.path(), "ranker");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->version, "v2");
  EXPECT_EQ(m->generation, 2u);
}

}  // namespace
}  // namespace modelswap
