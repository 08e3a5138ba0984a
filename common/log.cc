// Structured logging setup: logfmt on stderr, level from flag or environment.
#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace modelswap {

bool SetupLogging(const std::string& level) {
  std::string name = level;
  if (name.empty()) {
    const char* env = std::getenv("MODELSWAP_LOG_LEVEL");
    name = env != nullptr ? env : "warn";
  }
  auto logger = spdlog::stderr_logger_mt("modelswap");
  logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(logger);
  auto parsed = spdlog::level::from_str(name);
  // from_str maps unknown names to "off"; only accept "off" when asked for by name.
  bool ok = parsed != spdlog::level::off || name == "off";
  spdlog::set_level(ok ? parsed : spdlog::level::warn);
  return ok;
}

}  // namespace modelswap
