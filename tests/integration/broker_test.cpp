// The Kafka path everything else stands on, against the real broker:
// transactional produce, read_committed consume, offsets in the transaction.

#include <gtest/gtest.h>

#include "sagaflow/core/kafka/kafka_client.hpp"
#include "support/kafka_env.hpp"

namespace sagaflow::kafka {
namespace {

using namespace std::chrono_literals;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WaitForBroker(config_, 30s).ok()) << "no broker at " << config_.brokers;
    prefix_ = sagaflow::testing::UniquePrefix("broker");
    topic_ = prefix_ + "data";
    ASSERT_TRUE(CreateTopics(config_, {{topic_, 1, false, false}}, 30s).ok());
  }

  std::vector<std::string> ReadAll() {
    std::vector<std::string> values;
    auto end = ReadToEnd(config_, topic_, {}, [&](const Record& r) { values.push_back(r.value); });
    EXPECT_TRUE(end.ok()) << (end.ok() ? "" : end.error().message);
    return values;
  }

  // Commits records "in-0".."in-<n-1>" to the topic in one transaction.
  void ProduceInputs(TransactionalProducer& p, int n) {
    ASSERT_TRUE(p.Begin().ok());
    for (int i = 0; i < n; ++i) ASSERT_TRUE(p.Produce(topic_, "k", "in-" + std::to_string(i)).ok());
    ASSERT_TRUE(p.Commit().ok());
  }

  // Polls `consumer` until `got` holds at least `n` records (30 s at most).
  static bool PollAtLeast(GroupConsumer& consumer, size_t n, std::vector<Record>& got) {
    return sagaflow::testing::WaitFor(
        [&] {
          auto batch = consumer.Poll(10, 100ms);
          got.insert(got.end(), batch.begin(), batch.end());
          return got.size() >= n;
        },
        30s);
  }

  KafkaConfig config_ = sagaflow::testing::TestKafka();
  std::string prefix_;
  std::string topic_;
};

TEST_F(BrokerTest, ReadCommittedSeesCommittedRecordsAndNeverAbortedOnes) {
  auto producer = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  auto& p = *producer.value();

  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.Produce(topic_, "k1", "committed-1").ok());
  ASSERT_TRUE(p.Produce(topic_, "k2", "committed-2").ok());
  auto delivered = p.Commit();
  ASSERT_TRUE(delivered.ok()) << delivered.error().message;
  ASSERT_EQ(delivered->size(), 2u);
  EXPECT_EQ((*delivered)[0].topic, topic_);
  EXPECT_EQ((*delivered)[1].offset, (*delivered)[0].offset + 1);

  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.Produce(topic_, "k3", "aborted").ok());
  ASSERT_TRUE(p.Abort().ok());

  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.Produce(topic_, "k4", "committed-3").ok());
  auto last = p.Commit();
  ASSERT_TRUE(last.ok()) << last.error().message;
  ASSERT_TRUE(sagaflow::testing::WaitVisible(config_, *last)) << "the commit's markers never became visible";

  EXPECT_EQ(ReadAll(), (std::vector<std::string>{"committed-1", "committed-2", "committed-3"}));
}

