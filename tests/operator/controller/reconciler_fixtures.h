// Builders shared by the reconciler's unit tests: ModelVersions, task observations and inputs
// as the backends would hand them to Decide(), and applying a decision's status writes.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "operator/api/well_known.h"
#include "operator/controller/reconciler.h"
#include "operator/kube/resource.h"

namespace modelswap::op {

inline ModelVersion Mv(const std::string& version, int64_t created_s, bool activate = true) {
  Json obj = {{"apiVersion", "modelswap.io/v1alpha1"},
              {"kind", "ModelVersion"},
              {"metadata",
               {{"name", "ranker-" + version},
                {"namespace", "default"},
                {"uid", "uid-" + version},
                {"resourceVersion", "1"},
                {"generation", 1},
                {"creationTimestamp", FormatTime(created_s * 1'000'000'000)},
                {"finalizers", {kFinalizer}}}},
              {"spec",
               {{"model", "ranker"},
                {"version", version},
                {"storage", {{"claimName", "models"}}},
                {"source", {{"generate", {{"bytes", 1024}, {"seed", 7}}}}},
                {"activate", activate},
                {"retain", 1}}}};
  auto mv = ParseModelVersion(obj);
  EXPECT_TRUE(mv.has_value()) << mv.error().ToString();
  return *mv;
}

inline TaskObservation Task(const ModelVersion& mv, TaskKind kind, TaskObservation::State state,
                            std::string result = "", int64_t generation = 1) {
  TaskObservation t;
  t.name = TaskName(mv.name, kind, generation);
  t.kind = kind;
  t.owner = mv.name;
  t.generation = generation;
  t.state = state;
  t.result = std::move(result);
  return t;
}

inline std::string WriteResult(const std::string& v, int gen) {
  return R"({"model":"ranker","version":")" + v + R"(","path":"/models/ranker/versions/)" + v +
         R"(.msf","bytes":1024,"checksum":"xxh3:0011223344556677","seconds":0.1,"manifest_generation":)" +
         std::to_string(gen) + "}\n";
}

inline std::vector<const Action*> Of(const Decision& d, Action::Type t) {
  std::vector<const Action*> out;
  for (const auto& a : d.actions) {
    if (a.type == t) out.push_back(&a);
  }
  return out;
}

// The name of the one task `d` starts; "(N tasks)" when it starts none or several, so an
// EXPECT_EQ against a name fails saying so.
inline std::string OnlyTaskName(const Decision& d) {
  auto tasks = Of(d, Action::Type::kStartTask);
  if (tasks.size() != 1) return "(" + std::to_string(tasks.size()) + " tasks)";
  return tasks[0]->task_name;
}

inline ModelInputs Inputs(std::vector<ModelVersion> v, std::vector<TaskObservation> t = {}) {
  ModelInputs in;
  in.ns = "default";
  in.model = "ranker";
  in.versions = std::move(v);
  in.tasks = std::move(t);
  in.load = ModelLoad{true, 0, {}};
  in.now_unix_ns = 1'790'000'000'000'000'000;
  return in;
}

// Applies the status writes of a decision (what the API would store).
inline void Apply(const Decision& d, std::vector<ModelVersion>& versions) {
  for (const Action* a : Of(d, Action::Type::kWriteStatus)) {
    for (auto& v : versions) {
      if (v.name == a->mv.name) v.status = a->status;
    }
  }
}

// v1 and v2 written, decided once: v2 Active, v1 Superseded.
inline std::pair<std::vector<ModelVersion>, std::vector<TaskObservation>> V1SupersededByV2() {
  ModelVersion v1 = Mv("v1", 10), v2 = Mv("v2", 20);
  std::vector<ModelVersion> vs = {v1, v2};
  std::vector<TaskObservation> ts = {
      Task(v1, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v1", 1)),
      Task(v2, TaskKind::kWrite, TaskObservation::State::kSucceeded, WriteResult("v2", 2))};
  Apply(Decide(Inputs(vs, ts)), vs);
  return {vs, ts};
}

}  // namespace modelswap::op
