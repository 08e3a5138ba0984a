// The manifest's chain field (a delta version's lower layers): optional, so manifests of full
// versions keep the exact text and checksum they had before it existed; round-trips; covered by
// manifest_checksum; every malformed entry rejected with a message naming it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/checksum.h"
#include "sidecar/volume/manifest.h"
#include "tests/testing/temp_dir.h"

namespace modelswap {
namespace {

using nlohmann::json;

Manifest Whole() {
  return Manifest{
      "ranker", "v8", "versions/v8.msf", 10, "xxh3:0123456789abcdef", 5, "2026-11-21T00:00:00Z"};
}

Manifest Delta() {
  Manifest m = Whole();
  m.chain = {ManifestLayer{"v7", "versions/v7.msf", "xxh3:00000000000000a7", 4096 * 3, ""},
             ManifestLayer{"v6", "versions/v6.msf", "xxh3:00000000000000a6", 1 << 20,
                           "versions/v6.recipe"}};
  return m;
}

// Re-signs edited JSON so the edit reaches the field checks behind the checksum.
std::string Sign(json j) {
  j.erase("manifest_checksum");
  j["manifest_checksum"] = FormatChecksum(Xxh3(j.dump()));
  return j.dump();
}

TEST(ManifestChainTest, AFullVersionsManifestKeepsItsOldTextAndChecksum) {
  // Encoded by the code before the chain field existed (the same text the recipe test pins).
  const std::string old_compact =
      "{\"bytes\":10,\"checksum\":\"xxh3:0123456789abcdef\",\"file\":\"versions/v8.msf\","
      "\"generation\":5,\"model\":\"ranker\",\"published_at\":\"2026-11-21T00:00:00Z\","
      "\"version\":\"v8\"}";
  const std::string before =
      "{\n  \"bytes\": 10,\n  \"checksum\": \"xxh3:0123456789abcdef\",\n  \"file\": "
      "\"versions/v8.msf\",\n  \"generation\": 5,\n  \"manifest_checksum\": \"" +
      FormatChecksum(Xxh3(std::string_view(old_compact))) +
      "\",\n  \"model\": \"ranker\",\n  \"published_at\": \"2026-11-21T00:00:00Z\",\n  "
      "\"version\": \"v8\"\n}\n";
  EXPECT_EQ(EncodeManifest(Whole()), before);
  auto old = DecodeManifest(before);
  ASSERT_TRUE(old.has_value()) << old.error().ToString();
  EXPECT_TRUE(old->chain.empty());
}

TEST(ManifestChainTest, ChainRoundTripsAndIsCovered) {
  const Manifest m = Delta();
  const std::string text = EncodeManifest(m);
  EXPECT_NE(text.find("\"chain\""), std::string::npos);
  EXPECT_NE(EncodeManifest(m), EncodeManifest(Whole()));
  auto back = DecodeManifest(text);
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->chain, m.chain);
  EXPECT_TRUE(back->chain[0].recipe.empty());
  EXPECT_EQ(back->chain[1].recipe, "versions/v6.recipe");
  // Editing a layer without re-signing is a checksum mismatch.
  std::string edited = text;
  edited.replace(edited.find("xxh3:00000000000000a7"), 21, "xxh3:00000000000000b7");
  auto bad = DecodeManifest(edited);
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("manifest_checksum mismatch"), std::string::npos);
  // Dropping the whole field is detected too.
  json j = json::parse(text);
  j.erase("chain");
  EXPECT_FALSE(DecodeManifest(j.dump()).has_value());
}

TEST(ManifestChainTest, SevenLayersAreAllowed) {
  Manifest m = Whole();
  for (int i = 1; i <= 7; ++i) {
    std::string v = "v" + std::to_string(i);
    m.chain.push_back(ManifestLayer{v, "versions/" + v + ".msf", "xxh3:00000000000000a1", 1, ""});
  }
  auto back = DecodeManifest(EncodeManifest(m));
  ASSERT_TRUE(back.has_value()) << back.error().ToString();
  EXPECT_EQ(back->chain.size(), 7u);
}

