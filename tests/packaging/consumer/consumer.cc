// An app built against the installed modelswap tree only (tests/packaging/test_install.py): a
// channel writer and reader round-trip a message in argv[1], and attaching to a model whose
// control block does not exist fails with kUnavailable. With MODELSWAP_CONSUMER_REGION (the
// pkg-config build) it also commits a region and reopens it: the C++ region API links from
// libmodelswap_region.a, not from the C-ABI-only libmodelswap_region.so beside it.
#include <cstdio>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sidecar/client/channel/channel.h"
#include "sidecar/client/model/client.h"
#ifdef MODELSWAP_CONSUMER_REGION
#include "sidecar/client/region/region.h"
#endif

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "consumer: %s\n", what.c_str());
  return 1;
}

int RoundTripChannel(const std::string& dir) {
  modelswap::ChannelOptions options;
  options.message_bytes = 64;
  auto writer = modelswap::ChannelWriter::Open(dir, "packaging", options);
  if (!writer) return Fail("writer: " + writer.error().ToString());
  auto reader = modelswap::ChannelReader::Open(dir, "packaging", 64);
  if (!reader) return Fail("reader: " + reader.error().ToString());
  const std::string_view msg = "hello from the installed tree";
  const uint64_t seq = writer->Publish(std::as_bytes(std::span(msg.data(), msg.size())));
  if (seq != 1) return Fail("publish returned " + std::to_string(seq));
  std::vector<std::byte> out(reader->message_bytes());
  const modelswap::ReadResult got = reader->ReadNext(out);
  if (got.status != modelswap::ReadStatus::kMessage || got.seq != 1 || got.length != msg.size() ||
      std::memcmp(out.data(), msg.data(), msg.size()) != 0) {
    return Fail("read back something else");
  }
  return 0;
}

int AttachMissingModel(const std::string& dir) {
  modelswap::client::Options options;
  options.shm_dir = dir;
  options.heartbeat_thread = false;
  auto model = modelswap::client::ModelClient::Attach("ranker", options);
  if (model) return Fail("attached to a model without a control block");
  if (model.error().code() != modelswap::Code::kUnavailable) {
    return Fail("attach: want Unavailable, got " + model.error().ToString());
  }
  return 0;
}

#ifdef MODELSWAP_CONSUMER_REGION
int CommitRegion(const std::string& dir) {
  modelswap::RegionOptions options;
  options.bytes = 8192;
  {
    auto region = modelswap::Region::Open(dir, "packaging", options);
    if (!region) return Fail("region: " + region.error().ToString());
    const std::string_view state = "committed";
    if (auto s = region->Write(0, std::as_bytes(std::span(state.data(), state.size()))); !s) {
      return Fail("region write: " + s.error().ToString());
    }
    if (region->Commit() != 1) return Fail("first commit is not generation 1");
  }
  auto again = modelswap::Region::Open(dir, "packaging", options);
  if (!again) return Fail("region reopen: " + again.error().ToString());
  if (again->generation() != 1 || std::memcmp(again->bytes().data(), "committed", 9) != 0) {
    return Fail("region reopened without its committed state");
  }
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: consumer DIR");
  const std::string dir = argv[1];
  if (int rc = RoundTripChannel(dir)) return rc;
  if (int rc = AttachMissingModel(dir)) return rc;
#ifdef MODELSWAP_CONSUMER_REGION
  if (int rc = CommitRegion(dir)) return rc;
#endif
  std::puts("consumer: ok");
  return 0;
}
