// The task engine's own logic against an in-memory broker: one task per
// partition (co-partitioned topics together), a task's partitions paused until
// its state is restored, revocation, abort and rewind, fencing.

#include "sagaflow/core/engine/task_engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
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
  std::atomic<int> restores{0};
  std::atomic<int> aborts{0};
  std::atomic<int> destroyed{0};
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
    for (const auto& r : records) tx.Produce("out", r.key, "t" + std::to_string(task_) + ":" + r.value);
  }
  void OnIdle(TxContext&) override {}
  void OnCommitted(const std::vector<kafka::Delivered>&) override {}
  void OnAborted() override { ++shared_.aborts; }

 private:
  int32_t task_;
  Shared& shared_;
};

class TaskEngineTest : public ::testing::Test {
 protected:
  void Start(bool single_task = false) {
    TaskEngineOptions o;
    o.consumer_factory = kafka_.Consumers();
    o.producer_factory = kafka_.Producers();
    o.group_id = "group";
    o.transactional_id_prefix = "svc";
    o.input_topics = {"in", "in2"};
    o.service = "test";
    o.single_task = single_task;
    engine_ = std::make_unique<TaskEngine>(
        o, [this](int32_t task) { return std::make_unique<CopyHandler>(task, shared_); }, metrics_);
    loop_ = std::thread([this] { result_ = engine_->Run(); });
  }
  void TearDown() override {
    if (engine_) engine_->Stop();
    if (loop_.joinable()) loop_.join();
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
  Start();
  kafka_.Assign({{"in", 0}, {"in", 1}});
  kafka_.Append("in", 0, "a");
  kafka_.Append("in", 1, "b");
  ASSERT_TRUE(WaitFor([&] { return Out().size() == 2; }, 5s));

  kafka_.Revoke({{"in", 1}});
  ASSERT_TRUE(WaitFor([&] { return engine_->assigned_tasks() == 1 && shared_.destroyed.load() == 1; }, 5s));
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

}  // namespace
}  // namespace sagaflow::core
