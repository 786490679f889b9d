// The task engine's own logic against an in-memory broker: one task per
// partition (co-partitioned topics together), a task's partitions paused until
// its state is restored, revocation, abort and rewind, fencing; and the same
// tasks sharing one producer and one transaction per cycle.

#include "sagaflow/core/engine/task_engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "support/fake_kafka.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::core {
namespace {

using namespace std::chrono_literals;
using sagaflow::testing::FakeKafka;
using sagaflow::testing::WaitFor;

struct Shared {
  std::atomic<bool> restore_open{true};
  // CopyHandler defers its records (their offsets stay uncommitted) instead of copying them.
  std::atomic<bool> defer{false};
  std::atomic<int> restores{0};
  std::atomic<int> aborts{0};
  std::atomic<int> destroyed{0};
  // Records a task was told landed (OnCommitted), and what went wrong with them.
  std::mutex mu;
  std::map<int32_t, std::vector<kafka::Delivered>> delivered;
  std::map<int32_t, std::vector<std::string>> expected;  // what each task produced, committed, in order
  std::vector<std::string> mistakes;
};

// Copies each input record to "out" as "t<task>:<value>".
class CopyHandler : public TaskHandler {
 public:
  CopyHandler(int32_t task, Shared& shared) : task_(task), shared_(shared) {}
  ~CopyHandler() override { ++shared_.destroyed; }
  Status Restore() override {
    while (!shared_.restore_open.load()) std::this_thread::sleep_for(1ms);
    ++shared_.restores;
    return Status::Ok();
  }
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    for (const auto& r : records) {
      if (shared_.defer.load()) {
        tx.Defer(r);
        continue;
      }
      tx.Produce("out", r.key, "t" + std::to_string(task_) + ":" + r.value);
    }
  }
  void OnIdle(TxContext&) override {}
  void OnCommitted(const std::vector<kafka::Delivered>&) override {}
  void OnAborted() override { ++shared_.aborts; }

 protected:
  int32_t task_;
  Shared& shared_;
};

// Writes two records per input, noting tx.produced() before each (as a
// handler that later looks up where a record landed does), and checks in
// OnCommitted that it learns exactly where its own records went.
class IndexingHandler final : public CopyHandler {
 public:
  using CopyHandler::CopyHandler;
  void OnRecords(std::span<const kafka::Record> records, TxContext& tx) override {
    for (const auto& r : records) {
      for (int i = 0; i < 2; ++i) {
        const std::string value = "t" + std::to_string(task_) + ":" + r.value + "#" + std::to_string(i);
        if (tx.produced() != mine_.size()) Mistake("produced() counts other tasks' records");
        mine_.push_back(value);
        tx.Produce("out", r.key, value);
      }
    }
  }
  void OnCommitted(const std::vector<kafka::Delivered>& delivered) override {
    if (delivered.size() != mine_.size()) {
      Mistake("told of " + std::to_string(delivered.size()) + " records, produced " + std::to_string(mine_.size()));
    }
    std::lock_guard lock(shared_.mu);
    auto& all = shared_.delivered[task_];
    all.insert(all.end(), delivered.begin(), delivered.end());
    auto& expected = shared_.expected[task_];
    expected.insert(expected.end(), mine_.begin(), mine_.end());
    mine_.clear();
  }
  void OnAborted() override {
    mine_.clear();
    CopyHandler::OnAborted();
  }
 private:
  void Mistake(const std::string& what) {
    std::lock_guard lock(shared_.mu);
    shared_.mistakes.push_back("task " + std::to_string(task_) + ": " + what);
  }
  std::vector<std::string> mine_;
};

