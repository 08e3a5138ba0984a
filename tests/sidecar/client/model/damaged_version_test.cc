// A version file truncated under a handle the app holds, in-process: the C++ client and the C ABI
// survive the SIGBUS, report the handle's version as damaged (never a value read from a replaced
// page), and hand out the next version the agent publishes. Also the guard's own contract: a
// SIGBUS outside every guarded range, or one sent with kill(2), still ends the process, and a
// handler installed before ours still gets the signals that are not ours.
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>

#include "common/checksum.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/mapping_guard.h"
#include "sidecar/client/model/modelswap.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::client {
namespace {

using modelswap::testing::TempDir;

class DamagedVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    shm_ = dir_ / "shm";
    auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    writer_ = std::move(*w);
  }
  // Writes version `v` (about 1 MiB: many pages past the header) and publishes it.
  std::string Publish(const std::string& v, uint64_t generation) {
    WriteRequest req{dir_ / "root", "m", v, GenerateSource{1 << 20, 5, 200}, false};
    auto r = WriteVersion(DefaultEnv(), req);
    EXPECT_TRUE(r.has_value()) << r.error().ToString();
    if (!r) return "";
    uint64_t checksum = 0;
    EXPECT_TRUE(ParseChecksum(r->checksum, &checksum));
    writer_->Publish(
        ctl::Record{0, generation, r->bytes, checksum, MS_CTL_STATE_ACTIVE, 0, v, r->path, {}});
    return r->path;
  }
  std::unique_ptr<ModelClient> Attach() {
    Options o;
    o.shm_dir = shm_;
    o.heartbeat_thread = false;
    auto c = ModelClient::Attach("m", o);
    EXPECT_TRUE(c.has_value()) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  std::string shm_;
  std::unique_ptr<agent::ControlBlockWriter> writer_;
};

TEST_F(DamagedVersionTest, TruncatedUnderAHeldHandleIsReportedNeverReadAsData) {
  std::string path = Publish("v1", 1);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_TRUE(h.has_value()) << h.error().ToString();
  std::map<std::string, std::string> want;
  for (uint64_t k = 0; k < h->entry_count(); ++k) {
    auto v = h->Lookup(std::to_string(k));
    ASSERT_TRUE(v.has_value() && v->has_value()) << k;
    want[std::to_string(k)] = std::string(**v);
  }
  ASSERT_FALSE(h->damaged());
  std::filesystem::resize_file(path, 4096);  // the header page only: every entry is gone

  uint64_t aborted = 0, torn = 0;
  for (const auto& [key, value] : want) {
    auto v = h->Lookup(key);  // without the guard: SIGBUS, the test binary dies here
    if (!v) {
      EXPECT_EQ(v.error().code(), Code::kAborted) << v.error().ToString();
      ++aborted;
    } else if (!v->has_value() || **v != value) {
      ++torn;
    }
  }
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(aborted, want.size());  // the first lookup faults: every lookup after it is refused
  EXPECT_TRUE(h->damaged());
  Status st = h->Check();
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code(), Code::kAborted);
  EXPECT_NE(st.error().message().find("damaged"), std::string::npos) << st.error().message();
  EXPECT_FALSE(h->Get("1").has_value());  // Get says absent, never zeros

  // The record still names the damaged version: a new handle is refused until the agent moves.
  auto again = c->Acquire();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), Code::kUnavailable);
  EXPECT_NE(again.error().message().find("damaged"), std::string::npos);
  // The agent publishes an intact version (its fallback): the app gets it on its next acquire.
  Publish("v2", 2);
  auto h2 = c->Acquire();
  ASSERT_TRUE(h2.has_value()) << h2.error().ToString();
  EXPECT_EQ(h2->version(), "v2");
  auto v = h2->Lookup("3");
  ASSERT_TRUE(v.has_value() && v->has_value());
  EXPECT_TRUE((*v)->starts_with("m/v2/3/"));
  EXPECT_FALSE(h2->damaged());
}

