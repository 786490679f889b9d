#pragma once
/// Logging set-up: one spdlog logger per module ("order", "kafka", ...), all
/// writing to stderr with the same pattern. Every line about a saga carries
/// `saga=<id>` so `grep saga=42` shows one saga's whole story across services.

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>

namespace sagaflow::core {

/// Configures the default logger (pattern, level). `level` is an spdlog level
/// name (trace, debug, info, warn, error); returns false if it is unknown.
bool InitLogging(std::string_view service, std::string_view level);

/// The logger for `module`, created on first use with the default sinks.
std::shared_ptr<spdlog::logger> Logger(const std::string& module);

}  // namespace sagaflow::core