struct BadChain {
  const char* name;
  std::function<void(json&)> edit;  // applied to the chain array
  const char* message;
};

TEST(ManifestChainTest, MalformedChainsAreRejectedNamingTheEntry) {
  const std::vector<BadChain> cases = {
      {"not an array", [](json& c) { c = json::object(); }, "chain is not an array"},
      {"empty", [](json& c) { c = json::array(); }, "chain is empty"},
      {"eight layers",
       [](json& c) {
         c = json::array();
         for (int i = 0; i < 8; ++i) {
           std::string v = "b" + std::to_string(i);
           c.push_back({{"version", v},
                        {"file", "versions/" + v + ".msf"},
                        {"checksum", "xxh3:00000000000000a1"},
                        {"bytes", 1}});
         }
       },
       "chain has 8 layers below the version (at most 7)"},
      {"entry not an object", [](json& c) { c[1] = "v6"; }, "chain[1] is not an object"},
      {"missing version", [](json& c) { c[0].erase("version"); },
       "chain[0].version missing or not a string"},
      {"numeric file", [](json& c) { c[1]["file"] = 3; }, "chain[1].file missing or not a string"},
      {"missing checksum", [](json& c) { c[0].erase("checksum"); },
       "chain[0].checksum missing or not a string"},
      {"negative bytes", [](json& c) { c[1]["bytes"] = -1; },
       "chain[1].bytes missing or not an unsigned integer"},
      {"bad version name", [](json& c) { c[0]["version"] = "../v7"; }, "chain[0]: "},
      {"file of another version", [](json& c) { c[0]["file"] = "versions/v6.msf"; },
       "chain[0] (v7): file \"versions/v6.msf\" is not versions/<version>.msf"},
      {"bad checksum", [](json& c) { c[1]["checksum"] = "crc:1"; },
       "chain[1] (v6): checksum is not xxh3:<16 hex digits>"},
      {"recipe not a string", [](json& c) { c[1]["recipe"] = true; },
       "chain[1] (v6): recipe is not a string"},
      {"recipe of another version", [](json& c) { c[1]["recipe"] = "versions/v7.recipe"; },
       "chain[1] (v6): recipe \"versions/v7.recipe\" is not versions/<version>.recipe"},
      {"the version itself",
       [](json& c) {
         c[1]["version"] = "v8";
         c[1]["file"] = "versions/v8.msf";
         c[1].erase("recipe");
       },
       "chain[1] names the version itself (v8)"},
      {"a version twice",
       [](json& c) {
         c[1]["version"] = "v7";
         c[1]["file"] = "versions/v7.msf";
         c[1].erase("recipe");
       },
       "chain[1] names v7 twice"},
  };
  for (const BadChain& bad : cases) {
    json j = json::parse(EncodeManifest(Delta()));
    bad.edit(j["chain"]);
    auto r = DecodeManifest(Sign(j));
    ASSERT_FALSE(r.has_value()) << bad.name;
    EXPECT_EQ(r.error().code(), Code::kCorruption) << bad.name;
    EXPECT_NE(r.error().message().find(bad.message), std::string::npos)
        << bad.name << ": " << r.error().message();
  }
}

TEST(ManifestChainTest, PublishManifestRefusesAMalformedChain) {
  testing::TempDir dir;
  Manifest m = Delta();
  m.chain[0].file = "versions/v1.msf";
  auto r = PublishManifest(DefaultEnv(), dir.path(), m);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("chain[0] (v7)"), std::string::npos) << r.error().message();
  // A good one is published and read back with its chain.
  auto ok = PublishManifest(DefaultEnv(), dir.path(), Delta());
  ASSERT_TRUE(ok.has_value()) << ok.error().ToString();
  auto read = ReadManifest(DefaultEnv(), dir.path(), "ranker");
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(read->chain, Delta().chain);
}

}  // namespace
}  // namespace modelswap
