// Round trips through the .msf builder and reader: empty, tiny, binary, many keys, multi-GiB.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <random>

#include "sidecar/msf/reader.h"
#include "sidecar/volume/version_file.h"
#include "tests/testing/msf_files.h"

namespace modelswap::msf {
namespace {

using testing::BuildMsfBytes;
using testing::Entries;

void ExpectAllFound(const std::vector<std::byte>& file, const Entries& entries) {
  auto r = Reader::Open(file, VerifyLevel::kFull);
  ASSERT_TRUE(r.has_value()) << r.error().ToString();
  EXPECT_EQ(r->size(), entries.size());
  for (const auto& [k, v] : entries) {
    auto got = r->Find(std::string_view(k));
    ASSERT_TRUE(got.has_value()) << "missing key of size " << k.size();
    EXPECT_EQ(*got, v);
  }
}

TEST(MsfRoundTrip, Empty) {
  auto file = BuildMsfBytes({});
  ExpectAllFound(file, {});
  auto r = Reader::Open(file, VerifyLevel::kFull);
  EXPECT_FALSE(r->Find(std::string_view("anything")).has_value());
  EXPECT_EQ(file.size() % kAlignment, 0u);
}

TEST(MsfRoundTrip, Tiny) {
  Entries e = {{"a", "1"}};
  auto file = BuildMsfBytes(e, "ranker", "v7");
  ExpectAllFound(file, e);
  auto r = Reader::Open(file, VerifyLevel::kFull);
  EXPECT_EQ(r->header().model, "ranker");
  EXPECT_EQ(r->header().version, "v7");
  EXPECT_EQ(r->header().created_unix_ns, 1'700'000'000'000'000'000);
  EXPECT_FALSE(r->Find(std::string_view("b")).has_value());
  EXPECT_FALSE(r->Find(std::string_view("")).has_value());
}

TEST(MsfRoundTrip, BinaryKeysAndValues) {
  Entries e;
  e.emplace_back(std::string("\0", 1), std::string("\0\0\xff", 3));
  e.emplace_back(std::string("\xff\xfe\n\t", 4), "");
  e.emplace_back("", "empty key");
  e.emplace_back(std::string(300, '\0'), std::string(5000, '\x80'));
  ExpectAllFound(BuildMsfBytes(e), e);
}

TEST(MsfRoundTrip, ManyKeysAndNearMisses) {
  Entries e;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100'000; ++i) {
    e.emplace_back("k" + std::to_string(rng()),
                   std::string(rng() % 64, static_cast<char>('a' + i % 26)));
  }
  auto file = BuildMsfBytes(e);
  ExpectAllFound(file, e);
  auto r = Reader::Open(file, VerifyLevel::kFull);
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_FALSE(r->Find(std::string_view("absent" + std::to_string(i))).has_value());
  }
  EXPECT_LE(static_cast<double>(r->size()) / r->capacity(), kMaxLoadFactor);
  // The smallest power of two that keeps the load under the cap: more than half of that.
  EXPECT_GT(static_cast<double>(r->size()) / r->capacity(), kMaxLoadFactor / 2);
}

TEST(MsfRoundTrip, ForEachVisitsEntriesInOrder) {
  Entries e = {{"z", "1"}, {"a", "2"}, {"m", "3"}};
  auto file = BuildMsfBytes(e);
  auto r = Reader::Open(file, VerifyLevel::kFull);
  Entries seen;
  ASSERT_TRUE(r->ForEach([&](auto k, auto v) {
                 seen.emplace_back(std::string(reinterpret_cast<const char*>(k.data()), k.size()),
                                   std::string(reinterpret_cast<const char*>(v.data()), v.size()));
                 return true;
               }).has_value());
  EXPECT_EQ(seen, e);
}

TEST(MsfRoundTrip, DuplicateKeyIsAnErrorNamingBothEntries) {
  testing::TempDir dir;
  auto fd = DefaultEnv()->Open(dir / "d.msf", OpenMode::kReadWriteNew);
  BuildOptions options{.model = "m", .version = "v"};
  Builder b(DefaultEnv(), *fd, options);
  ASSERT_TRUE(b.Add("x", "1").has_value());
  ASSERT_TRUE(b.Add("y", "2").has_value());
  ASSERT_TRUE(b.Add("x", "3").has_value());
  auto r = b.Finish();
  DefaultEnv()->Close(*fd);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("duplicate key \"x\" at entry 3 (first at entry 1)"),
            std::string::npos)
      << r.error().message();
}

// A file over 4 GiB: offsets past 2^32 in the index. Large values are zeros, which the builder
// leaves as holes, so the test costs little disk where the filesystem supports sparse files.
TEST(MsfRoundTrip, MultiGiBSparse) {
  testing::TempDir dir;
  const std::string path = dir / "big.msf";
  auto fd = DefaultEnv()->Open(path, OpenMode::kReadWriteNew);
  ASSERT_TRUE(fd.has_value());
  BuildOptions options{.model = "big", .version = "v1"};
  Builder b(DefaultEnv(), *fd, options);
  // 2 GiB of zeros that cost no memory: untouched anonymous pages all map the kernel's zero page.
  const size_t kZeroBytes = size_t{1} << 31;
  void* mem =
      ::mmap(nullptr, kZeroBytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  std::span<const std::byte> zeros(static_cast<const std::byte*>(mem), kZeroBytes);
  auto key = [](const char* k) { return std::as_bytes(std::span(k, std::strlen(k))); };
  ASSERT_TRUE(b.Add("first", "small").has_value());
  ASSERT_TRUE(b.Add(key("zeros-a"), zeros).has_value());
  ASSERT_TRUE(b.Add(key("zeros-b"), zeros).has_value());
  ASSERT_TRUE(b.Add("after-4GiB", "tail value").has_value());
  auto built = b.Finish();
  DefaultEnv()->Close(*fd);
  ASSERT_TRUE(built.has_value()) << built.error().ToString();
  EXPECT_GT(built->file_size, 4ull << 30);

  ::munmap(mem, kZeroBytes);
  // Header-level open: a full verify would read 4 GiB of holes, which the kernel zero-fills page
  // by page (seconds here); full verification is covered on the smaller files above.
  auto opened = OpenModelFile(DefaultEnv(), path, VerifyLevel::kHeader);
  ASSERT_TRUE(opened.has_value()) << opened.error().ToString();
  const Reader& r = opened->reader;
  EXPECT_EQ(r.Find(std::string_view("first")), "small");
  EXPECT_EQ(r.Find(std::string_view("after-4GiB")), "tail value");
  auto a = r.Find(std::string_view("zeros-b"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->size(), kZeroBytes);
  uint64_t entries = 0;
  ASSERT_TRUE(r.ForEach([&](auto, auto) { return ++entries > 0; }).has_value());
  EXPECT_EQ(entries, 4u);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  RecordProperty("allocated_bytes", std::to_string(st.st_blocks * 512));
}

}  // namespace
}  // namespace modelswap::msf
