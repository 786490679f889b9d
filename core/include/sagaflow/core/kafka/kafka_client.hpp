#pragma once
/// The only Kafka API of sagaflow: a thin layer over librdkafka (whose types
/// never appear here) with the three pieces a service needs:
///  - TransactionalProducer: produce a batch of outputs and the consumed input
///    offsets in one Kafka transaction;
///  - GroupConsumer: read_committed group consumer of the input topics, no
///    auto-commit (offsets are committed through the producer's transaction);
///  - ReadToEnd: replays a changelog from given offsets to its current end,
///    used to rebuild local projections.
/// Errors of the transactional API come back as core::Error with code
/// kAbortRequired (abort the transaction, rewind the consumer, start again),
/// kFenced (another instance owns the transactional id: stop), kInternal (a
/// fatal producer error: recreate the producer) or retryable=true (call again).
/// Thread safety: each object is used by one thread at a time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string_view>
#include <string>
#include <string_view>
#include <vector>

#include "sagaflow/core/result.hpp"
#include "sagaflow/core/topics.hpp"

namespace sagaflow::kafka {

struct TopicPartition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};
/// An offset per partition: for consumption, the next offset to read.
using OffsetMap = std::map<TopicPartition, int64_t>;

/// One consumed record.
struct Record {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  std::string key;
  std::string value;
  int64_t timestamp_ms = 0;
};

/// Where a produced record landed.
struct Delivered {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
};

struct KafkaConfig {
  std::string brokers = "127.0.0.1:9092";
  /// Extra librdkafka properties, applied last (e.g. from --kafka-property k=v
  /// or a --kafka-config-file: security.protocol, sasl.username, ...).
  std::map<std::string, std::string> overrides;
  /// The group id of the readers (ReadToEnd, EndOffsets, ...), which never
  /// commit; a service uses one its ACLs allow.
  std::string reader_group = "sagaflow-reader";
};

/// Parses one "key=value" (spaces around both trimmed); fails when there is
/// no '=' or no key.
core::Result<std::pair<std::string, std::string>> ParseKafkaProperty(std::string_view line);

/// Reads a file of librdkafka properties: "key=value" lines, blank lines and
/// lines starting with '#' skipped. Fails with a message naming the file (and
/// the line) when it is missing, not a regular file, accessible to other users
/// than its owner (it may hold a password: mode 0600), unreadable or malformed.
core::Result<std::map<std::string, std::string>> LoadKafkaProperties(const std::string& path);


/// Creates the topics that do not exist yet (existing ones are left as they
/// are). Fails with a message naming the topic and the broker's reason.
core::Status CreateTopics(const KafkaConfig& config, const std::vector<core::TopicSpec>& topics,
                          std::chrono::milliseconds timeout);

/// Waits until the broker answers a metadata request, or `timeout` passes.
core::Status WaitForBroker(const KafkaConfig& config, std::chrono::milliseconds timeout);

/// The id of the cluster the brokers belong to (a new one after a broker's
/// data was wiped and it was formatted again); kUnavailable (retryable) when
/// no broker answers within `timeout`.
core::Result<std::string> ClusterId(const KafkaConfig& config, std::chrono::milliseconds timeout);

class GroupConsumer;

/// See the file comment. Created ready to use (init_transactions done).
class TransactionalProducer {
 public:
  /// Connects and initializes transactions for `transactional_id` (fencing any
  /// earlier instance with the same id and aborting its open transaction).
  static core::Result<std::unique_ptr<TransactionalProducer>> Open(const KafkaConfig& config,
                                                                   const std::string& transactional_id,
                                                                   std::chrono::milliseconds init_timeout);
  virtual ~TransactionalProducer() = default;

  virtual core::Status Begin() = 0;
  /// Queues one record in the open transaction (partition by key).
  virtual core::Status Produce(const std::string& topic, const std::string& key, const std::string& value) = 0;
  /// Queues one record in the open transaction to `partition`, whatever its key.
  virtual core::Status ProduceTo(const std::string& topic, int32_t partition, const std::string& key,
                                 const std::string& value) = 0;
  /// Adds the consumer's next offsets to the open transaction.
  virtual core::Status SendOffsets(const OffsetMap& offsets, GroupConsumer& consumer) = 0;
  /// Commits; on success returns where each record produced in the
  /// transaction landed, in produce order.
  virtual core::Result<std::vector<Delivered>> Commit() = 0;
  virtual core::Status Abort() = 0;
  virtual bool InTransaction() const = 0;
};

/// What a consumer tells its owner about a rebalance. Both are called on the
/// thread that calls Poll, from inside Poll.
struct RebalanceListener {
  /// After the partitions were assigned (starting at the group's committed
  /// offsets); the owner may Pause them until it is ready for their records.
  std::function<void(const std::vector<TopicPartition>&)> on_assigned;
  /// Before the partitions are taken away: the owner finishes (commits) or
  /// drops its work on them before returning. `lost`: the group already gave
  /// them to another member, so nothing may be committed for them any more.
  std::function<void(const std::vector<TopicPartition>&, bool lost)> on_revoked;
};

/// See the file comment.
class GroupConsumer {
 public:
  static core::Result<std::unique_ptr<GroupConsumer>> Open(const KafkaConfig& config, const std::string& group_id,
                                                           const std::vector<std::string>& topics,
                                                           RebalanceListener listener = {});
  virtual ~GroupConsumer() = default;

