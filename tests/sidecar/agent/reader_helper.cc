// A reader app for the multi-process tests (and a dump tool for the Python layout tests).
//
//   reader_helper follow --shm-dir D --model M --until VERSION --progress FILE [--deadline-ms N]
//       acquire + get in a loop, checking every value belongs to the handle's version; exits 0
//       once it has read VERSION (and kept reading a little), writing "lookups torn versions
//       reattaches last_version" to FILE every 256 lookups and at the end.
//   reader_helper follow-chain --shm-dir D --model M --until VERSION --progress FILE
//                 --chain SPEC --keys N [--deadline-ms N]
//       the same over a sequence of delta versions (chain_spec.h): every lookup's value (or its
//       absence, for a deleted key) and the handle's layer count must be those of the handle's
//       version in SPEC.
//   reader_helper hold --shm-dir D --model M --progress FILE
//       acquires once, writes "holding <generation>" to FILE, then waits to be killed.
//   reader_helper layout          control_block.h offsets as "name offset" lines
//   reader_helper xxh3            "len seed hash" lines for the Python XXH3 test
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "common/checksum.h"
#include "sidecar/client/model/client.h"
#include "sidecar/client/model/control_block.h"
#include "sidecar/writer/synthetic_data.h"
#include "tests/sidecar/agent/chain_spec.h"
#include "tests/sidecar/agent/reader_app_util.h"

namespace {

using modelswap::testing::Arg;
using modelswap::testing::WriteProgress;

using modelswap::client::ModelClient;

std::unique_ptr<ModelClient> AttachOrDie(const std::string& shm, const std::string& model) {
  modelswap::client::Options o;
  o.shm_dir = shm;
  auto c = ModelClient::Attach(model, o);
  if (!c) {
    std::fprintf(stderr, "attach: %s\n", c.error().ToString().c_str());
    std::exit(2);
  }
  return std::move(*c);
}

// Acquires and looks up in a loop until VERSION (--until) has been read for a while or the deadline
// passes, writing "lookups torn versions reattaches last_version" to --progress every 256 lookups
// and at the end. `check(handle, rng)` makes 8 lookups on one handle and returns how many were
// torn. Exits 0 once it has read VERSION.
template <typename Check>
int FollowLoop(int argc, char** argv, Check check) {
  std::string shm = Arg(argc, argv, "--shm-dir"), model = Arg(argc, argv, "--model");
  std::string until = Arg(argc, argv, "--until"), progress = Arg(argc, argv, "--progress");
  long deadline_ms = std::stol(Arg(argc, argv, "--deadline-ms", "60000"));
  auto client = AttachOrDie(shm, model);
  std::mt19937_64 rng(::getpid());
  uint64_t lookups = 0, torn = 0, after_last = 0;
  std::set<std::string> versions;
  std::string last;
  auto start = std::chrono::steady_clock::now();
  auto report = [&] {
    WriteProgress(progress, std::to_string(lookups) + " " + std::to_string(torn) + " " +
                                std::to_string(versions.size()) + " " +
                                std::to_string(client->reattach_count()) + " " + last);
  };
  while (after_last < 2000) {
    auto h = client->Acquire();
    if (!h) {  // agent restarting, or not loaded yet: keep trying until the deadline
      if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(deadline_ms)) break;
      continue;
    }
    // Several lookups per handle: all must come from the handle's version.
    torn += check(*h, rng);
    lookups += 8;
    last = h->version();
    versions.insert(last);
    if (last == until) after_last += 8;
    if (lookups % 256 == 0) report();
    if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(deadline_ms)) break;
  }
  report();
  return last == until ? 0 : 1;
}

int Follow(int argc, char** argv) {
  const std::string model = Arg(argc, argv, "--model");
  return FollowLoop(argc, argv, [&](auto& h, std::mt19937_64& rng) {
    uint64_t torn = 0;
    for (int i = 0; i < 8; ++i) {
      uint64_t k = rng() % h.entry_count();
      auto v = h.Get(std::to_string(k));
      std::string want = modelswap::SyntheticPrefix(model, h.version(), k);
      if (!v || v->substr(0, want.size()) != want) ++torn;
    }
    return torn;
  });
}

