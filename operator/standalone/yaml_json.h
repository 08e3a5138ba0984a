// YAML documents to JSON (yaml-cpp -> nlohmann), for standalone ModelVersion files.
//
// Plain scalars are typed as YAML 1.2's core schema does (true/false, null/~, integers,
// floats); quoted scalars stay strings ("7" is a string, 7 a number), as the API server would
// read them. Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "operator/kube/object.h"

namespace modelswap::op {

// All documents of a YAML stream (empty documents skipped). kInvalidArgument names the line.
Result<std::vector<Json>> YamlToJson(const std::string& text);

}  // namespace modelswap::op
