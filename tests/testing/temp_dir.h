// A fresh directory under $TMPDIR (or /tmp) per test, removed with its contents afterwards.
#pragma once

#include <filesystem>
#include <random>
#include <string>

namespace modelswap::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::random_device rd;
    path_ = std::filesystem::path(base ? base : "/tmp") /
            ("modelswap-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace modelswap::testing
