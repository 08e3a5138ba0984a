// Scratch directories for the snapshot tests: a shm dir on tmpfs (like the pod's memory emptyDir)
// and a snapshot dir on the ordinary filesystem (like the durable volume).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

namespace modelswap::testing {

class ScratchDir {
 public:
  // prefer_shm: under /dev/shm when it exists, else $TMPDIR or /tmp.
  explicit ScratchDir(bool prefer_shm) {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path base = tmp ? tmp : "/tmp";
    if (prefer_shm && std::filesystem::is_directory("/dev/shm")) base = "/dev/shm";
    std::random_device rd;
    path_ = base / ("modelswap-snaptest-" + std::to_string(::getpid()) + "-" +
                    std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace modelswap::testing
