#include "sagaflow/core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace sagaflow::core {

bool InitLogging(std::string_view service, std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  auto logger = spdlog::stderr_color_mt(std::string(service));
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  spdlog::flush_every(std::chrono::seconds(1));
  spdlog::flush_on(spdlog::level::warn);
  return true;
}

std::shared_ptr<spdlog::logger> Logger(const std::string& module) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = spdlog::default_logger()->clone(module);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace sagaflow::core
