// Injection settings: quantity/duration/name parsing, config validation, and one test per
// annotation error (each message must name the annotation and the problem).
#include "operator/webhook/injection_config.h"

#include <gtest/gtest.h>

namespace modelswap::op {
namespace {

using Annotations = std::map<std::string, std::string>;

Annotations Base() {
  return {{"modelswap.io/inject", "true"}, {"modelswap.io/models", "ranker,embeddings"}};
}

// Expects ParsePodSettings to fail with a message containing every fragment.
void ExpectDenied(Annotations a, std::initializer_list<const char*> fragments) {
  auto s = ParsePodSettings(a, InjectionConfig{});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  for (const char* f : fragments)
    EXPECT_NE(s.error().message().find(f), std::string::npos)
        << "missing \"" << f << "\" in: " << s.error().message();
}

TEST(ParseQuantity, AcceptsTheApiGrammar) {
  EXPECT_DOUBLE_EQ(*ParseQuantity("250m"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1"), 1);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1.5"), 1.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity(".5"), 0.5);
  EXPECT_DOUBLE_EQ(*ParseQuantity("+2"), 2);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1Gi"), 1073741824.0);
  EXPECT_DOUBLE_EQ(*ParseQuantity("128Mi"), 128.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2k"), 2000);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1e3"), 1000);
  EXPECT_DOUBLE_EQ(*ParseQuantity("1E"), 1e18);
  // Ei is a binary suffix, not an exponent (a large shm-size or memory limit is written so).
  ASSERT_TRUE(ParseQuantity("1Ei").has_value()) << ParseQuantity("1Ei").error().message();
  EXPECT_DOUBLE_EQ(*ParseQuantity("1Ei"), 0x1p60);
  EXPECT_DOUBLE_EQ(*ParseQuantity("2Pi"), 0x1p51);
  EXPECT_DOUBLE_EQ(*ParseQuantity("-1"), -1);
}

TEST(ParseQuantity, RejectsMalformed) {
  for (const char* bad :
       {"", "Gi", "1GB", "1 Gi", "abc", "1.2.3", "1e", "1e1.5", "--1", "1gi", "1Eii", "1ei"}) {
    EXPECT_FALSE(ParseQuantity(bad).has_value()) << bad;
  }
}

TEST(ParseDurationMs, Units) {
  EXPECT_EQ(*ParseDurationMs("500ms"), 500);
  EXPECT_EQ(*ParseDurationMs("2s"), 2000);
  EXPECT_EQ(*ParseDurationMs("1m"), 60000);
  EXPECT_EQ(*ParseDurationMs("1h"), 3600000);
  EXPECT_EQ(*ParseDurationMs("750"), 750);
  for (const char* bad : {"", "fast", "1d", "-1s", "s", "1.5s", "99999999999999999999h"}) {
    EXPECT_FALSE(ParseDurationMs(bad).has_value()) << bad;
  }
}

TEST(ValidateImageReference, Rules) {
  EXPECT_TRUE(ValidateImageReference("ghcr.io/a/b:1.0").has_value());
  EXPECT_TRUE(ValidateImageReference("repo/img@sha256:abcd").has_value());
  EXPECT_FALSE(ValidateImageReference("").has_value());
  EXPECT_FALSE(ValidateImageReference("has space").has_value());
  EXPECT_FALSE(ValidateImageReference("tab\there").has_value());
  EXPECT_FALSE(ValidateImageReference("-flag").has_value());
  EXPECT_FALSE(ValidateImageReference(std::string(513, 'a')).has_value());
}

TEST(ValidateDnsSubdomain, Rules) {
  EXPECT_TRUE(ValidateDnsSubdomain("models").has_value());
  EXPECT_TRUE(ValidateDnsSubdomain("models.team-a").has_value());
  EXPECT_FALSE(ValidateDnsSubdomain("").has_value());
  EXPECT_FALSE(ValidateDnsSubdomain("Models").has_value());
  EXPECT_FALSE(ValidateDnsSubdomain("-models").has_value());
  EXPECT_FALSE(ValidateDnsSubdomain("models_a").has_value());
  EXPECT_FALSE(ValidateDnsSubdomain(std::string(254, 'a')).has_value());
}

TEST(ValidateConfig, DefaultsAreValid) {
  EXPECT_TRUE(ValidateConfig(InjectionConfig{}).has_value());
}

TEST(ValidateConfig, RejectsEachBadField) {
  auto bad = [](auto mutate) {
    InjectionConfig c;
    mutate(c);
    return !ValidateConfig(c).has_value();
  };
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.agent_image = ""; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.claim_name = "Bad"; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.model_root = "models"; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.shm_dir = "/a/../b"; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.shm_dir = c.model_root; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.agent_port = 0; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.poll_interval_ms = 0; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.shm_size = "big"; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.cpu_request = "0"; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.startup_failure_threshold = 0; }));
  EXPECT_TRUE(bad([](InjectionConfig& c) { c.wait_command.clear(); }));
}

TEST(WantsInjection, AnnotationThenLabel) {
  EXPECT_EQ(WantsInjection({{"modelswap.io/inject", "true"}}, {}), InjectRequest::kInject);
  EXPECT_EQ(WantsInjection({{"modelswap.io/inject", "false"}}, {{"modelswap.io/inject", "true"}}),
            InjectRequest::kNone);
  EXPECT_EQ(WantsInjection({{"modelswap.io/inject", "yes"}}, {}), InjectRequest::kInvalid);
  EXPECT_EQ(WantsInjection({}, {{"modelswap.io/inject", "true"}}), InjectRequest::kInject);
  EXPECT_EQ(WantsInjection({}, {}), InjectRequest::kNone);
}

