#include "sagaflow/core/result.hpp"

#include <spdlog/spdlog.h>

namespace sagaflow::core {

void CheckFailed(const char* expr, const char* file, int line, const std::string& message) {
  spdlog::critical("invariant broken: {} ({}:{}): {}", expr, file, line, message);
  spdlog::shutdown();
  std::fprintf(stderr, "sagaflow: invariant broken: %s (%s:%d): %s\n", expr, file, line, message.c_str());
  std::abort();
}

}  // namespace sagaflow::core
