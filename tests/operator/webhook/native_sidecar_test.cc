// Native-sidecar detection: the recorded API server answers (gate on / off) classify right, the
// answer is cached, re-checked when due (fake clock), kept over inconclusive checks, and the
// background thread runs a check and stops.
#include "operator/webhook/native_sidecar.h"

#include <gtest/gtest.h>

#include <future>

#include "tests/operator/webhook/admission_util.h"

namespace modelswap::op {
namespace {

using testing::Json;

// The response bodies of a recorded .http file, in order.
std::vector<std::pair<int, std::string>> Responses(const std::string& name) {
  std::string text = testing::ReadFile(std::string(MODELSWAP_WEBHOOK_TESTDATA) + "/" + name);
  std::vector<std::pair<int, std::string>> out;
  for (size_t at = 0; (at = text.find("### response\n", at)) != std::string::npos;) {
    size_t status = at + 13;
    int code = std::stoi(text.substr(status + 9, 3));  // "HTTP/1.1 NNN"
    size_t body = text.find("\n\n", status) + 2;
    size_t end = text.find("### request", body);
    out.emplace_back(code, text.substr(body, end == std::string::npos ? end : end - body));
    at = body;
  }
  return out;
}

// A server answer as the operator's client would return it.
Result<Json> AsClientResult(int code, const std::string& body) {
  Json j = Json::parse(body);
  if (code / 100 == 2) {
    // The recorded pods are for a different probe; rename their sidecar to ours.
    for (auto& c : j["spec"]["initContainers"])
      c["name"] = "modelswap-sidecar-probe";
    return j;
  }
  Code c = code == 422   ? Code::kInvalidArgument
           : code == 403 ? Code::kPermissionDenied
                         : Code::kUnavailable;
  return Fail(c, j.value("message", ""));
}

class FakeClockEnv : public EnvWrapper {
 public:
  FakeClockEnv() : EnvWrapper(DefaultEnv()) {}
  int64_t NowMonotonicNanos() override { return now_ns; }
  int64_t now_ns = 1'000'000'000;
};

TEST(ClassifyDryRun, GateOnKeepsRestartPolicy) {
  auto r = Responses("native-sidecar-with-gate.http");
  ASSERT_EQ(r.size(), 1u);
  ASSERT_EQ(r[0].first, 201);
  std::string why;
  EXPECT_EQ(ClassifyDryRun(AsClientResult(r[0].first, r[0].second), &why), SidecarSupport::kNative);
  EXPECT_NE(why.find("kept"), std::string::npos);
}

TEST(ClassifyDryRun, GateOffRejectsStartupProbe) {
  auto r = Responses("native-sidecar-without-gate.http");
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(r[0].first, 422);
  EXPECT_EQ(ClassifyDryRun(AsClientResult(r[0].first, r[0].second), nullptr),
            SidecarSupport::kNotSupported);
}

TEST(ClassifyDryRun, GateOffDropsRestartPolicy) {
  auto r = Responses("native-sidecar-without-gate.http");
  ASSERT_EQ(r[1].first, 201);
  std::string why;
  EXPECT_EQ(ClassifyDryRun(AsClientResult(r[1].first, r[1].second), &why),
            SidecarSupport::kNotSupported);
  EXPECT_NE(why.find("lost"), std::string::npos);
}

TEST(ClassifyDryRun, ForbiddenIsInconclusive) {
  std::string why;
  EXPECT_EQ(ClassifyDryRun(Fail(Code::kPermissionDenied, "pods is forbidden"), &why),
            SidecarSupport::kUnknown);
  EXPECT_NE(why.find("create on pods"), std::string::npos);
}

// Review finding: a 400/422 for another reason (a webhook in the namespace that cannot take a
// dry run, a policy) said "no native sidecars" and switched a capable cluster to the fallback.
TEST(ClassifyDryRun, OtherInvalidAnswersAreInconclusive) {
  EXPECT_EQ(ClassifyDryRun(Fail(Code::kInvalidArgument,
                                "admission webhook \"x.example.com\" does not support dry run"),
                           nullptr),
            SidecarSupport::kUnknown);
  EXPECT_EQ(ClassifyDryRun(Fail(Code::kInvalidArgument,
                                "Pod \"p\" is invalid: spec.containers[0].image: Required value"),
                           nullptr),
            SidecarSupport::kUnknown);
}

TEST(ClassifyDryRun, UnavailableIsInconclusive) {
  EXPECT_EQ(ClassifyDryRun(Fail(Code::kUnavailable, "connection refused"), nullptr),
            SidecarSupport::kUnknown);
}

TEST(SidecarProbePod, IsANativeSidecarPodInTheGivenNamespace) {
  SidecarSupportOptions o;
  o.ns = "modelswap-system";
  Json pod = SidecarProbePod(o);
  EXPECT_EQ(pod["metadata"]["namespace"], "modelswap-system");
  EXPECT_FALSE(pod["metadata"].contains("name"));  // generateName: never collides
  EXPECT_EQ(pod["spec"]["initContainers"][0]["restartPolicy"], "Always");
  EXPECT_TRUE(pod["spec"]["initContainers"][0].contains("startupProbe"));
}

struct Scripted {
  std::vector<Result<Json>> answers;
  size_t calls = 0;
  std::string ns;
  DryRunPodCreate Fn() {
    return [this](const std::string& n, const Json& pod) -> Result<Json> {
      ns = n;
      EXPECT_EQ(pod["kind"], "Pod");
      return answers.at(std::min(calls++, answers.size() - 1));
    };
  }
};

Json NativeAnswer() {
  return {
      {"spec",
       {{"initContainers", {{{"name", "modelswap-sidecar-probe"}, {"restartPolicy", "Always"}}}}}}};
}
Json DroppedAnswer() {
  return {{"spec", {{"initContainers", {{{"name", "modelswap-sidecar-probe"}}}}}}};
}

TEST(SidecarSupportDetector, UnknownAndNotNativeBeforeTheFirstCheck) {
  Scripted s{{NativeAnswer()}};
  FakeClockEnv env;
  SidecarSupportDetector d(s.Fn(), &env);
  EXPECT_EQ(d.Cached(), SidecarSupport::kUnknown);
  EXPECT_FALSE(d.Native());
  EXPECT_EQ(s.calls, 0u);
}

TEST(SidecarSupportDetector, CachesAndRechecksWhenDue) {
  Scripted s{{NativeAnswer(), DroppedAnswer()}};
  FakeClockEnv env;
  SidecarSupportOptions o;
  o.ns = "ops";
  o.recheck_interval = std::chrono::seconds(600);
  SidecarSupportDetector d(s.Fn(), &env, o);
  d.MaybeRecheck();
  EXPECT_TRUE(d.Native());
  EXPECT_EQ(s.ns, "ops");
  env.now_ns += 599'000'000'000;
  d.MaybeRecheck();
  EXPECT_EQ(s.calls, 1u);  // cached, not due yet
  env.now_ns += 1'000'000'000;
  d.MaybeRecheck();
  EXPECT_EQ(s.calls, 2u);
  EXPECT_EQ(d.Cached(), SidecarSupport::kNotSupported);  // e.g. the gate was turned off
}

TEST(SidecarSupportDetector, InconclusiveKeepsLastAnswerAndRetriesSooner) {
  Scripted s{{NativeAnswer(), Fail(Code::kUnavailable, "apiserver down"), DroppedAnswer()}};
  FakeClockEnv env;
  SidecarSupportOptions o;
  o.recheck_interval = std::chrono::seconds(600);
  o.retry_interval = std::chrono::seconds(15);
  SidecarSupportDetector d(s.Fn(), &env, o);
  EXPECT_EQ(d.Check(), SidecarSupport::kNative);
  env.now_ns += 600'000'000'000;
  d.MaybeRecheck();
  EXPECT_EQ(s.calls, 2u);
  EXPECT_TRUE(d.Native());  // kept over an inconclusive check
  EXPECT_NE(d.LastReason().find("apiserver down"), std::string::npos);
  env.now_ns += 15'000'000'000;
  d.MaybeRecheck();
  EXPECT_EQ(s.calls, 3u);
  EXPECT_EQ(d.Cached(), SidecarSupport::kNotSupported);
}

TEST(SidecarSupportDetector, ThrowingCallbackIsInconclusive) {
  FakeClockEnv env;
  SidecarSupportDetector d(
      [](const std::string&, const Json&) -> Result<Json> { throw std::runtime_error("boom"); },
      &env);
  EXPECT_EQ(d.Check(), SidecarSupport::kUnknown);
  EXPECT_NE(d.LastReason().find("boom"), std::string::npos);
}

TEST(SidecarSupportDetector, BackgroundThreadChecksAndStops) {
  std::promise<void> called;
  std::atomic<bool> once{false};
  SidecarSupportDetector d(
      [&](const std::string&, const Json&) -> Result<Json> {
        if (!once.exchange(true)) called.set_value();
        return NativeAnswer();
      },
      DefaultEnv());
  d.Start();
  called.get_future().wait();
  d.Stop();  // returns although the next check is 10 minutes away
  EXPECT_TRUE(d.Native());
}

}  // namespace
}  // namespace modelswap::op