class TaskEngineTest : public ::testing::Test {
 protected:
  enum class Mode { kTaskProducers, kSingleTask, kSharedProducer };
  void Start(bool single_task = false) { Start(single_task ? Mode::kSingleTask : Mode::kTaskProducers); }
  void Start(Mode mode, bool indexing = false) {
    TaskEngineOptions o;
    o.consumer_factory = kafka_.Consumers();
    o.producer_factory = kafka_.Producers();
    o.group_id = "group";
    o.transactional_id_prefix = "svc";
    o.input_topics = {"in", "in2"};
    o.service = "test";
    o.single_task = mode == Mode::kSingleTask;
    o.shared_producer = mode == Mode::kSharedProducer;
    engine_ = std::make_unique<TaskEngine>(
        o,
        [this, indexing](int32_t task) -> std::unique_ptr<TaskHandler> {
          if (indexing) return std::make_unique<IndexingHandler>(task, shared_);
          return std::make_unique<CopyHandler>(task, shared_);
        },
        metrics_);
    loop_ = std::thread([this] { result_ = engine_->Run(); });
  }
  void TearDown() override {
    if (engine_) engine_->Stop();
    if (loop_.joinable()) loop_.join();
  }
  // Partition 1 of two is revoked: only partition 0 goes on; assigned again,
  // partition 1 resumes from its committed offset.
  void RevokeOneOfTwoPartitionsThenAssignItBack(Mode mode, int handlers_dropped) {
    Start(mode);
    kafka_.Assign({{"in", 0}, {"in", 1}});
    kafka_.Append("in", 0, "a");
    kafka_.Append("in", 1, "b");
    ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s));

    kafka_.Revoke({{"in", 1}});
    ASSERT_TRUE(WaitFor(
        [&] { return engine_->assigned_tasks() == 1 && shared_.destroyed.load() == handlers_dropped; }, 5s));
    kafka_.Append("in", 1, "late");
    kafka_.Append("in", 0, "c");
    ASSERT_TRUE(WaitFor([&] { return Out().size() == 3; }, 5s));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:c", "t1:b"})) << "a revoked partition is not processed";

    // Assigned again (as after a rebalance back), its task restores and resumes from the committed offset.
    kafka_.Assign({{"in", 1}});
    ASSERT_TRUE(WaitFor([&] { return Out().size() == 4; }, 5s));
    EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:c", "t1:b", "t1:late"}));
  }
  std::vector<std::string> Out() {
    auto v = kafka_.Values("out");
    std::sort(v.begin(), v.end());
    return v;
  }

  FakeKafka kafka_;
  Shared shared_;
  Metrics metrics_{"test"};
  std::unique_ptr<TaskEngine> engine_;
  std::thread loop_;
  Status result_;
};

TEST_F(TaskEngineTest, RunsATaskPerPartitionPausedUntilItsStateIsRestored) {
  shared_.restore_open = false;
  kafka_.Append("in", 0, "a");
  kafka_.Append("in", 1, "b");
  kafka_.Append("in2", 0, "c");
  Start();
  kafka_.Assign({{"in", 0}, {"in", 1}, {"in2", 0}});
  ASSERT_TRUE(WaitFor([&] { return kafka_.OpenedProducers().size() == 2; }, 5s));
  auto ids = kafka_.OpenedProducers();
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"svc-p0", "svc-p1"})) << "partition 0 of both topics is one task";
  EXPECT_TRUE(kafka_.Paused("in", 0));
  EXPECT_TRUE(kafka_.Paused("in2", 0));
  EXPECT_TRUE(kafka_.Paused("in", 1));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(Out().empty()) << "no input may be processed before the task's state is restored";
  EXPECT_FALSE(engine_->active_tasks() > 0);

  shared_.restore_open = true;
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 3; }, 5s));
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:c", "t1:b"}));
  EXPECT_EQ(shared_.restores.load(), 2);
  EXPECT_TRUE(WaitFor([&] { return kafka_.CommittedOffset("in", 0) == 1 && kafka_.CommittedOffset("in", 1) == 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return engine_->active_tasks() == 2 && engine_->assigned_tasks() == 2; }, 5s));
}

