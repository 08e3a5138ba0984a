// Where the API server is and how to authenticate: kubeconfig files and in-cluster config.
//
// LoadKubeconfig reads the usual shapes (yaml-cpp): the current (or a named) context; the
// cluster's server, CA as inline data or a file, insecure-skip-tls-verify, tls-server-name; the
// user's client certificate/key (data or file), token, tokenFile, or an exec credential plugin
// (client.authentication.k8s.io/v1, as AKS kubeconfigs use kubelogin). Relative file paths are
// relative to the kubeconfig's directory, as kubectl resolves them. Files are read at load time;
// tokenFile and exec are resolved per request by the TokenSource (credentials.h).
// InClusterConfig reads the service account mount and KUBERNETES_SERVICE_HOST/PORT.
//
// Errors name the kubeconfig, the entry and the problem. Thread safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/status.h"

namespace modelswap::op {

struct ExecConfig {
  std::string api_version;  // client.authentication.k8s.io/v1 (v1beta1 accepted too)
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string install_hint;
};

struct ClusterConfig {
  std::string server;  // https://host:port (no trailing slash)
  std::string ca_pem;  // empty: system roots
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // static bearer token
  std::string token_file;  // re-read periodically (rotated service-account tokens)
  std::optional<ExecConfig> exec;
  std::string default_namespace;  // the context's namespace, or the service account's
  std::string source;             // "kubeconfig PATH context NAME" / "in-cluster", for logs
};

Result<ClusterConfig> LoadKubeconfig(Env* env, const std::string& path,
                                     const std::string& context_name = "");
// `base_dir` resolves relative paths; `origin` names the document in errors.
Result<ClusterConfig> ParseKubeconfig(Env* env, const std::string& yaml_text,
                                      const std::string& base_dir, const std::string& origin,
                                      const std::string& context_name = "");

// In-cluster: host/port from the given values (normally the KUBERNETES_SERVICE_* variables),
// token/CA/namespace from `sa_dir` (normally /var/run/secrets/kubernetes.io/serviceaccount).
Result<ClusterConfig> InClusterConfig(Env* env, const std::string& host, const std::string& port,
                                      const std::string& sa_dir);
// Reads KUBERNETES_SERVICE_HOST/PORT from the process environment.
Result<ClusterConfig> InClusterConfigFromEnvironment(Env* env);

}  // namespace modelswap::op
