// The modelswap-sidecar command line: each group of subcommands registers itself on the app.
//
//   write, publish, remove, inspect   file_commands.cc (the writer Job and tools)
//   agent, get                        agent_commands.cc (the injected sidecar)
//   wait-ready                        wait_ready_command.cc (postStart hook without native
//   sidecars)
//
// Subcommands report through CommandContext: exit code, and one JSON result line on stdout.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace modelswap {

struct CommandContext {
  int exit_code = 0;
  std::string log_level;
};

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAlreadyExists = 3;

void AddFileCommands(CLI::App& app, CommandContext& ctx);
// Defined in agent_commands.cc.
void AddAgentCommands(CLI::App& app, CommandContext& ctx);
void AddWaitReadyCommand(CLI::App& app, CommandContext& ctx);

}  // namespace modelswap
