// How a Processor sizes its transactions (ProcessorOptions::commit_interval):
// input that reaches a waiting loop is committed at once, input that was
// already waiting lets the batch fill; and what it reports about them. Driven
// by a scripted record source, so no test here depends on timing.

#include "sagaflow/core/processor.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "support/fake_kafka.hpp"

namespace sagaflow::core {
namespace {

using namespace std::chrono_literals;
using sagaflow::testing::FakeKafka;

// One Poll's answer, and what Queued() says just before it.
struct Step {
  size_t queued_before = 0;
  std::vector<std::string> values;
};

// Hands out the script one step per Poll; at its end it stops the processor.
class ScriptedSource final : public RecordSource {
 public:
  ScriptedSource(std::vector<Step> script, kafka::GroupConsumer& consumer)
      : script_(std::move(script)), consumer_(consumer) {}
  void set_processor(Processor* p) { processor_ = p; }

  std::vector<kafka::Record> Poll(size_t max_records, std::chrono::milliseconds) override {
    if (next_ >= script_.size()) {
      processor_->Stop();
      return {};
    }
    const auto& step = script_[next_++];
    EXPECT_LE(step.values.size(), max_records);
    std::vector<kafka::Record> out;
    for (const auto& v : step.values) out.push_back({"in", 0, offset_++, "k", v, 0});
    return out;
  }
  size_t Queued() const override { return next_ < script_.size() ? script_[next_].queued_before : 0; }
  size_t polls() const { return next_; }
  Status Rewind() override { return Status::Ok(); }
  kafka::GroupConsumer& consumer() override { return consumer_; }

 private:
  std::vector<Step> script_;
  kafka::GroupConsumer& consumer_;
  Processor* processor_ = nullptr;
  size_t next_ = 0;
  int64_t offset_ = 0;
};

// Copies every record to "out" and notes how many records each transaction carried.
// Waiting() says waiting[k] in the k-th iteration (0 past its end).
class CopyHandler final : public ProcessorHandler {
 public:
  explicit CopyHandler(std::vector<size_t> waiting) : waiting_(std::move(waiting)) {}
  size_t Waiting() const override {
    return (idled_ < waiting_.size() ? waiting_[idled_] : 0) + (extra_waiting ? extra_waiting() : 0);
  }
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    for (const auto& r : records) tx.Produce("out", r.key, r.value);
  }
  void OnIdle(TxContext&) override { ++idled_; }
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override {
    if (!delivered.empty()) batches.push_back(delivered.size());
  }
  void OnAborted() override {}
  // Records whose value starts with '~' are not waited for.
  bool MayWait(const kafka::Record& record) const override { return record.value.starts_with("~"); }
  std::vector<size_t> batches;
  // Work waiting besides `waiting` (optional).
  std::function<size_t()> extra_waiting;

