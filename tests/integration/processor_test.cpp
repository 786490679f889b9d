// The transactional loop against the real broker: a batch whose transaction
// cannot commit is aborted, the input is consumed again, and the outputs of
// the failed attempt are never visible.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "sagaflow/core/engine/task_engine.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::core {
namespace {

using namespace std::chrono_literals;
using sagaflow::testing::WaitFor;

// Copies every input record to `out`; the first time it sees a record it
// also produces to a topic that does not exist, which makes the transaction fail.
class FailOnceHandler : public TaskHandler {
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
  Status Restore() override { return Status::Ok(); }

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
  TaskEngineOptions options;
  options.kafka = loop_config;
  options.group_id = prefix + "group";
  options.transactional_id_prefix = prefix + "loop";
  options.input_topics = {in};
  options.service = "test";
  // The topic has one partition: its task is the only one. The engine owns
  // the handler it makes; the test keeps a pointer to read its counters.
  struct Forward : TaskHandler {
    explicit Forward(FailOnceHandler& h) : h(h) {}
    void OnRecords(std::span<const kafka::Record> r, TxContext& tx) override { h.OnRecords(r, tx); }
    void OnIdle(TxContext& tx) override { h.OnIdle(tx); }
    void OnCommitted(const std::vector<kafka::Delivered>& d) override { h.OnCommitted(d); }
    void OnAborted() override { h.OnAborted(); }
    Status Restore() override { return h.Restore(); }
    FailOnceHandler& h;
  };
  std::atomic<int> tasks_made{0};
  TaskEngine engine(
      options,
      [&](int32_t task) {
        EXPECT_EQ(task, 0);
        ++tasks_made;
        return std::make_unique<Forward>(handler);
      },
      metrics);
  std::thread loop([&] { EXPECT_TRUE(engine.Run().ok()); });

  const bool copied = WaitFor([&] { return handler.committed_.load() >= 1; }, 60s);
  engine.Stop();
  loop.join();
  EXPECT_GE(tasks_made.load(), 1);
  ASSERT_TRUE(copied) << "the input was never copied after the failed attempt";

  EXPECT_EQ(handler.aborted_.load(), 1);
  EXPECT_EQ(handler.seen_.load(), 2) << "the input must be handed over again after the abort";
  EXPECT_EQ(metrics.Value("transactions_aborted_total"), 1);
  // The commit's markers are written after it returned: read until the copy is visible.
  std::vector<std::string> values;
  WaitFor(
      [&] {
        values.clear();
        return kafka::ReadToEnd(config, out, {}, [&](const kafka::Record& r) { values.push_back(r.value); }).ok() &&
               !values.empty();
      },
      30s);
  EXPECT_EQ(values, std::vector<std::string>{"copy of input"}) << "the aborted attempt's copy must not be visible";
}

}  // namespace
}  // namespace sagaflow::core
