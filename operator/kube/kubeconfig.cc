// kubeconfig and in-cluster configuration; see kubeconfig.h.
#include "operator/kube/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>

#include "operator/kube/base64.h"

namespace modelswap::op {
namespace {

std::string Str(const YAML::Node& n, const char* key) {
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.as<std::string>() : "";
}

// The entry named `name` in a list of {name, <kind>: {...}}.
Result<YAML::Node> FindNamed(const YAML::Node& root, const char* list, const char* kind,
                             const std::string& name, const std::string& origin) {
  const YAML::Node items = root[list];
  if (items && items.IsSequence()) {
    for (const auto& item : items) {
      if (Str(item, "name") == name) {
        YAML::Node body = item[kind];
        if (!body || !body.IsMap()) {
          return Fail(Code::kInvalidArgument,
                      origin + ": " + list + " entry \"" + name + "\" has no " + kind + " map");
        }
        return body;
      }
    }
  }
  return Fail(Code::kInvalidArgument,
              origin + ": no " + std::string(kind) + " named \"" + name + "\" in " + list);
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return JoinPath(base_dir, path);
}

// Inline *-data wins over the file, as in kubectl.
Result<std::string> DataOrFile(Env* env, const YAML::Node& n, const char* data_key,
                               const char* file_key, const std::string& base_dir,
                               const std::string& what) {
  std::string data = Str(n, data_key);
  if (!data.empty()) {
    auto decoded = Base64DecodeIgnoringLineBreaks(data);
    if (!decoded) return Fail(decoded.error().Context(what + " " + data_key));
    return *decoded;
  }
  std::string file = Str(n, file_key);
  if (file.empty()) return std::string();
  auto text = ReadFileToString(env, Resolve(base_dir, file), 1 << 20);
  if (!text) return Fail(text.error().Context(what + " " + file_key));
  return *text;
}

Result<ExecConfig> ParseExec(const YAML::Node& n, const std::string& where) {
  ExecConfig exec;
  exec.api_version = Str(n, "apiVersion");
  exec.command = Str(n, "command");
  exec.install_hint = Str(n, "installHint");
  if (exec.command.empty()) return Fail(Code::kInvalidArgument, where + ": exec.command is empty");
  if (exec.api_version != "client.authentication.k8s.io/v1" &&
      exec.api_version != "client.authentication.k8s.io/v1beta1") {
    return Fail(Code::kInvalidArgument, where + ": exec.apiVersion \"" + exec.api_version +
                                            "\" is not client.authentication.k8s.io/v1");
  }
  if (const YAML::Node args = n["args"]; args && args.IsSequence()) {
    for (const auto& a : args)
      exec.args.push_back(a.as<std::string>());
  }
  if (const YAML::Node env = n["env"]; env && env.IsSequence()) {
    for (const auto& e : env)
      exec.env[Str(e, "name")] = Str(e, "value");
  }
  return exec;
}

Status FillUser(Env* env, const YAML::Node& user, const std::string& base_dir,
                const std::string& where, ClusterConfig* cfg) {
  MS_ASSIGN_OR_RETURN(cfg->client_cert_pem, DataOrFile(env, user, "client-certificate-data",
                                                       "client-certificate", base_dir, where));
  MS_ASSIGN_OR_RETURN(cfg->client_key_pem,
                      DataOrFile(env, user, "client-key-data", "client-key", base_dir, where));
  if (cfg->client_cert_pem.empty() != cfg->client_key_pem.empty()) {
    return Fail(Code::kInvalidArgument,
                where + ": client certificate and client key must be given together");
  }
  cfg->token = Str(user, "token");
  std::string token_file = Str(user, "tokenFile");
  if (!token_file.empty()) cfg->token_file = Resolve(base_dir, token_file);
  if (const YAML::Node exec = user["exec"]; exec && exec.IsMap()) {
    MS_ASSIGN_OR_RETURN(cfg->exec, ParseExec(exec, where));
  }
  if (user["auth-provider"]) {
    return Fail(Code::kNotSupported, where +
                                         ": auth-provider is not supported; use an exec "
                                         "plugin (e.g. kubelogin convert-kubeconfig)");
  }
  return Ok();
}

}  // namespace

Result<ClusterConfig> ParseKubeconfig(Env* env, const std::string& yaml_text,
                                      const std::string& base_dir, const std::string& origin,
                                      const std::string& context_name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalidArgument, origin + ": not YAML: " + e.what());
  }
  if (!root.IsMap()) return Fail(Code::kInvalidArgument, origin + ": not a kubeconfig map");
  try {
    std::string ctx_name = context_name.empty() ? Str(root, "current-context") : context_name;
    if (ctx_name.empty()) {
      return Fail(Code::kInvalidArgument, origin + ": no current-context and no context given");
    }
    MS_ASSIGN_OR_RETURN(YAML::Node ctx, FindNamed(root, "contexts", "context", ctx_name, origin));
    ClusterConfig cfg;
    cfg.source = "kubeconfig " + origin + " context " + ctx_name;
    cfg.default_namespace = Str(ctx, "namespace");
    std::string cluster_name = Str(ctx, "cluster");
    MS_ASSIGN_OR_RETURN(YAML::Node cluster,
                        FindNamed(root, "clusters", "cluster", cluster_name, origin));
    std::string where = origin + " cluster " + cluster_name;
    cfg.server = Str(cluster, "server");
    if (cfg.server.empty()) return Fail(Code::kInvalidArgument, where + ": server is empty");
    while (!cfg.server.empty() && cfg.server.back() == '/')
      cfg.server.pop_back();
    cfg.insecure_skip_tls_verify = Str(cluster, "insecure-skip-tls-verify") == "true";
    cfg.tls_server_name = Str(cluster, "tls-server-name");
    MS_ASSIGN_OR_RETURN(cfg.ca_pem, DataOrFile(env, cluster, "certificate-authority-data",
                                               "certificate-authority", base_dir, where));
    std::string user_name = Str(ctx, "user");
    if (!user_name.empty()) {
      MS_ASSIGN_OR_RETURN(YAML::Node user, FindNamed(root, "users", "user", user_name, origin));
      MS_RETURN_IF_ERROR(FillUser(env, user, base_dir, origin + " user " + user_name, &cfg));
    }
    return cfg;
  } catch (const YAML::Exception& e) {
    return Fail(Code::kInvalidArgument, origin + ": malformed kubeconfig: " + e.what());
  }
}