  /// Up to `max_records` records, waiting at most `timeout` for the first.
  /// Transient errors are logged and yield an empty batch.
  virtual std::vector<Record> Poll(size_t max_records, std::chrono::milliseconds timeout) = 0;
  /// Moves every assigned partition back to its committed offset (after an
  /// aborted transaction, so the same input is processed again).
  virtual core::Status RewindToCommitted() = 0;
  /// Moves the given (assigned) partitions back to their committed offsets;
  /// records fetched before are dropped. On the Poll thread.
  virtual core::Status RewindToCommitted(const std::vector<TopicPartition>& partitions) = 0;
  /// Stops / restarts fetching the given assigned partitions. On the Poll thread.
  virtual void Pause(const std::vector<TopicPartition>& partitions) = 0;
  virtual void Resume(const std::vector<TopicPartition>& partitions) = 0;
  /// Leaves the group cleanly.
  virtual void Close() = 0;
  /// The consumer's fatal error once it has one (e.g. fenced by another member
  /// with its group.instance.id), "" before: it will never consume again.
  virtual std::string FatalError() const = 0;

  /// Internal: the librdkafka handle (rd_kafka_t*), for the producer.
  virtual void* NativeHandle() = 0;
};

/// The partition Kafka's default partitioner (murmur2, as librdkafka's
/// "murmur2_random" and the Java client) gives a non-empty `key` among
/// `partitions`. Services use it to know which partition owns a saga.
int32_t PartitionOf(std::string_view key, int32_t partitions);

/// The current end (high watermark) of every partition of `topic`.
core::Result<OffsetMap> EndOffsets(const KafkaConfig& config, const std::string& topic);

/// The offsets consumer group `group` last committed on the partitions of
/// `topic` (partitions it never committed are absent). Offsets that a
/// transaction still open would commit are not waited for and not counted.
/// Joins nothing: the group's members are not disturbed.
core::Result<OffsetMap> CommittedOffsets(const KafkaConfig& config, const std::string& group,
                                         const std::string& topic);

/// The offset of the first record of each partition of `topic` whose
/// timestamp is at or after `time_ms` (the partition's end where none is).
core::Result<OffsetMap> OffsetsForTime(const KafkaConfig& config, const std::string& topic, int64_t time_ms);

/// Reads every committed record of `topic` from `start` (missing partitions
/// start at the beginning) up to the end of each partition as of the call,
/// calling `fn` for each. Returns the next offset of every partition.
/// `progress` is called now and then with the number of records read.
/// `only_partitions`, when not empty, limits the read (and the result) to those partitions.
core::Result<OffsetMap> ReadToEnd(const KafkaConfig& config, const std::string& topic, const OffsetMap& start,
                                  const std::function<void(const Record&)>& fn,
                                  const std::function<void(int64_t)>& progress = {},
                                  const std::vector<int32_t>& only_partitions = {});

/// Follows every partition of one topic without a consumer group: the
/// read_committed records from given offsets on, as they are committed, and
/// where the reading of each partition stands (past transaction markers and
/// aborted records too, once it reached the partition's end). The base of a
/// global view (services/runtime/global_view.hpp).
/// Records arrive as soon as they are committed, but on a quiet partition the
/// reading passes the markers after the last record only when a fetch comes
/// back empty, which the broker holds up to half a second (shorter holds cost
/// the broker a request each, all the time): CommittedRecordEnds tells a
/// reader that waits for the end what is left to read without that wait.
/// Thread safety: Poll from one thread; EndOffsets and CommittedRecordEnds from any thread.
class TopicTail {
 public:
  /// Assigns every partition of `topic`, each from its offset in `start`
  /// (missing partitions from the beginning).
  static core::Result<std::unique_ptr<TopicTail>> Open(const KafkaConfig& config, const std::string& topic,
                                                       const OffsetMap& start);
  virtual ~TopicTail() = default;
  /// Up to `max_records` records, waiting at most `timeout` for the first.
  /// `positions` receives the next offset to read of every partition whose
  /// reading advanced (by records, or by reaching the partition's end).
  virtual std::vector<Record> Poll(size_t max_records, std::chrono::milliseconds timeout, OffsetMap& positions) = 0;
  /// The current end of every partition: reading is complete once each
  /// partition's position reached it (retryable error when the broker does not answer).
  virtual core::Result<OffsetMap> EndOffsets() = 0;
  /// For each partition of `from` (offsets of this topic): the offset just
  /// past the last record committed between `from` and `ends`, `from` itself
  /// when only transaction markers or aborted records lie there. A reader at
  /// `from` holds everything committed before `ends` once it has read up to
  /// that offset. Reads the gap with a client of its own that fetches only
  /// during the call (Poll is not disturbed), so it suits short gaps.
  /// kTimeout (retryable) when the gap is not read within `timeout`.
  virtual core::Result<OffsetMap> CommittedRecordEnds(const OffsetMap& from, const OffsetMap& ends,
                                                      std::chrono::milliseconds timeout) = 0;
};

/// A record handed out by ReadBulk: views into the client's buffers, valid
/// only during the call that receives it.
struct RecordView {
  int32_t partition = 0;
  int64_t offset = 0;
  int64_t timestamp_ms = 0;
  std::string_view key;
  std::string_view value;
};

/// ReadToEnd for reading a whole big topic once (sagaflow replay, export):
/// large fetches and prefetch queue, records handed over in batches without
/// copying, `progress(records read, records expected)` after every batch
/// (expected counts offsets, so transaction markers make it an upper bound).
/// Returns the next offset of every partition.
core::Result<OffsetMap> ReadBulk(const KafkaConfig& config, const std::string& topic, const OffsetMap& start,
                                 const std::function<void(std::span<const RecordView>)>& fn,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace sagaflow::kafka
