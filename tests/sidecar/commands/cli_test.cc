// modelswap-sidecar's file commands as the writer Job and operators run them: JSON on stdout and
// in the termination log, exit codes, errors naming the problem.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/env.h"
#include "sidecar/volume/manifest.h"
#include "tests/testing/msf_files.h"
#include "tests/testing/subprocess.h"

namespace modelswap {
namespace {

using nlohmann::json;

class CliTest : public ::testing::Test {
 protected:
  testing::RunResult Sidecar(std::vector<std::string> args) {
    args.insert(args.begin(), MODELSWAP_SIDECAR_BIN);
    return testing::Run(args);
  }
  std::vector<std::string> Volume(const std::string& version) {
    return {"--root", dir_.path(), "--model", "ranker", "--version", version};
  }
  testing::TempDir dir_;
  std::string root_ = dir_.path();
};

TEST_F(CliTest, WritePublishPrintsJsonAndTerminationLog) {
  std::string tlog = dir_ / "termination-log";
  auto args = Volume("v1");
  args.insert(args.begin(), "write");
  for (std::string a : {"--whole-file", "--generate-bytes", "100000", "--seed", "3", "--publish",
                        "--termination-log"})
    args.push_back(a);
  args.push_back(tlog);
  auto r = Sidecar(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  EXPECT_EQ(out["layout"], "whole-file");
  EXPECT_EQ(out["model"], "ranker");
  EXPECT_EQ(out["version"], "v1");
  EXPECT_EQ(out["manifest_generation"], 1);
  EXPECT_TRUE(out["checksum"].get<std::string>().starts_with("xxh3:"));
  EXPECT_GT(out["bytes"].get<uint64_t>(), 100000u);
  EXPECT_EQ(json::parse(ReadFileToString(DefaultEnv(), tlog).value()), out);

  auto inspect = Sidecar({"inspect", out["path"]});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  json header = json::parse(inspect.out);
  EXPECT_EQ(header["checksum"], out["checksum"]);
  EXPECT_EQ(header["model"], "ranker");
  EXPECT_EQ(header["verified"], true);
  EXPECT_EQ(header["sections"].size(), 2u);
}

// The default: chunks and a recipe, published with the recipe in the manifest; remove refuses the
// active version, deletes an inactive one's recipe; gc then finds its chunks unreferenced (kept
// while younger than the grace period).
TEST_F(CliTest, ChunkedWritePublishRemoveAndGc) {
  auto v1 = Volume("v1");
  v1.insert(v1.begin(), "write");
  for (std::string a : {"--generate-bytes", "300000", "--seed", "3", "--publish"})
    v1.push_back(a);
  auto r1 = Sidecar(v1);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  json out = json::parse(r1.out);
  EXPECT_EQ(out["layout"], "chunked");
  EXPECT_GT(out["chunks"]["total"].get<uint64_t>(), 0u);
  EXPECT_EQ(out["chunks"]["new"],
            out["chunks"]["total"].get<uint64_t>() - out["chunks"]["holes"].get<uint64_t>());
  EXPECT_TRUE(out["path"].get<std::string>().ends_with("v1.recipe"));
  auto manifest = ReadManifest(DefaultEnv(), root_, "ranker");
  ASSERT_TRUE(manifest.has_value()) << manifest.error().ToString();
  EXPECT_EQ(manifest->recipe, "versions/v1.recipe");
  EXPECT_EQ(manifest->checksum, out["checksum"]);

  auto v2 = Volume("v2");
  v2.insert(v2.begin(), "write");
  for (std::string a : {"--generate-bytes", "300000", "--seed", "4", "--publish"})
    v2.push_back(a);
  ASSERT_EQ(Sidecar(v2).exit_code, 0);
  auto active = Volume("v2");
  active.insert(active.begin(), "remove");
  EXPECT_NE(Sidecar(active).exit_code, 0) << "the active version is never removed";
  auto old = Volume("v1");
  old.insert(old.begin(), "remove");
  auto removed = Sidecar(old);
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(json::parse(removed.out)["removed"], true);
  EXPECT_FALSE(std::filesystem::exists(root_ + "/ranker/versions/v1.recipe"));

  auto gc = Sidecar({"gc", "--root", root_, "--dry-run"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  json g = json::parse(gc.out);
  EXPECT_EQ(g["recipes"], 1);
  EXPECT_GT(g["chunks_young"].get<uint64_t>(), 0u) << "v1's chunks, kept by the grace period";
  EXPECT_EQ(g["chunks_removed"], 0);
  auto now = Sidecar({"gc", "--root", root_, "--grace-seconds", "0"});
  ASSERT_EQ(now.exit_code, 0) << now.err;
  EXPECT_GT(json::parse(now.out)["chunks_removed"].get<uint64_t>(), 0u);
  auto publish_v2 = Volume("v2");
  publish_v2.insert(publish_v2.begin(), "publish");
  EXPECT_EQ(Sidecar(publish_v2).exit_code, 0) << "v2's chunks survived the gc";
}

TEST_F(CliTest, ExistingVersionExitsThreeAndLogsTheError) {
  auto args = Volume("v1");
  args.insert(args.begin(), "write");
  args.push_back("--generate-bytes");
  args.push_back("1000");
  ASSERT_EQ(Sidecar(args).exit_code, 0);
  std::string tlog = dir_ / "tlog";
  args.push_back("--termination-log");
  args.push_back(tlog);
  auto r = Sidecar(args);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  json err = json::parse(ReadFileToString(DefaultEnv(), tlog).value());
  EXPECT_EQ(err["code"], "AlreadyExists");
}

TEST_F(CliTest, UsageErrors) {
  auto r = Sidecar({"write", "--root", dir_.path(), "--model", "m", "--version", "v"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("exactly one of"), std::string::npos) << r.err;
  r = Sidecar({"write", "--root", dir_.path(), "--model", "m", "--version", "v", "--generate-bytes",
               "10", "--from-tsv", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(Sidecar({"frobnicate"}).exit_code, 2);
}

// write --delta-on: a delta's result JSON (delta, chain), inspect on it (base, depth, tombstones,
// the chain with each layer's bytes, a tombstone looked up), then --compact and --auto-compact.
TEST_F(CliTest, DeltaWriteCompactAndInspect) {
  std::string full = dir_ / "v1.tsv", changes = dir_ / "v2.tsv";
  std::string rows;
  // Rows of ~100 bytes: the base outweighs a delta's minimum of three 4 KiB pages (--auto-compact
  // below must keep the delta).
  for (int i = 0; i < 200; ++i)
    rows += "k" + std::to_string(i) + "\tvalue " + std::to_string(i) + std::string(90, 'x') + "\n";
  testing::WriteAll(full, std::as_bytes(std::span(rows)));
  std::string text = "k1\tone\nk2\t\\N\nlit\t\\\\N\n";
  testing::WriteAll(changes, std::as_bytes(std::span(text)));
  auto write = [&](const std::string& version, std::vector<std::string> more) {
    auto args = Volume(version);
    args.insert(args.begin(), "write");
    args.insert(args.end(), more.begin(), more.end());
    return Sidecar(args);
  };
  auto v1 = write("v1", {"--whole-file", "--from-tsv", full});
  ASSERT_EQ(v1.exit_code, 0) << v1.err;
  auto v2 = write("v2", {"--whole-file", "--from-tsv", changes, "--delta-on", "v1"});
  ASSERT_EQ(v2.exit_code, 0) << v2.err;
  json out = json::parse(v2.out);
  EXPECT_EQ(out["delta"]["base"], "v1");
  EXPECT_EQ(out["delta"]["chainDepth"], 1);
  EXPECT_EQ(out["delta"]["tombstones"], 1);
  EXPECT_FALSE(out.contains("compacted"));
  ASSERT_EQ(out["chain"].size(), 2u);
  EXPECT_EQ(out["chain"][0]["version"], "v2");
  EXPECT_EQ(out["chain"][0]["bytes"], out["bytes"]);
  EXPECT_EQ(out["chain"][1]["version"], "v1");
  EXPECT_EQ(out["chain"][1]["bytes"], json::parse(v1.out)["bytes"]);

  auto inspect = Sidecar(
      {"inspect", out["path"], "--key", "k1", "--key", "k2", "--key", "lit", "--key", "k3"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  json header = json::parse(inspect.out);
  EXPECT_EQ(header["delta"]["base"], "v1");
  EXPECT_EQ(header["delta"]["baseChecksum"], json::parse(v1.out)["checksum"]);
  EXPECT_EQ(header["delta"]["chainDepth"], 1);
  EXPECT_EQ(header["delta"]["tombstones"], 1);
  ASSERT_EQ(header["chain"].size(), 2u) << header.dump();
  EXPECT_EQ(header["chain"][1]["version"], "v1");
  EXPECT_EQ(header["chain"][1]["bytes"], json::parse(v1.out)["bytes"]);
  EXPECT_EQ(header["lookups"]["k1"], "one");
  EXPECT_EQ(header["lookups"]["k2"]["deleted"], true);
  EXPECT_EQ(header["lookups"]["lit"], "\\N");
  EXPECT_TRUE(header["lookups"]["k3"].is_null()) << "absent from the delta: in the base";

  // Chunked: a compaction of v2's chain, then a delta that --auto-compact keeps a delta.
  auto v3 = write("v3", {"--delta-on", "v2", "--compact", "--publish"});
  ASSERT_EQ(v3.exit_code, 0) << v3.err;
  json compacted = json::parse(v3.out);
  EXPECT_EQ(compacted["compacted"], true);
  EXPECT_EQ(compacted["layout"], "chunked");
  EXPECT_FALSE(compacted.contains("delta"));
  ASSERT_EQ(compacted["chain"].size(), 1u);
  EXPECT_EQ(compacted["chain"][0]["version"], "v3");
  EXPECT_EQ(compacted["entries"], 200 - 1 + 1);
  auto v4 = write("v4", {"--delta-on", "v3", "--from-tsv", changes, "--auto-compact", "--max-chain",
                         "1", "--compact-ratio", "0.9"});
  ASSERT_EQ(v4.exit_code, 0) << v4.err;
  json delta = json::parse(v4.out);
  EXPECT_EQ(delta["delta"]["base"], "v3");
  EXPECT_EQ(delta["layout"], "chunked");
  // A second delta would make a chain of 2 over --max-chain 1: refused with how to fix it.
  auto v5 = write("v5", {"--delta-on", "v4", "--from-tsv", changes, "--max-chain", "1"});
  EXPECT_EQ(v5.exit_code, 1);
  EXPECT_NE(v5.err.find("chain of ranker v5 would hold 2 deltas (limit 1): compact it "
                        "(write --compact)"),
            std::string::npos)
      << v5.err;
}

TEST_F(CliTest, DeltaFlagsAreValidated) {
  struct Case {
    std::vector<std::string> args;
    std::string want;
  } cases[] = {
      {{"--generate-bytes", "10", "--compact"}, "--compact needs --delta-on"},
      {{"--from-tsv", "x", "--auto-compact"}, "--auto-compact needs --delta-on"},
      {{"--from-tsv", "x", "--max-chain", "3"}, "--max-chain needs --delta-on"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--compact-ratio", "0.3"},
       "--compact-ratio needs --auto-compact"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--compact", "--auto-compact"},
       "--compact or --auto-compact, not both"},
      {{"--generate-bytes", "10", "--delta-on", "v0"}, "from --from-tsv only"},
      {{"--delta-on", "v0"}, "--delta-on needs --from-tsv"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--base", "v0"}, "--base does not combine"},
      {{"--from-tsv", "x", "--delta-on", "v"}, "--delta-on names the version being written"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--max-chain", "8"}, "--max-chain"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--max-chain", "0"}, "--max-chain"},
      {{"--from-tsv", "x", "--delta-on", "v0", "--auto-compact", "--compact-ratio", "0"},
       "--compact-ratio"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args{"write", "--root", dir_.path(), "--model", "m", "--version", "v"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = Sidecar(args);
    EXPECT_EQ(r.exit_code, 2) << c.want << ": " << r.err;
    EXPECT_NE(r.err.find(c.want), std::string::npos) << r.err;
  }
}

TEST_F(CliTest, InspectNamesTheFailedCheck) {
  std::string path = dir_ / "f.msf";
  testing::BuildMsfFile(path, {{"a", "b"}});
  auto bytes = testing::ReadAll(path);
  bytes[4096] ^= std::byte{1};
  testing::WriteAll(path, bytes);
  auto r = Sidecar({"inspect", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("section 0 (data) checksum mismatch"), std::string::npos) << r.err;
  auto header_only = Sidecar({"inspect", "--header-only", path});
  EXPECT_EQ(header_only.exit_code, 0) << header_only.err;
  EXPECT_EQ(json::parse(header_only.out)["verified"], false);
  auto missing = Sidecar({"inspect", dir_ / "nope.msf"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
}

TEST_F(CliTest, PublishAndRemove) {
  for (std::string v : {"v1", "v2"}) {
    auto args = Volume(v);
    args.insert(args.begin(), "write");
    args.push_back("--generate-bytes");
    args.push_back("1000");
    ASSERT_EQ(Sidecar(args).exit_code, 0);
  }
  auto pub = Volume("v2");
  pub.insert(pub.begin(), "publish");
  auto r = Sidecar(pub);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["manifest_generation"], 1);
  auto rm = Volume("v2");
  rm.insert(rm.begin(), "remove");
  r = Sidecar(rm);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("active version"), std::string::npos);
  rm = Volume("v1");
  rm.insert(rm.begin(), "remove");
  r = Sidecar(rm);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["removed"], true);
}

// A port nothing listens on right now (bound, read back, closed).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(CliTest, WaitReadyTimesOutWhileNothingAnswers) {
  std::string url = "http://127.0.0.1:" + std::to_string(FreePort()) + "/readyz";
  auto r = Sidecar({"wait-ready", "--url", url, "--timeout", "1", "--interval", "0.1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not ready after"), std::string::npos) << r.err;
}

// The agent's stand-in: python's http.server answers 200 for an existing file "readyz" (and 404
// before it exists), so wait-ready must keep polling until the file appears.
TEST_F(CliTest, WaitReadyReturnsOnceReadyzAnswers200) {
  int port = FreePort();
  pid_t server = fork();
  if (server == 0) {
    execlp("python3", "python3", "-m", "http.server", std::to_string(port).c_str(), "--bind",
           "127.0.0.1", "--directory", dir_.path().c_str(), nullptr);
    _exit(127);
  }
  pid_t waiter = fork();
  if (waiter == 0) {
    std::string url = "http://127.0.0.1:" + std::to_string(port) + "/readyz";
    execl(MODELSWAP_SIDECAR_BIN, MODELSWAP_SIDECAR_BIN, "wait-ready", "--url", url.c_str(),
          "--timeout", "60", "--interval", "0.1", nullptr);
    _exit(127);
  }
  usleep(300'000);  // not synchronisation: only makes the 404 phase likely to be exercised
  testing::WriteAll(dir_ / "readyz", std::as_bytes(std::span("ok", 2)));
  int status = 0;
  ASSERT_EQ(waitpid(waiter, &status, 0), waiter);
  ::kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace modelswap