Result<ClusterConfig> LoadKubeconfig(Env* env, const std::string& path,
                                     const std::string& context_name) {
  auto text = ReadFileToString(env, path, 16 << 20);
  if (!text) return Fail(text.error().Context("kubeconfig"));
  return ParseKubeconfig(env, *text, DirName(path), path, context_name);
}

Result<ClusterConfig> InClusterConfig(Env* env, const std::string& host, const std::string& port,
                                      const std::string& sa_dir) {
  if (host.empty() || port.empty()) {
    return Fail(Code::kFailedPrecondition,
                "in-cluster config: KUBERNETES_SERVICE_HOST/PORT not set (not in a pod? pass "
                "--kubeconfig)");
  }
  ClusterConfig cfg;
  cfg.source = "in-cluster";
  // IPv6 service addresses need brackets in a URL.
  cfg.server =
      "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  cfg.token_file = JoinPath(sa_dir, "token");
  auto ca = ReadFileToString(env, JoinPath(sa_dir, "ca.crt"), 1 << 20);
  if (!ca) return Fail(ca.error().Context("in-cluster config"));
  cfg.ca_pem = *ca;
  if (auto ns = ReadFileToString(env, JoinPath(sa_dir, "namespace"), 4096)) {
    cfg.default_namespace = *ns;
  }
  return cfg;
}

Result<ClusterConfig> InClusterConfigFromEnvironment(Env* env) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  return InClusterConfig(env, host != nullptr ? host : "", port != nullptr ? port : "",
                         "/var/run/secrets/kubernetes.io/serviceaccount");
}

}  // namespace modelswap::op
