// modelswap-sidecar: the writer Job's command, the publish/inspect tools, and the agent.
#include <cstdio>

#include "common/log.h"
#include "sidecar/commands/cli.h"

int main(int argc, char** argv) {
  modelswap::CommandContext ctx;
  CLI::App app{"modelswap-sidecar: write, publish and serve hot-swappable model files"};
  app.require_subcommand(1);
  // Global options (--log-level) are accepted after the subcommand too.
  app.fallthrough();
  app.add_option("--log-level", ctx.log_level, "trace|debug|info|warn|error (default: warn)")
      ->envname("MODELSWAP_LOG_LEVEL");
  modelswap::AddFileCommands(app, ctx);
  modelswap::AddAgentCommands(app, ctx);
  modelswap::AddWaitReadyCommand(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : modelswap::kExitUsage;
  }
  return ctx.exit_code;
}
