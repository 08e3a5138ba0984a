// What the subcommands on the model volume share (file_commands.cc): the --root, --model and
// --version options, options checked against a range, and reporting one JSON result: on stdout,
// and in the termination log, where the operator reads a writer Job's result (Kubernetes keeps
// the file's first 4 KiB as the container's termination message).
#pragma once

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "sidecar/commands/cli.h"

namespace modelswap::commands {

using nlohmann::json;

inline constexpr const char* kDefaultTerminationLog = "/dev/termination-log";

struct VolumeArgs {
  std::string root, model, version, termination_log;
};

inline void AddVolumeOptions(CLI::App* cmd, VolumeArgs& a) {
  cmd->add_option("--root", a.root, "the model volume's mount point")->required();
  cmd->add_option("--model", a.model, "model name (DNS-1123 label)")->required();
  cmd->add_option("--version", a.version, "version name ([A-Za-z0-9._-]{1,63})")->required();
}

// An option whose value CLI11 checks lies in [lo, hi], its default shown in --help.
template <typename T, typename B>
CLI::Option* AddBoundedOption(CLI::App* cmd, const std::string& name, T& value,
                              const std::string& help, B lo, B hi) {
  return cmd->add_option(name, value, help)->check(CLI::Range(lo, hi))->capture_default_str();
}

// Kubernetes reads at most 4 KiB of termination message; ours are far smaller.
inline void WriteTerminationLog(const std::string& path, const json& j) {
  std::string target = path;
  if (target.empty()) {
    if (::access(kDefaultTerminationLog, W_OK) != 0) return;
    target = kDefaultTerminationLog;
  }
  if (FILE* f = std::fopen(target.c_str(), "w")) {
    std::fputs((j.dump() + "\n").c_str(), f);
    std::fclose(f);
  }
}

// Prints `j` as one line on stdout and writes it to the termination log; kExitOk.
inline int Report(const json& j, const std::string& termination_log) {
  std::puts(j.dump().c_str());
  std::fflush(stdout);
  WriteTerminationLog(termination_log, j);
  return kExitOk;
}

// Prints `e` on stderr, writes {"error", "code"} to the termination log; the exit code (an
// existing version has its own, so a retried writer Job can tell).
inline int ReportError(const Error& e, const std::string& termination_log) {
  std::fprintf(stderr, "modelswap-sidecar: %s\n", e.ToString().c_str());
  WriteTerminationLog(termination_log,
                      json{{"error", e.message()}, {"code", std::string(CodeName(e.code()))}});
  return e.code() == Code::kAlreadyExists ? kExitAlreadyExists : kExitError;
}

}  // namespace modelswap::commands
