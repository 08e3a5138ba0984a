// YamlToJson: typing as the API server reads YAML, and the bounds that keep hostile files (alias
// cycles, alias bombs, deep nesting) from crashing or hanging the operator, in-process and with a
// real standalone operator process that must answer such a file with its .error and live on.
#include "operator/standalone/yaml_json.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>

#include "common/subprocess.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op {
namespace {

Json One(const std::string& yaml) {
  auto docs = YamlToJson(yaml);
  EXPECT_TRUE(docs.has_value()) << docs.error().message();
  if (!docs || docs->size() != 1) return nullptr;
  return (*docs)[0];
}

std::string ErrorOf(const std::string& yaml, YamlLimits limits = {}) {
  auto docs = YamlToJson(yaml, limits);
  EXPECT_FALSE(docs.has_value()) << "accepted: " << yaml.substr(0, 80);
  return docs ? "" : docs.error().message();
}

TEST(YamlJson, TypesScalarsAsTheCoreSchema) {
  Json j = One("a: 7\nb: '7'\nc: true\nd: ~\ne: 1.5\nf: text\ng: \"true\"\nh: [1, x]\n");
  EXPECT_EQ(j["a"], 7);
  EXPECT_EQ(j["b"], "7");
  EXPECT_EQ(j["c"], true);
  EXPECT_TRUE(j["d"].is_null());
  EXPECT_EQ(j["e"], 1.5);
  EXPECT_EQ(j["f"], "text");
  EXPECT_EQ(j["g"], "true");
  EXPECT_EQ(j["h"], Json::parse(R"([1, "x"])"));
}

TEST(YamlJson, SeveralDocumentsAndEmptyOnesSkipped) {
  auto docs = YamlToJson("a: 1\n---\n---\nb: [2]\n...\n");
  ASSERT_TRUE(docs.has_value());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[1]["b"][0], 2);
}

TEST(YamlJson, AliasesToFinishedNodesAreCopies) {
  Json j = One("base: &b {cpu: 1, tags: [x, y]}\none: *b\ntwo: *b\nname: &n ranker\nalso: *n\n");
  EXPECT_EQ(j["one"], j["base"]);
  EXPECT_EQ(j["two"]["tags"][1], "y");
  EXPECT_EQ(j["also"], "ranker");
}

TEST(YamlJson, SelfReferencingAliasIsAnErrorNotACrash) {
  // The 11-byte file that used to crash the operator at every start (unbounded recursion).
  std::string e = ErrorOf("a: &x [*x]\n");
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  EXPECT_NE(ErrorOf("a: &m {b: {c: *m}}\n").find("cycle"), std::string::npos);
}

TEST(YamlJson, AliasBombIsRefusedBeforeItExpands) {
  // Nine levels of ten aliases: 10^9 nodes if expanded.
  std::string y = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    y += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k)
      y += prev + (k < 9 ? ", " : "");
    y += "]\n";
  }
  std::string e = ErrorOf(y);
  EXPECT_NE(e.find("expands to more than 100000 nodes"), std::string::npos) << e;
  // The same shape within the budget is fine: three levels are 1,000 nodes.
  EXPECT_TRUE(YamlToJson(y.substr(0, y.find("l3:"))).has_value());
}

TEST(YamlJson, NestingDeeperThanTheLimitIsRefused) {
  std::string deep(65, '[');
  deep += std::string(65, ']');
  EXPECT_NE(ErrorOf(deep).find("nested deeper than 64 levels"), std::string::npos);
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_TRUE(YamlToJson(ok).has_value());
  // Far past yaml-cpp's own parser depth guard: still an error, not a stack overflow.
  std::string very(100000, '[');
  EXPECT_FALSE(YamlToJson(very).has_value());
}

TEST(YamlJson, NodeBudgetCountsEveryDocument) {
  YamlLimits small{.max_depth = 64, .max_nodes = 10};
  EXPECT_TRUE(YamlToJson("[1, 2, 3]\n", small).has_value());
  EXPECT_NE(ErrorOf("[1, 2, 3]\n---\n[4, 5, 6]\n---\n[7, 8]\n", small).find("more than 10 nodes"),
            std::string::npos);
}

TEST(YamlJson, NonScalarKeysAndSyntaxErrorsNameTheProblem) {
  EXPECT_NE(ErrorOf("? [a, b]\n: 1\n").find("map key is not a scalar"), std::string::npos);
  EXPECT_NE(ErrorOf("a: [1, 2\n").find("YAML"), std::string::npos);
  EXPECT_NE(ErrorOf("a: *nowhere\n").find("YAML"), std::string::npos);
}

// A real standalone operator given the hostile files: each gets its .error, the operator keeps
// running, and SIGTERM still stops it.
TEST(YamlJsonProcess, HostileFilesGetErrorsAndTheOperatorLives) {
  testing::TempDir objects, data, logs;
  objects.Write("cycle.yaml", "a: &x [*x]\n");
  std::string bomb = "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    bomb += "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + prev + ", " + prev +
            ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev + ", " + prev +
            ", " + prev + ", " + prev + "]\n";
  }
  objects.Write("bomb.yaml", bomb);
  objects.Write("deep.yaml", std::string(5000, '[') + std::string(5000, ']'));
  // Files written within the last second wait a scan (standalone/files.cc): age them.
  for (auto& e : std::filesystem::directory_iterator(objects.path)) {
    std::filesystem::last_write_time(
        e.path(), std::filesystem::file_time_type::clock::now() - std::chrono::seconds(5));
  }
  auto pid = SpawnProcess({MODELSWAP_OPERATOR_BIN, "--standalone", objects.path, "--root",
                           data.path, "--sidecar-bin", "/bin/false"},
                          logs.path + "/out", logs.path + "/err");
  ASSERT_TRUE(pid.has_value());
  const std::string status = objects.path + "/.status/";
  EXPECT_TRUE(testing::WaitFor([&] {
    return std::filesystem::exists(status + "cycle.yaml.error") &&
           std::filesystem::exists(status + "bomb.yaml.error") &&
           std::filesystem::exists(status + "deep.yaml.error");
  })) << testing::ReadFile(logs.path + "/err");
  EXPECT_NE(testing::ReadFile(status + "cycle.yaml.error").find("cycle"), std::string::npos);
  EXPECT_NE(testing::ReadFile(status + "bomb.yaml.error").find("nodes"), std::string::npos);
  int wstatus = 0;
  EXPECT_EQ(::waitpid(*pid, &wstatus, WNOHANG), 0) << "the operator died";
  ::kill(*pid, SIGTERM);
  bool stopped = testing::WaitFor([&] { return ::waitpid(*pid, &wstatus, WNOHANG) == *pid; });
  if (!stopped) {
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, &wstatus, 0);
  }
  EXPECT_TRUE(stopped) << "SIGTERM ignored";
  EXPECT_TRUE(WIFEXITED(wstatus)) << "died of a signal";
}

}  // namespace
}  // namespace modelswap::op
