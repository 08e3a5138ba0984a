// A WriteRequest (sidecar/writer/writer.h) for tests: the volume, model, version and source set
// by name, every other field at its documented default. Brace-initializing the struct instead
// (`WriteRequest{root, model, version, source, false}`) leaves its later std::string and
// ChunkerParams members implicit, which -Wmissing-field-initializers reports at every use.
#pragma once

#include <string>
#include <utility>

#include "sidecar/writer/writer.h"

namespace modelswap::testing {

inline WriteRequest MakeWriteRequest(std::string root, std::string model, std::string version,
                                     WriteSource source) {
  WriteRequest req;
  req.root = std::move(root);
  req.model = std::move(model);
  req.version = std::move(version);
  req.source = std::move(source);
  return req;
}

}  // namespace modelswap::testing