TEST_F(TaskEngineTest, ARevokedPartitionsTaskIsDroppedAndTheOthersGoOn) {
  ASSERT_NO_FATAL_FAILURE(RevokeOneOfTwoPartitionsThenAssignItBack(Mode::kTaskProducers, /*handlers_dropped=*/1));
  EXPECT_TRUE(WaitFor([&] { return engine_->active_tasks() == 2 && engine_->assigned_tasks() == 2; }, 5s));
  EXPECT_EQ(kafka_.OpenedProducers().size(), 3u) << "p0, p1, and p1 again after it came back";
}

TEST_F(TaskEngineTest, AFailedCommitIsAbortedAndOnlyThatTasksInputComesAgain) {
  kafka_.FailNextCommits(1);
  kafka_.Append("in", 0, "a");
  Start();
  kafka_.Assign({{"in", 0}, {"in", 1}});
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 1; }, 5s));
  EXPECT_EQ(shared_.aborts.load(), 1);
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a"})) << "the aborted attempt's output is never visible";
  kafka_.Append("in", 1, "b");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s));
  EXPECT_EQ(shared_.aborts.load(), 1);
}

TEST_F(TaskEngineTest, AFencedTaskStopsTheEngineWithTheFencedError) {
  kafka_.Fence("svc-p0");
  kafka_.Append("in", 0, "a");
  Start();
  kafka_.Assign({{"in", 0}});
  ASSERT_TRUE(WaitFor([&] { return !engine_->running() && shared_.restores.load() == 1; }, 5s));
  loop_.join();
  ASSERT_FALSE(result_.ok());
  EXPECT_EQ(result_.error().code, Errc::kFenced);
  EXPECT_TRUE(Out().empty());
}

// A consumer that can never fetch again (librdkafka's fatal errors, e.g. a
// static member fenced by another with its group.instance.id) must not leave
// a service that looks healthy and consumes nothing.
TEST_F(TaskEngineTest, AConsumerFailedForGoodStopsTheEngineWithItsReason) {
  kafka_.Append("in", 0, "a");
  Start();
  kafka_.Assign({{"in", 0}});
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 1; }, 5s));
  kafka_.FailConsumer("Broker: Static consumer fenced by other consumer with same group.instance.id");
  ASSERT_TRUE(WaitFor([&] { return !engine_->running(); }, 5s));
  loop_.join();
  ASSERT_FALSE(result_.ok());
  EXPECT_NE(result_.error().message.find("group.instance.id"), std::string::npos) << result_.error().message;
  EXPECT_EQ(engine_->assigned_tasks(), 0u);
}

TEST_F(TaskEngineTest, ASingleTaskOwnsEveryPartition) {
  kafka_.Append("in", 0, "a");
  kafka_.Append("in", 1, "b");
  Start(/*single_task=*/true);
  kafka_.Assign({{"in", 0}, {"in", 1}});
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s));
  EXPECT_EQ(kafka_.OpenedProducers(), (std::vector<std::string>{"svc-all"}));
  EXPECT_EQ(Out(), (std::vector<std::string>{"t-1:a", "t-1:b"}));
}

TEST_F(TaskEngineTest, ASharedProducerRunsEveryPartitionsTaskInOneTransactionPerCycle) {
  shared_.restore_open = false;
  kafka_.Append("in", 0, "a");
  kafka_.Append("in", 1, "b");
  kafka_.Append("in2", 0, "c");
  Start(Mode::kSharedProducer);
  kafka_.Assign({{"in", 0}, {"in", 1}, {"in2", 0}});
  ASSERT_TRUE(WaitFor([&] { return kafka_.OpenedProducers().size() == 1; }, 5s));
  EXPECT_EQ(kafka_.OpenedProducers(), (std::vector<std::string>{"svc-all"})) << "one producer for the instance";
  EXPECT_TRUE(kafka_.Paused("in", 0));
  EXPECT_TRUE(kafka_.Paused("in", 1));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(Out().empty()) << "no input may be processed before every task's state is restored";

  shared_.restore_open = true;
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 3; }, 5s));
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:c", "t1:b"})) << "each record goes to its partition's task";
  EXPECT_EQ(shared_.restores.load(), 2) << "each partition's task restores its own state";
  EXPECT_TRUE(WaitFor([&] { return kafka_.CommittedOffset("in", 0) == 1 && kafka_.CommittedOffset("in", 1) == 1; }, 5s));
  EXPECT_TRUE(WaitFor([&] { return engine_->active_tasks() == 2 && engine_->assigned_tasks() == 2; }, 5s));
}

