// The CRD's structural schema against what the operator writes: a real API server prunes status
// fields the schema does not declare, silently (the fake API server does not), so a status field
// added to the code but not to crds/modelversion.yaml would be lost on every write.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "operator/api/model_version.h"
#include "operator/standalone/yaml_json.h"

namespace modelswap::op {
namespace {

Json StatusSchema() {
  std::ifstream in(std::string(MODELSWAP_SOURCE_DIR) + "/crds/modelversion.yaml");
  std::stringstream text;
  text << in.rdbuf();
  auto docs = YamlToJson(text.str());
  EXPECT_TRUE(docs.has_value() && docs->size() == 1u);
  if (!docs || docs->empty()) return Json();
  return Field<Json>((*docs)[0]["spec"]["versions"][0],
                     {"schema", "openAPIV3Schema", "properties", "status"});
}

// Every key of `value` is declared in `schema`, recursively; returns the undeclared paths.
void Undeclared(const Json& value, const Json& schema, const std::string& path,
                std::vector<std::string>* out) {
  if (value.is_object()) {
    const Json props = Field<Json>(schema, {"properties"}, Json::object());
    for (const auto& [k, v] : value.items()) {
      if (!props.contains(k)) {
        out->push_back(path + "." + k);
      } else {
        Undeclared(v, props[k], path + "." + k, out);
      }
    }
  } else if (value.is_array()) {
    for (const auto& item : value)
      Undeclared(item, Field<Json>(schema, {"items"}, Json::object()), path + "[]", out);
  }
}

TEST(CrdSchemaTest, EveryStatusFieldTheOperatorWritesIsDeclared) {
  ModelVersionStatus s;  // every field set, so every key appears
  s.phase = Phase::kActive;
  s.observed_generation = 3;
  s.message = "m";
  s.job_name = "j";
  s.file = "/models/ranker/versions/v1.msf";
  s.bytes = 1;
  s.checksum = "xxh3:01";
  s.manifest_generation = 2;
  s.published_generation = 3;
  s.last_handled_activate_request = "2026-11-22T07:00:00Z";
  s.activate_requests_handled = 2;
  s.file_removed = true;
  s.layout = "chunked";
  s.chunks_total = 4;
  s.chunks_new = 1;
  s.bytes_new = 1;
  s.bytes_reused = 3;
  s.chunks_delta = 1;  // delta and storedBytesNew: written only when not 0
  s.stored_bytes_new = 1;
  s.chain_layers = {{"v2", 10}, {"v1", 100}};
  s.chain_length = 2;
  s.chain_compacted = true;
  s.pods_loaded = 1;
  s.pods_total = 2;
  s.pods_per_pod_staging = 1;  // written only when > 0
  s.progress = WriteProgress{1, 2, "50%", "2026-11-22T07:00:00Z"};
  s.conditions.push_back({"Active", "True", "Published", "", 3, "2026-11-22T07:00:00Z"});
  const Json written = StatusToJson(s);
  const Json schema = StatusSchema();
  ASSERT_TRUE(schema.is_object()) << "crds/modelversion.yaml has no status schema";
  std::vector<std::string> missing;
  Undeclared(written, schema, "status", &missing);
  EXPECT_TRUE(missing.empty()) << "not in crds/modelversion.yaml: " << Json(missing).dump();
  // The check itself must be able to fail.
  Json extra = written;
  extra["notInTheSchema"] = 1;
  missing.clear();
  Undeclared(extra, schema, "status", &missing);
  EXPECT_EQ(missing, std::vector<std::string>{"status.notInTheSchema"});
}

}  // namespace
}  // namespace modelswap::op
