// The standalone end-to-end fixture: a real modelswap-operator process over a directory of YAML
// files, with a fake writer that honours the modelswap-sidecar CLI contract. Shared by the
// standalone tests (standalone_test.cc, standalone_duplicate_test.cc, standalone_tasks_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "common/subprocess.h"
#include "operator/kube/object.h"
#include "tests/operator/testing/test_util.h"

namespace modelswap::op::standalone_testing {

using testing::WaitFor;

// write/publish/remove per the CLI contract: files under ROOT/MODEL, one JSON line on stdout.
constexpr const char* kFakeSidecar = R"SH(#!/bin/sh
cmd=$1; shift
publish=0
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$2; shift;; --model) model=$2; shift;; --version) version=$2; shift;;
    --generate-bytes) bytes=$2; shift;; --seed) shift;; --publish) publish=1;;
    *) ;;
  esac
  shift
done
dir=$root/$model
mkdir -p $dir/versions
gen=$(cat $dir/.gen 2>/dev/null || echo 0)
case $cmd in
  write)
    [ -e $dir/versions/$version.msf ] && { echo '{"error":"exists","code":"AlreadyExists"}'; exit 3; }
    head -c ${bytes:-16} /dev/zero > $dir/versions/$version.msf
    out="\"model\":\"$model\",\"version\":\"$version\",\"path\":\"$dir/versions/$version.msf\",\"bytes\":${bytes:-16},\"checksum\":\"xxh3:00000000000000aa\",\"seconds\":0.01"
    if [ $publish = 1 ]; then gen=$((gen+1)); echo $gen > $dir/.gen; echo $version > $dir/manifest; out="$out,\"manifest_generation\":$gen"; fi
    echo "{$out}";;
  publish)
    gen=$((gen+1)); echo $gen > $dir/.gen; echo $version > $dir/manifest
    echo "{\"model\":\"$model\",\"version\":\"$version\",\"manifest_generation\":$gen}";;
  remove)
    [ "$(cat $dir/manifest 2>/dev/null)" = "$version" ] && { echo '{"error":"active","code":"FailedPrecondition"}' >&2; exit 1; }
    rm -f $dir/versions/$version.msf; echo '{"removed":true}';;
esac
)SH";

inline std::string MvYaml(const std::string& v, int retain = 3) {
  return "apiVersion: modelswap.io/v1alpha1\nkind: ModelVersion\nmetadata:\n  name: ranker-" + v +
         "\nspec:\n  model: ranker\n  version: " + v +
         "\n  storage: {claimName: models}\n  source:\n    generate: {bytes: 4096, seed: 7}\n"
         "  retain: " +
         std::to_string(retain) + "\n";
}

inline int Lines(const std::string& path) {
  if (!std::filesystem::exists(path)) return 0;
  const std::string text = testing::ReadFile(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

class StandaloneTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void Start(const std::string& sidecar) {
    std::filesystem::create_directories(objects_.path);
    auto pid = SpawnProcess({MODELSWAP_OPERATOR_BIN, "--standalone", objects_.path, "--root",
                             data_.path, "--sidecar-bin", sidecar, "--log-level", "info"},
                            tools_.path + "/operator.out", tools_.path + "/operator.err");
    ASSERT_TRUE(pid.has_value());
    pid_ = *pid;
  }
  std::string Phase(const std::string& name) {
    Json j = Json::parse(testing::ReadFile(objects_.path + "/.status/" + name + ".json"), nullptr,
                         false);
    return j.is_discarded() ? "" : Field<std::string>(j, {"status", "phase"});
  }
  bool WaitPhase(const std::string& name, const std::string& phase) {
    return WaitFor([&] { return Phase(name) == phase; });
  }
  // Starts the operator with `sidecar` and rolls ranker out to v1, then to v2 (v1 Superseded).
  // Fatal failures stay in here: call it through ASSERT_NO_FATAL_FAILURE.
  void RollOutV1ThenV2(const std::string& sidecar) {
    Start(sidecar);
    objects_.Write("v1.yaml", MvYaml("v1"));
    ASSERT_TRUE(WaitPhase("ranker-v1", "Active"));
    objects_.Write("v2.yaml", MvYaml("v2"));
    ASSERT_TRUE(WaitPhase("ranker-v2", "Active"));
    ASSERT_TRUE(WaitPhase("ranker-v1", "Superseded"));
  }

  // Starts the operator with GatedSidecar, applies v1 and returns once its writer runs (and is
  // recorded with its pid), waiting for TOOLS/go.
  void StartWithGatedWriter() {
    Start(GatedSidecar());
    objects_.Write("v1.yaml", MvYaml("v1"));
    ASSERT_TRUE(WaitFor([&] {
      if (Invocations() != 1 || !std::filesystem::exists(Record())) return false;
      Json j = Json::parse(testing::ReadFile(Record()), nullptr, false);
      return Field<int64_t>(j, {"pid"}, -1) > 0;
    }));
  }
  void StopOperator(int signal) {
    ::kill(pid_, signal);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // A writer that logs each start in TOOLS/invocations and waits for TOOLS/go before it works;
  // a SIGTERM it receives is logged in TOOLS/signals.
  std::string GatedSidecar() {
    const std::string fake = tools_.Write("fake-sidecar", kFakeSidecar, true);
    const std::string gate =
        "#!/bin/sh\ntrap 'echo TERM >> " + tools_.path +
        "/signals; exit 143' TERM\nif [ \"$1\" = write ]; then\n  echo \"$1\" >> " + tools_.path +
        "/invocations\n  while [ ! -e " + tools_.path + "/go ]; do sleep 0.05; done\nfi\nexec " +
        fake + " \"$@\"\n";
    return tools_.Write("gated-sidecar", gate, true);
  }
  int Invocations() { return Lines(tools_.path + "/invocations"); }
  std::string Record() { return objects_.path + "/.status/tasks/ranker-v1-write.json"; }
  // The operator rewrites a bad file's .error on every scan: returns once two scans have run
  // after `after` from now, so whatever such a scan would start has had a poll interval to act.
  void WaitForScansAfter(const std::string& error_file, std::chrono::milliseconds after) {
    const auto edge = std::filesystem::file_time_type::clock::now() + after;
    auto written = [&] {
      std::error_code ec;
      return std::filesystem::last_write_time(error_file, ec);
    };
    ASSERT_TRUE(WaitFor([&] { return written() > edge; }));
    const auto first = written();
    ASSERT_TRUE(WaitFor([&] { return written() > first; }));
  }

  testing::TempDir objects_, data_, tools_;
  pid_t pid_ = -1;
};

}  // namespace modelswap::op::standalone_testing
