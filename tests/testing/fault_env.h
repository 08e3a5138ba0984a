// Test Envs that make the OS misbehave the way blob storage does, one failure at a time.
//
// FaultEnv wraps the real Env and, when told to:
//   - fails the Nth PRead (counting from 1) with EIO, or returns short reads;
//   - refuses Fallocate (blobfuse), or RENAME_NOREPLACE;
//   - performs Rename as copy then delete (blobfuse's rename), with a hook between the two so a
//     test can look at the half-done state;
//   - calls a hook on every PWrite (a test can _exit() there to simulate a crash mid-write);
//   - runs a fake clock (NowMonotonicNanos/NowUnixNanos/SleepForNanos) when fake_clock is set.
// Counters are atomics so a FaultEnv can be shared with an agent's threads.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "common/env.h"

namespace modelswap::testing {

class FaultEnv : public EnvWrapper {
 public:
  FaultEnv() : EnvWrapper(DefaultEnv()) {}

  // Knobs; set before use.
  int fail_read_number = 0;           // the Nth PRead fails with kIOError (0 = never)
  bool fail_all_reads_after = false;  // and every read after it too
  size_t max_read_bytes = 0;          // cap each PRead (0 = no cap): short reads
  bool refuse_fallocate = false;
  bool rename_as_copy = false;
  std::function<void(const std::string& from, const std::string& to)> between_copy_and_delete;
  std::function<void(uint64_t nth_write)> on_pwrite;
  bool fake_clock = false;
  std::atomic<int64_t> fake_now_ns{1'700'000'000'000'000'000};

  std::atomic<int> reads{0};
  std::atomic<int> writes{0};
  std::atomic<int> fallocate_calls{0};

  Result<size_t> PRead(int fd, std::span<std::byte> out, uint64_t off) override {
    int n = ++reads;
    if (fail_read_number > 0 &&
        (n == fail_read_number || (fail_all_reads_after && n > fail_read_number))) {
      return Fail(Code::kIOError, "pread: Input/output error (injected)");
    }
    if (max_read_bytes > 0 && out.size() > max_read_bytes) out = out.first(max_read_bytes);
    return EnvWrapper::PRead(fd, out, off);
  }

  Status PWrite(int fd, std::span<const std::byte> data, uint64_t off) override {
    int n = ++writes;
    if (on_pwrite) on_pwrite(static_cast<uint64_t>(n));
    return EnvWrapper::PWrite(fd, data, off);
  }

  Status Fallocate(int fd, uint64_t off, uint64_t len) override {
    ++fallocate_calls;
    if (refuse_fallocate)
      return Fail(Code::kNotSupported, "fallocate: Operation not supported (injected)");
    return EnvWrapper::Fallocate(fd, off, len);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (!rename_as_copy) return EnvWrapper::Rename(from, to);
    return CopyThenDelete(from, to);
  }

  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    if (!rename_as_copy) return EnvWrapper::RenameNoReplace(from, to);
    if (Stat(to)) return Fail(Code::kAlreadyExists, to + " already exists");
    return CopyThenDelete(from, to);
  }

  int64_t NowMonotonicNanos() override {
    return fake_clock ? fake_now_ns.load() : EnvWrapper::NowMonotonicNanos();
  }
  int64_t NowUnixNanos() override {
    return fake_clock ? fake_now_ns.load() : EnvWrapper::NowUnixNanos();
  }
  void SleepForNanos(int64_t n) override {
    if (fake_clock)
      fake_now_ns += n;
    else
      EnvWrapper::SleepForNanos(n);
  }

 private:
  // Like blobfuse: the destination is written in place (readers can see it partly written),
  // then the source deleted.
  Status CopyThenDelete(const std::string& from, const std::string& to) {
    MS_ASSIGN_OR_RETURN(std::string data, ReadFileToString(target(), from, uint64_t{1} << 34));
    MS_ASSIGN_OR_RETURN(int fd, target()->Open(to, OpenMode::kTruncate));
    size_t half = data.size() / 2;
    Status st = target()->PWrite(fd, std::as_bytes(std::span(data).first(half)), 0);
    if (st && between_copy_and_delete) between_copy_and_delete(from, to);
    if (st) st = target()->PWrite(fd, std::as_bytes(std::span(data).subspan(half)), half);
    target()->Close(fd);
    MS_RETURN_IF_ERROR(st);
    return target()->Remove(from);
  }
};

}  // namespace modelswap::testing
