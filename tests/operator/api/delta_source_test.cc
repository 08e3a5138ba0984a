// spec.source.delta and spec.chain: what the operator accepts and refuses (standalone files meet
// no API server, so these checks are the only ones there), status.chain through JSON, and the
// CRD declaring the same rules, so a cluster refuses what standalone mode refuses.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "operator/api/model_version.h"
#include "operator/standalone/yaml_json.h"

namespace modelswap::op {
namespace {

Json Obj(Json source, Json chain = nullptr) {
  Json spec = {{"model", "ranker"},
               {"version", "v8"},
               {"storage", {{"claimName", "models"}}},
               {"source", std::move(source)}};
  if (!chain.is_null()) spec["chain"] = std::move(chain);
  return {{"metadata", {{"name", "ranker-v8"}, {"namespace", "ml"}}}, {"spec", spec}};
}

Json Delta(Json base, Json tsv = {{"path", "changes/v8.tsv"}}) {
  Json d = Json::object();
  if (!base.is_null()) d["base"] = std::move(base);
  if (!tsv.is_null()) d["tsv"] = std::move(tsv);
  return {{"delta", d}};
}

// The error message of parsing `obj`, "" when it parses.
std::string Error(const Json& obj) {
  auto mv = ParseModelVersion(obj);
  return mv ? "" : mv.error().ToString();
}

TEST(DeltaSourceTest, GoodDeltaParses) {
  auto mv = ParseModelVersion(Obj(Delta("v7")));
  ASSERT_TRUE(mv.has_value()) << mv.error().ToString();
  EXPECT_EQ(mv->source.kind, SourceSpec::Kind::kDelta);
  EXPECT_EQ(mv->source.delta_base, "v7");
  EXPECT_EQ(mv->source.path, "changes/v8.tsv");
  EXPECT_EQ(mv->chain.max_deltas, 4);  // the writer's defaults
  EXPECT_EQ(mv->chain.compact_ratio, 0.5);
}

TEST(DeltaSourceTest, BadDeltasAreRefusedNamingTheField) {
  struct Case {
    Json source;
    std::string expect;
  };
  const Case cases[] = {
      {Delta(nullptr), "spec.source.delta.base is required"},
      {Delta("v8"), "spec.source.delta.base is spec.version"},
      {Delta(".."), "spec.source.delta.base \"..\" must match"},
      {Delta("v 7"), "spec.source.delta.base \"v 7\" must match"},
      {Delta(std::string(64, 'a')), "spec.source.delta.base"},
      {Delta(7), "spec.source.delta.base must be a string"},
      {Delta("v7", nullptr), "spec.source.delta.tsv is required"},
      {Delta("v7", {{"path", "/abs.tsv"}}), "spec.source.delta.tsv.path must be relative"},
      {Delta("v7", {{"path", "a/../b.tsv"}}), "spec.source.delta.tsv.path must not contain '..'"},
      {Delta("v7", Json::object()), "spec.source.delta.tsv.path is required"},
      {{{"delta", "v7"}}, "spec.source.delta must be a map"},
      {{{"delta", {{"base", "v7"}, {"tsv", {{"path", "c.tsv"}}}}}, {"generate", {{"bytes", 1}}}},
       "exactly one of generate, tsv, file, delta"},
  };
  for (const Case& c : cases) {
    const std::string err = Error(Obj(c.source));
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.source.dump() << " -> " << err;
  }
}

// `on:` (the obvious name) is read as `true:` by YAML 1.1 parsers such as kubectl's: whoever
// writes it gets told the field's name.
TEST(DeltaSourceTest, OnInsteadOfBaseIsNamed) {
  for (const char* key : {"on", "true"}) {
    Json src = {{"delta", {{key, "v7"}, {"tsv", {{"path", "c.tsv"}}}}}};
    EXPECT_NE(Error(Obj(src)).find("the field is base, not on"), std::string::npos) << key;
  }
}

TEST(DeltaSourceTest, ChainLimits) {
  auto mv = ParseModelVersion(Obj(Delta("v7"), {{"maxDeltas", 7}, {"compactRatio", 1}}));
  ASSERT_TRUE(mv.has_value()) << mv.error().ToString();
  EXPECT_EQ(mv->chain.max_deltas, 7);
  EXPECT_EQ(mv->chain.compact_ratio, 1.0);
  mv = ParseModelVersion(Obj(Delta("v7"), {{"maxDeltas", 1}, {"compactRatio", 0.05}}));
  ASSERT_TRUE(mv.has_value()) << mv.error().ToString();
  EXPECT_EQ(mv->chain.max_deltas, 1);
  EXPECT_EQ(mv->chain.compact_ratio, 0.05);
  struct Case {
    Json chain;
    std::string expect;
  };
  const Case cases[] = {
      {{{"maxDeltas", 0}}, "spec.chain.maxDeltas must be >= 1"},
      {{{"maxDeltas", 8}}, "spec.chain.maxDeltas must be <= 7"},
      {{{"maxDeltas", "4"}}, "spec.chain.maxDeltas must be an integer"},
      {{{"compactRatio", 0}}, "spec.chain.compactRatio must be in (0, 1]"},
      {{{"compactRatio", 1.5}}, "spec.chain.compactRatio must be in (0, 1]"},
      {{{"compactRatio", -0.1}}, "spec.chain.compactRatio must be in (0, 1]"},
      {{{"compactRatio", "half"}}, "spec.chain.compactRatio must be a number"},
      {"4", "spec.chain must be a map"},
  };
  for (const Case& c : cases) {
    const std::string err = Error(Obj(Delta("v7"), c.chain));
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.chain.dump() << " -> " << err;
  }
}

TEST(DeltaSourceTest, StatusChainRoundTrips) {
  ModelVersionStatus s;
  s.chain_layers = {{"v9", 100}, {"v8", 200}, {"v7", 4096}};
  s.chain_length = 3;
  Json j = StatusToJson(s);
  EXPECT_EQ(j["chain"], Json::parse(R"({"length":3,"layers":[{"version":"v9","bytes":100},
      {"version":"v8","bytes":200},{"version":"v7","bytes":4096}]})"));
  EXPECT_EQ(ParseStatus(j), s);
  ModelVersionStatus compacted;
  compacted.chain_layers = {{"v10", 5000}};
  compacted.chain_length = 1;
  compacted.chain_compacted = true;
  j = StatusToJson(compacted);
  EXPECT_EQ(j["chain"]["compacted"], true);
  EXPECT_EQ(ParseStatus(j), compacted);
  EXPECT_FALSE(StatusToJson(ModelVersionStatus{}).contains("chain"));  // an older writer's
}

Json Crd() {
  std::ifstream in(std::string(MODELSWAP_SOURCE_DIR) + "/crds/modelversion.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto docs = YamlToJson(text.str());
  EXPECT_TRUE(docs.has_value() && docs->size() == 1u);
  return docs && !docs->empty() ? (*docs)[0] : Json();
}

// The CRD says what the parser says: a cluster must refuse what standalone mode refuses.
TEST(DeltaSourceTest, CrdDeclaresTheSameRules) {
  const Json version = Crd()["spec"]["versions"][0];
  const Json spec = Field<Json>(version, {"schema", "openAPIV3Schema", "properties", "spec"});
  const Json source = spec["properties"]["source"];
  const Json delta = source["properties"]["delta"];
  EXPECT_EQ(delta["required"], Json::parse(R"(["base","tsv"])"));
  EXPECT_EQ(delta["properties"]["base"]["pattern"], spec["properties"]["version"]["pattern"]);
  EXPECT_EQ(delta["properties"]["tsv"]["properties"]["path"],
            source["properties"]["tsv"]["properties"]["path"]);
  EXPECT_NE(
      source["x-kubernetes-validations"][0]["rule"].get<std::string>().find("has(self.delta)"),
      std::string::npos);
  bool base_rule = false;
  for (const auto& r : spec["x-kubernetes-validations"]) {
    if (r["rule"] == "!has(self.source.delta) || self.source.delta.base != self.version")
      base_rule = true;
  }
  EXPECT_TRUE(base_rule) << "no CEL rule keeps a delta off its own version";
  const Json chain = spec["properties"]["chain"]["properties"];
  EXPECT_EQ(chain["maxDeltas"]["minimum"], 1);
  EXPECT_EQ(chain["maxDeltas"]["maximum"], kMaxChainDeltas);
  EXPECT_EQ(chain["maxDeltas"]["default"], ChainSpec{}.max_deltas);
  EXPECT_EQ(chain["compactRatio"]["exclusiveMinimum"], true);
  EXPECT_EQ(chain["compactRatio"]["maximum"], 1);
  EXPECT_EQ(chain["compactRatio"]["default"], ChainSpec{}.compact_ratio);
  bool column = false;
  for (const auto& c : version["additionalPrinterColumns"]) {
    if (c["name"] == "Chain") {
      column = c["jsonPath"] == ".status.chain.length" && c["priority"] == 1;
    }
  }
  EXPECT_TRUE(column) << "no Chain printer column (priority 1) on .status.chain.length";
}

}  // namespace
}  // namespace modelswap::op
