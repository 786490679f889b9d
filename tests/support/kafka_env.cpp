#include "support/kafka_env.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

#include "sagaflow/core/types.hpp"

namespace sagaflow::testing {

kafka::KafkaConfig TestKafka() {
  kafka::KafkaConfig config;
  if (const char* env = std::getenv("SAGAFLOW_TEST_BROKERS"); env != nullptr && *env != '\0') config.brokers = env;
  return config;
}

std::string UniquePrefix(const std::string& name) {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(core::NowMs()) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + "-" + name + ".";
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace sagaflow::testing
