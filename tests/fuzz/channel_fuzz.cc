// libFuzzer target for a channel as a reader meets it (sidecar/client/channel/channel.h): a valid
// channel file with messages, made by the real writer, damaged by the input (fuzz_patch.h), then
// attached and read with ReadNext and ReadLatest. Every reader call must return (a message, kEmpty
// or an error) in bounded time whatever the file says: a hang is a libFuzzer timeout, a failure.
#include <sys/stat.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sidecar/client/channel/channel.h"
#include "tests/fuzz/fuzz_patch.h"

namespace {

// Two shapes: a one-slot channel (the writer-killed-mid-publish case) and an 8-slot one.
const std::vector<uint8_t>& ValidFile(bool one_slot) {
  auto make = [](uint32_t slots) {
    const std::string dir = modelswap::fuzz::ScratchDir() + "/base" + std::to_string(slots);
    ::mkdir(dir.c_str(), 0700);
    std::vector<uint8_t> out;
    auto w = modelswap::ChannelWriter::Open(dir, "c", {.slot_count = slots, .message_bytes = 96});
    if (!w) return out;
    std::array<std::byte, 96> msg{};
    for (int i = 0; i < 11; ++i) {
      msg[0] = std::byte(i);
      (void)w->Publish(std::span<const std::byte>(msg.data(), 17 + i * 7));
    }
    out = modelswap::fuzz::ReadFile(modelswap::ChannelPath(dir, "c"));
    return out;
  };
  static const std::vector<uint8_t> one = make(1), eight = make(8);
  return one_slot ? one : eight;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool one_slot = size > 0 && (data[0] & 1);
  std::vector<uint8_t> file = modelswap::fuzz::Damage(ValidFile(one_slot), data, size);
  const std::string dir = modelswap::fuzz::ScratchDir() + "/case";
  ::mkdir(dir.c_str(), 0700);
  ::mkdir((dir + "/channels").c_str(), 0700);
  modelswap::fuzz::WriteFile(modelswap::ChannelPath(dir, "c"), file);
  for (auto start : {modelswap::StartAt::kNextPublished, modelswap::StartAt::kOldestAvailable}) {
    auto r = modelswap::ChannelReader::Open(dir, "c", 0, start);
    if (!r) return 0;
    std::vector<std::byte> out(r->message_bytes());
    for (int i = 0; i < 20; ++i)
      (void)r->ReadNext(out);
    for (int i = 0; i < 3; ++i)
      (void)r->ReadLatest(out);
    (void)r->published_seq();
  }
  return 0;
}
