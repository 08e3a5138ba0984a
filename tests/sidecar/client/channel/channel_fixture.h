// Shared fixture for the in-process channel tests: a fresh shm dir on tmpfs per test, helpers to
// publish self-checking messages and to poke raw bytes into a channel file (to play a crashed
// writer or a damaged file).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "sidecar/client/channel/channel.h"
#include "tests/sidecar/client/channel/payload.h"

namespace modelswap::channel_test {

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // /dev/shm is tmpfs, like the pod's memory emptyDir; fall back to /tmp elsewhere.
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string tmpl = base + "/ms-chan-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  ChannelWriter OpenWriter(const std::string& name, uint32_t slots, uint32_t bytes) {
    auto w = ChannelWriter::Open(dir_, name, {.slot_count = slots, .message_bytes = bytes});
    EXPECT_TRUE(w.has_value()) << w.error().ToString();
    return std::move(*w);
  }
  ChannelReader OpenReader(const std::string& name, uint32_t bytes,
                           StartAt start = StartAt::kNextPublished) {
    auto r = ChannelReader::Open(dir_, name, bytes, start);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    return std::move(*r);
  }
  // Publishes `count` self-checking messages of the writer's message size.
  static void PublishN(ChannelWriter& w, int count) {
    std::vector<std::byte> msg(w.message_bytes());
    for (int i = 0; i < count; ++i) {
      FillPayload(w.last_published() + 1, msg);
      ASSERT_NE(w.Publish(msg), 0u);
    }
  }
  std::string Path(const std::string& name) const { return ChannelPath(dir_, name); }
  // Overwrites raw bytes of a channel file (through the page cache, as a dying writer would).
  void Poke(const std::string& name, off_t offset, const void* data, size_t len) {
    const int fd = ::open(Path(name).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, data, len, offset), static_cast<ssize_t>(len));
    ::close(fd);
  }
  template <class T>
  void PokeValue(const std::string& name, off_t offset, T value) {
    Poke(name, offset, &value, sizeof(value));
  }
  static off_t SlotOffset(uint64_t seq, uint32_t slots, uint32_t bytes) {
    return MS_CHANNEL_HEADER_BYTES +
           static_cast<off_t>((seq & (slots - 1)) * ms_channel_slot_stride(bytes));
  }

  std::string dir_;
};

}  // namespace modelswap::channel_test
