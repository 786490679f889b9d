#include "support/kafka_env.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
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

bool WaitVisible(const kafka::KafkaConfig& config, const std::vector<kafka::Delivered>& delivered,
                 std::chrono::milliseconds timeout) {
  // The end offset (last stable offset) each partition must pass, by topic.
  std::map<std::string, kafka::OffsetMap> needed;
  for (const auto& d : delivered) {
    auto& end = needed[d.topic][{d.topic, d.partition}];
    end = std::max(end, d.offset + 1);
  }
  return WaitFor(
      [&] {
        for (const auto& [topic, ends] : needed) {
          auto now = kafka::EndOffsets(config, topic);
          if (!now.ok()) return false;
          for (const auto& [tp, end] : ends) {
            auto it = now->find(tp);
            if (it == now->end() || it->second < end) return false;
          }
        }
        return true;
      },
      timeout);
}

}  // namespace sagaflow::testing
