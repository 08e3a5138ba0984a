// The ModelVersion CRD as the chart installs it, on a real API server: established with its
// names (discovery: short name mv, category modelswap), bad input refused by the schema and the
// CEL immutability rules, and `kubectl get mv` columns (the Table format) as the CRD declares.
#include <gtest/gtest.h>

#include <map>

#include "operator/api/well_known.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/e2e/raw_request.h"

namespace modelswap::op::e2e {
namespace {

class E2eCrd : public E2ETest {};

TEST_F(E2eCrd, FromTheChartIsEstablishedAndDiscoverable) {
  E2E_REQUIRE_REAL_SERVER("CustomResourceDefinitions or discovery");
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  auto doc = RawGetJson(config_, "/apis/modelswap.io/v1alpha1");
  ASSERT_TRUE(doc.has_value()) << doc.error().ToString();
  EXPECT_EQ(Field<std::string>(*doc, {"kind"}), "APIResourceList");
  bool found = false;
  for (const auto& r : Field<Json>(*doc, {"resources"}, Json::array())) {
    if (Field<std::string>(r, {"name"}) != "modelversions") continue;
    found = true;
    EXPECT_EQ(Field<std::string>(r, {"kind"}), "ModelVersion");
    EXPECT_TRUE(Field<bool>(r, {"namespaced"}));
    EXPECT_EQ(Field<Json>(r, {"shortNames"}), Json::array({"mv"})) << r.dump();
    EXPECT_EQ(Field<Json>(r, {"categories"}), Json::array({"modelswap"})) << r.dump();
  }
  EXPECT_TRUE(found) << doc->dump();
}

TEST_F(E2eCrd, RejectsBadInputAndEditsOfImmutableFields) {
  E2E_REQUIRE_REAL_SERVER("schema validation");
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  Json bad = Mv("bad-" + RandomSuffix(), "Bad_Name", "v1");
  bad["spec"]["source"] = {{"generate", {{"bytes", 0}}}, {"tsv", {{"path", "../x"}}}};
  auto r = client_->Create(kModelVersions, ns_, bad);
  ASSERT_FALSE(r.has_value()) << r->dump();
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
  EXPECT_NE(r.error().message().find("spec.model"), std::string::npos) << r.error().message();

  const std::string name = "imm-" + RandomSuffix();
  auto created = client_->Create(kModelVersions, ns_, Mv(name, "imm", "v1"));
  ASSERT_TRUE(created.has_value()) << created.error().ToString();
  for (const Json& patch :
       {Json{{"spec", {{"model", "other"}}}}, Json{{"spec", {{"version", "v2"}}}},
        Json{{"spec", {{"source", {{"generate", {{"bytes", 7}}}}}}}}}) {
    auto p = client_->Patch(kModelVersions, ns_, name, PatchType::kMerge, patch);
    ASSERT_FALSE(p.has_value()) << "accepted " << patch.dump();
    EXPECT_EQ(p.error().code(), Code::kInvalidArgument) << p.error().ToString();
  }
  // Mutable fields stay mutable.
  auto ok =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge, {{"spec", {{"retain", 5}}}});
  EXPECT_TRUE(ok.has_value()) << ok.error().ToString();
}

// `kubectl get mv` asks for a Table: the columns are Name plus the CRD's printer columns in
// order, rows carry one cell per column (null where the object lacks the field).
TEST_F(E2eCrd, PrinterColumnsAreServedAsATable) {
  E2E_REQUIRE_REAL_SERVER("Table format");
  ASSERT_NO_FATAL_FAILURE(ApplyCrd());
  const std::string name = "cols-" + RandomSuffix();
  ASSERT_TRUE(client_->Create(kModelVersions, ns_, Mv(name, "cols", "v7")).has_value());
  auto st =
      client_->Patch(kModelVersions, ns_, name, PatchType::kMerge,
                     {{"status", {{"phase", "Writing"}, {"jobName", name + "-write"}}}}, true);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();

  auto served = client_->Get(kCrds, "", "modelversions.modelswap.io");
  ASSERT_TRUE(served.has_value()) << served.error().ToString();
  std::vector<std::string> want = {"Name"};
  std::vector<std::string> paths = {""};
  for (const auto& v : Field<Json>(*served, {"spec", "versions"}, Json::array())) {
    if (Field<std::string>(v, {"name"}) != "v1alpha1") continue;
    for (const auto& c : Field<Json>(v, {"additionalPrinterColumns"}, Json::array())) {
      want.push_back(Field<std::string>(c, {"name"}));
      paths.push_back(Field<std::string>(c, {"jsonPath"}));
    }
  }
  ASSERT_GT(want.size(), 1u) << "the CRD declares no printer columns";

  const std::string accept =
      "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
      "g=meta.k8s.io,application/json";
  auto table = RawGetJson(config_, kModelVersions.Path(ns_) + "?limit=500", accept);
  ASSERT_TRUE(table.has_value()) << table.error().ToString();
  EXPECT_EQ(Field<std::string>(*table, {"kind"}), "Table");
  EXPECT_EQ(Field<std::string>(*table, {"apiVersion"}), "meta.k8s.io/v1");
  std::vector<std::string> got;
  for (const auto& c : Field<Json>(*table, {"columnDefinitions"}, Json::array()))
    got.push_back(Field<std::string>(c, {"name"}));
  EXPECT_EQ(got, want);
  const Json rows = Field<Json>(*table, {"rows"}, Json::array());
  ASSERT_EQ(rows.size(), 1u) << table->dump();
  const Json cells = rows[0]["cells"];
  ASSERT_EQ(cells.size(), want.size()) << rows[0].dump();
  EXPECT_EQ(cells[0], name);
  const std::map<std::string, Json> expected = {{".spec.model", "cols"},
                                                {".spec.version", "v7"},
                                                {".status.phase", "Writing"},
                                                {".status.jobName", name + "-write"}};
  for (size_t i = 1; i < want.size(); ++i) {
    auto it = expected.find(paths[i]);
    if (it != expected.end()) {
      EXPECT_EQ(cells[i], it->second) << "column " << want[i];
    }
  }
  // One object: the same columns.
  auto one = RawGetJson(config_, kModelVersions.Path(ns_, name), accept);
  ASSERT_TRUE(one.has_value()) << one.error().ToString();
  EXPECT_EQ(Field<Json>(*one, {"rows"}, Json::array()).size(), 1u);
}

}  // namespace
}  // namespace modelswap::op::e2e
