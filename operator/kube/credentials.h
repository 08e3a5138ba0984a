// Bearer tokens for API requests: static, from a file that rotates, or from an exec plugin.
//
// FileTokenSource re-reads the file at most once a minute (client-go does the same): kubelet
// rotates projected service-account tokens in place, so a token read once at start expires.
// ExecTokenSource runs a client.authentication.k8s.io/v1 plugin (kubelogin on AKS), parses the
// ExecCredential it prints and caches status.token until status.expirationTimestamp (a missing
// expiry caches for the process lifetime, as kubectl does); Invalidate() drops the cache after
// a 401. A missing plugin is a kNotFound naming the command and its installHint.
//
// Thread safety: Token() and Invalidate() are safe from any thread; a plugin runs at most once
// at a time.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "operator/kube/kubeconfig.h"

namespace modelswap::op {

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // "" means: send no Authorization header (client certificates only).
  virtual Result<std::string> Token() = 0;
  // The server rejected the token (401): fetch a fresh one next time.
  virtual void Invalidate() {}
};

class StaticTokenSource final : public TokenSource {
 public:
  explicit StaticTokenSource(std::string token) : token_(std::move(token)) {}
  Result<std::string> Token() override { return token_; }

 private:
  std::string token_;
};

class FileTokenSource final : public TokenSource {
 public:
  FileTokenSource(Env* env, std::string path,
                  std::chrono::seconds refresh = std::chrono::seconds(60))
      : env_(env), path_(std::move(path)), refresh_(refresh) {}
  Result<std::string> Token() override;
  void Invalidate() override;

 private:
  Env* env_;
  std::string path_;
  std::chrono::seconds refresh_;
  std::mutex mu_;
  std::string token_;
  int64_t read_at_ns_ = 0;
  bool valid_ = false;
};

class ExecTokenSource final : public TokenSource {
 public:
  ExecTokenSource(Env* env, ExecConfig exec, std::string server)
      : env_(env), exec_(std::move(exec)), server_(std::move(server)) {}
  Result<std::string> Token() override;
  void Invalidate() override;
  // How many times the plugin has run (tests check the cache).
  int runs() const;

 private:
  Result<std::string> RunPlugin();

  Env* env_;
  ExecConfig exec_;
  std::string server_;
  mutable std::mutex mu_;
  std::string token_;
  int64_t expires_unix_ns_ = 0;  // 0 = never
  bool valid_ = false;
  int runs_ = 0;
};

// Parses an ExecCredential document: token and expiry (unix ns, 0 if none).
struct ExecCredential {
  std::string token;
  int64_t expires_unix_ns = 0;
};
Result<ExecCredential> ParseExecCredential(const std::string& json_text);

// The TokenSource a ClusterConfig asks for (exec > tokenFile > token > none).
std::unique_ptr<TokenSource> MakeTokenSource(Env* env, const ClusterConfig& cfg);

}  // namespace modelswap::op
