// The C++ client and the C ABI against a control block written in-process by the agent's
// ControlBlockWriter: attach errors, acquire semantics (pinning, newest version, fast path),
// slot claims and release, dropped versions, re-attach to a replaced control block.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/checksum.h"
#include "sidecar/agent/control_block_writer.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/modelswap.h"
#include "sidecar/client/model/reader_slot.h"
#include "sidecar/writer/writer.h"
#include "tests/sidecar/agent/process_util.h"

namespace modelswap::client {
namespace {

using modelswap::testing::TempDir;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    shm_ = dir_ / "shm";
    auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
    ASSERT_TRUE(w.has_value()) << w.error().ToString();
    writer_ = std::move(*w);
  }
  // Writes version `v` and publishes it in the control block under `generation`.
  void Publish(const std::string& v, uint64_t generation, uint32_t state = MS_CTL_STATE_ACTIVE) {
    WriteRequest req{dir_ / "root", "m", v, GenerateSource{32 << 10, 3, 32}, false};
    auto r = WriteVersion(DefaultEnv(), req);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    uint64_t checksum = 0;
    ASSERT_TRUE(ParseChecksum(r->checksum, &checksum));
    writer_->Publish(ctl::Record{0, generation, r->bytes, checksum, state, 0, v, r->path, {}});
  }
  Options Opts(bool thread = false) {
    Options o;
    o.shm_dir = shm_;
    o.heartbeat_thread = thread;
    return o;
  }
  std::unique_ptr<ModelClient> Attach(bool thread = false) {
    auto c = ModelClient::Attach("m", Opts(thread));
    EXPECT_TRUE(c.has_value()) << c.error().ToString();
    return c ? std::move(*c) : nullptr;
  }

  TempDir dir_;
  std::string shm_;
  std::unique_ptr<agent::ControlBlockWriter> writer_;
};

TEST_F(ClientTest, AttachWithoutAControlBlockIsUnavailable) {
  Options o;
  o.shm_dir = dir_ / "nowhere";
  auto c = ModelClient::Attach("m", o);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), Code::kUnavailable);
}

TEST_F(ClientTest, AttachRejectsABadModelName) {
  auto c = ModelClient::Attach("../etc", Opts());
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), Code::kInvalidArgument);
}

TEST_F(ClientTest, AttachRejectsAFileThatIsNotAControlBlock) {
  std::filesystem::create_directories(dir_ / "bad");
  std::filesystem::copy_file(shm_ + "/m.ctl", dir_ / "bad/m.ctl");
  {
    std::fstream f(dir_ / "bad/m.ctl", std::ios::in | std::ios::out | std::ios::binary);
    f.put('X');  // magic
  }
  Options o;
  o.shm_dir = dir_ / "bad";
  auto c = ModelClient::Attach("m", o);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), Code::kCorruption);
  EXPECT_NE(c.error().message().find("bad magic"), std::string::npos);
}

// The same first checks as channels and regions (CheckShmMagicAndVersion): a newer layout is
// a precondition (a newer agent), not corruption; a wrong size is corruption.
TEST_F(ClientTest, AttachRejectsANewerLayoutAndAWrongSize) {
  std::filesystem::create_directories(dir_ / "newer");
  std::filesystem::copy_file(shm_ + "/m.ctl", dir_ / "newer/m.ctl");
  {
    std::fstream f(dir_ / "newer/m.ctl", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.put(2);  // layout_version
  }
  auto newer = ctl::ControlBlockFile::Open(dir_ / "newer/m.ctl");
  ASSERT_FALSE(newer.has_value());
  EXPECT_EQ(newer.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(newer.error().message().find("layout version 2"), std::string::npos)
      << newer.error().message();

  std::filesystem::create_directories(dir_ / "short");
  std::filesystem::copy_file(shm_ + "/m.ctl", dir_ / "short/m.ctl");
  std::filesystem::resize_file(dir_ / "short/m.ctl", MS_CTL_FILE_BYTES - 64);
  auto short_file = ctl::ControlBlockFile::Open(dir_ / "short/m.ctl");
  ASSERT_FALSE(short_file.has_value());
  EXPECT_EQ(short_file.error().code(), Code::kCorruption);
  EXPECT_NE(short_file.error().message().find("real size"), std::string::npos)
      << short_file.error().message();
}

TEST_F(ClientTest, AcquireBeforeAnyVersionIsUnavailable) {
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kUnavailable);
  EXPECT_NE(h.error().message().find("no active version"), std::string::npos);
}

TEST_F(ClientTest, HandlesStayPinnedWhileNewAcquiresSeeTheNewestVersion) {
  Publish("v1", 1);
  auto c = Attach();
  auto h1 = c->Acquire();
  ASSERT_TRUE(h1.has_value()) << h1.error().ToString();
  EXPECT_EQ(h1->version(), "v1");
  Publish("v2", 2);
  auto h2 = c->Acquire();
  ASSERT_TRUE(h2.has_value());
  EXPECT_EQ(h2->version(), "v2");
  EXPECT_TRUE(h1->Get("5")->starts_with("m/v1/5/"));
  EXPECT_TRUE(h2->Get("5")->starts_with("m/v2/5/"));
  EXPECT_FALSE(h2->Get("no such key").has_value());
}

TEST_F(ClientTest, SlotAnnouncesEveryGenerationStillRead) {
  Publish("v1", 1);
  auto c = Attach();
  auto h1 = c->Acquire();
  ASSERT_TRUE(h1.has_value());
  Publish("v2", 2);
  auto h2 = c->Acquire();
  ASSERT_TRUE(h2.has_value());
  auto live = writer_->LiveSlots();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_TRUE(live[0].Holds(1));
  EXPECT_TRUE(live[0].Holds(2));
  h1 = Handle();  // drop v1; the next heartbeat narrows the range
  c->Heartbeat();
  live = writer_->LiveSlots();
  EXPECT_FALSE(live[0].Holds(1));
  EXPECT_TRUE(live[0].Holds(2));
}

TEST_F(ClientTest, AnIdleClientStopsPinningASupersededVersion) {
  Publish("v1", 1);
  auto c = Attach();
  ASSERT_TRUE(c->Acquire().has_value());  // handle dropped at once
  Publish("v2", 2);
  c->Heartbeat();
  auto live = writer_->LiveSlots();
  ASSERT_EQ(live.size(), 1u);
  EXPECT_FALSE(live[0].Holds(1));
  EXPECT_EQ(live[0].max_generation, 0u);
}

TEST_F(ClientTest, EachClientGetsItsOwnSlotAndFreesItOnDestruction) {
  auto a = Attach();
  auto b = Attach();
  EXPECT_NE(a->slot(), b->slot());
  uint32_t freed = a->slot();
  a.reset();
  auto c = Attach();
  EXPECT_EQ(c->slot(), freed);
}

TEST_F(ClientTest, ADroppedVersionIsUnavailable) {
  Publish("v1", 1, MS_CTL_STATE_FAILED);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_NE(h.error().message().find("dropped"), std::string::npos);
}

TEST_F(ClientTest, AFileThatIsNotTheVerifiedOneIsRejected) {
  Publish("v1", 1);
  auto rec = writer_->Current();
  ASSERT_TRUE(rec.has_value());
  rec->checksum ^= 1;
  writer_->Publish(*rec);
  auto c = Attach();
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kCorruption);
}

