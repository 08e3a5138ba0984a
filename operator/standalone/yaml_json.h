// YAML documents to JSON (yaml-cpp's event parser -> nlohmann), for standalone ModelVersion files.
//
// Plain scalars are typed as YAML 1.2's core schema does (true/false, null/~, integers,
// floats); quoted scalars stay strings ("7" is a string, 7 a number), as the API server would
// read them.
//
// The files are user input, so the conversion is bounded before anything is built: nesting
// depth, the number of nodes after aliases are expanded (an alias bomb - nine levels of ten
// aliases each - would expand to 10^9 nodes) and aliases that refer to a node still being
// defined (`a: &x [*x]`, a cycle) are errors naming the line, never a crash or a hang. The limits
// follow what the API server's own YAML decoder refuses (sigs.k8s.io/yaml over go-yaml:
// "excessive aliasing", a depth limit) with room for any real ModelVersion file.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"
#include "operator/kube/object.h"

namespace modelswap::op {

struct YamlLimits {
  size_t max_depth = 64;       // nested sequences and maps
  size_t max_nodes = 100'000;  // scalars + collections, aliases counted as what they expand to
};

// All documents of a YAML stream (empty documents skipped). kInvalidArgument names the line.
Result<std::vector<Json>> YamlToJson(const std::string& text, const YamlLimits& limits = {});

}  // namespace modelswap::op
