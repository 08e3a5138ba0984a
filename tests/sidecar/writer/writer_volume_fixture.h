// The volume the writer's tests write to (chunked_write_test.cc, delta_write_test.cc): a temp dir
// holding the model volume and a scratch directory, and a FaultEnv to fail the writer's I/O on
// demand.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/testing/fault_env.h"
#include "tests/testing/temp_dir.h"

namespace modelswap {

class WriterVolumeFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root_);
    std::filesystem::create_directories(scratch_);
  }
  // Files left in the scratch directory (a finished write leaves none).
  size_t ScratchFiles() {
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(scratch_), {}));
  }

  testing::TempDir dir_;
  std::string root_ = dir_ / "volume";
  std::string scratch_ = dir_ / "scratch";
  testing::FaultEnv env_;
};

}  // namespace modelswap
