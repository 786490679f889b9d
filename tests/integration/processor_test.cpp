// The transactional loop against the real broker: a batch whose transaction
// cannot commit is aborted, the input is consumed again, and the outputs of
// the failed attempt are never visible.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "sagaflow/core/processor.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::core {
namespace {

using namespace std::chrono_literals;
using sagaflow::testing::WaitFor;

// Copies every input record to `out`; the first time it sees a record it
// also produces to a topic that does not exist, which makes the transaction fail.
class FailOnceHandler : public ProcessorHandler {
 public:
  FailOnceHandler(std::string out, std::string missing) : out_(std::move(out)), missing_(std::move(missing)) {}

  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    for (const auto& r : records) {
      ++seen_;
      if (!failed_once_) {
        failed_once_ = true;
        tx.Produce(missing_, r.key, "never visible");
      }
      tx.Produce(out_, r.key, "copy of " + r.value);
    }
  }
  void OnIdle(TxContext&) override {}
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override { committed_ += delivered.size(); }
  void OnAborted() override { ++aborted_; }

  std::atomic<int> seen_{0};
  std::atomic<int> aborted_{0};
  std::atomic<size_t> committed_{0};

 private:
  std::string out_;
  std::string missing_;
  bool failed_once_ = false;
};

TEST(Processor, AbortsAFailedTransactionAndProcessesTheSameInputAgain) {
  const auto config = sagaflow::testing::TestKafka();
  ASSERT_TRUE(kafka::WaitForBroker(config, 30s).ok());
  const auto prefix = sagaflow::testing::UniquePrefix("processor");
  const std::string in = prefix + "in", out = prefix + "out";
  ASSERT_TRUE(kafka::CreateTopics(config, {{in, 1, false, false}, {out, 1, false, false}}, 30s).ok());

  auto producer = kafka::TransactionalProducer::Open(config, prefix + "feeder", 30s);
  ASSERT_TRUE(producer.ok());
  ASSERT_TRUE(producer.value()->Begin().ok());
  ASSERT_TRUE(producer.value()->Produce(in, "k", "input").ok());
  ASSERT_TRUE(producer.value()->Commit().ok());

  kafka::KafkaConfig loop_config = config;
  // Fail a record for an unknown topic fast instead of waiting 30 s for it to appear.
  loop_config.overrides["topic.metadata.propagation.max.ms"] = "500";
  Metrics metrics("test");
  FailOnceHandler handler(out, prefix + "does-not-exist");
  ProcessorOptions options;
  options.kafka = loop_config;
  options.group_id = prefix + "group";
  options.transactional_id = prefix + "loop";
  options.input_topics = {in};
  options.service = "test";
  Processor processor(options, handler, metrics);
  std::thread loop([&] { EXPECT_TRUE(processor.Run().ok()); });

  const bool copied = WaitFor([&] { return handler.committed_.load() >= 1; }, 60s);
  processor.Stop();
  loop.join();
  ASSERT_TRUE(copied) << "the input was never copied after the failed attempt";

  EXPECT_EQ(handler.aborted_.load(), 1);
  EXPECT_EQ(handler.seen_.load(), 2) << "the input must be handed over again after the abort";
  EXPECT_EQ(metrics.Value("transactions_aborted_total"), 1);
  std::vector<std::string> values;
  ASSERT_TRUE(kafka::ReadToEnd(config, out, {}, [&](const kafka::Record& r) { values.push_back(r.value); }).ok());
  EXPECT_EQ(values, std::vector<std::string>{"copy of input"}) << "the aborted attempt's copy must not be visible";
}

}  // namespace
}  // namespace sagaflow::core