TEST_F(BrokerTest, ReadToEndResumesFromAStoredOffset) {
  auto producer = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(producer.ok()) << producer.error().message;
  ASSERT_TRUE(producer.value()->Begin().ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(producer.value()->Produce(topic_, "k", std::to_string(i)).ok());
  auto delivered = producer.value()->Commit();
  ASSERT_TRUE(delivered.ok());
  ASSERT_TRUE(sagaflow::testing::WaitVisible(config_, *delivered)) << "the commit's markers never became visible";

  OffsetMap start{{{topic_, 0}, (*delivered)[3].offset}};
  std::vector<std::string> values;
  auto end = ReadToEnd(config_, topic_, start, [&](const Record& r) { values.push_back(r.value); });
  ASSERT_TRUE(end.ok()) << end.error().message;
  EXPECT_EQ(values, (std::vector<std::string>{"3", "4"}));
  // The end offset is past the commit marker, so a second read from it finds nothing.
  std::vector<std::string> again;
  auto end2 = ReadToEnd(config_, topic_, end.value(), [&](const Record& r) { again.push_back(r.value); });
  ASSERT_TRUE(end2.ok());
  EXPECT_TRUE(again.empty());
}

TEST_F(BrokerTest, OffsetsSentInTheTransactionAreCommittedForTheGroup) {
  const std::string out_topic = prefix_ + "out";
  ASSERT_TRUE(CreateTopics(config_, {{out_topic, 1, false, false}}, 30s).ok());
  auto producer = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(producer.ok());
  auto& p = *producer.value();
  ASSERT_NO_FATAL_FAILURE(ProduceInputs(p, 3));

  const std::string group = prefix_ + "group";
  {
    auto consumer = GroupConsumer::Open(config_, group, {topic_});
    ASSERT_TRUE(consumer.ok()) << consumer.error().message;
    std::vector<Record> got;
    ASSERT_TRUE(PollAtLeast(*consumer.value(), 3, got));
    // Process the first two only: output + offsets in one transaction.
    ASSERT_TRUE(p.Begin().ok());
    ASSERT_TRUE(p.Produce(out_topic, "k", "out-0").ok());
    ASSERT_TRUE(p.SendOffsets({{{topic_, 0}, got[1].offset + 1}}, *consumer.value()).ok());
    ASSERT_TRUE(p.Commit().ok());
    consumer.value()->Close();
  }
  // A new member of the group resumes after the committed offset.
  auto consumer = GroupConsumer::Open(config_, group, {topic_});
  ASSERT_TRUE(consumer.ok());
  std::vector<Record> got;
  ASSERT_TRUE(PollAtLeast(*consumer.value(), 1, got));
  EXPECT_EQ(got.front().value, "in-2");
  consumer.value()->Close();
}

TEST_F(BrokerTest, CommittedOffsetsAreTheGroupsLastCommitAndNotWhatAnOpenTransactionWouldCommit) {
  auto producer = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(producer.ok());
  auto& p = *producer.value();
  ASSERT_NO_FATAL_FAILURE(ProduceInputs(p, 3));

  const std::string group = prefix_ + "group";
  auto none = CommittedOffsets(config_, group, topic_);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->empty());  // the group never committed

  auto consumer = GroupConsumer::Open(config_, group, {topic_});
  ASSERT_TRUE(consumer.ok()) << consumer.error().message;
  std::vector<Record> got;
  ASSERT_TRUE(PollAtLeast(*consumer.value(), 3, got));
  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.SendOffsets({{{topic_, 0}, got[0].offset + 1}}, *consumer.value()).ok());
  ASSERT_TRUE(p.Commit().ok());
  // The next transaction's offsets are pending until it ends.
  ASSERT_TRUE(p.Begin().ok());
  ASSERT_TRUE(p.Produce(topic_, "k", "pending").ok());
  ASSERT_TRUE(p.SendOffsets({{{topic_, 0}, got[2].offset + 1}}, *consumer.value()).ok());
  auto committed = CommittedOffsets(config_, group, topic_);
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(*committed, (OffsetMap{{{topic_, 0}, got[0].offset + 1}}));
  ASSERT_TRUE(p.Abort().ok());
  consumer.value()->Close();
  // An aborted commit never counts.
  committed = CommittedOffsets(config_, group, topic_);
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(*committed, (OffsetMap{{{topic_, 0}, got[0].offset + 1}}));
}

TEST_F(BrokerTest, ASecondInstanceWithTheSameTransactionalIdFencesTheFirst) {
  auto first = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(first.ok());
  auto second = TransactionalProducer::Open(config_, prefix_ + "tx", 30s);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(first.value()->Begin().ok());
  (void)first.value()->Produce(topic_, "k", "zombie");
  auto commit = first.value()->Commit();
  ASSERT_FALSE(commit.ok());
  EXPECT_EQ(commit.error().code, core::Errc::kFenced) << commit.error().message;
  EXPECT_TRUE(ReadAll().empty());
}

}  // namespace
}  // namespace sagaflow::kafka