int FollowChain(int argc, char** argv) {
  const std::string model = Arg(argc, argv, "--model");
  uint64_t keys = std::stoull(Arg(argc, argv, "--keys", "1"));
  auto spec = modelswap::testing::ParseChainSpec(Arg(argc, argv, "--chain"));
  return FollowLoop(argc, argv, [&](auto& h, std::mt19937_64& rng) {
    size_t index = spec.size();
    for (size_t i = 0; i < spec.size(); ++i) {
      if (spec[i].version == h.version()) index = i;
    }
    // A version outside the spec, or a chain of the wrong length, counts as torn throughout.
    bool known =
        index < spec.size() && h.layer_count() == modelswap::testing::SpecLayers(spec, index);
    uint64_t torn = 0;
    for (int i = 0; i < 8; ++i) {
      uint64_t k = rng() % keys;
      auto got = h.Lookup(std::to_string(k));
      bool ok = known && got.has_value();
      if (ok) {
        auto want = modelswap::testing::SpecExpected(spec, index, model, k);
        ok = want ? (*got && (*got)->starts_with(*want)) : !*got;
      }
      if (!ok) ++torn;
    }
    return torn;
  });
}

int Hold(int argc, char** argv) {
  auto client = AttachOrDie(Arg(argc, argv, "--shm-dir"), Arg(argc, argv, "--model"));
  auto h = client->Acquire();
  if (!h) return 2;
  WriteProgress(Arg(argc, argv, "--progress"), "holding " + std::to_string(h->generation()));
  for (;;)
    ::pause();
}

int Layout() {
#define F(name, expr) std::printf("%s %zu\n", name, static_cast<size_t>(expr))
  F("magic", offsetof(ms_ctl_header, magic));
  F("layout_version", offsetof(ms_ctl_header, layout_version));
  F("slots_offset", offsetof(ms_ctl_header, slots_offset));
  F("file_bytes", offsetof(ms_ctl_header, file_bytes));
  F("slot_count", offsetof(ms_ctl_header, slot_count));
  F("slot_bytes", offsetof(ms_ctl_header, slot_bytes));
  F("created_unix_ns", offsetof(ms_ctl_header, created_unix_ns));
  F("agent_incarnation", offsetof(ms_ctl_header, agent_incarnation));
  F("agent_heartbeat_ns", offsetof(ms_ctl_header, agent_heartbeat_ns));
  F("heartbeat_interval_ns", offsetof(ms_ctl_header, heartbeat_interval_ns));
  F("reader_timeout_ns", offsetof(ms_ctl_header, reader_timeout_ns));
  F("model", offsetof(ms_ctl_header, model_words));
  F("record", offsetof(ms_ctl_header, record));
  size_t r = offsetof(ms_ctl_header, record);
  F("record.seq", r + offsetof(ms_ctl_record, seq));
  F("record.generation", r + offsetof(ms_ctl_record, generation));
  F("record.bytes", r + offsetof(ms_ctl_record, bytes));
  F("record.checksum", r + offsetof(ms_ctl_record, checksum));
  F("record.state_word", r + offsetof(ms_ctl_record, state_word));
  F("record.published_unix_ns", r + offsetof(ms_ctl_record, published_unix_ns));
  F("record.version", r + offsetof(ms_ctl_record, version_words));
  F("record.path", r + offsetof(ms_ctl_record, path_words));
  F("record.layer_count", r + offsetof(ms_ctl_record, layer_count));
  F("record.chain_len", r + offsetof(ms_ctl_record, chain_len));
  F("record.layer_checksums", r + offsetof(ms_ctl_record, layer_checksums));
  F("record.chain_words", r + offsetof(ms_ctl_record, chain_words));
  F("record.size", sizeof(ms_ctl_record));
  F("slot.owner", offsetof(ms_ctl_slot, owner));
  F("slot.heartbeat_ns", offsetof(ms_ctl_slot, heartbeat_ns));
  F("slot.min_generation", offsetof(ms_ctl_slot, min_generation));
  F("slot.max_generation", offsetof(ms_ctl_slot, max_generation));
  F("slot.pid", offsetof(ms_ctl_slot, pid));
  F("MAGIC", 0);
  std::printf("magic_value %llu\n", static_cast<unsigned long long>(MS_CTL_MAGIC));
  std::printf("file_bytes_value %u\n", MS_CTL_FILE_BYTES);
#undef F
  return 0;
}

int Xxh3Vectors() {
  std::string buf(1100, '\0');
  for (size_t i = 0; i < buf.size(); ++i)
    buf[i] = static_cast<char>(i * 131 + 7);
  for (uint64_t seed : {0ull, 1ull, 0x9e3779b97f4a7c15ull, ~0ull}) {
    for (size_t len = 0; len <= buf.size(); ++len) {
      std::printf("%zu %llu %llu\n", len, static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(
                      modelswap::Xxh3WithSeed(std::as_bytes(std::span(buf.data(), len)), seed)));
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "follow") return Follow(argc, argv);
  if (mode == "follow-chain") return FollowChain(argc, argv);
  if (mode == "hold") return Hold(argc, argv);
  if (mode == "layout") return Layout();
  if (mode == "xxh3") return Xxh3Vectors();
  std::fprintf(stderr, "usage: reader_helper follow|hold|layout|xxh3 ...\n");
  return 2;
}
