// Raw GETs against the API server for what KubeClient does not expose: discovery documents and
// the Table format kubectl asks for (Accept: application/json;as=Table;g=meta.k8s.io;v=v1). Same
// TLS material and credentials as the operator's client (operator/kube/http_client.cc).
#pragma once

#include <string>

#include "common/status.h"
#include "operator/kube/kubeconfig.h"
#include "operator/kube/object.h"

namespace modelswap::op::e2e {

struct RawResponse {
  int code = 0;
  std::string content_type;
  std::string body;
};

// GET path_query with the given Accept header. Transport failures are errors; any HTTP answer
// (also 4xx/5xx) is a RawResponse.
Result<RawResponse> RawGet(const ClusterConfig& cfg, const std::string& path_query,
                           const std::string& accept = "application/json");

// GET returning the parsed JSON of a 200 answer; other codes are errors quoting the body.
Result<Json> RawGetJson(const ClusterConfig& cfg, const std::string& path_query,
                        const std::string& accept = "application/json");

}  // namespace modelswap::op::e2e
