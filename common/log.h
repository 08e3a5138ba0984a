// Structured logging setup shared by every modelswap binary.
//
// Logs go to stderr as logfmt lines (`ts=... level=info msg="..." key=value`), which both humans
// and log pipelines (Loki, Azure Monitor) read. Quiet by default: only warnings and errors,
// unless --log-level or MODELSWAP_LOG_LEVEL asks for more. Call sites log with spdlog directly:
// `spdlog::info("swap model={} version={}", m, v)`.
#pragma once

#include <string>

namespace modelswap {

// level: trace|debug|info|warn|error|off; empty means MODELSWAP_LOG_LEVEL, else "warn".
// Returns false (and keeps the default) for an unknown level name.
bool SetupLogging(const std::string& level);

}  // namespace modelswap
