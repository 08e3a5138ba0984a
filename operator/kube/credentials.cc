// Bearer token sources; see credentials.h.
#include "operator/kube/credentials.h"

#include <nlohmann/json.hpp>

#include "common/subprocess.h"
#include "operator/kube/object.h"

namespace modelswap::op {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
    s.pop_back();
  return s;
}

// Refresh a little before the expiry so a request never carries a token that expires in flight.
constexpr int64_t kExpirySkewNs = 10'000'000'000;

}  // namespace

Result<std::string> FileTokenSource::Token() {
  std::lock_guard lock(mu_);
  int64_t now = env_->NowMonotonicNanos();
  if (valid_ && now - read_at_ns_ < refresh_.count() * 1'000'000'000) return token_;
  auto text = ReadFileToString(env_, path_, 1 << 20);
  if (!text) {
    // Keep using the last good token if the file is briefly missing during a rotation.
    if (valid_) return token_;
    return Fail(text.error().Context("token file"));
  }
  token_ = Trim(*text);
  read_at_ns_ = now;
  valid_ = true;
  return token_;
}

void FileTokenSource::Invalidate() {
  std::lock_guard lock(mu_);
  read_at_ns_ = 0;
  if (valid_) read_at_ns_ = env_->NowMonotonicNanos() - refresh_.count() * 1'000'000'000;
}

Result<ExecCredential> ParseExecCredential(const std::string& json_text) {
  Json doc = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Fail(Code::kInvalidArgument, "exec plugin output is not JSON");
  }
  if (doc.value("kind", "") != "ExecCredential") {
    return Fail(Code::kInvalidArgument, "exec plugin output is not an ExecCredential");
  }
  ExecCredential cred;
  cred.token = Field<std::string>(doc, {"status", "token"});
  if (cred.token.empty()) {
    return Fail(Code::kInvalidArgument,
                "exec plugin ExecCredential has no status.token (client certificates from "
                "plugins are not supported)");
  }
  std::string expiry = Field<std::string>(doc, {"status", "expirationTimestamp"});
  if (!expiry.empty()) {
    cred.expires_unix_ns = ParseTime(expiry);
    if (cred.expires_unix_ns < 0) {
      return Fail(Code::kInvalidArgument,
                  "exec plugin status.expirationTimestamp is not RFC 3339: " + expiry);
    }
  }
  return cred;
}

Result<std::string> ExecTokenSource::RunPlugin() {
  std::vector<std::string> argv{exec_.command};
  argv.insert(argv.end(), exec_.args.begin(), exec_.args.end());
  Json info = {{"apiVersion", exec_.api_version},
               {"kind", "ExecCredential"},
               {"spec", {{"interactive", false}, {"cluster", {{"server", server_}}}}}};
  auto env = exec_.env;
  env["KUBERNETES_EXEC_INFO"] = info.dump();
  auto out = RunProcess(argv, env, std::chrono::seconds(60));
  if (!out) {
    std::string hint = exec_.install_hint.empty() ? "" : " (" + exec_.install_hint + ")";
    return Fail(out.error().Context("exec credential plugin" + hint));
  }
  ++runs_;
  if (out->exit_code != 0) {
    return Fail(Code::kPermissionDenied, "exec credential plugin " + exec_.command +
                                             " exited with " + std::to_string(out->exit_code) +
                                             ": " + Trim(out->err));
  }
  auto cred = ParseExecCredential(out->out);
  if (!cred) return Fail(cred.error().Context(exec_.command));
  token_ = cred->token;
  expires_unix_ns_ = cred->expires_unix_ns;
  valid_ = true;
  return token_;
}

Result<std::string> ExecTokenSource::Token() {
  std::lock_guard lock(mu_);
  if (valid_ &&
      (expires_unix_ns_ == 0 || env_->NowUnixNanos() + kExpirySkewNs < expires_unix_ns_)) {
    return token_;
  }
  return RunPlugin();
}

void ExecTokenSource::Invalidate() {
  std::lock_guard lock(mu_);
  valid_ = false;
}

int ExecTokenSource::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

std::unique_ptr<TokenSource> MakeTokenSource(Env* env, const ClusterConfig& cfg) {
  if (cfg.exec) return std::make_unique<ExecTokenSource>(env, *cfg.exec, cfg.server);
  if (!cfg.token_file.empty()) return std::make_unique<FileTokenSource>(env, cfg.token_file);
  return std::make_unique<StaticTokenSource>(cfg.token);
}

}  // namespace modelswap::op
