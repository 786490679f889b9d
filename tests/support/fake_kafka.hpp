#pragma once
/// An in-memory stand-in for the broker, for unit tests of the task engine:
/// partitions of records, one consumer group's committed offsets, rebalances
/// the test triggers, and transactions whose records and offsets appear only
/// when they commit. Thread-safe.

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "sagaflow/core/engine/task_engine.hpp"
#include "sagaflow/core/kafka/kafka_client.hpp"

namespace sagaflow::testing {

class FakeKafka {
 public:
  /// A committed record on topic/partition (input for the engine).
  void Append(const std::string& topic, int32_t partition, const std::string& value);
  /// Committed records of `topic`, all partitions, in commit order.
  std::vector<std::string> Values(const std::string& topic) const;
  /// The group's committed offset of topic/partition (0 if none).
  int64_t CommittedOffset(const std::string& topic, int32_t partition) const;

  /// The group's next rebalance, seen by the consumer at its next poll.
  void Assign(std::vector<kafka::TopicPartition> partitions);
  void Revoke(std::vector<kafka::TopicPartition> partitions);
  /// The next `n` commits fail with kAbortRequired.
  void FailNextCommits(int n);
  /// Producers with this transactional id are fenced from now on.
  void Fence(const std::string& transactional_id);
  /// The producers with this transactional id opened so far are fenced (as
  /// when the broker aborts their transaction); ones opened later are not.
  void FenceOpened(const std::string& transactional_id);
  /// The consumer fails for good (as librdkafka's fatal errors do) at its next poll.
  void FailConsumer(const std::string& reason);
  /// Whether topic/partition is paused by the consumer.
  bool Paused(const std::string& topic, int32_t partition) const;
  /// Transactional ids opened, in order.
  std::vector<std::string> OpenedProducers() const;

  core::ConsumerFactory Consumers();
  core::ProducerFactory Producers();

 private:
  friend class FakeConsumer;
  friend class FakeProducer;
  struct Event {
    bool assign;
    std::vector<kafka::TopicPartition> partitions;
  };
  mutable std::mutex mu_;
  std::map<kafka::TopicPartition, std::vector<std::string>> logs_;
  std::vector<std::pair<std::string, std::string>> committed_outputs_;  // (topic, value)
  kafka::OffsetMap group_offsets_;
  std::deque<Event> events_;
  std::set<kafka::TopicPartition> paused_;
  int fail_commits_ = 0;
  std::set<std::string> fenced_;
  std::map<std::string, size_t> fenced_up_to_;  // id -> producers of that id opened before FenceOpened
  std::string consumer_failure_;
  std::vector<std::string> opened_;
};

}  // namespace sagaflow::testing
