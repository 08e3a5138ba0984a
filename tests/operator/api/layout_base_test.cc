// spec.source.base (the layout base a full write keeps, `write --base`): what the operator accepts
// and refuses, with the field named (standalone files meet no API server), status.chunks' delta
// chunk fields through JSON, and the CRD declaring the same rules as the parser.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "operator/api/model_version.h"
#include "operator/standalone/yaml_json.h"

namespace modelswap::op {
namespace {

// ranker v8 from `source`, with `base` as spec.source.base unless it is null.
Json Obj(Json source, Json base) {
  if (!base.is_null()) source["base"] = std::move(base);
  return {{"metadata", {{"name", "ranker-v8"}, {"namespace", "ml"}}},
          {"spec",
           {{"model", "ranker"},
            {"version", "v8"},
            {"storage", {{"claimName", "models"}}},
            {"source", std::move(source)}}}};
}

const Json kTsv = {{"tsv", {{"path", "rows/v8.tsv"}}}};

// The error message of parsing `obj`, "" when it parses.
std::string Error(const Json& obj) {
  auto mv = ParseModelVersion(obj);
  return mv ? "" : mv.error().ToString();
}

TEST(LayoutBaseTest, FullSourcesTakeABase) {
  const Json sources[] = {
      kTsv, {{"file", {{"path", "built/v8.msf"}}}}, {{"generate", {{"bytes", 4096}, {"seed", 1}}}}};
  for (const Json& src : sources) {
    auto mv = ParseModelVersion(Obj(src, "v7"));
    ASSERT_TRUE(mv.has_value()) << src.dump() << ": " << mv.error().ToString();
    EXPECT_EQ(mv->source.layout_base, "v7") << src.dump();
  }
  Json null_base = Obj(kTsv, nullptr);
  null_base["spec"]["source"]["base"] = nullptr;  // as if absent (a YAML `base:` with no value)
  for (const Json& obj : {Obj(kTsv, nullptr), null_base}) {
    auto mv = ParseModelVersion(obj);
    ASSERT_TRUE(mv.has_value()) << mv.error().ToString();
    EXPECT_EQ(mv->source.layout_base, "");
  }
}

TEST(LayoutBaseTest, BadBasesAreRefusedNamingTheField) {
  const Json delta = {{"delta", {{"base", "v7"}, {"tsv", {{"path", "changes/v8.tsv"}}}}}};
  struct Case {
    Json source, base;
    std::string expect;
  };
  const Case cases[] = {
      {delta, "v6", "spec.source.base does not combine with spec.source.delta"},
      {kTsv, "v8", "spec.source.base is spec.version (\"v8\")"},
      {kTsv, "..", "spec.source.base \"..\" must match"},
      {kTsv, ".", "spec.source.base \".\" must match"},
      {kTsv, "v 7", "spec.source.base \"v 7\" must match"},
      {kTsv, "v7/../x", "spec.source.base \"v7/../x\" must match"},
      {kTsv, "", "spec.source.base \"\" must match"},
      {kTsv, std::string(64, 'a'), "spec.source.base \"" + std::string(64, 'a') + "\" must match"},
      {kTsv, 7, "spec.source.base must be a string"},
      {kTsv, {{"version", "v7"}}, "spec.source.base must be a string"},
  };
  for (const Case& c : cases) {
    const std::string err = Error(Obj(c.source, c.base));
    EXPECT_NE(err.find(c.expect), std::string::npos)
        << c.source.dump() << " base " << c.base.dump() << " -> " << err;
    EXPECT_NE(err.find("modelversion ranker-v8"), std::string::npos) << err;
  }
  // The longest valid name still parses: the limit is the version field's.
  EXPECT_EQ(Error(Obj(kTsv, std::string(63, 'a'))), "");
}

TEST(LayoutBaseTest, StatusChunksRoundTrip) {
  ModelVersionStatus s;
  s.layout = "chunked";
  s.chunks_total = 40;
  s.chunks_new = 3;
  s.bytes_new = 300;
  s.bytes_reused = 3700;
  s.chunks_delta = 2;
  s.stored_bytes_new = 25;
  Json j = StatusToJson(s);
  EXPECT_EQ(j["chunks"], Json::parse(R"({"total":40,"new":3,"bytesNew":300,"bytesReused":3700,
      "delta":2,"storedBytesNew":25})"));
  EXPECT_EQ(ParseStatus(j), s);
  // A writer that reported neither: the status it gets is what it got before the fields.
  s.chunks_delta = 0;
  s.stored_bytes_new = 0;
  j = StatusToJson(s);
  EXPECT_EQ(j["chunks"], Json::parse(R"({"total":40,"new":3,"bytesNew":300,"bytesReused":3700})"));
  EXPECT_EQ(ParseStatus(j), s);
}

Json Crd() {
  std::ifstream in(std::string(MODELSWAP_SOURCE_DIR) + "/crds/modelversion.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto docs = YamlToJson(text.str());
  EXPECT_TRUE(docs.has_value() && docs->size() == 1u);
  return docs && !docs->empty() ? (*docs)[0] : Json();
}

bool HasRule(const Json& rules, const std::string& rule) {
  if (!rules.is_array()) return false;
  for (const auto& r : rules) {
    if (r.is_object() && r["rule"] == rule) return true;
  }
  return false;
}

// A cluster must refuse what standalone mode refuses.
TEST(LayoutBaseTest, CrdDeclaresTheSameRules) {
  const Json spec = Field<Json>(Crd()["spec"]["versions"][0],
                                {"schema", "openAPIV3Schema", "properties", "spec"});
  const Json source = spec["properties"]["source"];
  const Json base = source["properties"]["base"];
  const Json version = spec["properties"]["version"];
  ASSERT_TRUE(base.is_object()) << "no spec.source.base in crds/modelversion.yaml";
  EXPECT_EQ(base["type"], "string");
  EXPECT_EQ(base["pattern"], version["pattern"]);
  EXPECT_EQ(base["maxLength"], 63);
  EXPECT_EQ(base["minLength"], 1);
  EXPECT_TRUE(HasRule(base["x-kubernetes-validations"], "self != '.' && self != '..'"));
  EXPECT_TRUE(HasRule(source["x-kubernetes-validations"], "!has(self.base) || !has(self.delta)"))
      << "no CEL rule keeps a layout base off a delta source";
  EXPECT_TRUE(HasRule(spec["x-kubernetes-validations"],
                      "!has(self.source.base) || self.source.base != self.version"))
      << "no CEL rule keeps spec.source.base off its own version";
  // The count of source kinds must not count base as one.
  EXPECT_EQ(source["x-kubernetes-validations"][0]["rule"].get<std::string>().find("self.base"),
            std::string::npos);
}

}  // namespace
}  // namespace modelswap::op