TEST_F(ClientTest, ARecordLeftMidWriteIsUnavailable) {
  Publish("v1", 1);
  auto c = Attach();
  auto file = ctl::ControlBlockFile::Open(shm_ + "/m.ctl");
  ASSERT_TRUE(file.has_value());
  ctl::Word((*file)->header().record.seq).fetch_add(1);  // an agent killed mid-write
  auto h = c->Acquire();
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code(), Code::kUnavailable);
  // The next agent's write repairs it.
  Publish("v2", 2);
  auto h2 = c->Acquire();
  ASSERT_TRUE(h2.has_value()) << h2.error().ToString();
  EXPECT_EQ(h2->version(), "v2");
}

TEST_F(ClientTest, ReattachesWhenTheControlBlockIsReplaced) {
  Publish("v1", 1);
  auto c = Attach();
  auto h1 = c->Acquire();
  ASSERT_TRUE(h1.has_value());
  writer_.reset();
  std::filesystem::remove(shm_ + "/m.ctl");
  auto w = agent::ControlBlockWriter::OpenOrCreate(DefaultEnv(), {shm_, "m"});
  ASSERT_TRUE(w.has_value());
  writer_ = std::move(*w);
  Publish("v2", 2);
  c->Heartbeat();
  EXPECT_EQ(c->reattach_count(), 1u);
  auto h2 = c->Acquire();
  ASSERT_TRUE(h2.has_value());
  EXPECT_EQ(h2->version(), "v2");
  EXPECT_TRUE(h1->Get("1")->starts_with("m/v1/1/"));
}

TEST_F(ClientTest, HeartbeatThreadKeepsAnIdleHandleAlive) {
  Publish("v1", 1);
  auto c = Attach(/*thread=*/true);
  auto h = c->Acquire();
  ASSERT_TRUE(h.has_value());
  auto beat = [&] { return writer_->LiveSlots().at(0).heartbeat_ns; };
  uint64_t first = beat();
  EXPECT_TRUE(modelswap::testing::PollUntil([&] { return beat() > first; }));
}

TEST_F(ClientTest, CAbiAcquiresAndGets) {
  Publish("v1", 1);
  ms_model* m = nullptr;
  ASSERT_EQ(ms_model_attach(shm_.c_str(), "m", &m), MS_OK) << ms_last_error();
  ms_handle* h = nullptr;
  ASSERT_EQ(ms_acquire(m, &h), MS_OK) << ms_last_error();
  const void* v = nullptr;
  size_t n = 0;
  ASSERT_EQ(ms_get(h, "3", 1, &v, &n), MS_OK);
  EXPECT_EQ(std::string(static_cast<const char*>(v), 7), "m/v1/3/");
  EXPECT_EQ(ms_get(h, "nope", 4, &v, &n), MS_KEY_NOT_FOUND);
  EXPECT_EQ(ms_handle_generation(h), 1u);
  EXPECT_STREQ(ms_handle_version(h), "v1");
  ms_model_detach(m);  // the handle outlives its model
  ASSERT_EQ(ms_get(h, "3", 1, &v, &n), MS_OK);
  ms_handle_release(h);
}

TEST_F(ClientTest, CAbiReportsErrorsAsCodes) {
  ms_model* m = nullptr;
  EXPECT_EQ(ms_model_attach((dir_ / "nowhere").c_str(), "m", &m), MS_UNAVAILABLE);
  EXPECT_NE(std::string(ms_last_error()).find("does not exist"), std::string::npos);
  EXPECT_EQ(ms_model_attach(shm_.c_str(), nullptr, &m), MS_INVALID_ARGUMENT);
  ASSERT_EQ(ms_model_attach(shm_.c_str(), "m", &m), MS_OK);
  ms_handle* h = nullptr;
  EXPECT_EQ(ms_acquire(m, &h), MS_UNAVAILABLE);
  ms_model_detach(m);
}

}  // namespace
}  // namespace modelswap::client
