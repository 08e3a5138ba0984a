// The volume the writer's tests write to (chunked_write_test.cc, chunk_delta_write_test.cc,
// delta_write_test.cc): a temp dir holding the model volume and a scratch directory, a FaultEnv to
// fail the writer's I/O on demand, and the file a recipe puts together.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sidecar/chunk/chunk_store.h"
#include "sidecar/chunk/recipe.h"
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

  // The file a recipe under `root` describes, every entry read through ChunkStore::GetEntry
  // (whole or delta chunks); holes stay zero.
  std::vector<std::byte> Assemble(const std::string& root, const chunk::Recipe& recipe) {
    chunk::ChunkStore store(&env_, root);
    std::vector<std::byte> file(recipe.file_bytes);
    for (const chunk::RecipeChunk& c : recipe.chunks) {
      if (c.hole) continue;
      auto st = store.GetEntry(c, std::span(file).subspan(c.offset, c.length));
      EXPECT_TRUE(st.has_value()) << st.error().ToString();
    }
    return file;
  }

  testing::TempDir dir_;
  std::string root_ = dir_ / "volume";
  std::string scratch_ = dir_ / "scratch";
  testing::FaultEnv env_;
};

}  // namespace modelswap