TEST_F(TaskEngineTest, WithASharedProducerEachTaskLearnsWhereItsOwnRecordsLanded) {
  // Interleaved partitions, so that one batch holds every task's records.
  for (int i = 0; i < 20; ++i) {
    kafka_.Append("in", i % 3, std::to_string(i));
    kafka_.Append("in2", (i + 1) % 3, "x" + std::to_string(i));
  }
  Start(Mode::kSharedProducer, /*indexing=*/true);
  kafka_.Assign({{"in", 0}, {"in", 1}, {"in", 2}, {"in2", 0}, {"in2", 1}, {"in2", 2}});
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 80; }, 5s));
  engine_->Stop();
  loop_.join();

  const auto out = kafka_.Values("out");  // in commit order: a record's index is its offset in the fake
  std::lock_guard lock(shared_.mu);
  for (const auto& m : shared_.mistakes) ADD_FAILURE() << m;
  ASSERT_EQ(shared_.delivered.size(), 3u);
  for (const auto& [task, delivered] : shared_.delivered) {
    const auto& expected = shared_.expected[task];
    ASSERT_EQ(delivered.size(), expected.size()) << "task " << task;
    for (size_t i = 0; i < delivered.size(); ++i) {
      EXPECT_EQ(out.at(static_cast<size_t>(delivered[i].offset)), expected[i]) << "task " << task << " record " << i;
    }
  }
}

// The task of both partitions stops (both handlers dropped) and starts over with the one kept.
TEST_F(TaskEngineTest, ASharedProducerThatKeepsSomePartitionsAfterARevocationGoesOnWithThem) {
  ASSERT_NO_FATAL_FAILURE(RevokeOneOfTwoPartitionsThenAssignItBack(Mode::kSharedProducer, /*handlers_dropped=*/2));
  EXPECT_TRUE(WaitFor([&] { return engine_->active_tasks() == 2 && engine_->assigned_tasks() == 2; }, 5s));
}

// The records the stopped task had read but not committed (here: deferred)
// are read again by the task that starts over with the kept partitions.
TEST_F(TaskEngineTest, ASharedProducerStartingOverReadsAgainWhatItsPartitionsHadNotCommitted) {
  Start(Mode::kSharedProducer);
  kafka_.Assign({{"in", 0}, {"in", 1}});
  kafka_.Append("in", 0, "a");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 1; }, 5s));
  shared_.defer = true;
  kafka_.Append("in", 0, "held");
  ASSERT_TRUE(WaitFor([&] { return metrics_.Value("records_processed_total") >= 2; }, 5s));

  shared_.defer = false;  // the record stays deferred by the task that has it
  kafka_.Revoke({{"in", 1}});
  ASSERT_TRUE(WaitFor([&] { return shared_.destroyed.load() == 2; }, 5s));
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s)) << "the deferred record was never read again";
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:held"}));
  EXPECT_TRUE(WaitFor([&] { return kafka_.CommittedOffset("in", 0) == 2; }, 5s));
}