TEST_F(DamagedVersionTest, CAbiReportsAbortedAndTheDamagedFlag) {
  std::string path = Publish("v1", 1);
  ms_model* m = nullptr;
  ASSERT_EQ(ms_model_attach(shm_.c_str(), "m", &m), MS_OK) << ms_last_error();
  ms_handle* h = nullptr;
  ASSERT_EQ(ms_acquire(m, &h), MS_OK) << ms_last_error();
  const void* value = nullptr;
  size_t n = 0;
  ASSERT_EQ(ms_get(h, "7", 1, &value, &n), MS_OK);
  std::string want(static_cast<const char*>(value), n);
  EXPECT_EQ(ms_handle_damaged(h), 0);
  std::filesystem::resize_file(path, 4096);
  value = nullptr;
  EXPECT_EQ(ms_get(h, "7", 1, &value, &n), MS_ABORTED);
  EXPECT_EQ(value, nullptr);
  EXPECT_NE(std::string(ms_last_error()).find("damaged"), std::string::npos) << ms_last_error();
  EXPECT_EQ(ms_handle_damaged(h), 1);
  EXPECT_EQ(ms_get(h, "8", 1, &value, &n), MS_ABORTED);
  ms_handle_release(h);
  ms_handle* again = nullptr;
  EXPECT_EQ(ms_acquire(m, &again), MS_UNAVAILABLE);
  Publish("v2", 2);
  ASSERT_EQ(ms_acquire(m, &again), MS_OK) << ms_last_error();
  EXPECT_STREQ(ms_handle_version(again), "v2");
  ASSERT_EQ(ms_get(again, "7", 1, &value, &n), MS_OK);
  EXPECT_TRUE(std::string_view(static_cast<const char*>(value), n).starts_with("m/v2/7/"));
  ms_handle_release(again);
  ms_model_detach(m);
}

// A file mapping of `bytes`, truncated to nothing: reading it raises SIGBUS.
const volatile char* TruncatedMapping(const std::string& path, size_t bytes) {
  {
    std::ofstream out(path);
    out << std::string(bytes, 'x');
  }
  int fd = ::open(path.c_str(), O_RDONLY);
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  std::filesystem::resize_file(path, 0);
  return p == MAP_FAILED ? nullptr : static_cast<const volatile char*>(p);
}

// Died of the fault (under ASan: its SIGBUS report, then exit 1): not survived.
bool DiedOfIt(int status) {
  if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGBUS;
  return WIFEXITED(status) && WEXITSTATUS(status) != 0;
}

TEST_F(DamagedVersionTest, GuardedRangeSurvivesOnlyFaultsInsideIt) {
  std::string path = dir_ / "f";
  const volatile char* p = TruncatedMapping(path, 3 * 4096);
  ASSERT_NE(p, nullptr);
  auto guard = GuardedRange::Register(
      std::span(reinterpret_cast<const std::byte*>(const_cast<const char*>(p)), 3 * 4096));
  ASSERT_TRUE(guard.has_value()) << guard.error().ToString();
  EXPECT_FALSE(guard->damaged());
  EXPECT_EQ(p[4096 + 5], 0);  // the fault is survived; the page reads zeros
  EXPECT_TRUE(guard->damaged());
  EXPECT_EQ(guard->fault_address(), reinterpret_cast<uintptr_t>(p + 4096 + 5));
  EXPECT_EQ(p[2 * 4096], 0);  // the rest of the range was replaced in one go
  // Unregistered, the same kind of fault is the app's again: the process dies.
  const volatile char* q = TruncatedMapping(dir_ / "g", 4096);
  ASSERT_NE(q, nullptr);
  EXPECT_EXIT((void)q[0], DiedOfIt, "");
}

TEST_F(DamagedVersionTest, SentSigbusIsNotSwallowed) {
  auto guard = GuardedRange::Register(std::span<const std::byte>());
  ASSERT_TRUE(guard.has_value());
  EXPECT_EXIT(::raise(SIGBUS), DiedOfIt, "");
}

TEST_F(DamagedVersionTest, RegistryIsBoundedAndSlotsAreReused) {
  static const std::byte kByte{};
  std::vector<GuardedRange> held;
  size_t free_slots = 0;
  for (;;) {
    auto g = GuardedRange::Register(std::span(&kByte, 1));
    if (!g) {
      EXPECT_EQ(g.error().code(), Code::kUnavailable);
      break;
    }
    held.push_back(std::move(*g));
    ASSERT_LE(++free_slots, GuardedRange::kCapacity);
  }
  held.pop_back();
  EXPECT_TRUE(GuardedRange::Register(std::span(&kByte, 1)).has_value());
}

// A handler installed before the guard still sees the SIGBUS that are not the guard's. Run in
// a fresh process (threadsafe death tests re-execute the binary), so the guard is installed
// after the app's handler, as in an app that sets its handler up first.
void AppHandler(int, siginfo_t*, void*) {
  ::_exit(42);
}

TEST(MappingGuardChainTest, PassesForeignFaultsToThePreviousHandler) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  std::string path = dir / "f";
  EXPECT_EXIT(
      {
        struct sigaction sa = {};
        sa.sa_sigaction = AppHandler;
        sa.sa_flags = SA_SIGINFO;
        ::sigaction(SIGBUS, &sa, nullptr);
        static const std::byte kByte{};
        auto g = GuardedRange::Register(std::span(&kByte, 1));  // installs the guard now
        const volatile char* p = TruncatedMapping(path, 4096);
        if (!g || p == nullptr) ::_exit(1);
        (void)p[0];
        ::_exit(0);  // survived a fault that was not ours: wrong
      },
      ::testing::ExitedWithCode(42), "");
}

}  // namespace
}  // namespace modelswap::client
