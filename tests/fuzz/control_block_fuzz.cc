// libFuzzer target for the control block as an app reads it (sidecar/client/model/
// control_block_access.h): a valid .ctl made by the agent's writer, damaged by the input
// (fuzz_patch.h), then opened, validated and read like a client does, chain fields included. Any
// damage must end in an error or a bounded read, never a crash, a hang or a read outside the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/env.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/control_block_access.h"
#include "tests/fuzz/fuzz_patch.h"

namespace {

const std::vector<uint8_t>& ValidFile() {
  static const std::vector<uint8_t> bytes = [] {
    const std::string dir = modelswap::fuzz::ScratchDir() + "/base";
    modelswap::agent::ControlBlockOptions o;
    o.shm_dir = dir;
    o.model = "ranker";
    std::vector<uint8_t> out;
    ::mkdir(dir.c_str(), 0700);
    auto w = modelswap::agent::ControlBlockWriter::OpenOrCreate(modelswap::DefaultEnv(), o);
    if (!w) return out;
    modelswap::ctl::Record r;
    r.generation = 7;
    r.bytes = 4096;
    r.checksum = 0xabcdef;
    r.state = MS_CTL_STATE_ACTIVE;
    r.version = "v7";
    r.path = "/models/ranker/versions/v7.msf";
    // A chain (v7 a delta on v6, on full v5), so damage reaches the chain fields too.
    r.lower = {{"/models/ranker/versions/v6.msf", 0x1234},
               {"/models/ranker/versions/v5.msf", 0x5678}};
    (*w)->Publish(r);
    out = modelswap::fuzz::ReadFile(dir + "/ranker.ctl");
    return out;
  }();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file = modelswap::fuzz::Damage(ValidFile(), data, size);
  const std::string path = modelswap::fuzz::ScratchDir() + "/case.ctl";
  modelswap::fuzz::WriteFile(path, file);
  auto cb = modelswap::ctl::ControlBlockFile::Open(path);
  if (!cb) return 0;
  ms_ctl_header& h = (*cb)->header();
  (void)modelswap::ctl::ModelName(h);
  (void)modelswap::ctl::ReadRecord(h, /*max_tries=*/4);
  for (uint32_t i = 0; i < MS_CTL_SLOT_COUNT; ++i) {
    if (MS_CTL_SLOTS_OFFSET + (i + 1) * sizeof(ms_ctl_slot) > file.size()) break;
    (void)modelswap::ctl::ReadSlot(modelswap::ctl::Slot(h, i));
  }
  return 0;
}