// The instance's producer fenced once (the broker aborted a transaction left
// open too long): a new producer takes over and the batch is processed again.
// Fenced again soon after: another process has the instance's id, stop.
TEST_F(TaskEngineTest, ASharedProducerFencedOnceIsReopenedAndFencedTwiceStopsTheEngine) {
  Start(Mode::kSharedProducer);
  kafka_.Assign({{"in", 0}, {"in", 1}});
  kafka_.Append("in", 0, "a");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 1; }, 5s));

  kafka_.FenceOpened("svc-all");
  kafka_.Append("in", 1, "b");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s));
  EXPECT_EQ(kafka_.OpenedProducers(), (std::vector<std::string>{"svc-all", "svc-all"}));
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t1:b"})) << "the fenced attempt's output is never visible";
  EXPECT_TRUE(engine_->running());

  kafka_.FenceOpened("svc-all");
  kafka_.Append("in", 0, "c");
  ASSERT_TRUE(WaitFor([&] { return !engine_->running(); }, 5s));
  loop_.join();
  ASSERT_FALSE(result_.ok());
  EXPECT_EQ(result_.error().code, Errc::kFenced);
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t1:b"}));
}

// A handler that waits long for input still sees work handed to it from
// outside Kafka at once when woken (an HTTP request in the order service).
class SlowIdleHandler final : public CopyHandler {
 public:
  using CopyHandler::CopyHandler;
  void OnIdle(TxContext&) override { ++idles; }
  std::chrono::milliseconds IdleInterval() const override { return std::chrono::milliseconds(60'000); }
  static inline std::atomic<int> idles{0};
};

TEST_F(TaskEngineTest, WakeRunsEveryTasksIdleWorkWithoutWaitingForItsIdleInterval) {
  for (auto mode : {Mode::kTaskProducers, Mode::kSharedProducer}) {
    TaskEngineOptions o;
    o.consumer_factory = kafka_.Consumers();
    o.producer_factory = kafka_.Producers();
    o.group_id = "group";
    o.transactional_id_prefix = mode == Mode::kSharedProducer ? "wake-shared" : "wake-tasks";
    o.input_topics = {"in"};
    o.service = "test";
    o.shared_producer = mode == Mode::kSharedProducer;
    TaskEngine engine(o, [this](int32_t task) { return std::make_unique<SlowIdleHandler>(task, shared_); }, metrics_);
    std::thread loop([&] { (void)engine.Run(); });
    kafka_.Assign({{"in", 0}, {"in", 1}});
    const bool active = WaitFor([&] { return engine.active_tasks() == 2; }, 5s);
    EXPECT_TRUE(active);
    // Each task's loop now waits up to a minute for input before its OnIdle.
    std::this_thread::sleep_for(50ms);
    const int before = SlowIdleHandler::idles.load();
    engine.Wake();
    EXPECT_TRUE(active && WaitFor([&] { return SlowIdleHandler::idles.load() >= before + 2; }, 30s))
        << "woken tasks kept waiting for input";
    engine.Stop();
    loop.join();
    kafka_.Revoke({{"in", 0}, {"in", 1}});
    SlowIdleHandler::idles = 0;
  }
}

// A commit that fails and whose abort is then refused as fenced (the broker
// aborted the transaction itself while its coordinator moved): the instance's
// producer is reopened as after a fenced commit, not given up.
TEST_F(TaskEngineTest, ASharedProducerFencedWhileAbortingIsReopened) {
  Start(Mode::kSharedProducer);
  kafka_.Assign({{"in", 0}});
  kafka_.Append("in", 0, "a");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 1; }, 5s));

  kafka_.FailNextCommits(1);
  kafka_.FenceOpened("svc-all");
  kafka_.Append("in", 0, "b");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s)) << "the engine gave up instead of reopening";
  EXPECT_EQ(Out(), (std::vector<std::string>{"t0:a", "t0:b"}));
  EXPECT_EQ(kafka_.OpenedProducers().size(), 2u);
  EXPECT_TRUE(engine_->running());
}

}  // namespace
}  // namespace sagaflow::core