TEST(ParsePodSettings, DefaultsFromConfig) {
  InjectionConfig cfg;
  auto s = ParsePodSettings(Base(), cfg);
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_EQ(s->models, (std::vector<std::string>{"ranker", "embeddings"}));
  EXPECT_EQ(s->models_csv, "ranker,embeddings");
  EXPECT_EQ(s->agent_image, cfg.agent_image);
  EXPECT_EQ(s->cpu_request, cfg.cpu_request);
  EXPECT_EQ(s->memory_request, cfg.memory_request);
  EXPECT_EQ(s->shm_size, cfg.shm_size);
  EXPECT_EQ(s->poll_interval_ms, cfg.poll_interval_ms);
  EXPECT_EQ(s->claim_name, cfg.claim_name);
}

TEST(ParsePodSettings, AnnotationsOverride) {
  Annotations a = Base();
  a["modelswap.io/models"] = " ranker , embeddings";
  a["modelswap.io/agent-image"] = "registry.example/agent:2";
  a["modelswap.io/agent-cpu"] = "250m";
  a["modelswap.io/agent-memory"] = "1Gi";
  a["modelswap.io/agent-cpu-limit"] = "1";
  a["modelswap.io/agent-memory-limit"] = "2Gi";
  a["modelswap.io/poll-interval"] = "250ms";
  a["modelswap.io/shm-size"] = "64Mi";
  a["modelswap.io/claim-name"] = "team-models";
  auto s = ParsePodSettings(a, InjectionConfig{});
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  EXPECT_EQ(s->models_csv, "ranker,embeddings");
  EXPECT_EQ(s->agent_image, "registry.example/agent:2");
  EXPECT_EQ(s->cpu_request, "250m");
  EXPECT_EQ(s->memory_request, "1Gi");
  EXPECT_EQ(s->cpu_limit, "1");
  EXPECT_EQ(s->memory_limit, "2Gi");
  EXPECT_EQ(s->poll_interval_ms, 250);
  EXPECT_EQ(s->shm_size, "64Mi");
  EXPECT_EQ(s->claim_name, "team-models");
}

TEST(ParsePodSettings, MissingModels) {
  ExpectDenied({{"modelswap.io/inject", "true"}}, {"modelswap.io/models", "required"});
}
TEST(ParsePodSettings, EmptyModels) {
  ExpectDenied({{"modelswap.io/models", ""}}, {"modelswap.io/models", "required"});
}
TEST(ParsePodSettings, BadModelName) {
  ExpectDenied({{"modelswap.io/models", "ranker,Bad_Model"}},
               {"modelswap.io/models", "Bad_Model", "DNS-1123"});
}
TEST(ParsePodSettings, EmptyModelInList) {
  ExpectDenied({{"modelswap.io/models", "ranker,,b"}}, {"modelswap.io/models", "1 to 63"});
}
TEST(ParsePodSettings, DuplicateModel) {
  ExpectDenied({{"modelswap.io/models", "a,b,a"}}, {"modelswap.io/models", "twice"});
}
TEST(ParsePodSettings, BadImage) {
  Annotations a = Base();
  a["modelswap.io/agent-image"] = "bad image";
  ExpectDenied(a, {"modelswap.io/agent-image", "image"});
}
TEST(ParsePodSettings, BadCpu) {
  Annotations a = Base();
  a["modelswap.io/agent-cpu"] = "lots";
  ExpectDenied(a, {"modelswap.io/agent-cpu", "quantity"});
}
TEST(ParsePodSettings, ZeroMemory) {
  Annotations a = Base();
  a["modelswap.io/agent-memory"] = "0";
  ExpectDenied(a, {"modelswap.io/agent-memory", "greater than zero"});
}
TEST(ParsePodSettings, NegativeCpuLimit) {
  Annotations a = Base();
  a["modelswap.io/agent-cpu-limit"] = "-1";
  ExpectDenied(a, {"modelswap.io/agent-cpu-limit", "greater than zero"});
}
TEST(ParsePodSettings, LimitBelowRequest) {
  Annotations a = Base();
  a["modelswap.io/agent-memory"] = "1Gi";
  a["modelswap.io/agent-memory-limit"] = "512Mi";
  ExpectDenied(a, {"modelswap.io/agent-memory-limit", "below the request"});
}
TEST(ParsePodSettings, BadShmSize) {
  Annotations a = Base();
  a["modelswap.io/shm-size"] = "1GB";
  ExpectDenied(a, {"modelswap.io/shm-size", "quantity"});
}
TEST(ParsePodSettings, BadPollInterval) {
  Annotations a = Base();
  a["modelswap.io/poll-interval"] = "fast";
  ExpectDenied(a, {"modelswap.io/poll-interval", "duration"});
}
TEST(ParsePodSettings, PollIntervalOutOfRange) {
  Annotations a = Base();
  a["modelswap.io/poll-interval"] = "2h";
  ExpectDenied(a, {"modelswap.io/poll-interval", "between"});
}
TEST(ParsePodSettings, BadClaimName) {
  Annotations a = Base();
  a["modelswap.io/claim-name"] = "Team_Models";
  ExpectDenied(a, {"modelswap.io/claim-name", "PersistentVolumeClaim"});
}

TEST(UnknownModelswapAnnotations, FindsTypos) {
  Annotations a = Base();
  a["modelswap.io/agent-cpus"] = "1";
  a["modelswap.io/injected"] = "x";  // the operator's own, not a typo
  a["other.io/x"] = "y";
  EXPECT_EQ(UnknownModelswapAnnotations(a), std::vector<std::string>{"modelswap.io/agent-cpus"});
}

}  // namespace
}  // namespace modelswap::op