 private:
  std::vector<size_t> waiting_;
  size_t idled_ = 0;
};

// Runs the script through a processor with `handler`, until the script ends; `attach` (optional)
// gets the source before the run.
void RunScript(FakeKafka& kafka, std::vector<Step> script, ProcessorHandler& handler, Metrics& metrics,
               std::chrono::milliseconds commit_interval = {}, size_t max_batch = ProcessorOptions{}.max_batch,
               const std::function<void(const ScriptedSource&)>& attach = {}) {
  auto consumer = kafka.Consumers()(kafka::KafkaConfig{}, "group", {"in"}, {});
  ASSERT_TRUE(consumer.ok());
  ScriptedSource source(std::move(script), *consumer.value());
  if (attach) attach(source);
  ProcessorOptions options;
  options.producer_factory = kafka.Producers();
  options.transactional_id = "batch-test";
  options.service = "test";
  options.commit_interval = commit_interval;
  options.max_batch = max_batch;
  Processor processor(options, handler, metrics, source);
  source.set_processor(&processor);
  EXPECT_TRUE(processor.Run().ok());
}

// Runs the script through a processor and returns the size of every transaction.
std::vector<size_t> Batches(std::vector<Step> script, std::chrono::milliseconds commit_interval, size_t max_batch,
                            std::vector<size_t> handler_waiting = {}) {
  FakeKafka kafka;
  CopyHandler handler(std::move(handler_waiting));
  Metrics metrics("test");
  RunScript(kafka, std::move(script), handler, metrics, commit_interval, max_batch);
  EXPECT_EQ(kafka.Values("out").size(), 5u);
  return handler.batches;
}

TEST(ProcessorBatching, InputReachingAWaitingLoopIsCommittedAtOnceWhateverTheInterval) {
  // Nothing was waiting as each iteration began: one transaction per arrival, none waits for the next.
  EXPECT_EQ(Batches({{0, {"a"}}, {0, {"b"}}, {0, {"c"}}, {0, {"d", "e"}}}, 60s, 100),
            (std::vector<size_t>{1, 1, 1, 2}));
}

TEST(ProcessorBatching, ALoopBehindTwiceInARowLetsItsBatchFillUntilItIsFull) {
  // "b" was waiting when the second iteration began, but the loop had been waiting before: a
  // burst, committed at once. "c" was waiting too: behind twice, so "d" and "e" join its
  // transaction, which ends when it holds max_batch records.
  EXPECT_EQ(Batches({{0, {"a"}}, {1, {"b"}}, {1, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 60s, 3),
            (std::vector<size_t>{1, 1, 3}));
}

TEST(ProcessorBatching, AnIterationThatFindsNothingWaitingEndsTheBacklog) {
  // Behind twice ("b" fills up with "c"), then nothing waiting before "d": committed at once.
  EXPECT_EQ(Batches({{1, {"a"}}, {1, {"b"}}, {1, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 60s, 2),
            (std::vector<size_t>{1, 2, 1, 1}));
}

TEST(ProcessorBatching, WorkWaitingInTheHandlerCountsAsInputWaiting) {
  // No record was waiting, but the handler had work waiting (HTTP requests) as the second and
  // third iterations began: behind twice, so the third iteration's batch fills.
  EXPECT_EQ(Batches({{0, {"a"}}, {0, {"b"}}, {0, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 60s, 3, {0, 1, 1}),
            (std::vector<size_t>{1, 1, 3}));
}

TEST(ProcessorBatching, WithoutAnIntervalALoopThatIsBehindCommitsEachBatchAsItComes) {
  EXPECT_EQ(Batches({{1, {"a"}}, {1, {"b"}}, {1, {"c"}}, {1, {"d"}}, {1, {"e"}}}, 0ms, 3),
            (std::vector<size_t>{1, 1, 1, 1, 1}));
}

TEST(ProcessorBatching, RecordsNobodyWaitsForFillUntilARecordThatIsWaitedForComes) {
  // "~a" and "~b" may wait: the batch fills and "c", waited for, joins it and ends the fill.
  EXPECT_EQ(Batches({{0, {"~a"}}, {0, {"~b"}}, {0, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 60s, 100),
            (std::vector<size_t>{3, 1, 1}));
  // Only records that may wait: the batch fills until it is full.
  EXPECT_EQ(Batches({{0, {"~a"}}, {0, {"~b", "~c"}}, {0, {"~d"}}, {0, {"~e"}}}, 60s, 3),
            (std::vector<size_t>{3, 2}));
}

TEST(ProcessorBatching, RecordsNobodyWaitsForAreCommittedAtOnceWhenWorkIsWaitingOrWithoutAnInterval) {
  // The handler had work waiting as the first iteration began: "~a" goes with it at once. In the
  // second nothing waits, so "~b" fills until "c".
  EXPECT_EQ(Batches({{0, {"~a"}}, {0, {"~b"}}, {0, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 60s, 100, {1}),
            (std::vector<size_t>{1, 2, 1, 1}));
  EXPECT_EQ(Batches({{0, {"~a"}}, {0, {"~b"}}, {0, {"c"}}, {0, {"d"}}, {0, {"e"}}}, 0ms, 100),
            (std::vector<size_t>{1, 1, 1, 1, 1}));
}

TEST(ProcessorBatching, WorkHandedToTheHandlerEndsTheFillOfRecordsNobodyWaitsFor) {
  FakeKafka kafka;
  CopyHandler handler({});
  Metrics metrics("test");
  // Work is handed over (an HTTP request; the loop is woken for it) right after the second Poll.
  RunScript(kafka, {{0, {"~a"}}, {0, {"~b"}}, {0, {"~c"}}, {0, {"d"}}, {0, {"e"}}}, handler, metrics, 60s,
            ProcessorOptions{}.max_batch, [&](const ScriptedSource& source) {
              handler.extra_waiting = [&] { return source.polls() == 2 && handler.batches.empty() ? 1u : 0u; };
            });
  // The work ends the first fill after "~b"; the next fill ends at "d".
  EXPECT_EQ(handler.batches, (std::vector<size_t>{2, 2, 1}));
}

// Copies every record to "out", noting how many Polls the source had answered at each OnRecords.
class ArrivalHandler final : public ProcessorHandler {
 public:
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    polls_seen.push_back(source->polls());
    for (const auto& r : records) tx.Produce("out", r.key, r.value);
  }
  void OnIdle(TxContext&) override {}
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override {
    if (!delivered.empty()) batches.push_back(delivered.size());
  }
  void OnAborted() override {}
  const ScriptedSource* source = nullptr;
  std::vector<size_t> polls_seen;
  std::vector<size_t> batches;
};

TEST(ProcessorBatching, ABatchThatFillsIsHandedToTheHandlerAsItArrives) {
  FakeKafka kafka;
  ArrivalHandler handler;
  Metrics metrics("test");
  // Behind twice from the second iteration: "b", "c" and "d" fill one batch. Each of them reaches
  // the handler right after the Poll that brought it, not once the batch is full.
  RunScript(kafka, {{1, {"a"}}, {1, {"b"}}, {1, {"c"}}, {0, {"d"}}, {0, {"e"}}}, handler, metrics, 60s, 3,
            [&](const ScriptedSource& source) { handler.source = &source; });
  EXPECT_EQ(handler.batches, (std::vector<size_t>{1, 3, 1}));
  EXPECT_EQ(handler.polls_seen, (std::vector<size_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(kafka.Values("out"), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(metrics.Value("records_processed_total"), 5);
}

// Writes each record to "out", partition offset % 2, and to "audit".
class FanOutHandler final : public ProcessorHandler {
 public:
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    for (const auto& r : records) {
      tx.ProduceTo("out", static_cast<int32_t>(r.offset % 2), r.key, r.value);
      tx.Produce("audit", r.key, r.value);
    }
  }
  void OnIdle(TxContext&) override {}
  void OnCommitted(const std::vector<kafka::Delivered>&) override {}
  void OnAborted() override {}
};

TEST(ProcessorMetrics, CountThePartitionsEachCommittedTransactionWrote) {
  FakeKafka kafka;
  FanOutHandler handler;
  Metrics metrics("test");
  // Offsets 0-2 write out/0, out/1 and audit/0; offset 3 writes out/1 and audit/0.
  RunScript(kafka, {{0, {"a", "b", "c"}}, {0, {"d"}}}, handler, metrics);

  EXPECT_EQ(metrics.Value("transactions_committed_total"), 2);
  EXPECT_EQ(metrics.Value("records_produced_total"), 8);
  EXPECT_EQ(metrics.Value("transaction_partitions_total"), 3 + 2);
  const auto text = metrics.RenderPrometheus();
  EXPECT_NE(text.find("sagaflow_send_offsets_seconds_count{service=\"test\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sagaflow_commit_seconds_count{service=\"test\"} 2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace sagaflow::core
